"""End-to-end grading with pipeline-free modules: statuses, scores and the report."""

from __future__ import annotations

import json

import pytest
from support import metrics, prompt_file, sleepy, small_timing, task_set, write

from grader import cli, schemas
from grader.config import GradeConfig, QualityConfig
from grader.pipeline.run import grade

# Honest but bad: seeded, deterministic images that are simply not the baseline's.
WRONG_IMAGES = sleepy(0.002).replace("default_rng(g.initial_seed())", "default_rng(g.initial_seed() + 1)")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("graded")
    tasks = task_set(tmp_path / "tasks", [
        {"prompt_id": "1", "gt": sleepy(0.01), "reference": sleepy(0.02), "difficulty": "easy"},
        {"prompt_id": "2", "gt": sleepy(0.01), "reference": sleepy(0.02), "difficulty": "medium"},
        {"prompt_id": "3", "gt": sleepy(0.01), "reference": sleepy(0.02), "difficulty": "hard"},
        {"prompt_id": "4", "gt": sleepy(0.01), "reference": sleepy(0.02), "difficulty": "easy"},
        {"prompt_id": "5", "gt": sleepy(0.01), "reference": sleepy(0.02), "difficulty": "medium"},
        {"prompt_id": "6", "gt": sleepy(0.01), "reference": sleepy(0.02), "difficulty": "hard"},
    ])
    sub = tmp_path / "sub"
    for pid in "123456":
        write(sub / f"{pid}_baseline.py", sleepy(0.02))
        write(sub / f"{pid}_metrics.json", metrics(2.0))
    write(sub / "1_experiment.py", sleepy(0.005))                     # ok, ~4x
    write(sub / "2_experiment.py", WRONG_IMAGES)                           # quality failure
    (sub / "3_metrics.json").unlink()                                  # missing
    write(sub / "3_experiment.py", sleepy(0.005))
    write(sub / "4_experiment.py", sleepy(0.005))
    write(sub / "4_metrics.json", '{"schema_version": 1, "speedup": "fast"}')  # invalid metrics
    write(sub / "5_experiment.py", "def load_pipeline():\n    raise RuntimeError('agent bug')\n")  # crash
    write(sub / "6_experiment.py", "import json, os\njson.dump(" + metrics(1.7) + ", open(os.environ['GRADER_METRICS_PATH'], 'w'))\n")
    (tmp_path / "models" / "model_index.json").parent.mkdir()
    (tmp_path / "models" / "model_index.json").write_text("{}")
    cfg = GradeConfig(submission=sub, tasks=tasks, model_dir=tmp_path / "models", out=tmp_path / "run",
                      sandbox="local", seed=5, prompts_file=prompt_file(tmp_path / "prompts.txt"), timing=small_timing(min_batches=3, max_batches=3, warmup_batches=1),
                      quality=QualityConfig(ssim_tolerance=0.05))
    doc = grade(cfg, progress=lambda _: None)
    return doc, tmp_path


def test_mixed_outcomes_are_scored_as_what_they_are(graded):
    doc, _ = graded
    by_id = {t["prompt_id"]: t for t in doc["tasks"]}
    assert {k: v["status"] for k, v in by_id.items()} == {
        "1": "ok", "2": "quality_failed", "3": "missing", "4": "invalid_metrics", "5": "error", "6": "ok"}
    assert by_id["1"]["speedup"] > 2.0 and by_id["1"]["relative_to_gt"] > 1.2
    assert by_id["1"]["gt_speedup"] > 1.2
    assert by_id["1"]["quality"]["passed"] and by_id["1"]["quality"]["ssim_experiment_vs_reference"] == pytest.approx(1.0)
    assert "ssim_drop" in by_id["2"]["quality"]["failures"]
    assert "3_metrics.json is missing" in by_id["3"]["message"]
    assert "$" in by_id["4"]["metrics_error"]["json_path"] and "4_metrics.json" in by_id["4"]["message"]
    assert "agent bug" in by_id["5"]["message"]
    assert by_id["6"]["self_reported"] and by_id["6"]["speedup"] == 1.7 and "self_reported" in by_id["6"]["flags"]


def test_report_is_schema_valid_and_aggregates_follow_the_design(graded):
    doc, tmp_path = graded
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    schemas.validate("report.schema.json", on_disk, "report.json")
    s = on_disk["summary"]
    assert s["n_tasks"] == 6 and s["n_passing"] == 1 and s["n_self_reported"] == 1
    assert s["fast_p"]["1.0"] == pytest.approx(1 / 6)
    assert s["by_status"]["missing"] == 1 and s["by_difficulty"]["easy"]["n_tasks"] == 2
    assert (tmp_path / "run" / "report.md").read_text().startswith("# Grading report")
    for pid in "123456":
        assert (tmp_path / "run" / "tasks" / pid / "result.json").is_file()


def test_validate_preflight_uses_the_same_checks(graded, capsys):
    _, tmp_path = graded
    code = cli.main(["validate", str(tmp_path / "sub"), "--tasks", str(tmp_path / "tasks")])
    out = capsys.readouterr().out
    assert code == 1
    assert "missing" in out and "invalid_metrics" in out and "script (self-reported)" in out
