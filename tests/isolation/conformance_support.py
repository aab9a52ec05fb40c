"""Shared by the sandbox conformance modules: which providers run which named check, the
sandbox builder, and small helpers. A suite id is a provider name, or a provider under another
container runtime (``docker-runsc``: docker with gVisor's runsc, skipped where the engine lacks it). See test_sandbox_conformance.py for the rules."""

from __future__ import annotations

import functools
import os
import textwrap

import pytest

from grader.isolation import provider

PROVIDERS = ("local", "fake", "bwrap", "docker")
# Further ids the suite runs: a provider under another container runtime (provider, runtime).
RUNTIME_IDS = {"docker-runsc": ("docker", "runsc")}
IDS = PROVIDERS + tuple(RUNTIME_IDS)
# Checks a provider may be excused from but that would endanger the host or mean nothing.
NOT_RUN = {
    "pids_limit": "a fork bomb is only run where a pids limit contains it",
    "container_kill": "there is no daemon-side container to kill",
    "writable_outside_work": "it would create (and remove) files in every folder of the host's mount table",
}


def _host_has_other_interfaces() -> bool:
    try:
        return any(name != "lo" for name in os.listdir("/sys/class/net"))
    except OSError:
        return True


ENGINE_SOCKETS = (
    "/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock", "/run/podman/podman.sock", "/var/run/podman/podman.sock",
    "/run/user/0/podman/podman.sock", "/run/user/0/docker.sock", "/run/crio/crio.sock",
)


def visible_engine_sockets() -> list[str]:
    """The engine sockets a process sees (the escape probe runs this very function's source)."""
    import os

    seen = []
    for path in ENGINE_SOCKETS:
        try:
            os.stat(path)
        except OSError:
            continue
        seen.append(path)
    for folder in ("/run", "/var/run"):
        try:
            seen += [f"{folder}/{n}" for n in os.listdir(folder) if n.endswith(".sock")]
        except OSError:
            pass
    return sorted(set(seen))


def _status_field(name: str) -> str:
    with open("/proc/self/status") as fh:
        return next((line.split(":", 1)[1].strip() for line in fh if line.startswith(name + ":")), "")


SHOWS_HERE = {  # known differences whose showing depends on the machine
    "non_root_uid": lambda: os.geteuid() == 0,
    "network_isolation": _host_has_other_interfaces,
    "no_capabilities": lambda: any(int(_status_field(k) or "0", 16) for k in ("CapPrm", "CapEff", "CapBnd")),
    "no_new_privs": lambda: _status_field("NoNewPrivs") != "1",
    "engine_socket": lambda: bool(visible_engine_sockets()),
}


def bwrap_required() -> bool:
    """CI (``.ci/run`` installs bubblewrap) and ``GRADER_REQUIRE_BWRAP=1`` run the bwrap checks
    even where it does not work, so that they fail rather than skip."""
    return os.environ.get("GRADER_REQUIRE_BWRAP") == "1" or os.environ.get("CI", "").lower() in ("1", "true", "yes")


def bwrap_marks() -> list:
    """Skip bwrap checks where ``bwrap`` is missing or cannot create its namespaces here."""
    from grader.isolation.bwrap import unavailable_reason

    reason = unavailable_reason()
    if reason is None or bwrap_required():
        return []
    return [pytest.mark.skip(reason=f"bwrap does not work here: {reason}")]


def split_id(name: str) -> tuple[str, str | None]:
    """The provider and container runtime of a suite id (``docker-runsc`` -> ``docker``, ``runsc``)."""
    return RUNTIME_IDS.get(name, (name, None))


@functools.lru_cache(maxsize=None)
def runtime_missing(runtime: str) -> str | None:
    """None when the Docker engine has registered ``runtime``, else why its checks are skipped.

    Skipped even in CI: gVisor is not in Debian, so a CI machine has it only when someone installed it."""
    try:
        from grader.isolation import docker as docker_sandbox

        names, _ = docker_sandbox.runtimes()
    except Exception as exc:  # noqa: BLE001 - no engine: nothing to run the runtime under
        return f"no Docker engine to ask for runtime {runtime!r}: {str(exc)[:200]}"
    if runtime not in names:
        return (f"runtime {runtime!r} is not registered with this Docker engine (registered: {', '.join(names)}); "
                "see docs/docker.md, \"gVisor\"")
    return None


def providers_for(check: str) -> list:
    params = []
    for name in IDS:
        kind, runtime = split_id(name)
        marks = [pytest.mark.docker] if kind == "docker" else bwrap_marks() if kind == "bwrap" else []
        missing = runtime_missing(runtime) if runtime else None
        if missing:
            marks.append(pytest.mark.skip(reason=missing))
        if check in provider(kind).known_differences:
            reason = f"{name}: known difference {check!r}"
            if check in NOT_RUN:
                marks.append(pytest.mark.skip(reason=f"{reason} ({NOT_RUN[check]})"))
            else:
                marks.append(pytest.mark.xfail(strict=SHOWS_HERE.get(check, lambda: True)(), reason=reason))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def py(code: str) -> list[str]:
    return ["{python}", "-c", textwrap.dedent(code)]


# ---------------------------------------------------------------------------- basics
