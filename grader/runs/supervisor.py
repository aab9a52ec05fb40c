"""The supervisor's side of one variant (baseline, experiment or GT): a fresh sandboxed
worker, driven batch by batch and timed with the grader's own clock.

Protocol (DESIGN section 4): start the worker, wait for ``hello`` and ``ready``
(process start, import and model load are timed separately and never count as
inference), send the warm-up batches, then timed batches as the interleaving asks
(:mod:`grader.runs.interleave`), then the integrity probes and the idle window. Worker
faults never raise out of a :class:`VariantWorker`: they end its run with a status, a
message and flags. What happens is told through ``on_phase(variant, phase, detail)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import psutil

from grader.config import TimingConfig
from grader.errors import ProtocolViolation, WorkerCrashed, WorkerError, WorkerTimeout
from grader.images import psnr, same_fraction
from grader.isolation import ExecResult, Limits, Mount, RunningProcess, SandboxSpec, get
from grader.runs.session import WorkerSession, exchange_batch
from grader.runs.timing import converged, summarize
from grader.runs.variant import THREAD_VARS, VariantRun, VariantSpec
from grader.taskset.models import mount_for
from grader.taskset.prompts import Batch, Schedule
from sandbox.protocol import Channel
from sandbox.worker import CONFIG_FILE

PhaseCallback = Callable[[str, str, str], None]
PROBE_KINDS = ("repeat", "seedprobe", "promptprobe")
LOAD_POLL = 0.5     # seconds between looks at the load cap while a worker loads


def no_phases(variant: str, phase: str, detail: str = "") -> None:
    """The default ``on_phase``: tell nobody."""


def _prepare_dirs(root: Path, module_path: Path) -> tuple[Path, Path]:
    if root.exists():
        shutil.rmtree(root)
    work, code = root / "work", root / "code"
    for folder in (work, code, work / "tmp", work / "out"):
        folder.mkdir(parents=True)
    shutil.copyfile(module_path, code / module_path.name)
    for folder in (root, work, work / "tmp", work / "out"):
        os.chmod(folder, 0o777)
    os.chmod(code, 0o755)
    os.chmod(code / module_path.name, 0o644)
    return work, code


@contextlib.contextmanager
def interrupts_held():
    """A Ctrl-C during the block takes effect when it ends.

    Python ignores an exception raised in an at-fork callback, and its signal handlers run on
    the main thread, so a Ctrl-C landing while the main thread forks a sandbox process was
    lost: the grading went on. Held, it is raised again once the process has started."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pending: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if pending:
            raise KeyboardInterrupt


def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class VariantWorker:
    """One variant's sandboxed worker, driven batch by batch; never raises for worker faults."""

    def __init__(self, spec: VariantSpec, schedule: Schedule, timing: TimingConfig, root: Path,
                 on_phase: PhaseCallback = no_phases):
        self.spec, self.schedule, self.timing, self.root = spec, schedule, timing, root
        self.on_phase = on_phase
        self.run = VariantRun(spec.name)
        self.session: WorkerSession | None = None
        self.proc: RunningProcess | None = None
        self.channel: Channel | None = None
        self.sandbox = None
        self.started = time.monotonic()
        self.timed_seconds = 0.0
        self.next_index = 0
        self.done = False
        # The cap on this worker's load time, once known: set by the interleaving when the GT has
        # loaded, which may be while this worker is still loading beside it.
        self.load_cap: Callable[[], float | None] = lambda: None
        self._abandon = False
        self.abandoned = False                                     # its load was given up: killed, not reported
        self._idle_at: float | None = None                         # when the idle window opens
        self._idle_mark: tuple[float, float | None] | None = None  # (opened at, CPU seconds then)
        self._stop_sent = False
        self.paused = False
        self._finished = False
        self._pause_mark: tuple[float, float | None] | None = None
        self._sched: dict[int, tuple] = {}
        self.host_pids: set[int] = set()                              # for NVML's per-process samples
        self.last: tuple[int, str, list] | None = None                # (index, label, arrays) of the last timed batch

    @property
    def alive(self) -> bool:
        return self.run.status == "ok" and not self.done

    def _tell(self, phase: str, detail: str = "") -> None:
        try:
            self.on_phase(self.spec.name, phase, detail)
        except Exception:  # noqa: BLE001 - progress must never disturb grading
            pass

    def _guard(self, action, *args) -> None:
        try:
            action(*args)
        except WorkerError as exc:
            self.run.status, self.run.message = exc.status, str(exc)
            self.run.flags.extend(exc.flags)
            self.run.stderr_tail = exc.stderr_tail
            self.done = True

    def _batch(self, batch: Batch):
        if self.session is None:   # never launched, or its sandbox failed before the worker connected
            raise WorkerCrashed(f"the worker never connected, so batch {batch.index} could not be sent")
        if self.spec.device.startswith("cuda"):
            self._quiet(batch)
        return exchange_batch(self.session, batch, self.spec.steps, self.timing.batch_timeout, self.work, self.run)

    def _quiet(self, batch: Batch) -> None:
        """Wait until the device has no work queued by anyone (a frozen variant's included) before a batch.

        The worker probes with a tiny kernel; only the trusted variants' answers matter
        (their batches are the ones another variant would slow), and a device that never
        went quiet before one of their batches is evidence of interference.
        """
        limit = self.timing.quiet_timeout
        self.session.request({"op": "quiet", "max_seconds": limit})
        answer = self.session.expect({"quiet"}, limit + 30, f"waiting for a quiet device before batch {batch.index}")
        probes = self.run.probes
        probes["quiet_waits"] = probes.get("quiet_waits", 0) + 1
        probes["quiet_wait_seconds"] = probes.get("quiet_wait_seconds", 0.0) + answer["waited_seconds"]
        probes["quiet_wait_max"] = max(probes.get("quiet_wait_max", 0.0), answer["waited_seconds"])
        if not answer["quiet"]:
            probes["quiet_timeouts"] = probes.get("quiet_timeouts", 0) + 1

    # -- turns: only the variant being driven may run (grader.runs.interleave)
    def pause(self) -> None:
        """Freeze the worker (no CPU at all until :meth:`resume`), noting its CPU time."""
        if self.paused or self.proc is None or self.done:
            return
        if not self.proc.freeze():
            self.run.probes["freeze_supported"] = False
            return
        self.paused = True
        self._pause_mark = (time.monotonic(), self.proc.cpu_seconds())
        self.host_pids |= set(self.proc.pids())

    def resume(self) -> None:
        """Thaw the worker; CPU it used while frozen (nothing, unless something let it run) is recorded."""
        if not self.paused:
            return
        t0, c0 = self._pause_mark or (time.monotonic(), None)
        c1 = self.proc.cpu_seconds() if c0 is not None else None
        self.proc.thaw()
        self.paused, self._pause_mark = False, None
        probes = self.run.probes
        probes["freeze_supported"] = True
        probes["frozen_seconds"] = probes.get("frozen_seconds", 0.0) + time.monotonic() - t0
        if c0 is not None and c1 is not None:
            used = max(0.0, c1 - c0)
            probes["frozen_cpu_seconds"] = probes.get("frozen_cpu_seconds", 0.0) + used
            probes["frozen_cpu_max"] = max(probes.get("frozen_cpu_max", 0.0), used)

    def _sched_snapshot(self) -> dict[int, tuple]:
        """Nice value and CPU affinity of each of the worker's processes (host view)."""
        out = {}
        for pid in self.proc.pids() if self.proc is not None else ():
            try:
                proc = psutil.Process(pid)
                out[pid] = (proc.nice(), tuple(sorted(proc.cpu_affinity())))
            except (psutil.Error, OSError, AttributeError):
                continue
        return out

    def _check_sched(self) -> None:
        """Record a nice or affinity change since the worker was ready: someone reprioritized it."""
        if not self._sched:
            return
        now = self._sched_snapshot()
        for pid, before in self._sched.items():
            after = now.get(pid)
            if after is not None and after != before:
                self.run.probes.setdefault("sched_changes", []).append(
                    f"pid {pid}: nice {before[0]} -> {after[0]}, cpus {list(before[1])} -> {list(after[1])}")
                self._sched[pid] = after

    def start(self) -> None:
        """Launch, load and warm up (the three steps in a row)."""
        self.launch()
        self.load()
        self.warm_up()

    def launch(self) -> None:
        """Start the sandboxed worker without waiting for it (variants may load side by side)."""
        self._tell("loading")
        self._guard(self._launch)

    def load(self) -> None:
        """Wait for the worker's hello and ready: the module imported and the pipeline loaded."""
        if self.alive and self.session is not None:
            self._guard(self._load)

    def warm_up(self) -> None:
        if self.alive and self.session is not None:
            self._guard(self._warm_up)

    def _launch(self) -> None:
        spec = self.spec
        work, code = _prepare_dirs(self.root, spec.module_path)
        self.work = work
        env = {"GRADER_DEVICE": spec.device}
        if spec.threads:
            env.update(dict.fromkeys(THREAD_VARS, str(spec.threads)))
        model = mount_for(spec.model_dir)   # a cache snapshot: its models--org--name root, so links resolve
        self.sandbox = get(spec.sandbox, SandboxSpec(
            mounts={"work": Mount(work, read_only=False), "code": Mount(code), "model": Mount(model.root)},
            env=env, limits=Limits(cpuset=spec.cpuset), gpu=spec.gpu, labels=dict(spec.labels),
            runtime=spec.docker_runtime,
        ))
        config = {"module_path": f"{self.sandbox.path('code')}/{spec.module_path.name}", "device": spec.device,
                  "model_dir": model.inside(self.sandbox.path("model"))}
        (work / CONFIG_FILE).write_text(json.dumps(config))
        self.channel = Channel.create(work / "proto")
        os.chmod(work / "proto", 0o777)
        self.started = time.monotonic()
        with interrupts_held():
            self.proc = self.sandbox.start(["{python}", "-m", "sandbox.worker", "--work", self.sandbox.path("work")])
        self.session = WorkerSession(self.proc, self.channel, spec.timeout)

    def _load(self) -> None:
        run = self.run
        hello = self._await("hello", "starting the worker", lambda: None, time.monotonic())
        if hello is None:
            return
        run.versions = hello["versions"]
        run.probes["seccomp"] = hello.get("seccomp", {"status": "not_reported", "detail": "the hello had no seccomp field"})
        t_hello = time.monotonic()
        ready = self._await("ready", "importing the module and loading the pipeline", self.load_cap, t_hello)
        if ready is None:
            return
        t_ready = time.monotonic()
        run.has_inference, run.passes = ready["has_inference"], ready["passes"]
        run.phases.update(process_start=t_hello - self.started, load=t_ready - t_hello,
                          worker_import=ready["import_seconds"], worker_load=ready["load_seconds"])

    def _await(self, kind: str, what: str, cap_of: Callable[[], float | None], since: float) -> dict | None:
        """The worker's ``kind`` message within the load timeout and the cap (which may arrive meanwhile).

        None when the load was abandoned (:meth:`abandon`): the worker is then only killed."""
        while True:
            if self._abandon:
                self.abandoned = self.done = True
                return None
            cap = cap_of()
            timeout = self.timing.load_timeout
            limit = min(timeout, cap) if cap is not None else timeout
            left = since + limit - time.monotonic()
            if left <= 0:
                if cap is not None and cap < timeout:
                    raise WorkerTimeout(f"no answer within {limit:.0f}s while {what} (load time capped at "
                                        f"{cap:.0f}s: {self.timing.load_cap_factor:g}x the GT's load time)",
                                        flags=("load_cap_exceeded",))
                raise WorkerTimeout(f"no answer within {limit:.0f}s while {what}")
            try:
                return self.session.expect({kind}, min(left, LOAD_POLL), what)
            except WorkerTimeout:
                if self.session.used >= self.session.budget:
                    raise

    def abandon(self) -> None:
        """Give up this worker's load if it is still loading (another variant failed): it stops
        waiting and is killed, unreported. A worker that has loaded is left as it is."""
        self._abandon = True

    def _warm_up(self) -> None:
        run = self.run
        n = self.timing.warmup_batches if self.spec.warmup_batches is None else self.spec.warmup_batches
        t0 = time.monotonic()
        for i in range(n):
            self._tell("warm-up", f"{i + 1}/{n}")
            self._batch(self.schedule.warmup(i))
        run.phases["warmup"] = time.monotonic() - t0
        run.image_dir = self.root / "images"
        self._sched = self._sched_snapshot()
        self.host_pids = set(self.proc.pids())

    def can_continue(self) -> bool:
        """Whether another timed batch is allowed: alive, under max_batches and the budget."""
        timing, index = self.timing, self.next_index
        if not self.alive or index >= timing.max_batches or self.schedule.timed_size(index) == 0:
            return False
        if self.spec.max_batches is not None:
            return index < self.spec.max_batches
        return index < timing.min_batches or self.timed_seconds < timing.budget_seconds

    def satisfied(self) -> bool:
        """At least min_batches, and the interval of the median is within the target."""
        return self.next_index >= self.timing.min_batches and converged(self.run.batches, self.timing.target_rel_ci)

    def wants_more(self) -> bool:
        return self.can_continue() and not self.satisfied()

    def step(self) -> None:
        """Run the next timed batch; its checked arrays are left in :attr:`last` for the keeper."""
        index = self.next_index
        self._tell("timed", f"batch {index + 1}")
        self.last = None
        self._check_sched()
        batch = self.schedule.timed(index)
        t0 = time.monotonic()
        self._guard(self._timed, batch)
        self.timed_seconds += time.monotonic() - t0
        self.next_index += 1

    def _timed(self, batch: Batch) -> None:
        _, arrays = self._batch(batch)
        self.last = (batch.index, batch.label, arrays)

    def can_probe(self, base: Batch | None, images: list | None) -> bool:
        return (self.alive and self.timing.probes and self.spec.probes and base is not None and bool(self.run.batches)
                and images is not None)

    def probe_step(self, kind: str, base: Batch | None, images: list | None) -> None:
        """One integrity probe batch built on the kept timed batch ``base``, called round-robin like timed ones.

        The repeat (MLPerf TEST04) is compared with the fastest fresh batch, so noise on a
        busy machine cannot make an honest repeat look cached; interleaving it like the
        timed batches keeps warm-cache effects the same for both. ``base`` was chosen at
        random among the kept batches after all were answered, and ``images`` are its arrays
        as this worker answered them (held in memory, so nothing on disk can be swapped under
        the comparison); probe requests carry fresh indices after the timed ones and look like
        any timed batch on the wire.
        """
        if not self.can_probe(base, images):
            return
        self._tell("probes")
        t0 = time.monotonic()
        self._guard(self._probe_step, kind, base, images)
        self.run.phases["probes"] = self.run.phases.get("probes", 0.0) + time.monotonic() - t0

    def _probe_step(self, kind: str, base: Batch, reference: list) -> None:
        run = self.run
        index = self.next_index + PROBE_KINDS.index(kind)
        seconds, images = self._batch(self.schedule.probe(kind, base, index))
        run.probes["probe_batch"] = base.label
        if kind == "repeat":
            fresh = min(b.seconds / b.n_images for b in run.batches)
            run.probes.update(repeat_ratio=(seconds / len(images)) / fresh, repeat_psnr=psnr(images, reference))
        elif kind == "seedprobe":
            run.probes["new_seed_psnr"] = psnr(images, reference)
        else:
            run.probes["new_prompt_psnr"] = psnr(images, reference)
            run.probes["new_prompt_same_pixels"] = same_fraction(images, reference)

    def idle_answered(self) -> None:
        """Note the time of the last answer: the idle window opens ``idle_grace_seconds`` later."""
        self._idle_at = (time.monotonic() + self.timing.idle_grace_seconds
                         if self.alive and self.timing.probes and self.spec.probes and self.run.batches else None)

    def idle_open(self) -> None:
        if self._idle_at is None:
            return
        sleep_until(self._idle_at)
        self._idle_mark = (time.monotonic(), self.proc.cpu_seconds())

    def idle_close(self) -> None:
        """CPU used while idle after the last answer (work left running in the background)."""
        mark, self._idle_at, self._idle_mark = self._idle_mark, None, None
        if mark is None or mark[1] is None:
            return
        t0, c0 = mark
        window = self.timing.idle_window_seconds
        sleep_until(t0 + window)
        c1 = self.proc.cpu_seconds()
        if c1 is not None:
            self.run.probes["idle_cpu_fraction"] = (c1 - c0) / max(window, time.monotonic() - t0)

    def probe(self, base: Batch | None, images: list | None) -> None:
        """All probes for a variant run alone."""
        for kind in PROBE_KINDS:
            self.probe_step(kind, base, images)
        self.idle_answered()
        self.idle_open()
        self.idle_close()

    def request_stop(self) -> None:
        """Ask the worker to exit without waiting (``finish`` waits), so workers exit together."""
        self.resume()
        if self.alive and self.session is not None and not self._stop_sent:
            try:
                self.session.request({"op": "stop"})
                self._stop_sent = True
            except (WorkerError, OSError):
                pass  # finish() asks again and records the unclean exit

    def finish(self) -> VariantRun:
        if self._finished:
            return self.run
        self._finished = True
        self.resume()
        run = self.run
        run.phases["timed"] = self.timed_seconds
        if run.status == "ok" and run.batches:
            run.timing = summarize(run.batches, self.schedule.batch_size)
        # A worker that never connected (start interrupted, or a sandbox that failed before the
        # worker said hello) has nobody to ask to stop: it is only killed below.
        if run.status == "ok" and self.session is not None and not self.abandoned:
            t0 = time.monotonic()
            try:
                if not self._stop_sent:
                    self.session.request({"op": "stop"})
                self.session.expect({"bye"}, 30, "stopping")
            except WorkerError as exc:
                run.flags.append("unclean_exit")
                if isinstance(exc, ProtocolViolation):     # e.g. its last batch answered twice
                    run.flag("protocol_violation", str(exc))
            run.phases["teardown"] = time.monotonic() - t0
        result: ExecResult | None = None
        if self.proc is not None:
            result = self.proc.wait(2.0 if run.status == "ok" and not self.abandoned else 0.5)
        if self.channel is not None:
            self.channel.close()
        if self.sandbox is not None:
            self.sandbox.close()
        if result is not None:
            run.retries = result.retries
            tail = result.stderr_tail()
            if tail:
                run.stderr_tail = (run.stderr_tail + "\n--- stderr ---\n" + tail).strip()
            if result.oom and run.status != "timeout":
                run.status, run.message = "oom", run.message or "out of memory"
            if result.stdout_truncated or result.stderr_truncated:
                run.flags.append("output_truncated")
        run.phases["total"] = time.monotonic() - self.started
        self.done = True
        return run
