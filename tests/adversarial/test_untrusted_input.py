"""Untrusted input (issue 15), without running a pipeline: the strict JSON parser, manifest
ids that are paths, NaN and deep JSON in manifests, metrics and worker messages, ``--out``,
a worker that never reads. Images and links in the worker's folders: ``test_untrusted_files.py``;
hostile workers end to end: ``test_untrusted_workers.py``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from support import metrics, task_set, write

from grader import cli, schemas
from grader.config import GradeConfig
from grader.errors import ConfigError, ManifestError, ProtocolViolation, SchemaViolation, WorkerTimeout
from grader.pipeline.run import grade
from grader.runs import session as session_mod
from grader.runs.session import WorkerSession
from grader.taskset import submission
from grader.taskset.manifest import MANIFEST_RELPATH, PROMPT_ID, TaskSet
from sandbox.protocol import RESPONSE_FIFO, Channel

GT = "def load_pipeline():\n    return None\n"
DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE_JSON = {
    "nan": '{"a": NaN}',
    "infinity": '{"a": Infinity}',
    "minus_infinity": '{"a": -Infinity}',
    "overflow": '{"a": 1e999}',
    "duplicate_key": '{"a": 1, "a": 2}',
    "deep": DEEP,
    "digits": '{"a": ' + "7" * 5000 + "}",
}


def _sub(root: Path) -> Path:
    (root / "sub").mkdir(exist_ok=True)
    return root / "sub"


# ----------------------------------------------------------------------------- the strict parser


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_the_strict_parser_refuses_what_json_loads_lets_through(name):
    with pytest.raises(schemas.InvalidJSON) as info:
        schemas.parse_json(HOSTILE_JSON[name])
    assert str(info.value)   # a reason, never a RecursionError or a bare ValueError


def test_the_depth_scan_ignores_brackets_in_strings_and_is_linear():
    assert schemas.parse_json('{"p": "[[[[\\"{{{{", "q": [1, [2, {"r": "]]]"}]]}') == {
        "p": '[[[["{{{{', "q": [1, [2, {"r": "]]]"}]]}
    t0 = time.monotonic()
    with pytest.raises(schemas.InvalidJSON):
        schemas.parse_json('"\\"' * 300_000)          # many quotes, one unterminated string
    assert time.monotonic() - t0 < 5


def test_the_manifest_schema_and_the_code_agree_on_prompt_ids():
    pattern = schemas.validator("manifest.schema.json").schema["items"]["properties"]["prompt_id"]["pattern"]
    assert pattern == f"^{PROMPT_ID.pattern}$"


# ----------------------------------------------------------------------------- finding 1: ids that are paths


def test_prompt_ids_that_are_paths_never_become_paths_and_a_duplicate_is_reported(tmp_path):
    outside = tmp_path / "abs-escape"
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": pid, "gt": GT} for pid in ("1", "2", "3", "4", "5")])
    path = tasks / MANIFEST_RELPATH
    entries = json.loads(path.read_text())
    entries[1]["prompt_id"] = "../../../escape"
    entries[2]["prompt_id"] = str(outside)
    entries[3]["prompt_id"] = "1"                        # a duplicate of a valid entry
    entries[4]["prompt_id"] = "invalid-1"                # a real id that looks like a generated name
    path.write_text(json.dumps(entries))
    loaded = TaskSet.from_dir(tasks)
    assert [t.prompt_id for t in loaded.tasks] == ["1", "invalid-1"]
    names = [i.prompt_id for i in loaded.invalid]
    assert names == ["invalid-1-2", "invalid-2", "invalid-3"] and all(PROMPT_ID.fullmatch(n) for n in names)

    run = tmp_path / "deep" / "er" / "run"
    doc = grade(GradeConfig(submission=_sub(tmp_path), tasks=tasks, model_dir=tmp_path, out=run, sandbox="local"),
                progress=lambda _: None)
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("result.json")}
    assert written == {f"deep/er/run/tasks/{n}/result.json" for n in ("1", "invalid-1", *names)}
    assert not outside.exists() and not (tmp_path / "escape").exists()
    by_id = {t["prompt_id"]: t for t in doc["tasks"]}
    assert by_id["invalid-1-2"]["status"] == "error" and "'../../../escape' does not match" in by_id["invalid-1-2"]["message"]
    assert "does not match" in by_id["invalid-2"]["message"]
    assert by_id["invalid-3"]["status"] == "error" and "duplicate prompt_id '1'" in by_id["invalid-3"]["message"]
    assert "invalid_manifest_entry" in by_id["invalid-3"]["flags"]
    assert by_id["1"]["status"] == "missing"            # the first entry with the id keeps it


# ----------------------------------------------------------------------------- finding 2: manifests and metrics


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_a_manifest_that_is_not_strict_json_is_a_config_error_naming_the_file(tmp_path, name):
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": "1", "gt": GT}])
    entry = json.loads((tasks / MANIFEST_RELPATH).read_text())[0]
    text = json.dumps([entry])
    text = text.replace('"speedup": 1.5', '"speedup": ' + {"nan": "NaN", "infinity": "Infinity",
                                                           "minus_infinity": "-Infinity", "overflow": "1e999",
                                                           "digits": "7" * 5000}.get(name, "1.5"))
    if name == "duplicate_key":
        text = text.replace('"speedup": 1.5', '"speedup": 1.5, "speedup": 9')
    if name == "deep":
        text = text.replace('"prompt_context": "test task"', '"prompt_context": ' + DEEP)
    write(tasks / MANIFEST_RELPATH, text)
    with pytest.raises(ManifestError, match="cannot read manifest as JSON") as info:
        TaskSet.from_dir(tasks)
    assert str(tasks / MANIFEST_RELPATH) in str(info.value)
    code = cli.main(["grade", str(_sub(tmp_path)), "--tasks", str(tasks), "--model-dir", str(tmp_path),
                     "--out", str(tmp_path / "run"), "--sandbox", "local"])
    assert code == cli.EXIT_USAGE


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_metrics_that_are_not_strict_json_are_invalid_metrics(tmp_path, name):
    good = json.loads(metrics(2.0))
    text = json.dumps(good)
    if name == "duplicate_key":
        text = text.replace('"speedup": 2.0', '"speedup": 2.0, "speedup": 900.0')
    elif name == "deep":
        text = text.replace('"optimizations": ["none"]', '"optimizations": ' + DEEP)
    else:
        text = text.replace('"speedup": 2.0', '"speedup": ' + HOSTILE_JSON[name].split(": ", 1)[1].rstrip("}"))
    path = write(tmp_path / "1_metrics.json", text)
    with pytest.raises(SchemaViolation, match="not valid JSON"):
        submission.load_metrics(path)


def test_a_run_goes_on_past_metrics_with_nan_and_deep_nesting(tmp_path):
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": pid, "gt": GT} for pid in ("1", "2", "3")])
    sub = tmp_path / "sub"
    for pid in "123":
        write(sub / f"{pid}_baseline.py", GT)
        write(sub / f"{pid}_experiment.py", GT)
    write(sub / "1_metrics.json", metrics(2.0).replace('"speedup": 2.0', '"speedup": NaN'))
    write(sub / "2_metrics.json", metrics(2.0).replace('["none"]', DEEP))
    write(sub / "3_metrics.json", metrics(2.0).replace('"speedup": 2.0', '"speedup": 2.0, "speedup": 1e999'))
    doc = grade(GradeConfig(submission=sub, tasks=tasks, model_dir=tmp_path, out=tmp_path / "run", sandbox="local"),
                progress=lambda _: None)
    assert {t["prompt_id"]: t["status"] for t in doc["tasks"]} == {"1": "invalid_metrics", "2": "invalid_metrics",
                                                                   "3": "invalid_metrics"}
    assert "NaN is not a JSON number" in doc["tasks"][0]["message"]


@pytest.mark.parametrize("name", ["deep", "duplicate_key", "digits"])
def test_a_mapping_file_that_is_not_strict_json_is_a_conflict_not_a_traceback(tmp_path, name):
    from grader.taskset.manifest import MAPPING_RELPATH
    from grader.taskset.prepare import PrepareConfig, plan

    src = tmp_path / "src"
    for fname in ("SD1.5_DDIM_50_a_1.5x.py", "SD1.5_DDIM_50_b_2x.py", "SD1.5_DDIM_50_c_3x.py"):
        write(src / fname, GT)
    text = {"deep": '{"x": ' + DEEP + "}", "duplicate_key": '{"SD1.5_DDIM_50_a_1.5x.py": "1", '
            '"SD1.5_DDIM_50_a_1.5x.py": "9"}', "digits": '{"SD1.5_DDIM_50_a_1.5x.py": ' + "7" * 5000 + "}"}[name]
    write(tmp_path / "tasks" / MAPPING_RELPATH, text)
    result = plan(PrepareConfig(source_dir=src, out_dir=tmp_path / "tasks"))
    assert [c.kind for c in result.conflicts] == ["mapping_unreadable"]


@pytest.mark.parametrize("name", ["nan", "deep", "duplicate_key"])
def test_stored_results_and_run_records_that_are_not_strict_json_are_not_trusted(tmp_path, name):
    from grader.record.folder import RunRecord
    from grader.record.stored import read_result

    text = {"nan": '{"prompt_id": "1", "speedup": NaN}', "deep": DEEP,
            "duplicate_key": '{"prompt_id": "1", "prompt_id": "2"}'}[name]
    result, why = read_result(write(tmp_path / "tasks" / "1" / "result.json", text))
    assert result is None and why.startswith("not valid JSON")
    write(tmp_path / "run.json", text)
    with pytest.raises(ConfigError, match="unreadable"):
        RunRecord.load(tmp_path)


# ----------------------------------------------------------------------------- findings 2 and 4: worker messages


class _Alive:
    """A worker process that never exits (the session only polls it)."""

    def poll(self):
        return None


def _session(tmp_path: Path, budget: float = 60.0) -> tuple[WorkerSession, int]:
    channel = Channel.create(tmp_path / "proto")
    worker_end = os.open(tmp_path / "proto" / RESPONSE_FIFO, os.O_WRONLY | os.O_NONBLOCK)
    return WorkerSession(_Alive(), channel, budget), worker_end


def _send(fd: int, text: str) -> None:
    data = (text + "\n").encode()
    threading.Thread(target=lambda: _write_all(fd, data), daemon=True).start()   # a deep line outgrows the pipe


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            time.sleep(0.01)


HELLO = '{"type": "hello", "pid": 7, "versions": {"python": "3"}}'
HOSTILE_MESSAGES = {
    "nan": '{"type": "ready", "import_seconds": NaN, "load_seconds": 0, "has_inference": false, "passes": []}',
    "infinity": '{"type": "ready", "import_seconds": Infinity, "load_seconds": 0, "has_inference": false, "passes": []}',
    "duplicate_key": '{"type": "ready", "type": "ready", "import_seconds": 0, "load_seconds": 0, '
                     '"has_inference": false, "passes": []}',
    "deep": '{"type": "hello", "pid": 7, "versions": ' + DEEP + "}",
    "digits": '{"type": "hello", "pid": ' + "7" * 5000 + ', "versions": {}}',
}


@pytest.mark.parametrize("name", sorted(HOSTILE_MESSAGES))
def test_a_worker_message_that_is_not_strict_json_is_a_protocol_violation(tmp_path, name):
    session, worker_end = _session(tmp_path)
    _send(worker_end, HOSTILE_MESSAGES[name])
    with pytest.raises(ProtocolViolation) as info:
        session.expect({"hello", "ready"}, 10, "starting the worker")
    assert info.value.flags == ("protocol_violation",) and info.value.status == "tampered"
    assert "not a strict JSON line" in str(info.value)


def test_a_worker_that_answers_twice_breaks_the_protocol(tmp_path):
    session, worker_end = _session(tmp_path)
    _send(worker_end, HELLO + "\n" + HELLO)
    assert session.expect({"hello"}, 10, "starting the worker")["pid"] == 7
    with pytest.raises(ProtocolViolation, match="unexpected 'hello'") as info:
        session.expect({"ready"}, 10, "loading")
    assert info.value.flags == ("protocol_violation",)


# ----------------------------------------------------------------------------- finding 6: a worker that never reads


def test_a_request_the_worker_never_reads_times_out_instead_of_blocking(tmp_path, monkeypatch):
    monkeypatch.setattr(session_mod, "SEND_TIMEOUT", 0.5)
    session, _ = _session(tmp_path)      # nobody ever opens or reads the request FIFO
    prompts = ["a long prompt " * 30] * 8
    t0 = time.monotonic()
    with pytest.raises(WorkerTimeout, match="does not read its request channel"):
        for index in range(10_000):
            session.request({"op": "batch", "index": index, "prompts": prompts})
    assert time.monotonic() - t0 < 10
    assert session.used >= 0.5            # the wait counts against the variant's budget


# ----------------------------------------------------------------------------- finding 3: --out


def test_out_that_is_a_file_is_a_clear_usage_error(tmp_path, capsys):
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": "1", "gt": GT}])
    for out in (write(tmp_path / "a-file", "x"), tmp_path / "a-file" / "below"):
        code = cli.main(["grade", str(_sub(tmp_path)), "--tasks", str(tasks), "--model-dir", str(tmp_path),
                         "--out", str(out), "--sandbox", "local"])
        err = capsys.readouterr().err
        assert code == cli.EXIT_USAGE and f"--out {out}" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        grade(GradeConfig(submission=_sub(tmp_path), tasks=tasks, model_dir=tmp_path, out=tmp_path / "a-file",
                          sandbox="local"), progress=lambda _: None)


def test_out_that_cannot_be_written_is_a_clear_usage_error(tmp_path, capsys):
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": "1", "gt": GT}])
    read_only = Path("/proc/self")        # a folder nobody, root included, can create files in
    if os.geteuid() != 0:
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o555)
    code = cli.main(["grade", str(_sub(tmp_path)), "--tasks", str(tasks), "--model-dir", str(tmp_path),
                     "--out", str(read_only), "--sandbox", "local"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and f"--out {read_only}" in err and "not writable" in err
