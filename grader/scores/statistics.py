"""Statistics over timed batches: per-image times, a distribution-free interval for
the median, and the speedup interval derived from two of them.

Units are kept apart on purpose: *per image* is seconds divided by the batch's real
number of images (so a short last batch counts by its size); *per batch* figures
use full batches only and are labelled as such.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BatchTime:
    index: int
    n_images: int
    seconds: float
    worker_seconds: float


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Order-statistic interval for the median: ``(low, high, achieved_confidence)``.

    Uses the binomial distribution of ranks, so it assumes nothing about the shape of
    the timing distribution. With too few samples for ``confidence`` it returns the
    full range and the (lower) confidence that range actually has.
    """
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, 0.0
    if n == 1:
        return xs[0], xs[0], 0.0
    # [x_(j), x_(n-j+1)] (1-based) covers the median with probability 1 - 2 P(B <= j-1).
    cdf = 0.5**n
    best = (xs[0], xs[-1], 1.0 - 2 * cdf)
    for j in range(2, n // 2 + 1):
        cdf += math.comb(n, j - 1) * 0.5**n
        coverage = 1.0 - 2 * cdf
        if coverage < confidence:
            break
        best = (xs[j - 1], xs[n - j], coverage)
    return best


@dataclass(frozen=True)
class TimingStats:
    n_batches: int
    n_images: int
    total_seconds: float
    per_image_seconds: float
    per_image_median: float
    per_image_ci_low: float
    per_image_ci_high: float
    ci_confidence: float
    per_batch_median: float | None
    per_batch_min: float | None
    per_batch_max: float | None
    full_batch_size: int
    images_per_second: float
    worker_per_image_seconds: float

    @property
    def rel_half_width(self) -> float:
        return (self.per_image_ci_high - self.per_image_ci_low) / 2 / self.per_image_median

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(batches: list[BatchTime], batch_size: int, confidence: float = 0.95) -> TimingStats:
    if not batches:
        raise ValueError("no timed batches")
    per_image = [b.seconds / b.n_images for b in batches]
    low, high, achieved = median_ci(per_image, confidence)
    total = sum(b.seconds for b in batches)
    images = sum(b.n_images for b in batches)
    full = [b.seconds for b in batches if b.n_images == batch_size]
    return TimingStats(
        n_batches=len(batches), n_images=images, total_seconds=total,
        per_image_seconds=total / images, per_image_median=statistics.median(per_image),
        per_image_ci_low=low, per_image_ci_high=high, ci_confidence=achieved,
        per_batch_median=statistics.median(full) if full else None,
        per_batch_min=min(full) if full else None, per_batch_max=max(full) if full else None,
        full_batch_size=batch_size, images_per_second=images / total,
        worker_per_image_seconds=sum(b.worker_seconds for b in batches) / images,
    )


def converged(batches: list[BatchTime], target_rel_ci: float, confidence: float = 0.95) -> bool:
    per_image = [b.seconds / b.n_images for b in batches]
    low, high, achieved = median_ci(per_image, confidence)
    if achieved < confidence:
        return False
    return (high - low) / 2 / statistics.median(per_image) <= target_rel_ci


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
