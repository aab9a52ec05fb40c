"""Hostile workers, end to end (issue 15): each experiment below breaks the protocol or plants
something in its folders, and the run must end that task with the submission's own fault
(``protocol_violation``, ``bad_image``, a timeout), never a grader error, a hang or a file
touched outside the worker's folder, and go on to grade the next task.

Pipeline-free modules (``support.sleepy``), local sandbox, one run for all cases.
"""

from __future__ import annotations

import resource
import textwrap

import numpy as np
import pytest
from support import metrics, prompt_file, sleepy, small_timing, task_set, write

from grader.config import GradeConfig, QualityConfig
from grader.pipeline.run import grade
from grader.runs import session

# Module-level helpers of every hostile experiment; WORK is the worker's work folder.
PRELUDE = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    import numpy
    WORK = Path(sys.argv[sys.argv.index("--work") + 1])

    def say(line):
        fd = os.open(WORK / "proto" / "resp.fifo", os.O_WRONLY)
        view = memoryview((line + "\\n").encode())
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)

    def sparse(path, shape=(16384, 21846, 3)):
        with open(path, "wb") as fh:
            numpy.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": shape})
            fh.truncate(fh.tell() + shape[0] * shape[1] * shape[2])

    _save = numpy.save
''')
READY = '{"type": "ready", "import_seconds": 0, "load_seconds": 0, "has_inference": false, "passes": []}'
HOOKS = {
    # worker messages that are not strict JSON, or a second answer
    "deep": 'say(\'{"type": "ready", "x": \' + "[" * 100000 + "]" * 100000 + "}")',
    "digits": 'say(\'{"type": "hello", "pid": \' + "7" * 5000 + \', "versions": {}}\')',
    "nan": "say(" + repr(READY.replace("0,", "NaN,", 1)) + ")",
    "dupkey": "say(" + repr(READY.replace("{", '{"type": "ready", ', 1)) + ")",
    "twice": "say(" + repr(READY) + ")",
    # images that are not images
    "npz": textwrap.dedent('''
        def evil(path, array, allow_pickle=False):
            with open(path, "wb") as fh:
                numpy.savez(fh, image=array)
        numpy.save = evil'''),
    "sparse_named": textwrap.dedent('''
        def evil(path, array, allow_pickle=False):
            sparse(path)
        numpy.save = evil'''),
    "sparse_beside": textwrap.dedent('''
        def evil(path, array, allow_pickle=False):
            _save(path, array, allow_pickle=False)
            sparse(Path(path).with_name("999.npy"))
            sparse(WORK / "left-behind.npy")
        numpy.save = evil'''),
    "fifo": textwrap.dedent('''
        def evil(path, array, allow_pickle=False):
            os.mkfifo(path)
        numpy.save = evil'''),
    # out/ replaced by a link to a folder outside (OUTSIDE is filled in by the test)
    "outlink": textwrap.dedent('''
        import shutil
        shutil.rmtree(WORK / "out")
        os.symlink(OUTSIDE, WORK / "out")'''),
    # fills its own request FIFO and never reads it again
    "noread": textwrap.dedent('''
        import sandbox.protocol
        sandbox.protocol.Channel.recv = lambda self, timeout=None: time.sleep(3600)
        fd = os.open(WORK / "proto" / "req.fifo", os.O_WRONLY | os.O_NONBLOCK)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except BlockingIOError:
            pass'''),
}
EXPECTED = {
    "deep": ("tampered", "protocol_violation"), "digits": ("tampered", "protocol_violation"),
    "nan": ("tampered", "protocol_violation"), "dupkey": ("tampered", "protocol_violation"),
    "twice": ("tampered", "protocol_violation"),
    "npz": ("error", "bad_image"), "sparse_named": ("error", "bad_image"), "fifo": ("error", "bad_image"),
    "outlink": ("error", "bad_image"), "noread": ("timeout", None), "sparse_beside": ("ok", None),
    "honest": ("ok", None),
}


def hostile(hook: str) -> str:
    """The sleepy module whose load_pipeline first runs ``hook`` (inside the worker, before ``ready``)."""
    body = sleepy(0.002)
    assert "\ndef load_pipeline():\n" in body
    hooked = "def _hook():\n" + textwrap.indent(textwrap.dedent(hook).strip("\n"), "    ") + "\n\n\n"
    return PRELUDE + hooked + body.replace("\ndef load_pipeline():\n", "\ndef load_pipeline():\n    _hook()\n", 1)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    outside = root / "outside"
    write(outside / "w000" / "keep.txt", "precious")
    names = [*HOOKS, "honest"]          # the honest task last: the run must get there
    tasks = task_set(root / "tasks", [{"prompt_id": n, "gt": sleepy(0.002)} for n in names])
    sub = root / "sub"
    for name in names:
        write(sub / f"{name}_baseline.py", sleepy(0.002))
        write(sub / f"{name}_metrics.json", metrics(1.0))
        hook = HOOKS.get(name)
        text = sleepy(0.002) if hook is None else hostile(hook.replace("OUTSIDE", repr(str(outside))))
        write(sub / f"{name}_experiment.py", text)
    (root / "models").mkdir()
    (root / "models" / "model_index.json").write_text("{}")
    cfg = GradeConfig(submission=sub, tasks=tasks, model_dir=root / "models", out=root / "run", sandbox="local",
                      seed=3, prompts_file=prompt_file(root / "prompts.txt"),
                      timing=small_timing(min_batches=2, max_batches=2, warmup_batches=1, batch_timeout=60),
                      quality=QualityConfig(ssim_tolerance=0.05))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(session, "SEND_TIMEOUT", 3.0)
        doc = grade(cfg, progress=lambda _: None)
    rss_grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
    return doc, root, rss_grown


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a_hostile_worker_is_its_own_fault_and_the_run_goes_on(graded, name):
    doc, _, _ = graded
    task = {t["prompt_id"]: t for t in doc["tasks"]}[name]
    status, flag = EXPECTED[name]
    assert task["status"] == status, (task["status"], task["message"], task["flags"])
    assert "grader_error" not in task["flags"]
    if flag is not None:
        assert flag in task["flags"], (task["message"], task["flags"])


def test_no_worker_file_reached_the_grader_memory_or_the_gate(graded):
    doc, root, rss_grown = graded
    assert rss_grown < 512 << 20, f"the grader's peak memory grew by {rss_grown >> 20} MiB"
    kept = root / "run" / "tasks" / "sparse_beside"
    folders = [p for p in kept.glob("*/images/*") if p.is_dir()]
    assert folders and all(sorted(f.name for f in p.iterdir()) == ["000.npy", "001.npy"] for p in folders)
    for path in (f for p in folders for f in p.iterdir()):
        assert np.load(path).shape == (16, 16, 3)


def test_a_linked_out_folder_left_the_folder_outside_alone(graded):
    _, root, _ = graded
    assert (root / "outside" / "w000" / "keep.txt").read_text() == "precious"


def test_a_worker_that_never_reads_ends_in_a_timeout_naming_it(graded):
    doc, _, _ = graded
    task = {t["prompt_id"]: t for t in doc["tasks"]}["noread"]
    assert "does not read its request channel" in task["message"]


def test_script_mode_does_not_follow_a_linked_metrics_file(tmp_path):
    from grader.runs.script_mode import run_script

    outside = write(tmp_path / "outside.json", metrics(9.0))
    script = write(tmp_path / "script.py", f"import os\nos.symlink({str(outside)!r}, os.environ['GRADER_METRICS_PATH'])\n")
    (tmp_path / "models").mkdir()
    result = run_script(script, tmp_path / "models", tmp_path / "run", sandbox="local", device="cpu", timeout=60)
    assert result.status == "invalid_metrics" and result.metrics is None, result.message
    assert "is a link" in result.message
    again = run_script(write(tmp_path / "plain.py", "import json, os\njson.dump(" + metrics(2.0)
                             + ", open(os.environ['GRADER_METRICS_PATH'], 'w'))\n"),
                       tmp_path / "models", tmp_path / "run", sandbox="local", device="cpu", timeout=60)
    assert again.status == "ok" and again.metrics["speedup"] == 2.0 and outside.read_text() == metrics(9.0)
