"""Isolation: the trusted sandbox providers, one contract, registered by name (``local``, ``bwrap``, ``docker``, ``fake``).

Takes a ``SandboxSpec`` (mounts, environment, limits, GPU) and an argv; gives a running
process to talk to and an ``ExecResult`` when it ends. (``sandbox/`` is the other side: the
untrusted worker that runs inside.)
"""

from __future__ import annotations

import importlib

from grader.errors import SandboxUnavailable
from grader.isolation.contract import (  # noqa: F401
    PROVIDERS,
    ExecResult,
    Limits,
    Mount,
    RunningProcess,
    Sandbox,
    SandboxSpec,
    register,
)

_MODULES = {"local": "grader.isolation.local", "bwrap": "grader.isolation.bwrap", "docker": "grader.isolation.docker",
            "fake": "grader.isolation.fake"}


def provider(name: str) -> type[Sandbox]:
    """The provider class registered as ``name``; imports its module on first use."""
    if name not in PROVIDERS and name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in PROVIDERS:
        raise SandboxUnavailable(f"unknown sandbox {name!r}; expected one of {', '.join(sorted(_MODULES))}")
    return PROVIDERS[name]  # type: ignore[return-value]


def get(name: str, spec: SandboxSpec) -> Sandbox:
    return provider(name)(spec)
