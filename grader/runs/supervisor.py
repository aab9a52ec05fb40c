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

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from grader.config import TimingConfig
from grader.errors import WorkerError, WorkerTimeout
from grader.images import load_images, psnr
from grader.isolation import ExecResult, Limits, Mount, RunningProcess, SandboxSpec, get
from grader.runs.session import WorkerSession, exchange_batch
from grader.runs.timing import converged, summarize
from grader.runs.variant import THREAD_VARS, VariantRun, VariantSpec
from grader.taskset.prompts import Batch, Schedule
from sandbox.protocol import Channel
from sandbox.worker import CONFIG_FILE

PhaseCallback = Callable[[str, str, str], None]


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
        self.load_timeout = timing.load_timeout
        self._idle_at: float | None = None                         # when the idle window opens
        self._idle_mark: tuple[float, float | None] | None = None  # (opened at, CPU seconds then)
        self._stop_sent = False

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

    def _batch(self, batch: Batch, keep: Path | None):
        return exchange_batch(self.session, batch, self.spec.steps, self.timing.batch_timeout, self.work, self.run, keep)

    def start(self) -> None:
        self._tell("loading")
        self._guard(self._start)

    def _start(self) -> None:
        spec, run = self.spec, self.run
        work, code = _prepare_dirs(self.root, spec.module_path)
        self.work = work
        env = {"GRADER_DEVICE": spec.device}
        if spec.threads:
            env.update(dict.fromkeys(THREAD_VARS, str(spec.threads)))
        self.sandbox = get(spec.sandbox, SandboxSpec(
            mounts={"work": Mount(work, read_only=False), "code": Mount(code), "model": Mount(spec.model_dir)},
            env=env, limits=Limits(cpuset=spec.cpuset), gpu=spec.gpu, labels=dict(spec.labels),
        ))
        config = {"module_path": f"{self.sandbox.path('code')}/{spec.module_path.name}", "device": spec.device,
                  "model_dir": self.sandbox.path("model")}
        (work / CONFIG_FILE).write_text(json.dumps(config))
        self.channel = Channel.create(work / "proto")
        os.chmod(work / "proto", 0o777)
        self.started = time.monotonic()
        self.proc = self.sandbox.start(["{python}", "-m", "sandbox.worker", "--work", self.sandbox.path("work")])
        self.session = WorkerSession(self.proc, self.channel, spec.timeout)
        hello = self.session.expect({"hello"}, self.timing.load_timeout, "starting the worker")
        run.versions = hello["versions"]
        t_hello = time.monotonic()
        try:
            ready = self.session.expect({"ready"}, self.load_timeout, "importing the module and loading the pipeline")
        except WorkerTimeout as exc:
            if self.load_timeout < self.timing.load_timeout:
                raise WorkerTimeout(f"{exc} (load time capped at {self.load_timeout:.0f}s: "
                                    f"{self.timing.load_cap_factor:g}x the GT's load time)",
                                    flags=("load_cap_exceeded",)) from exc
            raise
        t_ready = time.monotonic()
        run.has_inference, run.passes = ready["has_inference"], ready["passes"]
        run.phases.update(process_start=t_hello - self.started, load=t_ready - t_hello,
                          worker_import=ready["import_seconds"], worker_load=ready["load_seconds"])
        t0 = time.monotonic()
        for i in range(self.timing.warmup_batches):
            self._tell("warm-up", f"{i + 1}/{self.timing.warmup_batches}")
            self._batch(self.schedule.warmup(i), keep=None)
        run.phases["warmup"] = time.monotonic() - t0
        run.image_dir = self.root / "images"

    def can_continue(self) -> bool:
        """Whether another timed batch is allowed: alive, under max_batches and the budget."""
        timing, index = self.timing, self.next_index
        if not self.alive or index >= timing.max_batches or self.schedule.timed_size(index) == 0:
            return False
        return index < timing.min_batches or self.timed_seconds < timing.budget_seconds

    def satisfied(self) -> bool:
        """At least min_batches, and the interval of the median is within the target."""
        return self.next_index >= self.timing.min_batches and converged(self.run.batches, self.timing.target_rel_ci)

    def wants_more(self) -> bool:
        return self.can_continue() and not self.satisfied()

    def step(self) -> None:
        """Run the next timed batch."""
        index = self.next_index
        keep = self.run.image_dir if index < self.timing.quality_batches else None
        self._tell("timed", f"batch {index + 1}")
        t0 = time.monotonic()
        self._guard(self._batch, self.schedule.timed(index), keep)
        self.timed_seconds += time.monotonic() - t0
        self.next_index += 1

    def can_probe(self) -> bool:
        return self.alive and self.timing.probes and bool(self.run.batches) and (self.run.image_dir / "b0000").is_dir()

    def probe_step(self, kind: str) -> None:
        """One integrity probe batch (``repeat`` or ``seedprobe``), called round-robin like timed batches.

        The repeat (MLPerf TEST04) is compared with the fastest fresh batch, so noise on a
        busy machine cannot make an honest repeat look cached; interleaving it like the
        timed batches keeps warm-cache effects the same for both. Probe requests carry
        fresh indices after the timed ones and look like any timed batch on the wire.
        """
        if not self.can_probe():
            return
        self._tell("probes")
        t0 = time.monotonic()
        self._guard(self._probe_step, kind)
        self.run.phases["probes"] = self.run.phases.get("probes", 0.0) + time.monotonic() - t0

    def _probe_step(self, kind: str) -> None:
        run, first = self.run, self.schedule.timed(0)
        reference = load_images(run.image_dir, ["b0000"])
        index = self.next_index + (0 if kind == "repeat" else 1)
        seeds = first.seeds if kind == "repeat" else tuple((s + 7919) % (2**31 - 1) for s in first.seeds)
        seconds, images = self._batch(Batch(index, first.prompts, first.seed, kind=kind, seeds=seeds), None)
        if kind == "repeat":
            fresh = min(b.seconds / b.n_images for b in run.batches)
            run.probes.update(repeat_ratio=(seconds / len(images)) / fresh, repeat_psnr=psnr(images, reference))
        else:
            run.probes["new_seed_psnr"] = psnr(images, reference)

    def idle_answered(self) -> None:
        """Note the time of the last answer: the idle window opens ``idle_grace_seconds`` later."""
        self._idle_at = time.monotonic() + self.timing.idle_grace_seconds if self.can_probe() else None

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

    def probe(self) -> None:
        """All probes for a variant run alone."""
        for kind in ("repeat", "seedprobe"):
            self.probe_step(kind)
        self.idle_answered()
        self.idle_open()
        self.idle_close()

    def request_stop(self) -> None:
        """Ask the worker to exit without waiting (``finish`` waits), so workers exit together."""
        if self.alive and self.session is not None and not self._stop_sent:
            try:
                self.session.request({"op": "stop"})
                self._stop_sent = True
            except (WorkerError, OSError):
                pass  # finish() asks again and records the unclean exit

    def finish(self) -> VariantRun:
        run = self.run
        run.phases["timed"] = self.timed_seconds
        if run.status == "ok" and run.batches:
            run.timing = summarize(run.batches, self.schedule.batch_size)
        # A worker that never connected (start interrupted, or a sandbox that failed before the
        # worker said hello) has nobody to ask to stop: it is only killed below.
        if run.status == "ok" and self.session is not None:
            t0 = time.monotonic()
            try:
                if not self._stop_sent:
                    self.session.request({"op": "stop"})
                self.session.expect({"bye"}, 30, "stopping")
            except WorkerError:
                run.flags.append("unclean_exit")
            run.phases["teardown"] = time.monotonic() - t0
        result: ExecResult | None = None
        if self.proc is not None:
            result = self.proc.wait(2.0 if run.status == "ok" else 0.5)
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
