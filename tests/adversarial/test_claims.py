"""A sandbagged baseline (sleeps, extra steps, fp32 where the task is fp16), `relative_to_gt`
under it, self-reported metrics far from the measured ones, implausible speedups; and honest
controls that must pass untouched."""

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

SANDBAG = dict(status=("ok",), flags=("baseline_sandbagged",), experiment="honest_fast", claimed=12.0)
CASES = [
    Case("control", "honest_fast", status=("ok",), honest=True, claimed=3.0),
    Case("pipe_call", "honest_pipe_call", status=("ok",), honest=True, claimed=3.0),
    Case("sandbag_sleep", baseline="sandbag_sleep", baseline_static=("static_sleep",), **SANDBAG),
    Case("sandbag_steps", baseline="sandbag_steps", **SANDBAG),
    Case("sandbag_fp32", baseline="sandbag_fp32", **SANDBAG),
    Case("overclaim", "honest_fast", status=("ok",), flags=("self_report_mismatch",), claimed=20.0),
    Case("implausible", "implausible_free_lunch", status=("ok",), flags=("implausible_speedup",),
         baseline="honest_gt", manifest_speedup=1.0, claimed=30.0),
]


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, tmp_path_factory):
    return request.param, grade_cases(tmp_path_factory.mktemp(f"claims-{request.param}"), request.param, CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_claim_is_checked(graded, case):
    _, results = graded
    assert_caught(results[case.name], case)


@pytest.mark.parametrize("name", ["sandbag_sleep", "sandbag_steps", "sandbag_fp32"])
def test_relative_to_gt_stays_honest_whatever_the_baseline(graded, name):
    """The sandbagged baseline inflates `speedup` but not `relative_to_gt` (same experiment)."""
    _, results = graded
    control, sandbagged = results["control"], results[name]
    assert sandbagged["speedup"] > 2.0 * control["speedup"]
    assert 1 / 1.4 < sandbagged["relative_to_gt"] / control["relative_to_gt"] < 1.4


def test_self_report_discrepancy_is_in_the_report(graded):
    _, results = graded
    result = results["overclaim"]
    assert result["self_reported_speedup"] == 20.0
    assert result["self_report_discrepancy"] > 2.0


@pytest.mark.parametrize("case", [c for c in CASES if c.static or c.baseline_static], ids=str)
def test_static_flags_reach_the_report(graded, case):
    _, results = graded
    assert_static_in_report(results[case.name], case)
