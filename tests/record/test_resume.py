"""Run folders survive: atomic results, resume keys, and a ``kill -9`` in the middle of a run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import metrics, prompt_file, sleepy, small_timing, task_set, write

from grader import __version__
from grader.config import GradeConfig, QualityConfig
from grader.errors import ConfigError
from grader.files import atomic_write_json
from grader.pipeline.run import grade
from grader.record.folder import RESULT_FILE, RunLock
from grader.record.keys import quality_key, task_key
from grader.record.stored import trusted_result
from grader.taskset.manifest import TaskSet
from grader.taskset.submission import task_files

REPO = Path(__file__).resolve().parents[2]
# Honest but bad: seeded, deterministic images that are simply not the baseline's.
WRONG_IMAGES = sleepy(0.015).replace("default_rng(g.initial_seed())", "default_rng(g.initial_seed() + 1)")


def make_inputs(root: Path, slow_second: bool = False) -> dict:
    """Three tasks: 1 ok, 2 quality_failed, 3 missing (no metrics)."""
    tasks = task_set(root / "tasks", [{"prompt_id": pid, "gt": sleepy(0.02)} for pid in "123"])
    sub = root / "sub"
    for pid in "123":
        write(sub / f"{pid}_baseline.py", sleepy(0.03))
        write(sub / f"{pid}_metrics.json", metrics(10.0))
    write(sub / "1_experiment.py", sleepy(0.015))
    write(sub / "2_experiment.py", WRONG_IMAGES.replace("PER_IMAGE = 0.015", "PER_IMAGE = 0.1") if slow_second else WRONG_IMAGES)
    write(sub / "3_experiment.py", sleepy(0.015))
    (sub / "3_metrics.json").unlink()
    write(root / "models" / "model_index.json", "{}")
    return {"sub": sub, "tasks": tasks, "models": root / "models", "prompts": prompt_file(root / "prompts.txt")}


# --------------------------------------------------------------------------- stored results


def _whole_result(key: str = "k") -> dict:
    return {"prompt_id": "1", "task_key": "SD1.5_DDIM_10", "difficulty": "easy", "category": "t", "status": "missing",
            "message": "gone", "flags": [], "mode": "module", "self_reported": False, "speedup": None,
            "speedup_ci": None, "gt_speedup": None, "relative_to_gt": None, "manifest_speedup": 1.5,
            "self_reported_speedup": None, "self_report_discrepancy": None, "quality": None, "variants": {},
            "resume": {"key": key, "quality_key": "q"}}


def test_only_a_whole_result_with_the_same_key_is_trusted(tmp_path):
    task_dir = tmp_path / "tasks" / "1"
    path = task_dir / RESULT_FILE
    atomic_write_json(path, _whole_result())
    assert trusted_result(task_dir, "k")[0] is not None
    assert trusted_result(task_dir, "other") == (None, "inputs, options or grader version changed")
    text = path.read_text()
    for cut in (1, len(text) // 3, len(text) // 2, len(text) - 3):        # any prefix of a result
        path.write_text(text[:cut])
        result, why = trusted_result(task_dir, "k")
        assert result is None and "not valid JSON" in why
    broken = _whole_result()
    del broken["variants"]
    atomic_write_json(path, broken)
    assert "does not match the report schema" in trusted_result(task_dir, "k")[1]
    unkeyed = _whole_result()
    del unkeyed["resume"]
    atomic_write_json(path, unkeyed)
    assert trusted_result(task_dir, "k") == (None, "has no resume key")
    with_images = _whole_result() | {"status": "ok", "quality_inputs": {"labels": ["b0000"], "prompts": ["p"]}}
    atomic_write_json(path, with_images)
    assert trusted_result(task_dir, "k") == (None, "stored images are missing")


def test_atomic_write_never_exposes_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    atomic_write_json(path, {"a": 1})

    def boom(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_the_key_follows_files_options_seed_and_version(tmp_path):
    paths = make_inputs(tmp_path)
    task = TaskSet.from_dir(paths["tasks"]).tasks[0]
    cfg = GradeConfig(submission=paths["sub"], tasks=paths["tasks"], model_dir=paths["models"], out=tmp_path / "run",
                      timing=small_timing())
    options = cfg.as_dict()

    def key(options=options, seed=1, version=__version__, pool="p"):
        return task_key(options, task, task_files(paths["sub"], task), run_seed=seed, pool=pool,
                               version=version)

    base = key()
    assert key() == base
    assert key(options | {"out": "/elsewhere", "run_id": "x", "only": ["1"]}) == base
    assert key(options | {"quality": {**options["quality"], "ssim_tolerance": 0.9}}) == base  # re-gated, not re-run
    assert key(seed=2) != base and key(version="9.9") != base and key(pool="q") != base
    assert key(options | {"timing": {**options["timing"], "batch_size": 4}}) != base
    write(paths["sub"] / "1_experiment.py", sleepy(0.015) + "\n# changed\n")
    assert key() != base
    assert quality_key(options, __version__) != quality_key(
        options | {"quality": {**options["quality"], "ssim_tolerance": 0.9}}, __version__)


def test_a_run_folder_belongs_to_one_run_id_and_one_process(tmp_path):
    paths = make_inputs(tmp_path)
    cfg = GradeConfig(submission=paths["sub"], tasks=paths["tasks"], model_dir=paths["models"], out=tmp_path / "run",
                      prompts_file=paths["prompts"], only=frozenset({"3"}), run_id="first", timing=small_timing())
    grade(cfg, progress=lambda _: None)
    other = GradeConfig(**{**cfg.__dict__, "run_id": "second"})
    with pytest.raises(ConfigError, match="holds run 'first'"):
        grade(other, progress=lambda _: None)
    with RunLock(tmp_path / "run"):
        with pytest.raises(ConfigError, match="in use by another grader process"):
            grade(cfg, progress=lambda _: None)


# --------------------------------------------------------------------------- resuming in process


@pytest.mark.slow
def test_resume_reuses_what_matches_and_regrades_what_changed(tmp_path):
    paths = make_inputs(tmp_path)
    cfg = GradeConfig(submission=paths["sub"], tasks=paths["tasks"], model_dir=paths["models"], out=tmp_path / "run",
                      prompts_file=paths["prompts"], timing=small_timing(min_batches=2, max_batches=2, probes=False),
                      quality=QualityConfig(ssim_tolerance=0.05))
    run_dir = tmp_path / "run"
    first = grade(cfg, progress=lambda _: None)
    assert {t["prompt_id"]: t["status"] for t in first["tasks"]} == {"1": "ok", "2": "quality_failed", "3": "missing"}
    seed = json.loads((run_dir / "run.json").read_text())["run_seed"]
    stored = {pid: (run_dir / "tasks" / pid / "result.json").read_bytes() for pid in "123"}

    def attempt():
        return json.loads((run_dir / "run.json").read_text())["attempts"][-1]

    again = grade(cfg, progress=lambda _: None)                      # nothing changed: nothing runs
    assert attempt()["graded"] == [] and sorted(attempt()["reused"]) == ["1", "2", "3"]
    assert {pid: (run_dir / "tasks" / pid / "result.json").read_bytes() for pid in "123"} == stored
    assert again["tasks"] == first["tasks"] and again["provenance"]["run_seed"] == seed
    assert again["provenance"]["attempts"] == 2 and again["provenance"]["reused_tasks"] == ["1", "2", "3"]

    # a changed file and a torn result (plus a temp file a crash left) are graded again
    write(paths["sub"] / "2_experiment.py", sleepy(0.015))
    text = stored["1"].decode()
    (run_dir / "tasks" / "1" / "result.json").write_text(text[: len(text) // 2])
    (run_dir / "tasks" / "1" / ".result.json.abc123").write_text(text[:10])
    third = grade(cfg, progress=lambda _: None)
    assert sorted(attempt()["graded"]) == ["1", "2"] and attempt()["reused"] == ["3"]
    assert {t["prompt_id"]: t["status"] for t in third["tasks"]} == {"1": "ok", "2": "ok", "3": "missing"}
    assert not (run_dir / "tasks" / "1" / ".result.json.abc123").exists()
    assert third["provenance"]["run_seed"] == seed

    # new tolerances only: stored images are re-gated, nothing runs
    strict = GradeConfig(**{**cfg.__dict__, "quality": QualityConfig(ssim_tolerance=0.0, psnr_tolerance_db=0.0)})
    write(paths["sub"] / "2_experiment.py", WRONG_IMAGES)
    fourth = grade(strict, progress=lambda _: None)
    assert attempt()["graded"] == ["2"] and attempt()["regated"] == ["1"]
    assert fourth["thresholds"]["psnr_tolerance_db"] == 0.0
    assert {t["prompt_id"]: t["status"] for t in fourth["tasks"]} == {"1": "ok", "2": "quality_failed", "3": "missing"}
    events = [json.loads(line)["event"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert events.count("run_started") == 4 and events.count("run_finished") == 4 and "task_reused" in events
    for name in ("report.json", "report.md", "report.html", "junit.xml"):
        assert (run_dir / name).is_file()


# --------------------------------------------------------------------------- kill -9 in the middle of a run


def _command(paths: dict, out: Path) -> list[str]:
    return [sys.executable, "-m", "grader.cli", "grade", str(paths["sub"]), "--tasks", str(paths["tasks"]),
            "--model-dir", str(paths["models"]), "--out", str(out), "--sandbox", "local",
            "--prompts", str(paths["prompts"]), "--batch-size", "2", "--warmup-batches", "1", "--min-batches", "2",
            "--max-batches", "2", "--quality-batches", "1", "--target-ci", "0.5", "--ssim-tolerance", "0.05"]


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}


def _workers_of(run_dir: Path) -> list[int]:
    """Worker processes this run started (their command line names the run folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(run_dir) in cmdline and "sandbox.worker" in cmdline:
            pids.append(int(entry.name))
    return pids


def _reap_orphans(run_dir: Path, wait: float = 15.0) -> None:
    deadline = time.monotonic() + wait
    while _workers_of(run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in _workers_of(run_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _skeleton(value):
    """The shape of a JSON value: keys and types, not numbers or lengths."""
    if isinstance(value, dict):
        return {k: _skeleton(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_skeleton(value[0])] if value and isinstance(value[0], (dict, list)) else "list"
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    return "str"


def _comparable(doc: dict) -> dict:
    """What must match between two runs of one command: everything but times, seeds and numbers."""
    numbers = re.compile(r"\d+(\.\d+)?")
    return {
        "tasks": [{"id": t["prompt_id"], "status": t["status"], "flags": t["flags"], "mode": t["mode"],
                   "message": numbers.sub("N", t["message"]), "quality_failures": (t.get("quality") or {}).get("failures"),
                   "variants": sorted(t["variants"])} for t in doc["tasks"]],
        "by_status": doc["summary"]["by_status"], "n_passing": doc["summary"]["n_passing"],
        "thresholds": doc["thresholds"],
        "skeleton": _skeleton({k: v for k, v in doc.items() if k != "provenance"}),
        "provenance_keys": sorted(doc["provenance"]),
    }


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_report(tmp_path):
    paths = make_inputs(tmp_path / "in", slow_second=True)

    straight = subprocess.run(_command(paths, tmp_path / "straight"), cwd=REPO, env=_env(), capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 1, straight.stdout[-3000:] + straight.stderr[-3000:]
    expected = json.loads((tmp_path / "straight" / "report.json").read_text())
    assert [t["status"] for t in expected["tasks"]] == ["ok", "quality_failed", "missing"]

    run_dir = tmp_path / "crashed"
    proc = subprocess.Popen(_command(paths, run_dir), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    first_result = run_dir / "tasks" / "1" / "result.json"
    second = run_dir / "tasks" / "2"
    try:
        deadline = time.monotonic() + 300
        while not (first_result.exists() and any((second / v).is_dir() for v in ("gt", "baseline", "experiment"))):
            assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "task 2 never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    _reap_orphans(run_dir)
    kept = first_result.read_bytes()
    seed = json.loads((run_dir / "run.json").read_text())["run_seed"]
    assert not (second / "result.json").exists()                        # the task in flight left no result
    assert not (run_dir / "report.json").exists()

    resumed = subprocess.run(_command(paths, run_dir), cwd=REPO, env=_env(), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 1, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    doc = json.loads((run_dir / "report.json").read_text())

    assert _comparable(doc) == _comparable(expected)
    assert first_result.read_bytes() == kept                            # finished before the kill: reused as is
    record = json.loads((run_dir / "run.json").read_text())
    assert record["run_seed"] == seed == doc["provenance"]["run_seed"]  # same prompts as before the kill
    assert [a["reused"] for a in record["attempts"]] == [[], ["1"]]
    assert record["attempts"][1]["graded"] == ["2", "3"]
    assert doc["provenance"]["attempts"] == 2 and doc["provenance"]["reused_tasks"] == ["1"]
    assert "task_reused" in resumed.stdout and "resuming run crashed" in resumed.stdout
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    assert len(parsed) >= len(lines) - 1                                # at most the line the kill cut
    assert [e["event"] for e in parsed].count("run_started") == 2
    for name in ("report.md", "report.html", "junit.xml"):
        assert (run_dir / name).is_file()


