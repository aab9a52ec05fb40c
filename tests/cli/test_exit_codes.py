"""Exit codes of the command line (grader.cli.main), in-process and once as a real process.

0 ok; 1 the command ran and found something wrong (a task not ok or not ready, ``--strict``
with a skip); 2 an error (a GraderError, reported as ``grader: error: ...`` on stderr) or an
argparse usage error; 3 the sandbox cannot run; 130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import PLAIN_MODULE, metrics, task_set, write

from grader import __version__, cli

REPO = Path(__file__).resolve().parents[2]
GT_NAMES = ["SD1.5_DDIM_50_a_1.1x.py", "SD1.5_DDIM_50_b_1.3x.py", "SD1.5_DDIM_50_c_2.15x.py"]


def submission_for(tmp_path: Path, ids=("1", "2"), missing: tuple[str, ...] = ()) -> tuple[Path, Path]:
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": pid, "gt": PLAIN_MODULE} for pid in ids])
    sub = tmp_path / "sub"
    for pid in ids:
        for name, text in ((f"{pid}_baseline.py", PLAIN_MODULE), (f"{pid}_experiment.py", PLAIN_MODULE),
                           (f"{pid}_metrics.json", metrics(1.5))):
            if name not in missing:
                write(sub / name, text)
    sub.mkdir(exist_ok=True)
    return sub, tasks


def gt_sources(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write(folder / name, f"# {name}\ndef load_pipeline():\n    return None\n")
    return folder


# ----------------------------------------------------------------------------- argparse


def test_version_exits_0(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"grader {__version__}"


@pytest.mark.parametrize("argv", [[], ["--bogus"], ["validate"], ["frobnicate"], ["prepare", "src"]])
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: grader") and "error:" in err


# ----------------------------------------------------------------------------- validate


def test_validate_all_ready_exits_0(tmp_path, capsys):
    sub, tasks = submission_for(tmp_path)
    assert cli.main(["validate", str(sub), "--tasks", str(tasks)]) == 0
    out = capsys.readouterr().out
    assert "2/2 tasks ready" in out and "module mode" in out


def test_validate_one_missing_exits_1(tmp_path, capsys):
    sub, tasks = submission_for(tmp_path, missing=("2_experiment.py",))
    assert cli.main(["validate", str(sub), "--tasks", str(tasks)]) == 1
    out = capsys.readouterr().out
    assert "1/2 tasks ready" in out and "missing" in out and "2_experiment.py" in out


def test_validate_only_the_ready_task_exits_0(tmp_path):
    sub, tasks = submission_for(tmp_path, missing=("2_experiment.py",))
    assert cli.main(["validate", str(sub), "--tasks", str(tasks), "--only", "1"]) == 0


# ----------------------------------------------------------------------------- GraderError -> 2


def test_grader_error_inside_a_command_exits_2(tmp_path, capsys):
    sub, _ = submission_for(tmp_path)
    no_tasks = tmp_path / "empty"
    no_tasks.mkdir()
    assert cli.main(["validate", str(sub), "--tasks", str(no_tasks)]) == 2  # ManifestError from TaskSet.from_dir
    captured = capsys.readouterr()
    assert captured.err.startswith("grader: error: ")
    assert "manifest not found" in captured.err and str(no_tasks) in captured.err


def test_unknown_only_id_exits_2(tmp_path, capsys):
    sub, tasks = submission_for(tmp_path)
    assert cli.main(["validate", str(sub), "--tasks", str(tasks), "--only", "1,77"]) == 2
    assert capsys.readouterr().err.startswith("grader: error: ")


# ----------------------------------------------------------------------------- prepare


def test_prepare_ok_exits_0(tmp_path):
    src = gt_sources(tmp_path / "src", GT_NAMES)
    assert cli.main(["prepare", str(src), "--out", str(tmp_path / "tasks")]) == 0


def test_prepare_empty_source_exits_2(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    assert cli.main(["prepare", str(src), "--out", str(tmp_path / "tasks")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grader: error: no task key has at least 3")
    assert not (tmp_path / "tasks").exists()


def test_prepare_strict_with_a_skipped_file_exits_1(tmp_path, capsys):
    src = gt_sources(tmp_path / "src", GT_NAMES + ["helper.py"])
    assert cli.main(["prepare", str(src), "--out", str(tmp_path / "tasks"), "--strict"]) == 1
    assert "helper.py" in capsys.readouterr().out
    assert not (tmp_path / "tasks").exists()
    # the same without --strict writes and exits 0
    assert cli.main(["prepare", str(src), "--out", str(tmp_path / "tasks")]) == 0


def test_prepare_bad_option_value_exits_2(tmp_path, capsys):
    src = gt_sources(tmp_path / "src", GT_NAMES)
    assert cli.main(["prepare", str(src), "--out", str(tmp_path / "tasks"), "--per-task", "0"]) == 2
    assert capsys.readouterr().err.startswith("grader: error: --per-task must be a positive integer")


# ----------------------------------------------------------------------------- report


def test_report_on_a_folder_that_is_not_a_run_exits_2(tmp_path, capsys):
    folder = tmp_path / "not_a_run"
    folder.mkdir()
    assert cli.main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grader: error: ") and "not a run folder" in err


# ----------------------------------------------------------------------------- as a process


def test_exit_codes_as_a_real_process(tmp_path):
    def grader(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "grader.cli", *argv], cwd=REPO, capture_output=True,
                              text=True, timeout=120)

    version = grader("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"grader {__version__}")
    sub, tasks = submission_for(tmp_path, missing=("1_metrics.json",))
    missing = grader("validate", str(sub), "--tasks", str(tasks))
    assert missing.returncode == 1 and "1/2 tasks ready" in missing.stdout
    error = grader("validate", str(sub), "--tasks", str(tmp_path / "nowhere"))
    assert error.returncode == 2 and error.stderr.startswith("grader: error: ")
    usage = grader()
    assert usage.returncode == 2 and usage.stderr.startswith("usage: grader")


# ----------------------------------------------------------------------------- grade


def _grade_inputs(tmp_path: Path, per_image: float = 0.005, missing: bool = False) -> list[str]:
    """Two tasks; with ``missing`` the second has no experiment file."""
    from support import grade_args

    return grade_args(tmp_path, ("1", "2"), per_image, missing_experiment=("2",) if missing else ())


@pytest.mark.slow
def test_grade_exits_0_when_every_task_is_ok_and_1_when_one_is_not(tmp_path, capsys):
    assert cli.main(["grade", *_grade_inputs(tmp_path / "ok"), "--sandbox", "local"]) == 0
    args = _grade_inputs(tmp_path / "bad", missing=True)
    assert cli.main(["grade", *args, "--sandbox", "local"]) == 1
    assert "1 of 2 task(s) not ok: exit 1" in capsys.readouterr().out
    assert cli.main(["grade", *args, "--sandbox", "local", "--exit-zero"]) == 0     # resumes: nothing re-runs


@pytest.mark.slow
def test_grade_exits_3_when_the_sandbox_cannot_run(tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-such.sock", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "grader.cli", "grade", *_grade_inputs(tmp_path), "--sandbox", "docker"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr[-2000:]
    assert "grader: error:" in out.stderr and "Docker engine does not answer" in out.stderr
    assert not (tmp_path / "run" / "tasks").exists()                                  # nothing was graded


@pytest.mark.slow
def test_ctrl_c_exits_130_without_a_traceback_and_the_run_resumes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "grader.cli", "grade", *_grade_inputs(tmp_path, per_image=0.3), "--sandbox", "local"]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    log = tmp_path / "run" / "log.jsonl"
    while time.monotonic() < deadline and not (log.exists() and '"phase"' in log.read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "re-running the same command resumes the run" in stderr and "Traceback" not in stderr
    assert cli.main(["grade", *argv[4:]]) == 0                                          # the same command finishes it


def test_validate_json_gives_every_verdict(tmp_path, capsys):
    sub, tasks = submission_for(tmp_path, missing=("2_experiment.py",))
    assert cli.main(["validate", str(sub), "--tasks", str(tasks), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ready"] == 1 and doc["tasks"] == 2
    assert {v["prompt_id"]: v["status"] for v in doc["verdicts"]} == {"1": "ok", "2": "missing"}


def test_every_grade_option_says_what_it_does_and_its_default():
    import argparse

    parser = cli.build_parser()
    grade = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["grade"]
    for action in grade._actions:
        if action.dest in ("help",) or not action.option_strings:
            continue
        assert action.help, action.option_strings
        if not action.required and not isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                                             argparse._StoreConstAction)):
            assert "(default" in action.help, action.option_strings
    assert {g.title for g in grade._action_groups} >= {"inputs", "sandbox and placement", "timing", "output and tuning"}
    assert "exit codes:" in parser.format_help() and "130" in parser.format_help()
