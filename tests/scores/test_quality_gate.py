"""Unit tests for the GT-calibrated quality gate (grader.scores.quality.gate) and the image
metrics behind it, on tiny numpy images (no CLIP model)."""

from __future__ import annotations

import numpy as np
import pytest

from grader.config import QualityConfig
from grader.images import PSNR_CAP
from grader.scores import quality

# Dyadic numbers, so "exactly at the threshold" is exact in floating point.
CFG = QualityConfig(clip_tolerance=1.0, ssim_tolerance=0.125, psnr_tolerance_db=None)


def values(**overrides) -> dict:
    base = {
        "clip_reference": 30.0, "clip_experiment": 30.0, "clip_gt": 29.0,
        "ssim_experiment_vs_reference": 0.75, "ssim_gt_vs_reference": 0.75,
        "psnr_experiment_vs_reference": 30.0, "psnr_gt_vs_reference": 30.0,
    }
    base.update(overrides)
    return base


def test_everything_equal_passes():
    assert quality.gate(values(), CFG) == ()


# ----------------------------------------------------------------------------- CLIP


@pytest.mark.parametrize("clip_experiment, failed", [
    (28.5, False),   # loses 1.5: the GT's loss (1) plus half the tolerance
    (28.0, False),   # loses 2.0: exactly the GT's loss plus the tolerance
    (27.99, True),   # just over
    (31.0, False),   # gains
])
def test_clip_may_lose_what_the_gt_loses_plus_tolerance(clip_experiment, failed):
    assert ("clip_drop" in quality.gate(values(clip_experiment=clip_experiment), CFG)) is failed


@pytest.mark.parametrize("clip_experiment, failed", [(29.0, False), (29.01, False), (28.99, True), (28.0, True)])
def test_a_gt_that_gains_clip_counts_as_zero_loss(clip_experiment, failed):
    # the GT scores above the baseline: the experiment gets the tolerance alone, not a bonus
    assert ("clip_drop" in quality.gate(values(clip_gt=32.0, clip_experiment=clip_experiment), CFG)) is failed


def test_clip_check_skipped_without_clip_scores():
    no_clip = values(clip_reference=None, clip_experiment=None, clip_gt=None)
    assert quality.gate(no_clip, CFG) == ()


# ----------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("ssim_experiment, failed", [
    (0.75, False), (0.625, False),  # exactly the GT's SSIM minus the tolerance passes
    (0.6251, False), (0.6249, True), (0.1, True),
])
def test_ssim_drop_is_relative_to_the_gt(ssim_experiment, failed):
    assert ("ssim_drop" in quality.gate(values(ssim_experiment_vs_reference=ssim_experiment), CFG)) is failed


def test_ssim_threshold_moves_with_the_gt():
    # a GT that itself moved far from the baseline allows the experiment as far
    assert quality.gate(values(ssim_gt_vs_reference=0.5, ssim_experiment_vs_reference=0.375), CFG) == ()
    assert quality.gate(values(ssim_gt_vs_reference=0.5, ssim_experiment_vs_reference=0.37), CFG) == ("ssim_drop",)


# ----------------------------------------------------------------------------- PSNR


def test_psnr_checked_only_when_a_tolerance_is_set():
    far = values(psnr_experiment_vs_reference=5.0)
    assert quality.gate(far, CFG) == ()
    with_psnr = QualityConfig(clip_tolerance=1.0, ssim_tolerance=0.125, psnr_tolerance_db=2.0)
    assert quality.gate(far, with_psnr) == ("psnr_drop",)


@pytest.mark.parametrize("psnr_experiment, failed", [(28.0, False), (28.01, False), (27.99, True), (40.0, False)])
def test_psnr_drop_just_under_and_over(psnr_experiment, failed):
    cfg = QualityConfig(clip_tolerance=1.0, ssim_tolerance=0.125, psnr_tolerance_db=2.0)
    assert ("psnr_drop" in quality.gate(values(psnr_experiment_vs_reference=psnr_experiment), cfg)) is failed


def test_psnr_tolerance_zero_demands_the_gt_psnr():
    cfg = QualityConfig(psnr_tolerance_db=0.0)
    assert quality.gate(values(psnr_experiment_vs_reference=30.0), cfg) == ()
    assert quality.gate(values(psnr_experiment_vs_reference=29.99), cfg) == ("psnr_drop",)


def test_all_failures_are_named_in_order():
    cfg = QualityConfig(clip_tolerance=1.0, ssim_tolerance=0.125, psnr_tolerance_db=2.0)
    bad = values(clip_experiment=20.0, ssim_experiment_vs_reference=0.1, psnr_experiment_vs_reference=10.0)
    assert quality.gate(bad, cfg) == ("clip_drop", "ssim_drop", "psnr_drop")


# ----------------------------------------------------------------------------- metrics


def images(seed: int, n: int = 2, size: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_psnr_identical_is_the_cap_and_known_mse():
    a = images(1)
    assert quality.psnr(a, [x.copy() for x in a]) == PSNR_CAP
    zeros = [np.zeros((8, 8, 3), dtype=np.uint8)]
    ones = [np.ones((8, 8, 3), dtype=np.uint8)]
    assert quality.psnr(zeros, ones) == pytest.approx(10 * np.log10(255.0**2))  # mse 1
    assert quality.psnr(a, images(2)) < 20.0
    with pytest.raises(ValueError):
        quality.psnr(a, a[:1])  # counts must match


def test_ssim_identical_is_one_and_noise_is_low():
    a = images(1)
    assert quality.ssim(a, [x.copy() for x in a]) == pytest.approx(1.0, abs=1e-6)
    assert quality.ssim(a, images(2)) < 0.2


def test_assess_on_tiny_images_without_clip():
    a = images(1)
    result = quality.assess(a, a, a, ["p0", "p1"], QualityConfig())
    assert result.passed and result.failures == () and result.n_images == 2
    assert result.clip_experiment is None
    assert result.psnr_experiment_vs_reference == PSNR_CAP
    assert result.ssim_experiment_vs_reference == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("counts", [(2, 1, 2, 2), (2, 2, 1, 2), (2, 2, 2, 1), (0, 0, 0, 0)])
def test_assess_rejects_mismatched_counts(counts):
    nb, ne, ng, np_ = counts
    with pytest.raises(ValueError, match="image counts differ"):
        quality.assess(images(1, nb), images(2, ne), images(3, ng), [f"p{i}" for i in range(np_)], QualityConfig())


def test_assess_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="image sizes differ"):
        quality.assess(images(1), images(2, size=24), images(3), ["p0", "p1"], QualityConfig())
