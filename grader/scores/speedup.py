"""Speedups between two variants' runs, each with a 95% interval.

Two estimates: the ratio of median per-image times with a conservative interval (the
ends of the two medians' intervals), and, when enough batches pair up, the median of
per-batch ratios, which cancels drift that interleaved variants share.
"""

from __future__ import annotations

import statistics

from grader.runs.timing import BatchTime, TimingStats, median_ci


def speedup(slow: TimingStats, fast: TimingStats) -> tuple[float, float, float]:
    """``slow / fast`` on median per-image time, with a conservative interval."""
    point = slow.per_image_median / fast.per_image_median
    return point, slow.per_image_ci_low / fast.per_image_ci_high, slow.per_image_ci_high / fast.per_image_ci_low


def paired_speedup(slow: list[BatchTime], fast: list[BatchTime], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """Median of per-batch ratios ``slow/fast`` over batches with the same index.

    Interleaved variants run batch *i* moments apart on the same prompts, so pairing
    them cancels drift (clocks under a power cap, heat, a busy neighbour) that an
    unpaired ratio of medians would absorb as noise. None with fewer than 6 pairs.
    """
    by_index = {b.index: b for b in fast}
    ratios = [(s.seconds / s.n_images) / (by_index[s.index].seconds / by_index[s.index].n_images)
              for s in slow if s.index in by_index]
    if len(ratios) < 6:
        return None
    low, high, _ = median_ci(ratios, confidence)
    return statistics.median(ratios), low, high
