"""Timer and synchronization tampering in the worker: the process's clocks, torch.cuda
synchronize/Event, and the grader's own worker module (which runs in the same process)."""

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

CASES = [
    Case("frozen_clock", "timer_frozen_clock", flags=("timer_mismatch",), static=("static_patches_timer",)),
    Case("sync_noop", "timer_sync_noop", status=("ok",), static=("static_patches_timer",), claimed=1.5),
    Case("patch_worker", "timer_patch_worker", flags=("timer_mismatch",), static=("static_touches_grader",)),
    Case("early_answer", "timer_early_answer", status=("error",), flags=("bad_image",),
         static=("static_touches_grader", "static_spawns_work")),
]
# True per-image times of the stand-ins: GT 0.05 s, honest baseline 0.075 s; sync_noop does the
# GT's work (0.05 s), frozen_clock and patch_worker 0.075 s.
TRUE_SPEEDUP = {"frozen_clock": 1.0, "sync_noop": 1.5, "patch_worker": 1.0}


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, tmp_path_factory):
    return request.param, grade_cases(tmp_path_factory.mktemp(f"timer-{request.param}"), request.param, CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_timer_trick_is_caught(graded, case):
    _, results = graded
    assert_caught(results[case.name], case)


@pytest.mark.parametrize("name", sorted(TRUE_SPEEDUP))
def test_speedup_comes_from_the_supervisors_clock(graded, name):
    """Whatever the module does to the clocks in its process, the speedup is the true one."""
    _, results = graded
    result = results[name]
    assert result["speedup"] is not None, result["message"]
    assert TRUE_SPEEDUP[name] / 1.4 < result["speedup"] < TRUE_SPEEDUP[name] * 1.4, result["speedup"]
    assert result["relative_to_gt"] < 1.4


@pytest.mark.parametrize("case", [c for c in CASES if c.static or c.baseline_static], ids=str)
def test_static_flags_reach_the_report(graded, case):
    _, results = graded
    assert_static_in_report(results[case.name], case)
