"""Shared by the sandbox conformance modules: which providers run which named check, the
sandbox builder, and small helpers. See test_sandbox_conformance.py for the rules."""

from __future__ import annotations

import os
import textwrap

import pytest

from grader.isolation import provider

PROVIDERS = ("local", "fake", "bwrap", "docker")
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


def providers_for(check: str) -> list:
    params = []
    for name in PROVIDERS:
        marks = [pytest.mark.docker] if name == "docker" else bwrap_marks() if name == "bwrap" else []
        if check in provider(name).known_differences:
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
