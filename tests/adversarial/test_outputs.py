"""Outputs that ignore the prompts or the seeds, constant or recycled images, fewer or wrongly
sized images, nondeterminism, and a baseline that colludes with the experiment against the
quality gate. Also: the probes must not be recognisable (probe-aware cheats)."""

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
    # A probe-aware cheat is caught once probes cannot be told apart: either it cheats on them too
    # (`ignores_prompt`) or it behaves everywhere and fails quality against its colluding baseline.
    Case("probe_aware_seeds", "probe_aware_seeds", baseline="colluding_baseline", status=("tampered", "quality_failed")),
    Case("probe_aware_frames", "probe_aware_frames", baseline="colluding_baseline", status=("tampered", "quality_failed"),
         static=("static_inspects_frames",)),
]


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, tmp_path_factory):
    return request.param, grade_cases(tmp_path_factory.mktemp(f"outputs-{request.param}"), request.param, CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_output_trick_is_caught(graded, case):
    sandbox, results = graded
    assert_caught(results[case.name], case)


def test_colluding_baseline_fools_the_quality_gate_but_not_the_probes(graded):
    """Why the probes compare with the GT: against a colluding baseline the gate passes."""
    _, results = graded
    quality = results["colluding"]["quality"]
    assert quality and quality["passed"], results["colluding"]["quality"]
    assert results["colluding"]["status"] == "tampered"


def test_seeds_and_prompts_are_honoured_by_the_honest_gt(graded):
    """The probes' reference: same seed twice gives the same images, a new seed gives other
    images, and timed images sharing a seed but not a prompt differ (what the checks on the
    experiment are calibrated against)."""
    from grader.config import IntegrityConfig

    cfg = IntegrityConfig()

    _, results = graded
    gt = results["ignore_prompt"]["variants"]["gt"]["probes"]
    assert gt["repeat_psnr"] >= cfg.identical_db
    assert gt["new_seed_psnr"] < cfg.different_db
    assert gt["same_seed_pairs"] > 0 and gt["same_seed_identical"] == 0


@pytest.mark.parametrize("case", [c for c in CASES if c.static or c.baseline_static], ids=str)
def test_static_flags_reach_the_report(graded, case):
    _, results = graded
    assert_static_in_report(results[case.name], case)
