"""A task's variants, run side by side with their timed batches interleaved, one at a time.

Workers load side by side (loading needs no exclusive device), warm up one after
another, then take turns batch by batch, the order rotating each round. Drift in the machine
(clocks, heat, a noisy neighbour) then falls on every variant alike instead of on
whichever ran last.

Only the variant being driven runs. Every other one is frozen (its processes stopped,
or its container paused) from the end of its warm-up to its next turn, and the CPU it
used while frozen is recorded; on a GPU each batch also waits until the device is quiet,
so work another variant queued before it was frozen cannot slow the batch. A variant
therefore cannot work against the one being timed, whether by spinning, by queuing GPU
work or by signalling it (a frozen process does not run to send anything).

After timing, every variant that takes probes answers them, built on one of the kept
batches chosen at random, and has its idle window measured with everyone thawed; the
windows overlap, so a task waits for one, not one per variant.
"""

from __future__ import annotations

import threading
from pathlib import Path

from grader.config import TimingConfig
from grader.runs.keeper import CompareBatch, ImageKeeper
from grader.runs.supervisor import PROBE_KINDS, PhaseCallback, VariantWorker, no_phases
from grader.runs.telemetry import GpuSampler
from grader.runs.variant import TRUSTED_VARIANTS, VariantRun, VariantSpec
from grader.taskset.prompts import Schedule


class Turns:
    """At most one worker thawed at a time: the one being driven."""

    def __init__(self, workers: list[VariantWorker]):
        self.workers = workers

    def give(self, worker: VariantWorker) -> None:
        for other in self.workers:
            if other is not worker:
                other.pause()
        worker.resume()

    def park(self, worker: VariantWorker) -> None:
        worker.pause()

    def release(self) -> None:
        for worker in self.workers:
            worker.resume()


ABANDON_WAIT = 5.0    # seconds to let an abandoned load notice (it polls every LOAD_POLL), before cleaning up anyway

# NVML stamps a per-process sample at the end of its period (1/6 s to 1 s by product); a sample
# within this long of a batch's start may still describe work from before it.
GPU_SAMPLE_MARGIN = 0.5


def record_gpu_sharing(workers: list[VariantWorker], sampler: GpuSampler) -> None:
    """Note, per trusted variant's timed batch, every other variant whose processes NVML saw on the GPU."""
    pids = {w.spec.name: set(w.host_pids) for w in workers}
    for worker in workers:
        if worker.spec.name not in TRUSTED_VARIANTS:
            continue
        for batch in worker.run.batches:
            if batch.started_at is None:
                continue
            window = (batch.started_at, batch.started_at + batch.seconds)
            for other in workers:
                if other is worker or not pids[other.spec.name]:
                    continue
                users = sampler.gpu_users(window, pids[other.spec.name], GPU_SAMPLE_MARGIN)
                if users:
                    worker.run.probes.setdefault("gpu_shared_with", []).append({
                        "batch": batch.index, "variant": other.spec.name,
                        "samples": sum(u["samples"] for u in users), "max_sm": max(u["max_sm_util"] for u in users)})


def load_groups(workers: list[VariantWorker], together: bool) -> list[list[VariantWorker]]:
    """Who loads at the same time: everyone, or (``together`` off) each capped variant alone
    and the ``loads_alongside`` ones side by side, in the given order."""
    if together:
        return [list(workers)]
    alongside = [w for w in workers if w.spec.loads_alongside]
    groups: list[list[VariantWorker]] = []
    for worker in workers:
        if not worker.spec.loads_alongside:
            groups.append([worker])
        elif worker is alongside[0]:
            groups.append(alongside)
    return groups


def load_and_warm_up(workers: list[VariantWorker], turns: Turns, timing: TimingConfig, load_reference: str | None,
                     stop_on_failure: bool) -> bool:
    """Load every worker (side by side when ``timing.load_together``), then warm each up in turn.

    Loading needs no exclusive device, so by default the variants import and load at the
    same time, each timed on its own thread from its hello to its ready, and each frozen
    as soon as it is ready. The ``load_reference`` variant's load time, once known, caps
    the others' (``load_cap_factor`` times as much, at least ``load_cap_floor``); they
    loaded under the same conditions, at the same time. ``loads_alongside`` variants (the
    trusted reference and the agent's baseline, whose load times carry nothing) are not
    capped. Warm-ups are exclusive like timed batches: everyone else is frozen, so no
    untrusted work can disturb a trusted variant's first calls (compilation, autotuning).
    A failure to load abandons the other loads when ``stop_on_failure``. False when the
    run should end.
    """
    reference = next((w for w in workers if w.spec.name == load_reference), None)
    cap: list[float] = []

    def load(worker: VariantWorker) -> None:
        worker.load()
        if worker is reference and worker.alive:
            cap.append(max(timing.load_cap_factor * worker.run.phases["load"], timing.load_cap_floor))
        turns.park(worker)
        if stop_on_failure and not worker.alive and not worker.abandoned:
            for other in workers:
                if other is not worker:
                    other.abandon()

    for worker in workers:
        if reference is not None and worker is not reference and not worker.spec.loads_alongside:
            worker.load_cap = lambda: cap[0] if cap else None
    for group in load_groups(workers, timing.load_together):
        # Launched from this thread: a sandbox may be tied to the thread that started it (bwrap's
        # --die-with-parent follows the forking thread), and a load thread ends after the load.
        for worker in group:
            worker.launch()
            if stop_on_failure and not worker.alive:
                return False
        threads = [threading.Thread(target=load, args=(w,), name=f"load-{w.spec.name}", daemon=True) for w in group]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
        except BaseException:
            for worker in workers:
                worker.abandon()
            for thread in threads:        # a load under way notices first, so cleanup does not race it
                thread.join(ABANDON_WAIT)
            raise
        if stop_on_failure and not all(w.alive for w in group):
            return False
    for worker in workers:
        turns.give(worker)
        worker.warm_up()
        turns.park(worker)
        if stop_on_failure and not worker.alive:
            return False
    return True


def run_variants(specs: list[VariantSpec], schedule: Schedule, timing: TimingConfig, root: Path,
                 stop_on_failure: bool = True, load_reference: str | None = "gt",
                 on_phase: PhaseCallback = no_phases, compare: CompareBatch | None = None) -> dict[str, VariantRun]:
    """Run several variants with their timed batches interleaved.

    Variants without a batch cap stop together, after the same number of rounds: when
    every interval is tight enough, or when any of them reaches its budget or max_batches.
    (Stopping one early would leave it timed over a shorter, earlier stretch of the
    machine's drift than the others, and fewer batches to pair.) A variant with a cap
    (``spec.max_batches``, the agent's baseline) takes part in the first rounds only, then
    stays frozen until everyone stops together (stopping it on its own would hold the device
    while it exits: 2 s between two batches on the H200). A failure stops the others when
    ``stop_on_failure``.
    The ``load_reference`` variant (the GT) caps the others' load time at
    ``load_cap_factor`` times its own, so precomputing at load is bounded
    (:func:`load_and_warm_up`).
    ``compare(index, arrays)`` sees every timed batch of the image-keeping variants.
    """
    workers = [VariantWorker(spec, schedule, timing, root / spec.name, on_phase) for spec in specs]
    keeper = ImageKeeper(tuple(s.name for s in specs if s.keeps_images),
                         {s.name: root / s.name / "images" for s in specs}, timing.quality_batches, compare)
    turns = Turns(workers)

    def end_all() -> dict[str, VariantRun]:
        """Every worker that started or failed, finished (``finish`` is idempotent)."""
        turns.release()
        finished = {w.spec.name: w.finish() for w in workers}
        return {w.spec.name: finished[w.spec.name] for w in workers
                if not w.abandoned and (w.proc is not None or w.run.status != "ok")}

    try:
        if not load_and_warm_up(workers, turns, timing, load_reference, stop_on_failure):
            return end_all()
        sampler = GpuSampler(int(specs[0].gpu or 0)) if specs[0].device == "cuda" else None
        if sampler is not None:
            sampler.start()
        round_ = 0
        while True:
            main = [w for w in workers if w.alive and w.spec.max_batches is None]
            if not main or not all(w.can_continue() for w in main) or all(w.satisfied() for w in main):
                break
            active = [w for w in workers if w.alive and (w.spec.max_batches is None or w.can_continue())]
            shift = round_ % len(active)
            for worker in active[shift:] + active[:shift]:
                turns.give(worker)
                worker.step()
                turns.park(worker)
                if worker.last is not None:
                    keeper.answered(worker.spec.name, *worker.last)
                if stop_on_failure and not worker.alive and worker.run.status != "ok":
                    return end_all()
            round_ += 1
        keeper.drop_incomplete()
        if sampler is not None:
            record_gpu_sharing(workers, sampler)
        telemetry = sampler.stop() if sampler is not None else None
        for worker in workers:
            worker.run.telemetry = telemetry
            worker.run.kept = keeper.labels
            worker.run.comparisons = keeper.comparisons if worker.spec.keeps_images else []
        picked = keeper.pick()
        base = schedule.timed(picked[0]) if picked is not None else None
        for kind in PROBE_KINDS:
            for worker in workers:
                images = keeper.images(worker.spec.name, picked[1]) if picked is not None else None
                if worker.can_probe(base, images):
                    turns.give(worker)
                    worker.probe_step(kind, base, images)
                    turns.park(worker)
        # Each worker's idle window opens just after its last answer, while deferred work
        # would still run; everyone is thawed for it (nothing is timed then).
        turns.release()
        for worker in workers:
            worker.idle_answered()
        for worker in workers:
            worker.idle_open()
        for worker in workers:
            worker.idle_close()
        for worker in workers:
            worker.request_stop()
        return end_all()
    finally:
        turns.release()
        for worker in workers:
            worker.finish()


def run_variant(spec: VariantSpec, schedule: Schedule, timing: TimingConfig, root: Path,
                on_phase: PhaseCallback = no_phases) -> VariantRun:
    """Run and time one variant alone (its first kept batch feeds the probes)."""
    worker = VariantWorker(spec, schedule, timing, root, on_phase)
    keeper = ImageKeeper((spec.name,), {spec.name: root / "images"}, timing.quality_batches)
    worker.start()
    while worker.wants_more():
        worker.step()
        if worker.last is not None:
            keeper.answered(spec.name, *worker.last)
    picked = keeper.pick()
    worker.run.kept = keeper.labels
    worker.probe(schedule.timed(picked[0]) if picked is not None else None,
                 keeper.images(spec.name, picked[1]) if picked is not None else None)
    return worker.finish()
