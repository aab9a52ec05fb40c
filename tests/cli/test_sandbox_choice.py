"""``--sandbox auto`` (the default): docker when the engine answers and the image is current, else
bwrap when a trivial command runs under it, else local, said plainly; an explicitly requested
sandbox that cannot run exits 3 before anything is graded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader import cli
from grader.commands import grade as grade_cmd

REPO = Path(__file__).resolve().parents[2]


def _choose(monkeypatch, docker: str | None, bwrap: str | None) -> str:
    monkeypatch.setattr(grade_cmd, "_docker_unusable", lambda device: docker)
    monkeypatch.setattr(grade_cmd, "_bwrap_unusable", lambda: bwrap)
    return grade_cmd.choose_sandbox("auto")


def test_auto_takes_docker_first(monkeypatch):
    assert _choose(monkeypatch, docker=None, bwrap=None) == "docker"


def test_auto_takes_bwrap_without_docker(monkeypatch, capsys):
    assert _choose(monkeypatch, docker="Docker is not usable here (no engine)", bwrap=None) == "bwrap"
    out = capsys.readouterr().out
    assert "no engine" in out and "--sandbox bwrap" in out and "NOT isolate" not in out


def test_auto_falls_back_to_local_and_says_it_does_not_isolate(monkeypatch, capsys):
    assert _choose(monkeypatch, docker="Docker is not usable here (no engine)", bwrap="bwrap is not installed") == "local"
    out = capsys.readouterr().out
    assert "bwrap is not installed" in out and "--sandbox local, which does NOT isolate" in out


def test_an_explicit_choice_is_taken_as_it_is(monkeypatch):
    monkeypatch.setattr(grade_cmd, "_docker_unusable", lambda device: pytest.fail("probed docker"))
    assert grade_cmd.choose_sandbox("bwrap") == "bwrap" and grade_cmd.choose_sandbox("local") == "local"


def test_auto_is_the_default_and_bwrap_a_choice():
    import argparse

    parser = cli.build_parser()
    grade = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["grade"]
    sandbox = next(a for a in grade._actions if a.dest == "sandbox")
    assert sandbox.default == "auto" and {"auto", "local", "bwrap", "docker"} == set(sandbox.choices)


def _grade_inputs(tmp_path: Path) -> list[str]:
    from support import grade_args

    return grade_args(tmp_path)


@pytest.mark.slow
def test_an_unusable_bwrap_exits_3_before_grading(tmp_path):
    env = {**os.environ, "GRADER_BWRAP": str(tmp_path / "no-such-bwrap"), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "grader.cli", "grade", *_grade_inputs(tmp_path), "--sandbox", "bwrap"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr[-2000:]
    assert "grader: error:" in out.stderr and "--sandbox bwrap does not work here" in out.stderr
    assert not (tmp_path / "run" / "tasks").exists()


@pytest.mark.slow
def test_grade_under_bwrap(tmp_path):
    from grader.isolation.bwrap import unavailable_reason

    reason = unavailable_reason()
    if reason and not (os.environ.get("GRADER_REQUIRE_BWRAP") == "1" or os.environ.get("CI")):
        pytest.skip(f"bwrap does not work here: {reason}")
    assert cli.main(["grade", *_grade_inputs(tmp_path), "--sandbox", "bwrap"]) == 0
    import json

    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["provenance"]["sandbox"] == "bwrap" and report["provenance"]["isolated"] is True


def test_doctor_reports_bwrap_and_never_fails_for_it(tmp_path, monkeypatch):
    from grader.commands.doctor import _bwrap_checks
    from grader.isolation.bwrap import unavailable_reason

    monkeypatch.setenv("GRADER_BWRAP", str(tmp_path / "no-such-bwrap"))
    (missing,) = _bwrap_checks()
    assert missing.name == "bwrap" and missing.status == "warn" and "bubblewrap" in missing.fix
    monkeypatch.delenv("GRADER_BWRAP")
    if unavailable_reason() is not None:
        pytest.skip(f"bwrap does not work here: {unavailable_reason()}")
    checks = {c.name: c for c in _bwrap_checks()}
    assert checks["bwrap"].status == "ok" and "bubblewrap" in checks["bwrap"].detail
    assert checks["bwrap sandbox"].status == "ok"
