"""Unit tests for grader.scores.aggregate: what counts toward a run's summary, and what it divides by."""

from __future__ import annotations

import math

import pytest

from grader.scores.aggregate import aggregate, geomean, summarize


def task(status="ok", speedup=None, relative_to_gt=None, difficulty="easy", self_reported=False, flags=()):
    return {"status": status, "speedup": speedup, "relative_to_gt": relative_to_gt, "difficulty": difficulty,
            "self_reported": self_reported, "flags": list(flags)}


TASKS = [
    task(speedup=2.0, relative_to_gt=1.5),                              # passing, measured
    task(speedup=1.5, relative_to_gt=1.0),                              # exactly at fast_1.5 and at the GT
    task(speedup=1.0, relative_to_gt=2.0, flags=["slow_load"]),         # exactly at fast_1.0
    task(speedup=8.0, relative_to_gt=4.0, difficulty="medium", self_reported=True),  # script mode: excluded
    task(status="quality_failed", speedup=4.0, relative_to_gt=3.0, difficulty="medium"),  # not passing
    task(status="missing", difficulty="medium"),
    task(status="ok", speedup=None, relative_to_gt=None),                # ok without a measurement: excluded
]


def test_geomean_basic_and_what_it_ignores():
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert geomean([3.0]) == pytest.approx(3.0)
    assert geomean([2.0, None, 0.0, -1.0, 8.0]) == pytest.approx(4.0)
    assert geomean([]) is None
    assert geomean([None, 0.0]) is None
    assert geomean(v for v in (1.0, 10.0, 100.0)) == pytest.approx(10.0)  # any iterable


def test_geomean_over_passing_measured_tasks_only():
    out = aggregate(TASKS)
    assert out["n_tasks"] == 7
    assert out["n_passing"] == 3
    assert out["geomean_speedup"] == pytest.approx((2.0 * 1.5 * 1.0) ** (1 / 3))
    assert out["geomean_relative_to_gt"] == pytest.approx((1.5 * 1.0 * 2.0) ** (1 / 3))


def test_self_reported_tasks_are_counted_but_not_scored():
    out = aggregate(TASKS)
    assert out["n_self_reported"] == 1
    only_self = aggregate([task(speedup=8.0, relative_to_gt=4.0, self_reported=True)])
    assert only_self["n_passing"] == 0 and only_self["geomean_speedup"] is None
    assert only_self["fast_p"] == {"1.0": 0.0, "1.5": 0.0, "2.0": 0.0} and only_self["beats_gt"] == 0.0


def test_fast_p_and_beats_gt_divide_by_all_tasks_with_strict_thresholds():
    out = aggregate(TASKS)
    # speedup > 1.0: 2.0 and 1.5 (1.0 itself does not count); > 1.5: 2.0 only; > 2.0: none
    assert out["fast_p"] == {"1.0": pytest.approx(2 / 7), "1.5": pytest.approx(1 / 7), "2.0": 0.0}
    # relative_to_gt > 1.0: 1.5 and 2.0 (exactly 1.0 does not beat the GT)
    assert out["beats_gt"] == pytest.approx(2 / 7)


def test_fast_p_just_above_each_threshold_counts():
    tasks = [task(speedup=math.nextafter(p, math.inf), relative_to_gt=math.nextafter(1.0, math.inf))
             for p in (1.0, 1.5, 2.0)]
    out = aggregate(tasks)
    assert out["fast_p"] == {"1.0": 1.0, "1.5": pytest.approx(2 / 3), "2.0": pytest.approx(1 / 3)}
    assert out["beats_gt"] == 1.0


def test_status_and_flag_counts():
    out = aggregate(TASKS)
    assert out["by_status"]["ok"] == 5
    assert out["by_status"]["quality_failed"] == 1 and out["by_status"]["missing"] == 1
    assert sum(out["by_status"].values()) == 7
    assert out["n_flagged"] == 1


def test_summarize_by_difficulty_only_for_difficulties_that_occur():
    out = summarize(TASKS)
    assert set(out["by_difficulty"]) == {"easy", "medium"}
    easy, medium = out["by_difficulty"]["easy"], out["by_difficulty"]["medium"]
    assert easy["n_tasks"] == 4 and easy["n_passing"] == 3
    assert easy["fast_p"]["1.0"] == pytest.approx(2 / 4)  # divided by the difficulty's own tasks
    assert medium["n_tasks"] == 3 and medium["n_passing"] == 0 and medium["geomean_speedup"] is None
    # the top level is the plain aggregate
    assert {k: v for k, v in out.items() if k != "by_difficulty"} == aggregate(TASKS)
    assert set(summarize([task(speedup=2.0, difficulty="hard")])["by_difficulty"]) == {"hard"}


def test_empty_input():
    out = aggregate([])
    assert out["n_tasks"] == 0 and out["n_passing"] == 0
    assert out["geomean_speedup"] is None and out["geomean_relative_to_gt"] is None
    assert out["fast_p"] == {"1.0": 0.0, "1.5": 0.0, "2.0": 0.0}
    assert out["beats_gt"] == 0.0
    assert set(out["by_status"].values()) == {0}
    assert summarize([])["by_difficulty"] == {}
