"""Model folders as users have them, graded for real (a one-task set) under docker and bwrap.

- weights readable by their owner only (``save_pretrained``'s mode 600) are refused up front
  by ``grade`` and ``validate`` with exit 2, the file and ``chmod -R a+rX``: the worker runs
  as uid 10001 there and could not read them;
- a Hugging Face cache snapshot (every file a relative link into ``../../blobs/``) grades
  ``ok``: its ``models--org--name`` root is mounted, so the links resolve inside the sandbox;
- a truncated weights file is refused up front, named, instead of a crash in every worker.

The variants read every weights file of the mounted folder through ``GRADER_MODEL_DIR`` with
safetensors (no pipeline to build, so a grading takes seconds) and answer seeded noise.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conformance_support import bwrap_marks
from fixtures import tiny_models  # noqa: F401 - pytest fixture
from support import metrics, prompt_file, sleepy, task_set, write

from grader import cli

READS_MODEL = sleepy(0.002).replace("def load_pipeline():\n    return Pipe()", '''def load_pipeline():
    import json, os
    from safetensors.numpy import load_file

    root = os.environ["GRADER_MODEL_DIR"]
    index = json.load(open(os.path.join(root, "model_index.json")))
    for part in ("unet", "vae", "text_encoder"):
        assert part in index, part
        for name in os.listdir(os.path.join(root, part)):
            if name.endswith(".safetensors"):
                assert load_file(os.path.join(root, part, name)), name
    if os.path.islink(os.path.join(root, "unet", "config.json")):
        assert "/snapshots/" in root, root
    return Pipe()''')
assert "safetensors.numpy" in READS_MODEL

SANDBOXES = [pytest.param("bwrap", marks=bwrap_marks(), id="bwrap"),
             pytest.param("docker", marks=pytest.mark.docker, id="docker")]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only a root grader's sandbox runs as another uid (10001)")


@pytest.fixture
def one_task(tmp_path, tiny_models):  # noqa: F811 - the fixture
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": "1", "gt": READS_MODEL}])
    for name, text in (("1_baseline.py", READS_MODEL), ("1_experiment.py", READS_MODEL), ("1_metrics.json", metrics())):
        write(tmp_path / "sub" / name, text)
    model = tmp_path / "models" / "SD1.5"
    shutil.copytree(tiny_models / "SD1.5", model)
    return tmp_path, tasks, model


def grade_args(tmp_path, tasks, model_dir, sandbox) -> list[str]:
    return ["grade", str(tmp_path / "sub"), "--tasks", str(tasks), "--model-dir", str(model_dir),
            "--out", str(tmp_path / "run"), "--sandbox", sandbox, "--seed", "5",
            "--prompts", str(prompt_file(tmp_path / "prompts.txt")), "--batch-size", "2", "--warmup-batches", "1",
            "--min-batches", "3", "--max-batches", "3", "--quality-batches", "1", "--target-ci", "0.5"]


def to_snapshot(model, cache):
    root = cache / "models--org--tiny-sd"
    snap = root / "snapshots" / "5f3c0de"
    (root / "blobs").mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("5f3c0de")
    for i, path in enumerate(sorted(p for p in model.rglob("*") if p.is_file())):
        link = snap / path.relative_to(model)
        link.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / "blobs" / f"{i:04x}")
        link.symlink_to(os.path.relpath(root / "blobs" / f"{i:04x}", link.parent))
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return snap


@as_root
@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_owner_only_weights_are_refused_up_front_with_the_chmod_line(one_task, sandbox, capsys):
    tmp_path, tasks, model = one_task
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.chmod(0o600)                                   # as save_pretrained writes it
    assert cli.main(grade_args(tmp_path, tasks, model.parent, sandbox)) == 2
    err = capsys.readouterr().err
    assert f"{weights}: this file (mode 600" in err and "uid 10001" in err
    assert f"fix: chmod -R a+rX {model}" in err
    assert not (tmp_path / "run" / "tasks").exists()      # nothing was graded
    validate = ["validate", str(tmp_path / "sub"), "--tasks", str(tasks), "--model-dir", str(model.parent),
                "--sandbox", sandbox]
    assert cli.main(validate) == 2 and f"chmod -R a+rX {model}" in capsys.readouterr().err
    os.system(f"chmod -R a+rX {model}")                    # the printed fix, as a user would run it
    assert cli.main(validate) == 0


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_a_hugging_face_cache_snapshot_grades_ok(one_task, sandbox, capsys):
    tmp_path, tasks, model = one_task
    snap = to_snapshot(model, tmp_path / "hub")
    assert (snap / "unet" / "diffusion_pytorch_model.safetensors").is_symlink()
    code = cli.main(grade_args(tmp_path, tasks, snap, sandbox))
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    task = report["tasks"][0]
    assert code == 0 and task["status"] == "ok", (task.get("message"), task.get("variants", {}).get("gt", {}).get("stderr_tail"))
    assert report["provenance"]["options"]["sandbox"] == sandbox


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_truncated_weights_are_a_clear_error_naming_the_file(one_task, sandbox, capsys):
    tmp_path, tasks, model = one_task
    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])      # an interrupted download
    assert cli.main(grade_args(tmp_path, tasks, model.parent, sandbox)) == 2
    err = capsys.readouterr().err
    assert f"{weights}: is truncated: tensor" in err and "re-download or re-save" in err
    assert not (tmp_path / "run" / "tasks").exists()
