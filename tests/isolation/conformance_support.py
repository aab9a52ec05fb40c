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
}


def _host_has_other_interfaces() -> bool:
    try:
        return any(name != "lo" for name in os.listdir("/sys/class/net"))
    except OSError:
        return True


SHOWS_HERE = {  # known differences whose showing depends on the machine
    "non_root_uid": lambda: os.geteuid() == 0,
    "network_isolation": _host_has_other_interfaces,
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
