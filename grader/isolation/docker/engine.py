"""The Docker engine as the rest of the provider sees it: one client, retries, the grader's errors.

Every other module of the provider reaches the daemon through :func:`client` and wraps each
infrastructure call (create, start, kill, remove, inspect) in :func:`infra_call`, so that
transient daemon errors are retried by tenacity in one place and every failure reaches the
grader as its own exception: no engine or no image -> :class:`SandboxUnavailable`, a failed
call -> :class:`SandboxInfraError`. A timed run is never re-run; only the calls around it are.

docker-py is imported here and only here, guarded: a broken install must read as
"unavailable" (:data:`IMPORT_ERROR`, which ``grader doctor`` shows), not crash the grader.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from grader.errors import SandboxInfraError, SandboxUnavailable

try:  # docker-py is a dependency, but a broken install must read as "unavailable", not crash
    import docker.errors
    import docker.types
    import requests
    from docker.utils.socket import frames_iter

    docker_py = docker  # the other modules say docker_py: inside this package "docker" is ambiguous
except ImportError as _exc:  # pragma: no cover - exercised only on broken installs
    docker_py = requests = frames_iter = None  # type: ignore[assignment]
    IMPORT_ERROR: ImportError | None = _exc
else:
    IMPORT_ERROR = None

API_TIMEOUT = 60
INFRA_ATTEMPTS = 3
INFRA_WAIT_MAX = 2.0

_client_lock = threading.Lock()
_client_obj = None


def client():
    """The shared docker-py client, pinged once; SandboxUnavailable when there is no engine."""
    global _client_obj
    if IMPORT_ERROR is not None:
        raise SandboxUnavailable(f"the docker Python package does not import: {IMPORT_ERROR}") from IMPORT_ERROR
    with _client_lock:
        if _client_obj is None:
            try:
                # two long-lived connections per running container (wait + attach): room for many GPUs
                candidate = docker_py.from_env(timeout=API_TIMEOUT, max_pool_size=64)
                candidate.ping()
            except (docker_py.errors.DockerException, requests.RequestException, OSError) as exc:
                raise SandboxUnavailable(
                    f"the Docker engine does not answer ({exc}); start it (`sudo systemctl start docker`, or "
                    "`bash scripts/ci_docker.sh` on a CI machine), check access to the socket, and run `grader doctor`"
                ) from exc
            _client_obj = candidate
        return _client_obj


def reset_client() -> None:
    """Forget the shared client (tests; after the daemon restarted)."""
    global _client_obj, _runtimes
    with _client_lock:
        _client_obj = None
        _runtimes = None


_runtimes: tuple[tuple[str, ...], str] | None = None


def runtimes() -> tuple[tuple[str, ...], str]:
    """The OCI runtimes the engine has registered (sorted) and its default one; asked once."""
    global _runtimes
    if _runtimes is None:
        info, _ = infra_call("info", client().info)
        names = tuple(sorted((info.get("Runtimes") or {}).keys()))
        _runtimes = (names, str(info.get("DefaultRuntime") or "runc"))
    return _runtimes


def resolve_runtime(name: str | None) -> str:
    """The runtime a container will run with: ``name``, or the engine's default when None.

    SandboxUnavailable (exit 3) when the engine has no runtime ``name``, naming those it has.
    """
    names, default = runtimes()
    if name is None:
        return default
    if name not in names:
        hint = (" (install gVisor and register it with dockerd: see docs/docker.md, \"gVisor\")"
                if name == "runsc" else "")
        raise SandboxUnavailable(f"the Docker engine has no runtime {name!r}{hint}; "
                                 f"registered runtimes: {', '.join(names) or 'none'} (default {default})")
    return name


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a daemon hiccup worth another attempt (5xx, lost connection, timeout)."""
    if IMPORT_ERROR is not None:
        return False
    if isinstance(exc, (docker_py.errors.NotFound, docker_py.errors.ImageNotFound)):
        return False
    if isinstance(exc, docker_py.errors.APIError):
        if "could not select device driver" in str(exc):
            return False
        return exc.status_code is None or exc.status_code >= 500
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError))


def infra_call(what: str, call: Callable[[], Any]) -> tuple[Any, int]:
    """Run one infrastructure call with retries; return (result, retries used).

    Only transient daemon errors are retried. The final error is translated.
    """
    import tenacity

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(INFRA_ATTEMPTS),
        wait=tenacity.wait_exponential(multiplier=0.2, max=INFRA_WAIT_MAX),
        retry=tenacity.retry_if_exception(is_transient),
        reraise=True,
    )
    try:
        result = retrying(call)
    except Exception as exc:  # noqa: BLE001 - translated right here
        raise translate(what, exc) from exc
    return result, retrying.statistics.get("attempt_number", 1) - 1


def translate(what: str, exc: BaseException) -> Exception:
    """The grader's exception for docker-py's ``exc`` raised by call ``what``; raise it ``from exc``."""
    if IMPORT_ERROR is None:
        if isinstance(exc, docker_py.errors.ImageNotFound):
            return SandboxUnavailable(f"docker {what}: image not found ({exc}); build it with `make image-cpu` "
                                      "(CPU) or `make image` (GPU), or set GRADER_IMAGE")
        if isinstance(exc, docker_py.errors.APIError) and "could not select device driver" in str(exc):
            return SandboxUnavailable(f"docker {what}: no GPU support in this engine ({exc}); install "
                                      "nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker` "
                                      "and restart the daemon, or grade with --device cpu")
        if isinstance(exc, (requests.ConnectionError, ConnectionError)):
            return SandboxUnavailable(f"docker {what}: the engine went away ({exc}); run `grader doctor`")
    return SandboxInfraError(f"docker {what} failed: {exc}")
