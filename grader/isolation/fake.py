"""Fake sandbox for logic tests that need no Docker.

Two modes, chosen per ``start``:

- **scripted**: outcomes queued with :meth:`FakeSandbox.queue` are handed out in order. Each is
  an :class:`ExecResult`, or a callable ``(sandbox, argv) -> ExecResult`` that may first write
  files into the work mount (to play a worker). ``delay`` makes the process "run" that long, so
  ``wait(timeout)`` with a shorter timeout reports ``timed_out`` exactly as a real provider
  would (returncode -9, SIGKILL);
- **real**: with nothing queued the command runs as a plain subprocess through the local
  provider, with its semantics (and its lack of isolation).

Every ``start`` is recorded in :attr:`FakeSandbox.calls` as ``(argv, spec)``, and every
``freeze``/``thaw`` of a scripted process in its ``freeze_calls`` (freeze returns True, ``pids``
is empty). State is class-wide: call :meth:`FakeSandbox.reset` between tests (the
``fake_sandbox`` fixture does).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from typing import Callable, ClassVar, Sequence, Union

from grader.isolation.contract import (
    ExecResult,
    RunningProcess,
    Sandbox,
    SandboxSpec,
    register,
)
from grader.isolation.local import LocalSandbox

Outcome = Union[ExecResult, Callable[["FakeSandbox", list[str]], ExecResult]]


class FakeProcess(RunningProcess):
    def __init__(self, sandbox: "FakeSandbox", argv: list[str], outcome: Outcome, delay: float):
        self.sandbox, self.argv, self.outcome = sandbox, argv, outcome
        self.started = time.monotonic()
        self.delay = delay
        self._killed = threading.Event()
        self._result: ExecResult | None = None
        self.freeze_calls: list[str] = []  # "freeze" / "thaw", in order

    def freeze(self) -> bool:
        self.freeze_calls.append("freeze")
        self._frozen = True
        return True

    def thaw(self) -> None:
        self.freeze_calls.append("thaw")
        self._frozen = False

    def _done(self) -> bool:
        return self._killed.is_set() or time.monotonic() - self.started >= self.delay

    def poll(self) -> int | None:
        if self._killed.is_set():
            return -signal.SIGKILL
        if not self._done():
            return None
        return self._resolve().returncode

    def kill(self) -> None:
        self._frozen = False
        if not self._done():
            self._killed.set()

    def wait(self, timeout: float) -> ExecResult:
        self._frozen = False
        remaining = self.delay - (time.monotonic() - self.started)
        if not self._killed.is_set() and remaining > max(timeout, 0):
            self._killed.wait(max(timeout, 0))
            self._killed.set()
            return ExecResult(returncode=-signal.SIGKILL, stdout=b"", stderr=b"", duration=time.monotonic() - self.started,
                              timed_out=True, killed_by_signal=signal.SIGKILL)
        if self._killed.is_set():
            return ExecResult(returncode=-signal.SIGKILL, stdout=b"", stderr=b"", duration=time.monotonic() - self.started,
                              killed_by_signal=signal.SIGKILL)
        self._killed.wait(max(remaining, 0))
        return self._resolve()

    def _resolve(self) -> ExecResult:
        if self._result is None:
            outcome = self.outcome
            self._result = outcome(self.sandbox, self.argv) if callable(outcome) else outcome
        return self._result


@register("fake")
class FakeSandbox(Sandbox):
    isolated = False
    known_differences = LocalSandbox.known_differences  # real mode is the local provider

    scripted: ClassVar[deque[tuple[Outcome, float]]] = deque()
    calls: ClassVar[list[tuple[list[str], SandboxSpec]]] = []

    def __init__(self, spec: SandboxSpec):
        super().__init__(spec)
        self._local = LocalSandbox(spec)

    @classmethod
    def queue(cls, outcome: Outcome, delay: float = 0.0) -> None:
        """Make a later ``start`` return ``outcome`` after ``delay`` seconds, instead of running."""
        cls.scripted.append((outcome, delay))

    @classmethod
    def reset(cls) -> None:
        cls.scripted.clear()
        cls.calls.clear()

    def path(self, mount: str) -> str:
        return self._local.path(mount)

    def start(self, argv: Sequence[str]) -> RunningProcess:
        argv = list(argv)
        FakeSandbox.calls.append((argv, self.spec))
        if FakeSandbox.scripted:
            outcome, delay = FakeSandbox.scripted.popleft()
            return FakeProcess(self, argv, outcome, delay)
        return self._local.start(argv)
