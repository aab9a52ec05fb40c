"""Unit tests for grader.runs.timing (and grader.scores.speedup): the median interval against scipy, and the
per-image / per-batch summaries, convergence and speedups built on it."""

from __future__ import annotations

import math
import random
import statistics as pystats
from fractions import Fraction

import pytest
from scipy.stats import binom

from grader.runs.timing import BatchTime, converged, median_ci, summarize
from grader.scores.speedup import paired_speedup, speedup

NS = list(range(1, 61)) + [1033, 1500, 5000]


def _coverage(j: int, n: int) -> float:
    """scipy: P(x_(j) <= median <= x_(n-j+1)) = 1 - 2 P(B <= j-1), B ~ Binomial(n, 1/2)."""
    return 1.0 - 2.0 * float(binom.cdf(j - 1, n, 0.5))


def _ranked(n: int, seed: int = 0) -> list[float]:
    """n distinct values, shuffled, whose 1-based rank r is the value r - 1 + 0.5."""
    values = [i + 0.5 for i in range(n)]
    random.Random(seed + n).shuffle(values)
    return values


def _rank(low: float) -> int:
    return int(low - 0.5) + 1


# ----------------------------------------------------------------------------- median_ci


@pytest.mark.parametrize("n", NS)
def test_median_ci_coverage_matches_scipy_binomial(n):
    low, high, achieved = median_ci(_ranked(n))
    if n == 1:
        assert (low, high, achieved) == (0.5, 0.5, 0.0)
        return
    j = _rank(low)
    assert _rank(high) == n - j + 1  # symmetric order statistics x_(j), x_(n-j+1)
    assert 1 <= j <= n // 2
    assert achieved == pytest.approx(_coverage(j, n), rel=1e-12, abs=1e-13)


@pytest.mark.parametrize("n", NS)
def test_median_ci_is_the_tightest_interval_reaching_95(n):
    if n == 1:
        return
    low, _, achieved = median_ci(_ranked(n))
    j = _rank(low)
    if j == 1 and _coverage(1, n) < 0.95:
        # too few samples: the full range and the lower confidence it really has
        assert achieved < 0.95
        return
    assert achieved >= 0.95
    assert _coverage(j, n) >= 0.95
    if j + 1 <= n // 2:  # one rank tighter falls below the target
        assert _coverage(j + 1, n) < 0.95


@pytest.mark.parametrize("n, expected", [(2, 0.5), (3, 0.75), (4, 0.875), (5, 0.9375)])
def test_median_ci_too_few_samples_gives_full_range_and_its_confidence(n, expected):
    values = _ranked(n)
    assert median_ci(values) == (min(values), max(values), expected)


def test_median_ci_six_samples_reach_95_with_the_full_range():
    values = [3.0, 1.0, 6.0, 2.0, 5.0, 4.0]
    assert median_ci(values) == (1.0, 6.0, 1 - 2 / 64)


def test_median_ci_empty_and_single():
    low, high, achieved = median_ci([])
    assert math.isnan(low) and math.isnan(high) and achieved == 0.0
    assert median_ci([7.25]) == (7.25, 7.25, 0.0)


@pytest.mark.parametrize("n", [1032, 1033, 1075, 1500, 5000])
def test_median_ci_large_n_is_exact_and_does_not_overflow(n):
    values = _ranked(n)
    low, high, achieved = median_ci(values)
    j = _rank(low)
    exact = Fraction(2**n - 2 * sum(math.comb(n, k) for k in range(j)), 2**n)
    assert achieved == float(exact)  # correctly rounded exact binomial tail
    assert 0.95 <= achieved < 0.96
    assert low < pystats.median(values) < high


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.99])
def test_median_ci_other_confidence_levels(confidence):
    for n in (10, 25, 60, 1200):
        low, _, achieved = median_ci(_ranked(n), confidence)
        j = _rank(low)
        assert achieved == pytest.approx(_coverage(j, n), rel=1e-12, abs=1e-13)
        if achieved >= confidence and j + 1 <= n // 2:
            assert _coverage(j + 1, n) < confidence


def test_median_ci_does_not_depend_on_input_order():
    values = _ranked(40)
    assert median_ci(values) == median_ci(sorted(values)) == median_ci(sorted(values, reverse=True))


# ----------------------------------------------------------------------------- summarize


def _batches(spec: list[tuple[int, float]], worker_factor: float = 0.9) -> list[BatchTime]:
    return [BatchTime(index=i, n_images=n, seconds=s, worker_seconds=s * worker_factor) for i, (n, s) in enumerate(spec)]


def test_summarize_per_image_counts_a_short_last_batch_by_its_size():
    batches = _batches([(4, 4.0), (4, 8.0), (4, 6.0), (2, 1.0)])
    stats = summarize(batches, batch_size=4)
    assert (stats.n_batches, stats.n_images, stats.full_batch_size) == (4, 14, 4)
    assert stats.total_seconds == 19.0
    assert stats.per_image_seconds == pytest.approx(19.0 / 14)
    assert stats.per_image_median == pytest.approx(pystats.median([1.0, 2.0, 1.5, 0.5]))
    assert stats.images_per_second == pytest.approx(14 / 19.0)
    assert stats.worker_per_image_seconds == pytest.approx(0.9 * 19.0 / 14)
    # four samples: the full range of per-image times, at the confidence it really has
    assert (stats.per_image_ci_low, stats.per_image_ci_high, stats.ci_confidence) == (0.5, 2.0, 0.875)
    assert stats.rel_half_width == pytest.approx((2.0 - 0.5) / 2 / 1.25)


def test_summarize_per_batch_figures_use_only_full_batches():
    stats = summarize(_batches([(4, 4.0), (4, 8.0), (4, 6.0), (2, 100.0)]), batch_size=4)
    assert (stats.per_batch_median, stats.per_batch_min, stats.per_batch_max) == (6.0, 4.0, 8.0)
    none_full = summarize(_batches([(3, 3.0), (2, 2.0)]), batch_size=4)
    assert (none_full.per_batch_median, none_full.per_batch_min, none_full.per_batch_max) == (None, None, None)
    assert none_full.per_image_seconds == pytest.approx(1.0)


def test_summarize_rejects_no_batches_and_serializes():
    with pytest.raises(ValueError, match="no timed batches"):
        summarize([], batch_size=4)
    doc = summarize(_batches([(2, 1.0)] * 3), batch_size=2).to_dict()
    assert doc["n_batches"] == 3 and doc["per_image_median"] == 0.5


# ----------------------------------------------------------------------------- converged


def test_converged_needs_enough_samples_for_the_confidence():
    same = _batches([(2, 2.0)] * 5)  # five identical batches: zero width, but only 94% confidence
    assert not converged(same, target_rel_ci=0.5)
    assert converged(_batches([(2, 2.0)] * 6), target_rel_ci=1e-9)


def test_converged_compares_the_relative_half_width_to_the_target():
    rng = random.Random(3)
    batches = _batches([(2, 2.0 * (1 + rng.uniform(-0.1, 0.1))) for _ in range(30)])
    per_image = [b.seconds / b.n_images for b in batches]
    low, high, achieved = median_ci(per_image)
    assert achieved >= 0.95
    rel = (high - low) / 2 / pystats.median(per_image)
    assert converged(batches, target_rel_ci=rel)  # at the target: converged (<=)
    assert not converged(batches, target_rel_ci=rel * 0.999)


# ----------------------------------------------------------------------------- speedups


def test_speedup_point_and_conservative_interval():
    slow = summarize(_batches([(2, s) for s in (4.0, 4.4, 3.6, 4.2, 3.8, 4.0, 4.1)]), batch_size=2)
    fast = summarize(_batches([(2, s) for s in (2.0, 2.2, 1.8, 2.1, 1.9, 2.0, 2.05)]), batch_size=2)
    point, low, high = speedup(slow, fast)
    assert point == pytest.approx(slow.per_image_median / fast.per_image_median) == pytest.approx(2.0)
    assert low == pytest.approx(slow.per_image_ci_low / fast.per_image_ci_high)
    assert high == pytest.approx(slow.per_image_ci_high / fast.per_image_ci_low)
    assert low <= point <= high


def test_paired_speedup_needs_six_pairs():
    slow = _batches([(2, 4.0)] * 5)
    fast = _batches([(2, 2.0)] * 5)
    assert paired_speedup(slow, fast) is None
    assert paired_speedup(_batches([(2, 4.0)] * 6), _batches([(2, 2.0)] * 6)) == (2.0, 2.0, 2.0)


def test_paired_speedup_pairs_by_index_not_by_position():
    slow = [BatchTime(index=i, n_images=2, seconds=2.0 * (i + 1), worker_seconds=0.0) for i in range(8)]
    # fast: shuffled, missing index 0, with an index slow does not have, and a short batch
    fast = [BatchTime(index=i, n_images=2, seconds=float(i + 1), worker_seconds=0.0) for i in range(1, 8)]
    fast[3] = BatchTime(index=fast[3].index, n_images=1, seconds=(fast[3].index + 1) / 2, worker_seconds=0.0)
    fast.append(BatchTime(index=99, n_images=2, seconds=1000.0, worker_seconds=0.0))
    random.Random(5).shuffle(fast)
    result = paired_speedup(slow, fast)
    assert result is not None
    assert result == (2.0, 2.0, 2.0)  # every pair with the same index runs 2x; per-image within each batch
    # six pairs only once index 0 and 99 are dropped: with one pair fewer there is no estimate
    assert paired_speedup(slow[:6], fast) is None


def test_paired_speedup_is_the_median_of_ratios_with_its_interval():
    ratios = [1.5, 2.5, 1.8, 2.2, 2.0, 1.9, 2.1, 3.0]
    slow = [BatchTime(index=i, n_images=2, seconds=2.0 * r, worker_seconds=0.0) for i, r in enumerate(ratios)]
    fast = [BatchTime(index=i, n_images=2, seconds=2.0, worker_seconds=0.0) for i in range(len(ratios))]
    point, low, high = paired_speedup(slow, fast)
    assert point == pytest.approx(pystats.median(ratios))
    ci_low, ci_high, _ = median_ci(ratios)
    assert (low, high) == pytest.approx((ci_low, ci_high))
