"""Progress of a grading run: a live display on a terminal, plain lines elsewhere, and a
structured log of every event.

- Console: a rich live display (task, variant, phase, tasks done, ETA) when stdout is
  a terminal; otherwise plain human lines rendered by structlog, one per event.
- ``RUN_DIR/log.jsonl``: every event as one JSON object a line (structlog), appended
  across resumed attempts.

Variant and phase are told explicitly: the pipeline hands each task's runs the callback
``Reporter.phases(task_id)``, which the supervisor calls as ``on_phase(variant, phase,
detail)`` when a variant starts loading, warms up, runs a timed batch or a probe; the
pipeline tells when scoring begins.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import structlog

LOG_FILE = "log.jsonl"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class _LineSink:
    """A structlog logger that hands each rendered line to a callable."""

    def __init__(self, emit: Callable[[str], None]):
        self._emit = emit

    def msg(self, message: str) -> None:
        self._emit(message)

    debug = info = warning = warn = error = critical = exception = fatal = failure = err = msg


class _JsonFile:
    """Append-only JSON lines; a line cut short by a crash is closed before new ones."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
        else:
            torn = False
        self._fh = open(path, "a", encoding="utf-8")
        if torn:
            self._fh.write("\n")
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(message + "\n")
            self._fh.flush()

    debug = info = warning = warn = error = critical = exception = fatal = failure = err = msg

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class Reporter:
    """Receives the run's events; renders them to the console and the JSON log.

    ``console`` is ``"auto"`` (rich when stdout is a terminal, else plain lines),
    ``"rich"``, ``"plain"``, or a callable taking one plain line (tests pass
    ``lambda _: None``). Calling the reporter with a string logs a note, so it can
    stand where a ``Callable[[str], None]`` progress hook is expected.
    """

    def __init__(self, run_dir: Path | None, console: str | Callable[[str], None] = "auto", stream=None):
        self.stream = stream or sys.stdout
        self._lock = threading.RLock()
        if callable(console):
            mode, self._callback = "callback", console
        else:
            mode, self._callback = console, None
        if mode == "auto":
            mode = "rich" if _isatty(self.stream) else "plain"
        self.mode = mode
        self._json_sink = _JsonFile(Path(run_dir) / LOG_FILE) if run_dir is not None else None
        self._json = structlog.wrap_logger(self._json_sink, processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ]) if self._json_sink is not None else None
        self._live = None
        if mode == "rich":
            self._live = _RichDisplay(self.stream)
            sink = _LineSink(self._live.print_ansi)
            colors = True
        elif mode == "callback":
            sink, colors = _LineSink(self._callback), False
        else:
            sink, colors = _LineSink(self._print), False
        self._console = structlog.wrap_logger(sink, processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=0, sort_keys=False),
        ])
        # run state for the display and the ETA; several tasks may run at once (one per GPU)
        self.n_tasks = 0
        self.n_done = 0
        self.to_grade = 0
        self.workers = 1
        self.graded_seconds: list[float] = []
        self.tasks: dict[str, _TaskState] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- output
    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def log(self, level: str, event: str, *, console: bool = True, **fields) -> None:
        with self._lock:
            if self._json is not None:
                getattr(self._json, level)(event, **fields)
            if console:
                getattr(self._console, level)(event, **fields)

    def __call__(self, text: str) -> None:
        self.log("info", "note", text=text)

    # -- run
    def run_started(self, *, run_id: str, run_dir: Path, n_tasks: int, reused: int, notes: list[str] = (),
                    workers: int = 1, **fields) -> None:
        self.n_tasks, self.n_done, self.to_grade, self.workers = n_tasks, 0, n_tasks - reused, max(1, workers)
        for note in notes:
            self.log("info", "note", text=note)
        self.log("info", "run_started", run_id=run_id, run_dir=str(run_dir), tasks=n_tasks, reused=reused, **fields)
        if self._live is not None:
            self._live.start(n_tasks)
        self._poller = threading.Thread(target=self._poll, name="grader-progress", daemon=True)
        self._poller.start()

    def task_reused(self, task_id: str, status: str, why: str = "") -> None:
        with self._lock:
            self.n_done += 1
        self.log("info", "task_reused", task=task_id, status=status, **({"note": why} if why else {}))
        self._refresh()

    def task_started(self, task_id: str, task_dir: Path, why: str = "") -> None:
        with self._lock:
            self.tasks[task_id] = _TaskState(task_dir, time.monotonic())
            index = self.n_done + len(self.tasks)
        self.log("info", "task_started", task=task_id, index=index, of=self.n_tasks, **({"why": why} if why else {}))
        self._refresh()

    def task_finished(self, task_id: str, status: str, message: str, seconds: float, flags: list[str]) -> None:
        with self._lock:
            self.n_done += 1
            self.graded_seconds.append(seconds)
            self.tasks.pop(task_id, None)
        level = "info" if status == "ok" else "warning"
        fields = {"task": task_id, "status": status, "seconds": round(seconds, 2)}
        if flags:
            fields["flags"] = ",".join(flags)
        if message:
            fields["message"] = message[:200]
        self.log(level, "task_finished", **fields)
        self._refresh()

    def run_finished(self, summary: dict, outputs: list[str]) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
        geomean = summary.get("geomean_speedup")
        self.log("info", "run_finished", tasks=summary.get("n_tasks"), passing=summary.get("n_passing"),
                 geomean_speedup=None if geomean is None else round(geomean, 3), outputs=",".join(outputs))

    def close(self) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=2)
        if self._json_sink is not None:
            self._json_sink.close()

    # -- phases
    def phases(self, task_id: str) -> Callable[[str, str, str], None]:
        """The ``on_phase(variant, phase, detail)`` callback of one task's runs."""
        def on_phase(variant: str, phase: str, detail: str = "") -> None:
            self.phase(task_id, variant, phase, detail)

        return on_phase

    def phase(self, task: str, variant: str, phase: str, detail: str = "") -> None:
        """A variant of a running task entered ``phase`` (loading, warm-up, timed, probes, scoring)."""
        with self._lock:
            state = self.tasks.get(task)
            if state is None:
                return
            state.shown = (variant, f"{phase} {detail}".strip())
            changed = state.phases.get(variant) != phase
            state.phases[variant] = phase
        if changed:
            self.log("info", "phase", task=task, variant=variant or "-", phase=phase)
        else:
            self.log("debug", "phase", console=False, task=task, variant=variant or "-", phase=phase, detail=detail)
        self._refresh()

    def eta(self) -> float | None:
        """Seconds left: mean graded-task time x tasks left, shared by the parallel workers."""
        with self._lock:
            if not self.graded_seconds:
                return None
            mean = sum(self.graded_seconds) / len(self.graded_seconds)
            remaining = max(self.to_grade - len(self.graded_seconds), 0)
            now = time.monotonic()
            in_flight = sum(min(now - t.started, mean) for t in self.tasks.values())
            return max(mean * remaining - in_flight, 0.0) / self.workers

    @property
    def variant_phase(self) -> dict[str, str]:
        """Phases of the variants of the one running task (or of the first, when several run)."""
        with self._lock:
            state = next(iter(self.tasks.values()), None)
            return dict(state.phases) if state else {}

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self._refresh()

    def _refresh(self) -> None:
        if self._live is None:
            return
        with self._lock:
            now = time.monotonic()
            running = [f"{task} {state.shown[0] or ''} {state.shown[1]} ({_fmt_duration(now - state.started)})"
                       .replace("  ", " ") for task, state in self.tasks.items()]
            done = self.n_done
        self._live.update(done=done, activity="; ".join(running) or "-", eta=_fmt_duration(self.eta()))


class _TaskState:
    def __init__(self, task_dir: Path, started: float):
        self.dir, self.started = task_dir, started
        self.phases: dict[str, str] = {}
        self.shown: tuple[str, str] = ("", "starting")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


class _RichDisplay:
    def __init__(self, stream):
        from rich.console import Console

        self.console = Console(file=stream)
        self.progress = None
        self.task_id = None

    def start(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
        )

        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]tasks"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("ETA {task.fields[eta]}"), TextColumn("[cyan]{task.fields[activity]}"),
            console=self.console, transient=False, refresh_per_second=4,
        )
        self.task_id = self.progress.add_task("grading", total=total, activity="-", eta="--:--")
        self.progress.start()

    def update(self, done: int, **fields) -> None:
        if self.progress is not None:
            self.progress.update(self.task_id, completed=done, **fields)

    def print_ansi(self, line: str) -> None:
        from rich.text import Text

        self.console.print(Text.from_ansi(line))

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
