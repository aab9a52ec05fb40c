"""Work left running after the batch is reported done: background threads, child processes,
and children that detach from the worker's process tree."""

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
    Case("thread", "deferred_thread", flags=("background_work",), static=("static_spawns_work",)),
    Case("subprocess", "deferred_subprocess", flags=("background_work",), static=("static_spawns_work",)),
    Case("daemon", "deferred_daemon", flags=("background_work",), static=("static_spawns_work",)),
]


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, tmp_path_factory):
    return request.param, grade_cases(tmp_path_factory.mktemp(f"deferred-{request.param}"), request.param, CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_deferred_work_is_caught(graded, case):
    _, results = graded
    assert_caught(results[case.name], case)


def test_the_gt_goes_idle(graded):
    """The reference for the idle check: an honest worker burns next to nothing when idle."""
    _, results = graded
    for result in results.values():
        idle = result["variants"]["gt"]["probes"].get("idle_cpu_fraction")
        assert idle is not None, "no idle-CPU measure for this sandbox"
        assert idle < 0.3


@pytest.mark.parametrize("case", [c for c in CASES if c.static or c.baseline_static], ids=str)
def test_static_flags_reach_the_report(graded, case):
    _, results = graded
    assert_static_in_report(results[case.name], case)
