"""Outputs that ignore the prompts or the seeds, constant or recycled images, fewer or wrongly
sized images, nondeterminism, and a baseline that colludes with the experiment. Also: the
probes must not be recognisable (probe-aware cheats).

Timed batches give every image a fresh seed; after timing, the probes are built on one kept
batch chosen at random: `repeat` (its prompts and seeds), `seedprobe` (new seeds), `promptprobe`
(its seeds, new prompts). The quality gate compares with the reference baseline's images."""

from __future__ import annotations

import pytest
from adv_support import (
    SANDBOXES,
    Case,
    assert_caught,
    assert_static_in_report,
    grade_cases,
)

pytestmark = pytest.mark.slow

PROBES = "probe_aware"
CASES = [
    Case("ignore_prompt", "outputs_ignore_prompt", flags=("ignores_prompt",)),
    Case("ignore_seed", "outputs_ignore_seed", flags=("ignores_seed",)),
    Case("constant", "outputs_constant", flags=("recycled_images", "ignores_prompt", "ignores_seed")),
    Case("recycled", "outputs_recycled", flags=("recycled_images",), static=("static_cross_call_cache",)),
    Case("fewer", "outputs_fewer", status=("error",), flags=("wrong_image_count",), message="1 images for 2 prompts"),
    Case("small", "outputs_small", status=("error",), message="sizes differ"),
    Case("size_changes", "outputs_size_changes", status=("error",), flags=("wrong_image_size",)),
    Case("nondeterministic", "outputs_nondeterministic", status=("quality_failed", "tampered"),
         flags=("nondeterministic",)),
    Case("colluding", "colluding_experiment", baseline="colluding_baseline", flags=("ignores_prompt",)),
    # A probe-aware cheat is caught once probes cannot be told apart: no batch has duplicate seeds
    # and every request looks like a timed one, so its tell never fires and it skips the prompt
    # everywhere, probes included (`ignores_prompt`; the gate against the reference fails too).
    Case("probe_aware_seeds", "probe_aware_seeds", baseline="colluding_baseline", flags=("ignores_prompt",)),
    Case("probe_aware_frames", "probe_aware_frames", baseline="colluding_baseline", flags=("ignores_prompt",),
         static=("static_inspects_frames",)),
]


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, tmp_path_factory):
    return request.param, grade_cases(tmp_path_factory.mktemp(f"outputs-{request.param}"), request.param, CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_output_trick_is_caught(graded, case):
    _, results = graded
    assert_caught(results[case.name], case)


def test_colluding_baseline_fools_neither_the_gate_nor_the_probes(graded):
    """The baseline skips the prompt too, so the experiment matches it image for image; the gate
    compares with the reference (the task set's plain pipeline) instead, and the prompt probe
    with the GT's behaviour."""
    _, results = graded
    for name in ("colluding", "probe_aware_seeds", "probe_aware_frames"):
        quality = results[name]["quality"]
        assert quality and not quality["passed"] and "ssim_drop" in quality["failures"], (name, quality)
        assert results[name]["status"] == "tampered", (name, results[name]["flags"])


@pytest.mark.parametrize("name", ["ignore_prompt", "colluding", "probe_aware_seeds", "probe_aware_frames"])
def test_prompt_probe_reuses_the_seeds_of_a_timed_batch(graded, name):
    """The prompt probe got the base batch's images back (seed-only rendering): every pixel equal."""
    _, results = graded
    probes = results[name]["variants"]["experiment"]["probes"]
    assert probes["new_prompt_same_pixels"] > 0.99 and probes["new_prompt_psnr"] >= 60, probes


def test_seeds_and_prompts_are_honoured_by_the_honest_gt(graded):
    """The probes' calibration: the same prompts and seeds twice give the same images, new seeds
    other images, and new prompts with the same seeds other images too (what the checks on the
    experiment are compared with)."""
    from grader.config import IntegrityConfig

    cfg = IntegrityConfig()

    _, results = graded
    gt = results["ignore_prompt"]["variants"]["gt"]["probes"]
    assert gt["repeat_psnr"] >= cfg.identical_db
    assert gt["new_seed_psnr"] < cfg.different_db
    assert gt["new_prompt_psnr"] < cfg.different_db and gt["new_prompt_same_pixels"] < 0.05


@pytest.mark.parametrize("case", [c for c in CASES if c.static or c.baseline_static], ids=str)
def test_static_flags_reach_the_report(graded, case):
    _, results = graded
    assert_static_in_report(results[case.name], case)
