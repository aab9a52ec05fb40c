"""The typed task result: every shape the pipeline makes is a valid report task entry, and a
stored one reads back as it was written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader import schemas
from grader.pipeline.task import invalid_entry_result
from grader.runs.timing import BatchTime, summarize
from grader.runs.variant import VariantRun
from grader.scores.result import CORE_KEYS, TaskResult
from grader.taskset.manifest import InvalidEntry, TaskEntry, TaskKey

TASK = TaskEntry(prompt_id="7", task_key=TaskKey("SD1.5", "DDIM", 10), original_filename="x.py", speedup=1.5,
                 category="test", difficulty="easy", prompt_context="", gt_path=Path("/gt/7.py"),
                 experiment_name="7_experiment.py", baseline_name="7_baseline.py", metrics_name="7_metrics.json")


def _variant(name: str, per_image: float) -> dict:
    run = VariantRun(name, batches=[BatchTime(i, 2, 2 * per_image, 2 * per_image * 0.99) for i in range(6)])
    run.timing = summarize(run.batches, 2)
    run.flag("unclean_exit")
    run.probes = {"repeat_ratio": 1.0, "repeat_psnr": 100.0, "new_seed_psnr": 11.0}
    return run.to_dict()


def _crashed() -> TaskResult:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        return TaskResult.crashed(TASK, exc)


def _graded() -> TaskResult:
    result = TaskResult.for_task(TASK)
    result.evidence = {}
    result.add_flags(["static_sleep"], {"static_sleep": "line 3: calls time.sleep"})
    result.variants = {v: _variant(v, t) for v, t in (("baseline", 0.2), ("experiment", 0.1), ("gt", 0.12))}
    result.speedup, result.speedup_ci, result.gt_speedup, result.relative_to_gt = 2.0, [1.8, 2.2], 1.67, 1.2
    result.self_reported_speedup, result.self_report_discrepancy = 2.1, 0.05
    result.gpu, result.cpuset, result.threads = "0", [1, 2, 3], 3
    result.quality_inputs = {"labels": ["b0000"], "prompts": ["a", "b"]}
    result.quality = {"clip_reference": None, "clip_experiment": None, "clip_gt": None,
                      "ssim_experiment_vs_reference": 0.9, "ssim_gt_vs_reference": 0.91, "ssim_experiment_vs_gt": 0.95,
                      "psnr_experiment_vs_reference": 30.0, "psnr_gt_vs_reference": 31.0, "psnr_experiment_vs_gt": 33.0,
                      "n_images": 2, "passed": True, "failures": []}
    result.scoring_seconds, result.grade_seconds = 0.4, 12.5
    result.resume = {"key": "k", "quality_key": "q"}
    return result


def _script() -> TaskResult:
    result = TaskResult.for_task(TASK)
    result.mode, result.self_reported, result.speedup = "script", True, 3.0
    result.add_flags(["self_reported"])
    result.variants["script"] = {"name": "script", "status": "ok", "message": "", "flags": [], "timing": None,
                                 "phases": {"total": 1.0}, "stderr_tail": "", "retries": 0}
    return result


SHAPES = {
    "fresh": lambda: TaskResult.for_task(TASK),
    "missing": lambda: TaskResult.for_task(TASK).fail("missing", "baseline file 7_baseline.py is missing"),
    "invalid_metrics": lambda: TaskResult(prompt_id="7", metrics_error={"json_path": "$.speedup", "message": "x"},
                                          status="invalid_metrics", message="bad"),
    "invalid_entry": lambda: invalid_entry_result(InvalidEntry("#3", "manifest.json: entry #3: field 'x': bad")),
    "crashed": _crashed,
    "graded": _graded,
    "script": _script,
    "ray_failed": lambda: TaskResult(prompt_id="7", status="error", flags=["ray_task_failed"],
                                     ray={"node": None, "attempts": 2, "nodes": ["a", "b"]}),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_is_a_valid_report_task_entry(shape):
    entry = json.loads(json.dumps(SHAPES[shape]().to_dict(), allow_nan=False))
    assert schemas.errors("report.schema.json", entry, definition="task") == []
    assert list(entry)[:len(CORE_KEYS)] == list(CORE_KEYS)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_stored_result_reads_back_as_written(shape):
    entry = json.loads(json.dumps(SHAPES[shape]().to_dict()))
    assert TaskResult.from_dict(entry).to_dict() == entry


def test_optional_fields_appear_only_when_set_and_unknown_keys_survive():
    entry = TaskResult.for_task(TASK).to_dict()
    assert set(entry) == set(CORE_KEYS)
    stored = {**entry, "from_a_newer_grader": {"x": 1}}
    assert TaskResult.from_dict(stored).to_dict() == stored


def test_a_wrong_type_is_caught_by_the_schema():
    entry = _graded().to_dict()
    entry["speedup"] = "fast"
    entry["flags"] = ["Not Snake"]
    where = {path for path, _ in schemas.errors("report.schema.json", entry, definition="task")}
    assert {"$.speedup", "$.flags[0]"} <= where


def test_flags_stay_sorted_and_unique_and_a_crash_keeps_its_traceback():
    result = TaskResult(prompt_id="1")
    result.add_flags(["b", "a"])
    result.add_flags(["a", "c"], {"c": "why"})
    assert result.flags == ["a", "b", "c"] and result.evidence == {"c": "why"}
    crashed = _crashed()
    assert crashed.status == "error" and crashed.flags == ["grader_error"]
    assert "RuntimeError: boom" in crashed.traceback and crashed.message == "grader error: RuntimeError: boom"
