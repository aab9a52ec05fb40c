"""Docker sandbox: one locked-down container per run, through docker-py.

What every container gets (see docs/docker.md for the reasons):

- ``network_mode="none"``: only the loopback interface exists inside;
- a read-only root filesystem, a size-capped tmpfs on ``/tmp`` (also ``HOME``) and a private
  ``/dev/shm``;
- memory (swap included, so the cap is real), pids and CPU limits from :class:`Limits`; when
  ``memory_bytes`` is None a safety cap of :data:`DEFAULT_MEMORY_FRACTION` of the host's memory;
- all capabilities dropped, ``no-new-privileges``, a non-root uid (:data:`SANDBOX_UID` when the
  grader runs as root, else the grader's own uid so it owns what the run writes);
- ``docker-init`` as PID 1, so orphans are reaped and a kill reaches everything;
- exactly the spec's mounts at ``/mnt/<name>`` (``code`` and ``model`` read-only, ``work``
  writable, a bind mount of the host folder the supervisor's FIFOs live in) and nothing else of
  the host: no GT code, no reference images, no results, no other task;
- one GPU through a device request when ``spec.gpu`` is set (``"0"``, a UUID, ...);
- labels ``sd-grader.managed=1``, ``sd-grader.run=<id>`` and the owner's host/pid, so that
  ``grader cleanup`` finds what a killed grader left behind.

Output is read through an attach socket opened before the container starts and kept in memory
head + tail capped, like the local provider; the daemon keeps no log (log driver ``none``), so a
flood fills neither memory nor the daemon's disk. A monitor thread enforces the work folder's size
cap (a bind mount has no quota: the watchdog kills the run when the folder outgrows
``Limits.work_dir_bytes``, and ``RLIMIT_FSIZE`` caps any single file at that size between two
looks) and reads the container's pids cgroup so that a fork bomb stopped by the pids limit is
reported. The wall-clock timeout kills the container; it is removed (``force=True``) in
``finally`` whatever happened.

A grader that dies without calling ``wait`` (SIGKILL, SIGTERM) does not leave its containers
running: a reaper child started with the first container removes them when the grader's pipe to
it closes; ``grader cleanup`` removes whatever is left after a crash of the host.

Infrastructure calls (create, start, kill, remove) are retried by tenacity on transient daemon
errors; the number of retries goes into ``ExecResult.retries``. A timed run is never re-run.
docker-py errors are translated: no engine or no image -> :class:`SandboxUnavailable`, a failed
call -> :class:`SandboxInfraError`.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import psutil

from grader.errors import SandboxInfraError, SandboxUnavailable
from grader.isolation.contract import (
    ExecResult,
    RunningProcess,
    Sandbox,
    SandboxSpec,
    register,
)

try:  # docker-py is a dependency, but a broken install must read as "unavailable", not crash
    import docker.errors
    import docker.types
    import requests
    from docker.utils.socket import frames_iter

    import docker
except ImportError as _exc:  # pragma: no cover - exercised only on broken installs
    docker = None  # type: ignore[assignment]
    _IMPORT_ERROR: ImportError | None = _exc
else:
    _IMPORT_ERROR = None

IMAGE_REPO = "sd-grader-sandbox"
CPU_IMAGE = f"{IMAGE_REPO}:cpu"
GPU_IMAGE = f"{IMAGE_REPO}:gpu"
IMAGE_ENV = "GRADER_IMAGE"                   # overrides the image choice
ALLOW_STALE_ENV = "GRADER_ALLOW_STALE_IMAGE"  # "1": run an image whose worker differs from sandbox/
SANDBOX_UID = 10001
MOUNT_ROOT = "/mnt"
PYTHON_IN_IMAGE = "python"
LABEL_PREFIX = "sd-grader."
MANAGED_LABEL = "sd-grader.managed"
RUN_LABEL = "sd-grader.run"
SANDBOX_HASH_LABEL = "sd-grader.sandbox-hash"
TMPFS_BYTES = 1 << 30
SHM_BYTES = 1 << 30
DEFAULT_MEMORY_FRACTION = 0.75
WATCH_INTERVAL = 0.2        # seconds between two looks of the monitor
MAX_WORK_ENTRIES = 200_000  # files and folders in the work mount
KILL_GRACE = 10.0           # seconds a killed container gets to report its exit
API_TIMEOUT = 60
INFRA_ATTEMPTS = 3
INFRA_WAIT_MAX = 2.0
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_OOM_MARKERS = (b"MemoryError", b"OutOfMemoryError", b"CUDA out of memory", b"Cannot allocate memory")
_RUN_ID = uuid.uuid4().hex[:12]  # one per grader process unless the spec names the run


@dataclass(frozen=True)
class DockerExecResult(ExecResult):
    """An :class:`ExecResult` that also says which limits the run ran into.

    ``limit_events`` holds short names: ``pids`` (forks refused by the pids limit),
    ``work_dir_bytes`` / ``work_dir_entries`` (the work folder outgrew its cap and the run was
    killed), ``killed_externally`` (someone else killed or removed the container). Each also
    adds a ``[sandbox] ...`` line at the end of ``stderr`` so that reports, which carry the
    stderr tail, show it.
    """

    limit_events: tuple[str, ...] = ()
    container_id: str = ""
    image_id: str = ""


# --------------------------------------------------------------------------- client, errors


_client_lock = threading.Lock()
_client_obj = None


def client():
    """The shared docker-py client, pinged once; SandboxUnavailable when there is no engine."""
    global _client_obj
    if _IMPORT_ERROR is not None:
        raise SandboxUnavailable(f"the docker Python package does not import: {_IMPORT_ERROR}") from _IMPORT_ERROR
    with _client_lock:
        if _client_obj is None:
            try:
                # two long-lived connections per running container (wait + attach): room for many GPUs
                candidate = docker.from_env(timeout=API_TIMEOUT, max_pool_size=64)
                candidate.ping()
            except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
                raise SandboxUnavailable(
                    f"the Docker engine does not answer ({exc}); start it (`sudo systemctl start docker`, or "
                    "`bash scripts/ci_docker.sh` on a CI machine), check access to the socket, and run `grader doctor`"
                ) from exc
            _client_obj = candidate
        return _client_obj


def reset_client() -> None:
    """Forget the shared client (tests; after the daemon restarted)."""
    global _client_obj
    with _client_lock:
        _client_obj = None


def _is_transient(exc: BaseException) -> bool:
    if _IMPORT_ERROR is not None:
        return False
    if isinstance(exc, (docker.errors.NotFound, docker.errors.ImageNotFound)):
        return False
    if isinstance(exc, docker.errors.APIError):
        if "could not select device driver" in str(exc):
            return False
        return exc.status_code is None or exc.status_code >= 500
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError))


def _infra(what: str, call: Callable[[], Any]) -> tuple[Any, int]:
    """Run one infrastructure call with retries; return (result, retries used).

    Only transient daemon errors are retried. The final error is translated.
    """
    import tenacity

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(INFRA_ATTEMPTS),
        wait=tenacity.wait_exponential(multiplier=0.2, max=INFRA_WAIT_MAX),
        retry=tenacity.retry_if_exception(_is_transient),
        reraise=True,
    )
    try:
        result = retrying(call)
    except Exception as exc:  # noqa: BLE001 - translated right here
        raise _translate(what, exc) from exc
    return result, retrying.statistics.get("attempt_number", 1) - 1


def _translate(what: str, exc: BaseException) -> Exception:
    if _IMPORT_ERROR is None:
        if isinstance(exc, docker.errors.ImageNotFound):
            return SandboxUnavailable(f"docker {what}: image not found ({exc}); build it with `make image-cpu` "
                                      "(CPU) or `make image` (GPU), or set GRADER_IMAGE")
        if isinstance(exc, docker.errors.APIError) and "could not select device driver" in str(exc):
            return SandboxUnavailable(f"docker {what}: no GPU support in this engine ({exc}); install "
                                      "nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker` "
                                      "and restart the daemon, or grade with --device cpu")
        if isinstance(exc, (requests.ConnectionError, ConnectionError)):
            return SandboxUnavailable(f"docker {what}: the engine went away ({exc}); run `grader doctor`")
    return SandboxInfraError(f"docker {what} failed: {exc}")


# --------------------------------------------------------------------------- images


def sandbox_hash() -> str:
    """Hash of the ``sandbox`` package's sources, as docker/inputs_hash.py computes it at build."""
    import sandbox as _sandbox_pkg

    package_dir = Path(_sandbox_pkg.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = "sandbox/" + path.relative_to(package_dir).as_posix()
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class ImageInfo:
    name: str
    id: str
    digest: str            # a registry digest when the image has one, else its content id
    labels: dict = field(default_factory=dict)
    stale: bool = False    # built from other sandbox/ sources than the ones here


def default_image_name(gpu: bool) -> str:
    return os.environ.get(IMAGE_ENV) or (GPU_IMAGE if gpu else CPU_IMAGE)


def image_info(name: str | None = None, gpu: bool = False) -> ImageInfo:
    """Inspect the image runs would use (without GPU: the CPU image, else the GPU one)."""
    cl = client()
    candidates = [name] if name else [default_image_name(gpu)]
    if not name and not gpu and not os.environ.get(IMAGE_ENV):
        candidates.append(GPU_IMAGE)
    last: Exception | None = None
    for candidate in candidates:
        try:
            image, _ = _infra("image inspect", lambda c=candidate: cl.images.get(c))
        except SandboxUnavailable as exc:
            last = exc
            continue
        labels = dict(image.labels or {})
        digests = image.attrs.get("RepoDigests") or []
        built_from = labels.get(SANDBOX_HASH_LABEL)
        return ImageInfo(name=candidate, id=image.id, digest=digests[0] if digests else image.id,
                         labels=labels, stale=bool(built_from) and built_from != sandbox_hash())
    raise SandboxUnavailable(
        f"no sandbox image {' or '.join(candidates)}: build it with `make image-cpu` (CPU) or "
        "`make image` (GPU), or name one with GRADER_IMAGE"
    ) from last


# --------------------------------------------------------------------------- output, monitor


class _Capped:
    """Keeps the first and last ``cap // 2`` bytes of a stream (same rule as the local provider)."""

    def __init__(self, cap: int):
        self.half = max(cap // 2, 1)
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.half:
                del self.tail[: len(self.tail) - self.half]

    def result(self) -> tuple[bytes, bool]:
        if len(self.tail) > self.half:
            del self.tail[: len(self.tail) - self.half]
        truncated = self.total > len(self.head) + len(self.tail)
        middle = b"\n...[output truncated by the grader]...\n" if truncated else b""
        return bytes(self.head) + middle + bytes(self.tail), truncated


def _usage(root: Path, stop_after: int) -> tuple[int, int]:
    """(bytes on disk, entries) under ``root``, not following links; stops early past the cap."""
    total, entries, stack = 0, 0, [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
        if total > stop_after:
            break
    return total, entries


def _pids_events_path(pid: int) -> Path | None:
    """The host file counting forks refused by the container's pids limit, if readable."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            candidate = Path("/sys/fs/cgroup/pids") / path.lstrip("/") / "pids.events"
        elif controllers == "":
            candidate = Path("/sys/fs/cgroup") / path.lstrip("/") / "pids.events"
        else:
            continue
        if candidate.exists():
            return candidate
    return None


def _read_pids_max(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "max":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


# --------------------------------------------------------------------------- reaper


_reaper_lock = threading.Lock()
_reaper: subprocess.Popen | None = None


def _owner_labels() -> dict[str, str]:
    return {"sd-grader.owner-host": socket.gethostname(), "sd-grader.owner-pid": str(os.getpid()),
            "sd-grader.owner-start": f"{psutil.Process().create_time():.3f}"}


def _ensure_reaper() -> None:
    """Start (once per grader process) a watcher that removes this process's containers when it dies.

    ``atexit`` does not run when the grader is SIGKILLed or dies of SIGTERM, and a container has no
    deadline of its own on the daemon side. The reaper, a detached child, blocks reading a pipe
    whose only writer is the grader: however the grader ends, the pipe closes and the reaper
    removes every container labelled with this grader's host, pid and start time.
    """
    global _reaper
    with _reaper_lock:
        if _reaper is not None and _reaper.poll() is None:
            return
        labels = _owner_labels()
        try:
            _reaper = subprocess.Popen(
                [sys.executable, "-m", "grader.isolation.docker", "--reap", labels["sd-grader.owner-pid"],
                 labels["sd-grader.owner-start"]],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, cwd=str(Path(__file__).resolve().parents[2]),
            )
        except OSError:  # without it, atexit and `grader cleanup` remain
            _reaper = None


def _reap_main(pid: str, start: str) -> int:
    try:
        sys.stdin.buffer.read()  # returns at EOF: the grader is gone
    except OSError:
        pass
    cl = client()
    host = socket.gethostname()
    for c in cl.api.containers(all=True, filters={"label": [f"{MANAGED_LABEL}=1", f"sd-grader.owner-pid={pid}"]}):
        labels = c.get("Labels") or {}
        if labels.get("sd-grader.owner-host") == host and labels.get("sd-grader.owner-start") == start:
            try:
                cl.api.remove_container(c["Id"], force=True, v=True)
            except Exception:  # noqa: BLE001 - `grader cleanup` is the fallback
                pass
    return 0


# --------------------------------------------------------------------------- running process


_live_lock = threading.Lock()
_live: dict[str, "DockerProcess"] = {}


def _remove_live_at_exit() -> None:
    with _live_lock:
        procs = list(_live.values())
    for proc in procs:
        try:
            proc._remove()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


atexit.register(_remove_live_at_exit)


def cgroup_cpu_seconds(proc_cgroup: str, root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPU seconds of the cgroup named in a ``/proc/PID/cgroup`` text, read from the host's
    cgroup files: v2 (``cpu.stat``, at the root or under ``unified/`` on a hybrid host) or
    v1 (``cpuacct.usage``); None when neither is readable."""
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        path = path.lstrip("/")
        if hierarchy == "0" and not controllers:
            for base in (root, root / "unified"):
                try:
                    for row in (base / path / "cpu.stat").read_text().splitlines():
                        if row.startswith("usage_usec "):
                            return int(row.split()[1]) / 1e6
                except (OSError, ValueError):
                    continue
        elif "cpuacct" in controllers.split(","):
            for mount in dict.fromkeys((controllers, "cpuacct", "cpu,cpuacct")):
                try:
                    return int((root / mount / path / "cpuacct.usage").read_text()) / 1e9
                except (OSError, ValueError):
                    continue
    return None


class DockerProcess(RunningProcess):
    def __init__(self, sandbox: "DockerSandbox", container, sock, retries: int):
        self.sandbox, self.container, self.sock = sandbox, container, sock
        self.id = container.id
        self.started = time.monotonic()
        self.retries = retries
        limits = sandbox.spec.limits
        self.out, self.err = _Capped(limits.output_bytes), _Capped(limits.output_bytes)
        self._exit_event = threading.Event()
        self._exit_code: int | None = None
        self._gone = False            # the container vanished under us (removed from outside)
        self._killed_by_us = False
        self._events: list[str] = []
        self._notes: list[str] = []
        self._pids_refused = 0
        self._removed = False
        self._result: DockerExecResult | None = None
        self._lock = threading.Lock()
        with _live_lock:
            _live[self.id] = self
        self._reader = threading.Thread(target=self._read_output, name=f"docker-out-{self.id[:12]}", daemon=True)
        self._waiter = threading.Thread(target=self._wait_exit, name=f"docker-wait-{self.id[:12]}", daemon=True)
        self._monitor = threading.Thread(target=self._watch, name=f"docker-watch-{self.id[:12]}", daemon=True)
        self._reader.start()
        self._waiter.start()
        self._monitor.start()

    # -- threads
    def _read_output(self) -> None:
        try:
            for stream, data in frames_iter(self.sock, tty=False):
                (self.err if stream == 2 else self.out).add(data)
        except (OSError, ValueError, AttributeError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def _wait_exit(self) -> None:
        cl = client()
        while True:
            try:
                status = cl.api.wait(self.id, timeout=None)
                self._exit_code = int(status.get("StatusCode", -1))
                break
            except docker.errors.NotFound:
                self._gone = True
                break
            except (docker.errors.APIError, requests.RequestException, OSError):
                if self._removed:
                    break
                time.sleep(0.5)  # the daemon hiccuped; the container may still run
        self._exit_event.set()

    def cpu_seconds(self) -> float | None:
        """CPU time of every process in the container (its cgroup), daemons included."""
        try:
            pid = int(self.container.attrs.get("State", {}).get("Pid") or 0)
            if not pid:
                self.container.reload()
                pid = int(self.container.attrs["State"].get("Pid") or 0)
            seconds = cgroup_cpu_seconds(Path(f"/proc/{pid}/cgroup").read_text())
            if seconds is not None:
                return seconds
        except (OSError, ValueError, KeyError):
            pass
        try:  # about a second per call: the daemon samples the container
            stats = client().api.stats(self.container.id, stream=False, one_shot=True)
            return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
        except Exception:  # noqa: BLE001 - no CPU accounting available
            return None

    def _watch(self) -> None:
        limits = self.sandbox.spec.limits
        work = self.sandbox.spec.mounts["work"].host_path
        pids_file = None
        try:
            pid = int(self.container.attrs.get("State", {}).get("Pid") or 0)
            if not pid:
                self.container.reload()
                pid = int(self.container.attrs["State"].get("Pid") or 0)
            pids_file = _pids_events_path(pid) if pid else None
        except Exception:  # noqa: BLE001 - monitoring is best effort
            pids_file = None
        interval = WATCH_INTERVAL
        while not self._exit_event.wait(interval):
            self._pids_refused = max(self._pids_refused, _read_pids_max(pids_file))
            if limits.work_dir_bytes:
                t0 = time.monotonic()
                used, entries = _usage(work, limits.work_dir_bytes)
                # a huge tree makes each look expensive: look less often rather than eat a core
                interval = max(WATCH_INTERVAL, 5 * (time.monotonic() - t0))
                if used >= limits.work_dir_bytes or entries > MAX_WORK_ENTRIES:
                    which = "work_dir_bytes" if used >= limits.work_dir_bytes else "work_dir_entries"
                    self._add_event(which, f"the work folder outgrew its cap ({used} bytes, {entries} entries; "
                                           f"cap {limits.work_dir_bytes} bytes, {MAX_WORK_ENTRIES} entries): killed")
                    self.kill()
                    return

    # -- helpers
    def _add_event(self, event: str, note: str) -> None:
        with self._lock:
            if event not in self._events:
                self._events.append(event)
                self._notes.append(note)

    def _remove(self) -> int:
        """Remove the container (force); returns retries. Idempotent."""
        with self._lock:
            if self._removed:
                return 0
            self._removed = True
        cl = client()

        def remove() -> None:
            try:
                cl.api.remove_container(self.id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in str(exc):
                    return
                raise

        try:
            _, retries = _infra("remove", remove)
        except Exception as exc:  # noqa: BLE001 - the run's result stays valid; cleanup finds it
            self._add_event("remove_failed", f"container {self.id[:12]} was not removed ({exc}); run `grader cleanup`")
            retries = INFRA_ATTEMPTS - 1
        with _live_lock:
            _live.pop(self.id, None)
        return retries

    # -- RunningProcess
    def poll(self) -> int | None:
        if not self._exit_event.is_set():
            return None
        return _normalize(self._exit_code if not self._gone else 137)[0]

    def kill(self) -> None:
        self._killed_by_us = True
        if self._exit_event.is_set() or self._removed:
            return
        cl = client()

        def kill() -> None:
            try:
                cl.api.kill(self.id)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: not running any more
                    raise

        try:
            _, retries = _infra("kill", kill)
            self.retries += retries
        except Exception:  # noqa: BLE001 - remove(force=True) follows and kills as well
            pass

    def wait(self, timeout: float) -> DockerExecResult:
        if self._result is not None:
            return self._result
        timed_out = False
        state: dict = {}
        try:
            if not self._exit_event.wait(max(timeout, 0)):
                timed_out = True
                self.kill()
                self._exit_event.wait(KILL_GRACE)
            try:
                state = client().api.inspect_container(self.id).get("State", {})
            except Exception:  # noqa: BLE001 - gone or daemon trouble: judged from what we have
                state = {}
        finally:
            self.retries += self._remove()
            self._exit_event.set()  # a removed container cannot exit later
        self._reader.join(5)
        self._monitor.join(5)
        self._result = self._build_result(timed_out, state)
        return self._result

    def _build_result(self, timed_out: bool, state: dict) -> DockerExecResult:
        limits = self.sandbox.spec.limits
        raw = self._exit_code
        if raw is None:
            raw = state.get("ExitCode") if state else None
        gone = self._gone or (raw is None and not state)
        if gone and not self._killed_by_us:
            self._add_event("killed_externally", f"container {self.id[:12]} disappeared during the run "
                                                 "(removed from outside the grader)")
        returncode, signum = _normalize(137 if gone and raw is None else raw)
        oom_killed = bool(state.get("OOMKilled"))
        stdout, out_trunc = self.out.result()
        stderr, err_trunc = self.err.result()
        if (signum == 9 and not self._killed_by_us and not oom_killed and not timed_out
                and "killed_externally" not in self._events):
            self._add_event("killed_externally", f"container {self.id[:12]} was killed by SIGKILL from outside "
                                                 "the grader (docker kill?)")
        if self._pids_refused:
            self._add_event("pids", f"the pids limit ({limits.pids}) refused {self._pids_refused} forks")
        if limits.work_dir_bytes and "work_dir_bytes" not in self._events:
            used, _ = _usage(self.sandbox.spec.mounts["work"].host_path, limits.work_dir_bytes)
            if used >= limits.work_dir_bytes:
                self._add_event("work_dir_bytes", f"the work folder holds {used} bytes, at or over its cap of "
                                                  f"{limits.work_dir_bytes}")
        oom = oom_killed or (not timed_out and any(m in stderr for m in _OOM_MARKERS))
        if oom_killed:
            self._notes.append(f"the kernel killed the run for memory (limit {self.sandbox.memory_limit} bytes)")
        if self._notes:
            stderr += b"".join(f"\n[sandbox] {n}".encode() for n in self._notes) + b"\n"
        return DockerExecResult(
            returncode=returncode, stdout=stdout, stderr=stderr, duration=time.monotonic() - self.started,
            timed_out=timed_out, oom=oom, killed_by_signal=signum, stdout_truncated=out_trunc,
            stderr_truncated=err_trunc, retries=self.retries, limit_events=tuple(self._events),
            container_id=self.id, image_id=self.sandbox.image.id,
        )


def _normalize(code: int | None) -> tuple[int | None, int | None]:
    """Docker reports death by signal n as 128 + n; report it as Popen does (-n) plus the signal."""
    if code is None:
        return None, None
    if 128 < code <= 128 + 64:
        return -(code - 128), code - 128
    return code, None


# --------------------------------------------------------------------------- the provider


def _host_memory() -> int:
    return psutil.virtual_memory().total


@register("docker")
class DockerSandbox(Sandbox):
    isolated = True
    known_differences: ClassVar[tuple[str, ...]] = (
        "exit_code_above_128",  # docker reports death by signal n as exit 128+n: exit(137) reads as SIGKILL
    )

    def __init__(self, spec: SandboxSpec, image: str | None = None):
        super().__init__(spec)
        for name, mount in spec.mounts.items():
            if not name or not set(name) <= _NAME_OK or name in (".", ".."):
                raise ValueError(f"mount name {name!r} must be a plain name")
            if not mount.host_path.exists():
                raise SandboxInfraError(f"mount {name!r}: {mount.host_path} does not exist")
        # A run on cuda without a pinned GPU still needs one: it gets "any one GPU" (count=1).
        self.wants_gpu = spec.gpu is not None or str(spec.env.get("GRADER_DEVICE", "")).startswith("cuda")
        self.image = image_info(image, gpu=self.wants_gpu)
        if self.image.stale and os.environ.get(ALLOW_STALE_ENV) != "1":
            raise SandboxUnavailable(
                f"image {self.image.name} was built from other sandbox/ sources than this grader's, so its "
                "worker may speak another protocol: rebuild it (`make image-cpu` or `make image`), or set "
                f"{ALLOW_STALE_ENV}=1 to use it anyway"
            )
        if os.geteuid() == 0:
            self.uid = self.gid = SANDBOX_UID
        else:  # run as the grader's own (non-root) uid: it then owns, reads and deletes what runs write
            self.uid, self.gid = os.getuid(), os.getgid()
        limits = spec.limits
        self.memory_limit = limits.memory_bytes or int(_host_memory() * DEFAULT_MEMORY_FRACTION)
        self._procs: list[DockerProcess] = []

    # -- contract
    def path(self, mount: str) -> str:
        if mount not in self.spec.mounts:
            raise KeyError(mount)
        return f"{MOUNT_ROOT}/{mount}"

    def describe(self) -> dict:
        """What a report should record about this sandbox."""
        return {"provider": "docker", "image": self.image.name, "image_id": self.image.id,
                "image_digest": self.image.digest, "uid": self.uid, "memory_limit": self.memory_limit,
                "pids_limit": self.spec.limits.pids, "cpus": self.spec.limits.cpus, "gpu": self.spec.gpu}

    def start(self, argv: Sequence[str]) -> DockerProcess:
        if not argv:
            raise ValueError("empty argv")
        argv = [PYTHON_IN_IMAGE if a == "{python}" else str(a) for a in argv]
        self._prepare_work()
        cl = client()
        _ensure_reaper()
        kwargs = self.create_kwargs(argv)
        container = None
        retries = 0
        try:
            container, r = _infra("create", lambda: cl.containers.create(**kwargs))
            retries += r
            sock, _ = _infra("attach", lambda: cl.api.attach_socket(
                container.id, params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 0}))
            _, r = _infra("start", container.start)
            retries += r
        except BaseException:
            if container is not None:
                try:
                    cl.api.remove_container(container.id, force=True, v=True)
                except Exception:  # noqa: BLE001 - labelled; `grader cleanup` finds it
                    pass
            raise
        proc = DockerProcess(self, container, sock, retries)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._procs:
            if proc._result is None:
                proc.kill()
                proc._remove()
        self._procs.clear()

    # -- details
    def create_kwargs(self, argv: Sequence[str]) -> dict:
        """The ``containers.create`` arguments for ``argv`` (public so tests can check them)."""
        spec, limits = self.spec, self.spec.limits
        env = {
            "HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DIFFUSERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        env.update(spec.env)
        mounts = [
            docker.types.Mount(target=self.path(name), source=str(mount.host_path.resolve()), type="bind",
                               read_only=mount.read_only)
            for name, mount in sorted(spec.mounts.items())
        ]
        labels = {
            MANAGED_LABEL: "1",
            RUN_LABEL: str(spec.labels.get("run") or spec.labels.get("run_id") or _RUN_ID),
            **_owner_labels(),
            "sd-grader.image": self.image.name,
        }
        for key, value in spec.labels.items():
            labels[key if key.startswith(LABEL_PREFIX) else LABEL_PREFIX + key] = str(value)
        ulimits = [docker.types.Ulimit(name="core", soft=0, hard=0)]
        if limits.work_dir_bytes:
            ulimits.append(docker.types.Ulimit(name="fsize", soft=limits.work_dir_bytes, hard=limits.work_dir_bytes))
        kwargs: dict[str, Any] = dict(
            image=self.image.id, entrypoint=[argv[0]], command=list(argv[1:]),
            user=f"{self.uid}:{self.gid}", working_dir=self.path("work"), environment=env,
            labels=labels, name=f"sd-grader-{uuid.uuid4().hex[:16]}", hostname="sandbox",
            network_mode="none", read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMPFS_BYTES},mode=1777"},
            shm_size=SHM_BYTES, ipc_mode="private",
            mem_limit=self.memory_limit, memswap_limit=self.memory_limit,
            pids_limit=limits.pids or -1,
            cap_drop=["ALL"], security_opt=["no-new-privileges:true"], ulimits=ulimits,
            log_config=docker.types.LogConfig(type="none"), mounts=mounts, init=True,
            stdin_open=False, tty=False, detach=True,
        )
        if limits.cpus:
            kwargs["nano_cpus"] = int(limits.cpus * 1e9)
        if limits.cpuset:
            kwargs["cpuset_cpus"] = ",".join(str(c) for c in limits.cpuset)
        if spec.gpu is not None:
            kwargs["device_requests"] = [docker.types.DeviceRequest(
                device_ids=[g.strip() for g in str(spec.gpu).split(",") if g.strip()], capabilities=[["gpu"]])]
        elif self.wants_gpu:
            kwargs["device_requests"] = [docker.types.DeviceRequest(count=1, capabilities=[["gpu"]])]
        return kwargs

    def _prepare_work(self) -> None:
        """Let the container's uid write the work folder (the grader, as root, keeps full access)."""
        work = self.spec.mounts["work"].host_path
        work.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        for root, dirs, files in os.walk(work):
            for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                try:
                    st = os.lstat(name)
                    if st.st_uid != self.uid:
                        os.lchown(name, self.uid, self.gid)
                except OSError:
                    pass


# --------------------------------------------------------------------------- cleanup


@dataclass(frozen=True)
class Leftover:
    kind: str       # "container" or "volume"
    id: str
    name: str
    reason: str


def _owner_alive(labels: dict) -> bool:
    if labels.get("sd-grader.owner-host") != socket.gethostname():
        return True  # another host's grader: we cannot tell, so it is not ours to remove
    try:
        proc = psutil.Process(int(labels.get("sd-grader.owner-pid", "0")))
        return abs(proc.create_time() - float(labels.get("sd-grader.owner-start", "0"))) < 1.0
    except (psutil.Error, ValueError):
        return False


def cleanup(all_owners: bool = False, dry_run: bool = False) -> list[Leftover]:
    """Remove containers and volumes labelled ``sd-grader.managed=1`` whose grader is gone.

    With ``all_owners`` also those of graders still running (and of other hosts).
    Returns what was (or, with ``dry_run``, would be) removed.
    """
    cl = client()
    removed: list[Leftover] = []
    try:
        containers = cl.api.containers(all=True, filters={"label": f"{MANAGED_LABEL}=1"})
        volumes = (cl.api.volumes(filters={"label": f"{MANAGED_LABEL}=1"}) or {}).get("Volumes") or []
    except Exception as exc:  # noqa: BLE001
        raise _translate("list", exc) from exc
    for c in containers:
        labels = c.get("Labels") or {}
        if not all_owners and _owner_alive(labels):
            continue
        name = (c.get("Names") or ["?"])[0].lstrip("/")
        reason = "owner gone" if not _owner_alive(labels) else "--all"
        if not dry_run:
            _infra("remove", lambda cid=c["Id"]: cl.api.remove_container(cid, force=True, v=True))
        removed.append(Leftover("container", c["Id"], name, f"{reason}; run {labels.get(RUN_LABEL, '?')}, {c.get('State', '?')}"))
    for v in volumes:
        labels = v.get("Labels") or {}
        if not all_owners and _owner_alive(labels):
            continue
        if not dry_run:
            try:
                _infra("remove volume", lambda n=v["Name"]: cl.api.remove_volume(n, force=True))
            except SandboxInfraError:
                continue  # still in use
        removed.append(Leftover("volume", v["Name"], v["Name"], "owner gone" if not _owner_alive(labels) else "--all"))
    return removed


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--reap":
        sys.exit(_reap_main(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m grader.isolation.docker --reap PID START (started by the docker provider)")
