"""Predicting the schedule: a module that reads the run folder's run.json (local sandbox: it can)
and rebuilds the task's batches with the grader's own Schedule to precompute them at load.

Without an explicit ``--seed`` (``seed=None``) each task's schedule comes from a secret drawn
when the task starts and kept in the grader's memory: the prediction never hits, the module
renders everything and the headline is the honest control's. Under docker the run folder is not
visible at all. With an explicit ``--seed`` schedules are derived from the seed and the task id
by design (reproducible runs): the last test shows what is left then.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adv_support import Case, assert_caught, assert_static_in_report, describe, grade_cases

pytestmark = pytest.mark.slow

CASES = [
    Case("control", "honest_fast", status=("ok",), honest=True, claimed=3.0),
    Case("predict_schedule", "predict_schedule", status=("ok",), honest=True, claimed=3.0,
         allowed=("static_suspicious_path", "static_touches_grader"), static=("static_touches_grader",)),
]
RUNS = [
    pytest.param(("local", None), id="local-secret"),
    pytest.param(("docker", None), id="docker-secret", marks=[pytest.mark.docker]),
]


def _record(result: dict) -> dict:
    return json.loads((Path(result["_run_dir"]) / "experiment" / "work" / "predict.json").read_text())


@pytest.fixture(scope="module", params=RUNS)
def graded(request, tmp_path_factory):
    sandbox, seed = request.param
    return sandbox, grade_cases(tmp_path_factory.mktemp(f"schedule-{sandbox}"), sandbox, CASES, seed=seed)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_schedule_trick_is_caught(graded, case):
    _, results = graded
    assert_caught(results[case.name], case)


def test_secret_schedule_cannot_be_predicted(graded):
    """Local: run.json was found and read, and not one batch was predicted; docker: not even found.
    Either way the module did the honest work: the headline is the control's within noise."""
    sandbox, results = graded
    result, control = results["predict_schedule"], results["control"]
    record = _record(result)
    if sandbox == "local":
        assert record["run_json"] and record["predicted"] > 0, record
    else:
        assert record["run_json"] is None, record
    assert record["hits"] == 0 and record["misses"] > 0, record
    assert 0.85 < result["speedup"] / control["speedup"] < 1.18, describe(result)


def test_explicit_seed_makes_the_schedule_predictable(tmp_path_factory):
    """The documented price of --seed: a module that can read run.json (local sandbox) predicts
    every timed batch and answers it from what it precomputed at load. Nothing but
    `implausible_speedup` (advisory) is left to notice: the repeat probe is no faster than the
    (precomputed) timed batches, and the other probes, never predicted, are rendered honestly."""
    results = grade_cases(tmp_path_factory.mktemp("schedule-seeded"), "local", CASES, seed=11)
    result, control = results["predict_schedule"], results["control"]
    record = _record(result)
    assert record["hits"] >= 4, record     # every timed batch (and the repeat of one)
    assert result["speedup"] > 5 * control["speedup"], describe(result)
    assert result["status"] == "ok" and "implausible_speedup" in result["flags"], describe(result)


def test_static_flags_reach_the_report(graded):
    _, results = graded
    assert_static_in_report(results["predict_schedule"], CASES[1])
