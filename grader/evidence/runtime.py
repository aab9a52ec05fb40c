"""Checks on one variant's own measurements: its clock against the supervisor's, and the GPU.

The worker times each batch itself (synchronize-bracketed) and says so in its answer; the
supervisor's clock is the trusted one. The worker's interval lies inside the supervisor's
(it starts after the request arrives and ends before the answer leaves), so a worker that
claims more time than the supervisor saw is wrong on any single batch. A worker that claims
much less is only suspicious when most batches say so: one late wake-up of the supervisor
on a loaded host also widens the gap, while a patched clock shifts every batch.
"""

from __future__ import annotations

from grader.config import IntegrityConfig
from grader.runs.timing import BatchTime
from grader.runs.variant import VariantRun


def timer_disagreement(batches: list[BatchTime], tolerance: float) -> str | None:
    """Evidence that the worker's own clock was tampered with, or None."""
    def evidence(b: BatchTime) -> str:
        return f"batch {b.index}: supervisor {b.seconds:.4f}s, worker says {b.worker_seconds:.4f}s"

    for b in batches:
        if b.worker_seconds > b.seconds * 1.02 + 0.01:
            return evidence(b)
    short = [b for b in batches if b.worker_seconds < b.seconds * (1 - tolerance) - 0.05]
    if short and 2 * len(short) > len(batches):
        return f"{len(short)} of {len(batches)} timed batches; first {evidence(short[0])}"
    return None


def check_variant(run: VariantRun, cfg: IntegrityConfig) -> None:
    """Raise the variant's own flags (``timer_mismatch``, ``gpu_throttled``) on ``run``.

    Runs for every variant that answered timed batches, failed ones included: a patched
    clock is evidence whatever happened later.
    """
    mismatch = timer_disagreement(run.batches, cfg.timer_tolerance)
    if mismatch is not None:
        run.flag("timer_mismatch", mismatch)
    telemetry = run.telemetry
    if telemetry is not None and telemetry.get("throttled"):
        run.flag("gpu_throttled", "GPU throttled while timing: " + ", ".join(telemetry["throttle_reasons"]))
