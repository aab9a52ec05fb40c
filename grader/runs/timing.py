"""Timed batches and when to stop: per-image times and a distribution-free interval for the median.

The trusted timing protocol (DESIGN section 4) times batches until the 95% interval of the
median per-image time is tight enough; that stopping rule, and the summary each variant's
run carries, live here with the runs. Speedups derived from two runs are scores
(:mod:`grader.scores.speedup`).

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
    started_at: float | None = None     # wall-clock start (time.time()), to line up with NVML samples


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
    # [x_(j), x_(n-j+1)] (1-based) covers the median with probability 1 - 2 P(B <= j-1),
    # B ~ Binomial(n, 1/2). P(B <= j-1) = tail / 2**n with tail = sum of comb(n, k) for
    # k < j, kept as an exact integer (comb(n, k) updated from comb(n, k-1)); int / int
    # true division rounds once, correctly, for any n. Through floats it cannot: comb(n, k)
    # overflows a float from n = 1033 on, and 0.5**n underflows to 0 past n = 1074.
    total = 2**n
    term = 1  # comb(n, j - 1)
    tail = 1  # sum of comb(n, k) for k <= j - 1
    best = (xs[0], xs[-1], (total - 2 * tail) / total)
    for j in range(2, n // 2 + 1):
        term = term * (n - j + 2) // (j - 1)
        tail += term
        coverage = (total - 2 * tail) / total
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
