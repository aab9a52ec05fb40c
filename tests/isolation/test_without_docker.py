"""The status comparison of ``scripts/ci_without_docker.sh`` (``scripts/compare_statuses.py``).

The script grades the bundled example under docker, makes Docker unavailable, grades it again
under ``--sandbox auto`` (which must pick bwrap) and fails on any task whose status differs.
The whole script is run in CI only; here its comparison is checked on report documents built
by the grader's own report builder, so they pass the report schema as real ones do.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from grader.reports.document import build
from grader.scores.result import TaskResult

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_statuses.py"


@pytest.fixture(scope="module")
def compare_statuses():
    spec = importlib.util.spec_from_file_location("compare_statuses", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # its dataclass looks its module up while being defined
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def report(sandbox: str, statuses: dict[str, str]) -> dict:
    options = {"sandbox": sandbox, "out": f"/runs/{sandbox}", "run_id": sandbox, "device": "cpu",
               "timing": {}, "quality": {}, "integrity": {}}
    tasks = [TaskResult(prompt_id=pid, status=status, message="" if status == "ok" else status).to_dict()
             for pid, status in statuses.items()]
    now = time.time()
    return build(options, tasks, run_seed=1, started=now, finished=now, version="test",
                 environment={"machine": {}, "libraries": {}, "sandbox_runtime": None})


EXAMPLE = {"101": "ok", "102": "ok", "103": "quality_failed", "104": "missing", "105": "invalid_metrics",
           "106": "error"}


def test_equal_statuses_under_both_sandboxes_pass(compare_statuses):
    result = compare_statuses.compare(report("docker", EXAMPLE), report("bwrap", EXAMPLE), ("docker", "bwrap"))
    assert result.ok and result.sandboxes == ("docker", "bwrap")
    assert [row[0] for row in result.rows] == sorted(EXAMPLE)
    text = compare_statuses.render(result)
    assert "6/6 task statuses match between docker and bwrap" in text and "MISMATCH" not in text


def test_a_changed_status_a_lost_task_and_a_wrong_sandbox_are_each_a_mismatch(compare_statuses):
    changed = {**EXAMPLE, "102": "error"}
    del changed["106"]
    result = compare_statuses.compare(report("docker", EXAMPLE), report("local", changed), ("docker", "bwrap"))
    assert not result.ok
    assert set(result.problems) == {
        "report 2 was graded with --sandbox local, not bwrap",
        "task 102: ok under docker, error under local",
        "task 106: graded only under docker",
    }
    text = compare_statuses.render(result)
    assert "4/6 task statuses match" in text and text.count("MISMATCH:") == 3
    assert "102   ok               error            NO" in text


def test_ids_sort_numerically_and_an_empty_grading_is_not_a_match(compare_statuses):
    result = compare_statuses.compare(report("docker", {"9": "ok", "10": "ok"}), report("bwrap", {"9": "ok", "10": "ok"}))
    assert [row[0] for row in result.rows] == ["9", "10"] and result.ok
    empty = compare_statuses.compare(report("docker", {}), report("bwrap", {}))
    assert not empty.ok and empty.problems == ("no task was graded",)


def test_main_validates_both_reports_and_sets_the_exit_code(compare_statuses, tmp_path, capsys):
    docker, bwrap, other = tmp_path / "docker.json", tmp_path / "bwrap.json", tmp_path / "other.json"
    docker.write_text(json.dumps(report("docker", EXAMPLE)))
    bwrap.write_text(json.dumps(report("bwrap", EXAMPLE)))
    other.write_text(json.dumps(report("bwrap", {**EXAMPLE, "101": "tampered"})))
    assert compare_statuses.main([str(docker), str(bwrap)]) == 0
    assert "6/6 task statuses match" in capsys.readouterr().out
    assert compare_statuses.main([str(docker), str(other)]) == 1
    assert "MISMATCH: task 101: ok under docker, tampered under bwrap" in capsys.readouterr().out
    broken = json.loads(docker.read_text())
    broken["tasks"][0]["status"] = "fine"                            # not a status the schema knows
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    assert compare_statuses.main([str(tmp_path / "broken.json"), str(bwrap)]) == 2
    assert "report.schema.json" in capsys.readouterr().err
    assert compare_statuses.main([str(tmp_path / "absent.json"), str(bwrap)]) == 2
