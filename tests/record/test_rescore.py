"""``grader rescore`` changes statuses (and what follows from them) and nothing else;
``grader report`` re-renders the same report from stored results."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
from support import metrics, prompt_file, sleepy, small_timing, task_set, write

from grader import cli
from grader.commands.report import parse_tolerances, rescore_run
from grader.config import GradeConfig, QualityConfig
from grader.errors import ConfigError
from grader.files import atomic_write_json
from grader.pipeline.run import grade
from grader.reports.outputs import render_run

# Close to the baseline: the same seeded noise, nudged a little (SSIM a bit below 1).
NEAR = sleepy(0.015).replace(
    "for g in generator]",
    "for g in generator]\n            images = [np.clip(im.astype(int) + np.random.default_rng(7).integers(-12, 13, im.shape), 0, 255)"
    ".astype(np.uint8) for im in images]")
WRONG = sleepy(0.015).replace("default_rng(g.initial_seed())", "default_rng(g.initial_seed() + 1)")
# What a rescore may change in a task's result: the gate's verdict and what states it.
GATE_FIELDS = ("status", "message")
GATE_QUALITY_FIELDS = ("passed", "failures", "batches_failed")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("rescore")
    tasks = task_set(root / "tasks", [{"prompt_id": pid, "gt": sleepy(0.02)} for pid in "1234"])
    sub = root / "sub"
    for pid in "1234":
        write(sub / f"{pid}_baseline.py", sleepy(0.03))
        write(sub / f"{pid}_metrics.json", metrics(10.0))
    write(sub / "1_experiment.py", sleepy(0.015))      # the baseline's images exactly
    write(sub / "2_experiment.py", NEAR)                # slightly off
    write(sub / "3_experiment.py", WRONG)               # other images
    write(sub / "4_experiment.py", sleepy(0.015))
    (sub / "4_metrics.json").unlink()                   # missing
    write(root / "models" / "model_index.json", "{}")
    cfg = GradeConfig(submission=sub, tasks=tasks, model_dir=root / "models", out=root / "run", sandbox="local",
                      prompts_file=prompt_file(root / "prompts.txt"),
                      timing=small_timing(min_batches=2, max_batches=2, probes=False),
                      quality=QualityConfig(ssim_tolerance=0.5))
    doc = grade(cfg, progress=lambda _: None)
    assert {t["prompt_id"]: t["status"] for t in doc["tasks"]} == {
        "1": "ok", "2": "ok", "3": "quality_failed", "4": "missing"}
    return root / "run", doc


@pytest.fixture()
def run(graded, tmp_path):
    """A private copy of the graded run folder."""
    run_dir, doc = graded
    copy_dir = tmp_path / "run"
    shutil.copytree(run_dir, copy_dir, ignore=shutil.ignore_patterns(".lock", "work"))
    return copy_dir, copy.deepcopy(doc)


def _without_gate(task: dict) -> dict:
    out = {k: v for k, v in task.items() if k not in GATE_FIELDS and k != "resume"}
    if out.get("quality"):
        out["quality"] = {k: v for k, v in out["quality"].items() if k not in GATE_QUALITY_FIELDS}
    out["resume"] = {"key": task["resume"]["key"]}
    return out


def _statuses(doc: dict) -> dict:
    return {t["prompt_id"]: t["status"] for t in doc["tasks"]}


def _assert_only_statuses_changed(before: dict, after: dict) -> None:
    assert [t["prompt_id"] for t in after["tasks"]] == [t["prompt_id"] for t in before["tasks"]]
    for old, new in zip(before["tasks"], after["tasks"]):
        assert _without_gate(new) == _without_gate(old), new["prompt_id"]
    for key in ("schema_version", "run_id"):
        assert after[key] == before[key]
    for key in ("grader_version", "git_commit", "started_at", "finished_at", "run_seed", "libraries", "machine"):
        assert after["provenance"][key] == before["provenance"][key], key


def test_rescore_with_looser_then_stricter_tolerances_changes_statuses_only(run):
    run_dir, before = run
    gap = {t["prompt_id"]: t["quality"]["ssim_gt_vs_reference"] - t["quality"]["ssim_experiment_vs_reference"]
           for t in before["tasks"] if t.get("quality")}
    assert 0 < gap["2"] < 0.5 < gap["3"]

    looser, _ = rescore_run(run_dir, {"ssim_tolerance": gap["3"] + 0.1})
    assert _statuses(looser) == {"1": "ok", "2": "ok", "3": "ok", "4": "missing"}
    _assert_only_statuses_changed(before, looser)
    assert looser["thresholds"]["ssim_tolerance"] == pytest.approx(gap["3"] + 0.1)
    assert looser["summary"]["n_passing"] == before["summary"]["n_passing"] + 1
    assert looser["provenance"]["rescored"]["previous_thresholds"]["ssim_tolerance"] == 0.5
    assert looser["provenance"]["rescored"]["changed"] == ["task 3: quality_failed -> ok"]

    stricter, _ = rescore_run(run_dir, {"ssim_tolerance": gap["2"] / 2})
    assert _statuses(stricter) == {"1": "ok", "2": "quality_failed", "3": "quality_failed", "4": "missing"}
    _assert_only_statuses_changed(before, stricter)
    by_id = {t["prompt_id"]: t for t in stricter["tasks"]}
    assert "ssim_drop" in by_id["2"]["quality"]["failures"] and "ssim_drop" in by_id["2"]["message"]
    assert set(by_id["2"]["quality"]["failures"]) <= {"ssim_drop", "ssim_drop_all_batches", "batch_ssim_drop"}

    # what is stored agrees with the report, and `grader report` re-renders the rescored run
    for task in stricter["tasks"]:
        stored = json.loads((run_dir / "tasks" / task["prompt_id"] / "result.json").read_text())
        assert stored == task
    again, notes = render_run(run_dir)
    assert notes == [] and again["tasks"] == stricter["tasks"] and again["thresholds"] == stricter["thresholds"]
    page = (run_dir / "report.html").read_text()
    assert "Rescored" in page and "task 2: ok -&gt; quality_failed" in page
    record = json.loads((run_dir / "run.json").read_text())
    assert record["options"]["quality"]["ssim_tolerance"] == pytest.approx(gap["2"] / 2)
    assert len(record["rescores"]) == 2


def test_rescore_keeps_tampered_and_leaves_other_statuses_alone(run):
    run_dir, before = run
    path = run_dir / "tasks" / "1" / "result.json"
    result = json.loads(path.read_text())
    result["flags"] = sorted(result["flags"] + ["timer_mismatch"])
    result.update(status="tampered", message="integrity check failed: timer_mismatch")
    atomic_write_json(path, result)
    doc, _ = rescore_run(run_dir, {"ssim_tolerance": 0.0, "psnr_tolerance_db": 0.0})
    by_id = {t["prompt_id"]: t for t in doc["tasks"]}
    assert by_id["1"]["status"] == "tampered" and by_id["1"]["quality"]["passed"]
    assert by_id["4"] == {**{t["prompt_id"]: t for t in before["tasks"]}["4"], "resume": by_id["4"]["resume"]}
    assert doc["thresholds"]["psnr_tolerance_db"] == 0.0


def test_rescore_and_report_commands(run, capsys):
    run_dir, before = run
    assert cli.main(["rescore", str(run_dir), "--tolerances", "ssim=2,psnr=none"]) == 0
    out = capsys.readouterr().out
    assert "task 3: quality_failed -> ok" in out and "report.html" in out
    doc = json.loads((run_dir / "report.json").read_text())
    assert doc["thresholds"]["ssim_tolerance"] == 2.0 and doc["thresholds"]["psnr_tolerance_db"] is None
    assert cli.main(["report", str(run_dir)]) == 0
    rendered = json.loads((run_dir / "report.json").read_text())
    assert rendered["tasks"] == doc["tasks"] and rendered["summary"] == doc["summary"]
    assert cli.main(["report", str(run_dir.parent / "nowhere")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_report_leaves_out_torn_results_and_says_so(run):
    run_dir, before = run
    path = run_dir / "tasks" / "2" / "result.json"
    path.write_text(path.read_text()[:100])
    doc, notes = render_run(run_dir)
    assert [t["prompt_id"] for t in doc["tasks"]] == ["1", "3", "4"]
    assert notes and "task 2" in notes[0] and doc["provenance"]["complete"] is False
    assert "not complete" in (run_dir / "report.html").read_text()


def test_tolerance_parsing():
    assert parse_tolerances("clip=0.5, ssim=0.1,psnr=none") == {
        "clip_tolerance": 0.5, "ssim_tolerance": 0.1, "psnr_tolerance_db": "none"}
    for bad in ("speed=2", "ssim", "ssim=fast"):
        with pytest.raises(ConfigError):
            parse_tolerances(bad)
