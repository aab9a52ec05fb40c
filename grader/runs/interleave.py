"""A task's variants, run side by side with their timed batches interleaved.

Workers are started and warmed up one after another (so load times are not contended),
then take turns batch by batch, the order rotating each round. Drift in the machine
(clocks, heat, a noisy neighbour) then falls on every variant alike instead of on
whichever ran last. After timing, every variant answers the same integrity probes and
has its idle window measured; the windows overlap, so a task waits for one, not one
per variant.
"""

from __future__ import annotations

from pathlib import Path

from grader.config import TimingConfig
from grader.runs.supervisor import PhaseCallback, VariantWorker, no_phases
from grader.runs.telemetry import GpuSampler
from grader.runs.variant import VariantRun, VariantSpec
from grader.taskset.prompts import Schedule


def run_variants(specs: list[VariantSpec], schedule: Schedule, timing: TimingConfig, root: Path,
                 stop_on_failure: bool = True, reference: str | None = "gt",
                 on_phase: PhaseCallback = no_phases) -> dict[str, VariantRun]:
    """Run several variants with their timed batches interleaved.

    Variants stop together, after the same number of rounds: when every interval is tight
    enough, or when any variant reaches its budget or max_batches. (Stopping one early
    would leave it timed over a shorter, earlier stretch of the machine's drift than the
    others, and fewer batches to pair.) A failure stops the others when ``stop_on_failure``.
    The ``reference`` variant (the GT) should come first: its load time caps the others'
    at ``load_cap_factor`` times as much, so precomputing at load is bounded.
    """
    workers = [VariantWorker(spec, schedule, timing, root / spec.name, on_phase) for spec in specs]
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
        for worker in workers:
            worker.run.telemetry = telemetry
        for worker in workers:
            worker.probe_step("repeat")
        # Each worker's idle window opens just after its last answer, while deferred work
        # would still run.
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


def run_variant(spec: VariantSpec, schedule: Schedule, timing: TimingConfig, root: Path,
                on_phase: PhaseCallback = no_phases) -> VariantRun:
    """Run and time one variant alone."""
    worker = VariantWorker(spec, schedule, timing, root, on_phase)
    worker.start()
    while worker.wants_more():
        worker.step()
    worker.probe()
    return worker.finish()
