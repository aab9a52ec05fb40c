"""The supervisor: runs one variant (baseline, experiment or GT) in a fresh sandboxed
worker and times it with the grader's own clock.

Protocol (DESIGN section 4): start the worker, wait for ``hello`` and ``ready``
(process start, import and model load are timed separately and never count as
inference), send the warm-up batches, then timed batches until the median's 95%
interval is tight enough or a budget runs out. A batch's time runs from the moment
the request is written to the moment the worker's answer is read, and the answer
only counts once every image it names exists and has the right count and shape: work
cannot be deferred past the clock without losing the images.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader import schemas
from grader.errors import (
    ProtocolViolation, SchemaViolation, WorkerCrashed, WorkerError, WorkerOOM, WorkerTimeout,
)
from grader.config import TimingConfig
from grader.taskset.prompts import Batch, Schedule
from grader.isolation import ExecResult, Limits, Mount, RunningProcess, SandboxSpec, get
from grader.runs.telemetry import GpuSampler
from grader.scores.statistics import BatchTime, TimingStats, converged, summarize
from sandbox.protocol import Channel, ChannelClosed
from sandbox.worker import CONFIG_FILE

MAX_IMAGE_FILE = 64 << 20
_POLL = 0.2
_ERROR_KINDS = {"oom": WorkerOOM}
# The idle check: a worker's CPU use in a window opening IDLE_GRACE after its last answer
# (the grace lets an honest worker's thread pools go to sleep) and lasting IDLE_WINDOW.
IDLE_GRACE = 0.5
IDLE_WINDOW = 1.0


@dataclass(frozen=True)
class VariantSpec:
    """What to run: one module file against one model folder."""

    name: str
    module_path: Path
    model_dir: Path
    steps: int
    device: str
    sandbox: str
    gpu: str | None = None
    timeout: float = 1800.0
    labels: tuple[tuple[str, str], ...] = ()
    cpuset: tuple[int, ...] | None = None
    threads: int | None = None          # OpenMP/MKL threads; None: the libraries' default


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class VariantRun:
    name: str
    status: str = "ok"
    message: str = ""
    stderr_tail: str = ""
    flags: list[str] = field(default_factory=list)
    batches: list[BatchTime] = field(default_factory=list)
    timing: TimingStats | None = None
    phases: dict[str, float] = field(default_factory=dict)
    image_dir: Path | None = None
    image_shape: tuple[int, int] | None = None
    digests: dict[str, list[str]] = field(default_factory=dict)
    has_inference: bool | None = None
    passes: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    retries: int = 0
    evidence: dict[str, str] = field(default_factory=dict)
    probes: dict = field(default_factory=dict)
    telemetry: dict | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name, "status": self.status, "message": self.message,
            "stderr_tail": self.stderr_tail, "flags": sorted(set(self.flags)),
            "timing": self.timing.to_dict() if self.timing else None,
            "batches": [b.__dict__ for b in self.batches],
            "phases": self.phases, "image_shape": list(self.image_shape) if self.image_shape else None,
            "has_inference": self.has_inference, "passes": self.passes, "versions": self.versions,
            "retries": self.retries, "evidence": self.evidence, "probes": self.probes,
            "telemetry": self.telemetry,
        }


class _Session:
    """One worker process and its channel, with a budget of wall-clock seconds.

    Only the time spent waiting on this worker counts against its budget, so a
    variant interleaved with others gets the same allowance as one run alone.
    """

    def __init__(self, proc: RunningProcess, channel: Channel, budget: float):
        self.proc, self.channel, self.budget = proc, channel, budget
        self.used = 0.0

    def request(self, message: dict) -> None:
        self.channel.send(message)

    def expect(self, kinds: set[str], timeout: float, what: str) -> dict:
        began = time.monotonic()
        try:
            return self._expect(kinds, timeout, what, began)
        finally:
            self.used += time.monotonic() - began

    def _expect(self, kinds: set[str], timeout: float, what: str, began: float) -> dict:
        limit = min(timeout, self.budget - self.used)
        end = began + limit
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout(f"no answer within {limit:.0f}s while {what}")
            try:
                message = self.channel.recv(min(remaining, _POLL))
                if message is None and self.proc.poll() is not None:
                    message = self.channel.recv(0.05)
                    if message is None:
                        raise WorkerCrashed(f"worker exited with code {self.proc.poll()} while {what}")
            except ChannelClosed as exc:
                raise ProtocolViolation(f"worker broke the protocol while {what}: {exc}", flags=("protocol_violation",)) from exc
            if message is None:
                continue
            try:
                schemas.validate("run_result.schema.json", message, source=f"worker message while {what}")
            except SchemaViolation as exc:
                raise ProtocolViolation(str(exc), flags=("protocol_violation",)) from exc
            if message["type"] == "error":
                cls = _ERROR_KINDS.get(message["kind"], WorkerCrashed)
                detail = message["traceback"] or message["message"]
                raise cls(f"{message['kind']} while {what}: {message['message']}", stderr_tail=detail[-4000:])
            if message["type"] not in kinds:
                raise ProtocolViolation(f"unexpected {message['type']!r} while {what}", flags=("protocol_violation",))
            return message


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


def _load_images(folder: Path, files: list[str], expected: int) -> list[np.ndarray]:
    if len(files) != expected:
        raise WorkerCrashed(f"batch returned {len(files)} images for {expected} prompts", flags=("wrong_image_count",))
    arrays = []
    for name in files:
        path = folder / name
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_IMAGE_FILE:
                raise ValueError("missing, not a regular file, or too large")
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise WorkerCrashed(f"image {name}: unreadable: {exc}", flags=("bad_image",)) from exc
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise WorkerCrashed(f"image {name}: expected HxWx3 uint8, got {array.dtype} {array.shape}", flags=("bad_image",))
        arrays.append(array)
    if len({a.shape for a in arrays}) > 1:
        raise WorkerCrashed("images in one batch have different sizes", flags=("wrong_image_size",))
    return arrays


class VariantWorker:
    """One variant's sandboxed worker, driven batch by batch; never raises for worker faults."""

    def __init__(self, spec: VariantSpec, schedule: Schedule, timing: TimingConfig, root: Path):
        self.spec, self.schedule, self.timing, self.root = spec, schedule, timing, root
        self.run = VariantRun(spec.name)
        self.session: _Session | None = None
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

    def _guard(self, action, *args) -> None:
        try:
            action(*args)
        except WorkerError as exc:
            self.run.status, self.run.message = exc.status, str(exc)
            self.run.flags.extend(exc.flags)
            self.run.stderr_tail = exc.stderr_tail
            self.done = True

    def start(self) -> None:
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
        self.session = _Session(self.proc, self.channel, spec.timeout)
        hello = self.session.expect({"hello"}, self.timing.load_timeout, "starting the worker")
        run.versions = hello["versions"]
        t_hello = time.monotonic()
        try:
            ready = self.session.expect({"ready"}, self.load_timeout, "importing the module and loading the pipeline")
        except WorkerTimeout as exc:
            if self.load_timeout < self.timing.load_timeout:
                raise WorkerTimeout(f"{exc} (load time capped at {self.load_timeout:.0f}s: "
                                    f"{self.timing.load_cap_factor:g}x the GT's load time)", flags=("load_cap_exceeded",)) from exc
            raise
        t_ready = time.monotonic()
        run.has_inference, run.passes = ready["has_inference"], ready["passes"]
        run.phases.update(process_start=t_hello - self.started, load=t_ready - t_hello,
                          worker_import=ready["import_seconds"], worker_load=ready["load_seconds"])
        t0 = time.monotonic()
        for i in range(self.timing.warmup_batches):
            _run_batch(self.session, self.schedule.warmup(i), spec, self.timing, work, run, keep=None)
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
        t0 = time.monotonic()
        self._guard(_run_batch, self.session, self.schedule.timed(index), self.spec, self.timing, self.work, self.run, keep)
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
        t0 = time.monotonic()
        self._guard(self._probe_step, kind)
        self.run.phases["probes"] = self.run.phases.get("probes", 0.0) + time.monotonic() - t0

    def _probe_step(self, kind: str) -> None:
        from grader.scores.quality import load_images, psnr

        run, first = self.run, self.schedule.timed(0)
        reference = load_images(run.image_dir, ["b0000"])
        index = self.next_index + (0 if kind == "repeat" else 1)
        seeds = first.seeds if kind == "repeat" else tuple((s + 7919) % (2**31 - 1) for s in first.seeds)
        seconds, images = _run_batch(self.session, Batch(index, first.prompts, first.seed, kind=kind, seeds=seeds),
                                     self.spec, self.timing, self.work, run, None)
        if kind == "repeat":
            fresh = min(b.seconds / b.n_images for b in run.batches)
            run.probes.update(repeat_ratio=(seconds / len(images)) / fresh, repeat_psnr=psnr(images, reference))
        else:
            run.probes["new_seed_psnr"] = psnr(images, reference)

    def idle_answered(self) -> None:
        """Note the time of the last answer: the idle window opens ``IDLE_GRACE`` later."""
        self._idle_at = time.monotonic() + IDLE_GRACE if self.can_probe() else None

    def idle_open(self) -> None:
        if self._idle_at is None:
            return
        _sleep_until(self._idle_at)
        self._idle_mark = (time.monotonic(), self.proc.cpu_seconds())

    def idle_close(self) -> None:
        """CPU used while idle after the last answer (work left running in the background)."""
        mark, self._idle_at, self._idle_mark = self._idle_mark, None, None
        if mark is None or mark[1] is None:
            return
        t0, c0 = mark
        _sleep_until(t0 + IDLE_WINDOW)
        c1 = self.proc.cpu_seconds()
        if c1 is not None:
            self.run.probes["idle_cpu_fraction"] = (c1 - c0) / max(IDLE_WINDOW, time.monotonic() - t0)

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
        mismatch = timer_disagreement(run.batches, self.timing.timer_tolerance)
        if mismatch is not None and "timer_mismatch" not in run.flags:
            run.flags.append("timer_mismatch")
            run.evidence["timer_mismatch"] = mismatch
        if run.status == "ok":
            if run.batches:
                run.timing = summarize(run.batches, self.schedule.batch_size)
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


def run_variants(specs: list[VariantSpec], schedule: Schedule, timing: TimingConfig, root: Path,
                 stop_on_failure: bool = True, reference: str | None = "gt") -> dict[str, VariantRun]:
    """Run several variants with their timed batches interleaved.

    Workers are started and warmed up one after another (so load times are not
    contended), then take turns batch by batch, the order rotating each round. Drift
    in the machine (clocks, heat, a noisy neighbour) then falls on every variant
    alike instead of on whichever ran last. Variants stop together, after the same
    number of rounds: when every interval is tight enough, or when any variant reaches
    its budget or max_batches. (Stopping one early would leave it timed over a shorter,
    earlier stretch of the machine's drift than the others, and fewer batches to pair.)
    A failure stops the others when ``stop_on_failure``.
    The ``reference`` variant (the GT) should come first: its load time caps the
    others' at ``load_cap_factor`` times as much, so precomputing at load is bounded.
    After timing, every variant answers the same integrity probes.
    """
    workers = [VariantWorker(spec, schedule, timing, root / spec.name) for spec in specs]
    try:
        for worker in workers:
            worker.start()
            if stop_on_failure and not worker.alive:
                return {w.spec.name: w.finish() for w in workers if w.proc is not None or w is worker}
            if worker.spec.name == reference and worker.alive:
                cap = max(timing.load_cap_factor * worker.run.phases["load"], timing.load_cap_floor)
                for other in workers:
                    if other is not worker:
                        other.load_timeout = min(timing.load_timeout, cap)
        sampler = GpuSampler(int(specs[0].gpu or 0)) if specs[0].device == "cuda" else None
        if sampler is not None:
            sampler.start()
        round_ = 0
        while True:
            active = [w for w in workers if w.alive]
            if not active or not all(w.can_continue() for w in active) or all(w.satisfied() for w in active):
                break
            shift = round_ % len(active)
            for worker in active[shift:] + active[:shift]:
                worker.step()
                if stop_on_failure and not worker.alive and worker.run.status != "ok":
                    return {w.spec.name: w.finish() for w in workers}
            round_ += 1
        telemetry = sampler.stop() if sampler is not None else None
        if telemetry is not None:
            for worker in workers:
                worker.run.telemetry = telemetry
                if telemetry["throttled"]:
                    worker.run.flags.append("gpu_throttled")
                    worker.run.evidence["gpu_throttled"] = "GPU throttled while timing: " + ", ".join(telemetry["throttle_reasons"])
        for worker in workers:
            worker.probe_step("repeat")
        # Each worker's idle window opens just after its last answer, while deferred work
        # would still run; the windows overlap, so a task waits for one, not one per variant.
        for worker in workers:
            worker.probe_step("seedprobe")
            worker.idle_answered()
        for worker in workers:
            worker.idle_open()
        for worker in workers:
            worker.idle_close()
        for worker in workers:
            worker.request_stop()
        return {w.spec.name: w.finish() for w in workers}
    finally:
        for worker in workers:
            if not worker.done:
                worker.finish()


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def run_variant(spec: VariantSpec, schedule: Schedule, timing: TimingConfig, root: Path) -> VariantRun:
    """Run and time one variant alone."""
    worker = VariantWorker(spec, schedule, timing, root)
    worker.start()
    while worker.wants_more():
        worker.step()
    worker.probe()
    return worker.finish()


def _run_batch(session: _Session, batch: Batch, spec: VariantSpec, timing: TimingConfig, work: Path,
               run: VariantRun, keep: Path | None) -> tuple[float, list[np.ndarray]]:
    """Send one batch, time it on the supervisor's clock, check and keep its images."""
    out_rel = f"out/{batch.label}"
    request = {"op": "batch", "index": batch.index, "prompts": list(batch.prompts), "seed": batch.seed,
               "steps": spec.steps, "out": out_rel}
    request["seeds"] = list(batch.seeds) if batch.seeds is not None else [batch.seed + k for k in range(len(batch.prompts))]
    what = f"generating {batch.kind} batch {batch.index}"
    t0 = time.perf_counter()
    session.request(request)
    answer = session.expect({"batch_done"}, timing.batch_timeout, what)
    seconds = time.perf_counter() - t0
    if answer["index"] != batch.index:
        raise ProtocolViolation(f"answer for batch {answer['index']} while waiting for {batch.index}", flags=("protocol_violation",))
    folder = work / out_rel
    arrays = _load_images(folder, answer["files"], len(batch.prompts))
    shape = arrays[0].shape[:2]
    if run.image_shape is None:
        run.image_shape = shape
    elif run.image_shape != shape:
        raise WorkerCrashed(f"image size changed from {run.image_shape} to {shape}", flags=("wrong_image_size",))
    key = batch.label if batch.kind in ("timed", "warmup") else f"probe-{batch.kind}"
    run.digests[key] = [hashlib.sha1(a.tobytes()).hexdigest() for a in arrays]
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), keep / batch.label)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    if batch.kind != "timed":
        return seconds, arrays
    worker = answer["worker_seconds"]
    run.batches.append(BatchTime(batch.index, len(arrays), seconds, worker))
    return seconds, arrays


def timer_disagreement(batches: list[BatchTime], tolerance: float) -> str | None:
    """Evidence that the worker's own clock was tampered with, or None.

    The worker's interval lies inside the supervisor's (it starts after the request arrives
    and ends before the answer leaves), so a worker that claims more time than the
    supervisor saw is wrong on any single batch. A worker that claims much less is only
    suspicious when most batches say so: one late wake-up of the supervisor on a loaded
    host also widens the gap, while a patched clock shifts every batch.
    """
    def evidence(b: BatchTime) -> str:
        return f"batch {b.index}: supervisor {b.seconds:.4f}s, worker says {b.worker_seconds:.4f}s"

    for b in batches:
        if b.worker_seconds > b.seconds * 1.02 + 0.01:
            return evidence(b)
    short = [b for b in batches if b.worker_seconds < b.seconds * (1 - tolerance) - 0.05]
    if short and 2 * len(short) > len(batches):
        return f"{len(short)} of {len(batches)} timed batches; first {evidence(short[0])}"
    return None
