"""The sandbox contract every provider implements.

A sandbox runs one untrusted command at a time with a fixed set of mounts, a scrubbed
environment and resource limits. Paths given to the command are *sandbox paths*
(``sandbox.path(name)``): the local provider maps a mount to its host path, the
docker provider to ``/mnt/<name>``. The supervisor talks to a running worker through
FIFOs it creates in the writable ``work`` mount, which behave the same on both.

Providers register themselves by name in :data:`PROVIDERS`; ``grader.isolation.get``
builds one from a :class:`SandboxSpec`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Mapping, Sequence

DEFAULT_OUTPUT_CAP = 1 << 20  # bytes of stdout and of stderr kept per run


@dataclass(frozen=True)
class Mount:
    host_path: Path
    read_only: bool = True


@dataclass(frozen=True)
class Limits:
    memory_bytes: int | None = None
    pids: int | None = 512
    cpus: float | None = None
    cpuset: tuple[int, ...] | None = None
    output_bytes: int = DEFAULT_OUTPUT_CAP
    work_dir_bytes: int | None = 2 << 30


@dataclass(frozen=True)
class SandboxSpec:
    """What a run may see. ``mounts`` must include a writable ``work``."""

    mounts: Mapping[str, Mount]
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    gpu: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # The OCI runtime of a container provider (``runsc`` for gVisor); None: the engine's default.
    # A provider that runs no containers refuses a spec that names one.
    runtime: str | None = None


@dataclass(frozen=True)
class ExecResult:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    duration: float
    timed_out: bool = False
    oom: bool = False
    killed_by_signal: int | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    retries: int = 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.oom

    def stderr_tail(self, limit: int = 4000) -> str:
        return self.stderr[-limit:].decode("utf-8", "replace")


class RunningProcess(abc.ABC):
    """A command started with :meth:`Sandbox.start`."""

    @abc.abstractmethod
    def poll(self) -> int | None:
        """Exit code, or None while running."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> ExecResult:
        """Wait up to ``timeout`` seconds, kill everything on expiry, return the result.

        A frozen run is thawed first: it would otherwise sit frozen until the timeout."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Kill the command and everything it started, frozen or not. Idempotent."""

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the command and its descendants; None if unknown."""
        return None

    # Freezing: the supervisor times one variant at a time and freezes the others, so that a
    # variant not being timed can neither burn CPU nor queue work that slows the timed one.
    _frozen: bool = False

    def freeze(self) -> bool:
        """Stop every process of the run so that none gets CPU until :meth:`thaw`.

        Idempotent. True when the provider froze the run; False when it cannot (this default,
        or a run that has already exited: never raises for that). Check ``cpu_seconds`` to see
        that a frozen run stayed idle.
        """
        return False

    def thaw(self) -> None:
        """Undo :meth:`freeze`. Idempotent; a no-op when not frozen or exited."""

    @property
    def frozen(self) -> bool:
        """Whether :meth:`freeze` stopped the run and no :meth:`thaw`, ``kill`` or ``wait`` undid it."""
        return self._frozen

    def pids(self) -> list[int]:
        """Host pids of the run's live processes (to attribute NVML per-process GPU samples);
        empty when unknown."""
        return []


class Sandbox(abc.ABC):
    name: ClassVar[str]
    isolated: ClassVar[bool]
    known_differences: ClassVar[tuple[str, ...]] = ()
    takes_runtime: ClassVar[bool] = False

    def __init__(self, spec: SandboxSpec):
        if "work" not in spec.mounts or spec.mounts["work"].read_only:
            raise ValueError("SandboxSpec.mounts needs a writable 'work' mount")
        if spec.runtime is not None and not self.takes_runtime:
            raise ValueError(f"the {self.name} sandbox runs no containers: it takes no runtime ({spec.runtime!r})")
        self.spec = spec

    @abc.abstractmethod
    def path(self, mount: str) -> str:
        """The path at which mount ``mount`` appears inside the sandbox."""

    @abc.abstractmethod
    def start(self, argv: Sequence[str]) -> RunningProcess:
        """Start ``argv`` without waiting."""

    def exec(self, argv: Sequence[str], timeout: float) -> ExecResult:
        """Run ``argv`` to completion or until ``timeout`` seconds pass."""
        return self.start(argv).wait(timeout)

    def read_file(self, sandbox_path: str, max_bytes: int = 64 << 20) -> bytes:
        """Read a file written by the sandboxed code, capped at ``max_bytes``."""
        host = self._host_path(sandbox_path)
        with open(host, "rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"{sandbox_path} is larger than {max_bytes} bytes")
        return data

    def write_file(self, sandbox_path: str, data: bytes) -> None:
        """Write a file the sandboxed code will see (only inside writable mounts)."""
        host = self._host_path(sandbox_path, for_write=True)
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(data)

    def close(self) -> None:
        """Release provider resources (containers, temp files)."""

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _host_path(self, sandbox_path: str, for_write: bool = False) -> Path:
        for name, mount in self.spec.mounts.items():
            prefix = self.path(name).rstrip("/")
            if sandbox_path == prefix or sandbox_path.startswith(prefix + "/"):
                if for_write and mount.read_only:
                    raise PermissionError(f"mount {name!r} is read-only")
                rel = sandbox_path[len(prefix):].lstrip("/")
                host = (mount.host_path / rel).resolve()
                if not host.is_relative_to(mount.host_path.resolve()):
                    raise PermissionError(f"{sandbox_path} escapes mount {name!r}")
                return host
        raise PermissionError(f"{sandbox_path} is not inside any mount")


PROVIDERS: dict[str, Callable[[SandboxSpec], Sandbox]] = {}


def register(name: str) -> Callable[[type[Sandbox]], type[Sandbox]]:
    def decorate(cls: type[Sandbox]) -> type[Sandbox]:
        cls.name = name
        PROVIDERS[name] = cls
        return cls

    return decorate
