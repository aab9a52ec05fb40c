"""Model-folder checks (grader.taskset.models) on hand-made folders: no torch, no sandbox.

What a sandboxed worker could not read or load is named with its file and its fix: owner-only
files for another uid, links that leave the mounted root, absolute or broken links, a missing
index, component, config, weights file or shard, and safetensors files that are truncated or
malformed. A Hugging Face cache snapshot mounts its ``models--org--name`` root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from grader import cli
from grader.errors import ConfigError
from grader.taskset import models

READER = (10001, 10001)


def safetensors_bytes(tensors: dict[str, int]) -> bytes:
    """A valid safetensors file: F32 tensors of the given element counts, zeros."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, n in tensors.items():
        header[name] = {"dtype": "F32", "shape": [n], "data_offsets": [offset, offset + 4 * n]}
        offset += 4 * n
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + b"\0" * offset


def pipeline(root: Path) -> Path:
    """A diffusers-shaped folder: an index, a scheduler (config only) and a UNet (config and weights)."""
    (root / "unet").mkdir(parents=True)
    (root / "scheduler").mkdir()
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"], "safety_checker": [None, None]}))
    (root / "scheduler" / "scheduler_config.json").write_text("{}")
    (root / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    (root / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(safetensors_bytes({"a": 8, "b": 4}))
    return root


def snapshot(src: Path, cache: Path, rev: str = "0123abcd") -> Path:
    """``src`` laid out as a Hugging Face cache: every file a relative link into ../../blobs/."""
    root = cache / "models--org--tiny"
    snap = root / "snapshots" / rev
    (root / "blobs").mkdir(parents=True)
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir():
            (snap / rel).mkdir(parents=True, exist_ok=True)
            continue
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        blob = root / "blobs" / f"blob{len(list((root / 'blobs').iterdir()))}"
        blob.write_bytes(path.read_bytes())
        (snap / rel).symlink_to(os.path.relpath(blob, (snap / rel).parent))
    return snap


def messages(found) -> list[str]:
    return [f"{p.path}: {p.message} | {p.fix}" for p in found]


def test_a_complete_folder_has_no_problem_for_anyone(tmp_path):
    folder = pipeline(tmp_path / "SD1.5")
    assert models.problems(folder) == [] and models.problems(folder, reader=READER) == []
    assert models.mount_for(folder) == models.ModelMount(folder)


def test_owner_only_weights_are_named_with_the_chmod_that_fixes_them(tmp_path):
    folder = pipeline(tmp_path / "SD1.5")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.chmod(0o600)
    found = models.problems(folder, reader=READER)
    assert [p.path for p in found] == [weights]
    assert "mode 600" in found[0].message and "uid 10001" in found[0].message
    assert found[0].fix == f"chmod -R a+rX {folder}"
    assert models.problems(folder) == []                               # local: the grader's own uid reads it
    st = weights.stat()
    assert models.problems(folder, reader=(st.st_uid, st.st_gid)) == []  # the sandbox runs as the owner


def test_an_owner_only_folder_is_named(tmp_path):
    folder = pipeline(tmp_path / "SD1.5")
    (folder / "unet").chmod(0o700)
    found = models.problems(folder, reader=READER)
    assert found and found[0].path == folder / "unet" and "folder (mode 700" in found[0].message


def test_a_snapshot_mounts_its_repo_root_and_its_links_resolve_inside_it(tmp_path):
    snap = snapshot(pipeline(tmp_path / "src"), tmp_path / "hub")
    assert (snap / "unet" / "config.json").is_symlink()
    mount = models.mount_for(snap)
    assert mount.root == tmp_path / "hub" / "models--org--tiny" and mount.inner == "snapshots/0123abcd"
    assert mount.inside("/mnt/model") == "/mnt/model/snapshots/0123abcd"
    assert models.problems(snap, reader=READER) == []


def test_a_snapshot_blob_readable_by_its_owner_only_is_named_by_its_link(tmp_path):
    snap = snapshot(pipeline(tmp_path / "src"), tmp_path / "hub")
    link = snap / "unet" / "diffusion_pytorch_model.safetensors"
    Path(os.path.realpath(link)).chmod(0o600)
    found = models.problems(snap, reader=READER)
    assert [p.path for p in found] == [link]
    assert found[0].fix == f"chmod -R a+rX {tmp_path / 'hub' / 'models--org--tiny'}"


def test_links_leaving_the_root_absolute_or_broken_are_refused(tmp_path):
    folder = pipeline(tmp_path / "SD1.5")
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(safetensors_bytes({"x": 2}))
    (folder / "unet" / "escape.safetensors").symlink_to(os.path.relpath(outside, folder / "unet"))
    (folder / "unet" / "absolute.safetensors").symlink_to(folder / "unet" / "diffusion_pytorch_model.safetensors")
    (folder / "unet" / "broken.safetensors").symlink_to("nothing-here.safetensors")
    found = {p.path.name: p.message for p in models.problems(folder)}
    assert "links outside" in found["escape.safetensors"]
    assert "absolute link" in found["absolute.safetensors"]
    assert "broken link" in found["broken.safetensors"]


@pytest.mark.parametrize("cut, says", [
    (lambda raw: raw[:-5], "is truncated: tensor 'b' ends at byte 48 of the data but the file holds only 43"),
    (lambda raw: raw[:5], "not even the 8-byte header length"),
    (lambda raw: raw[:40], "header length says"),
    (lambda raw: (7).to_bytes(8, "little") + b"not{json", "header that is not JSON"),
    (lambda raw: (2).to_bytes(8, "little") + b"[]", "header that is not a JSON object"),
    (lambda raw: _with_header({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}), "malformed header entry"),
])
def test_truncated_or_malformed_safetensors_are_named(tmp_path, cut, says):
    folder = pipeline(tmp_path / "SD1.5")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(cut(weights.read_bytes()))
    found = models.problems(folder)
    assert [p.path for p in found] == [weights] and says in found[0].message, messages(found)


def _with_header(header: dict) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw


def test_missing_index_component_config_weights_and_shard_are_named(tmp_path):
    assert "model_index.json: is missing" in messages(models.problems(tmp_path))[0].replace(str(tmp_path) + "/", "")
    folder = pipeline(tmp_path / "a")
    (folder / "scheduler" / "scheduler_config.json").unlink()
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "vae": ["diffusers", "AutoencoderKL"]}))
    found = {p.path: p.message for p in models.problems(folder)}
    assert "holds no config" in found[folder / "scheduler"]
    assert "holds no weights file" in found[folder / "unet"]
    assert "lists component 'vae'" in found[folder / "vae"]

    sharded = pipeline(tmp_path / "b")
    (sharded / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "diffusion_pytorch_model.safetensors", "b": "diffusion_pytorch_model-00002.safetensors"}}))
    found = models.problems(sharded)
    assert [p.path.name for p in found] == ["diffusion_pytorch_model-00002.safetensors"]
    assert "names this shard" in found[0].message


def test_a_clip_folder_needs_its_config_and_weights(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    assert "config.json: is missing" in messages(models.problems(clip, "clip"))[0]
    (clip / "config.json").write_text(json.dumps({"architectures": ["CLIPModel"]}))
    assert "holds no weights file" in models.problems(clip, "clip")[0].message
    (clip / "model.safetensors").write_bytes(safetensors_bytes({"w": 3}))
    assert models.problems(clip, "clip") == []


def test_require_inputs_checks_the_tasks_models_and_the_clip_folder(tmp_path):
    pipeline(tmp_path / "models" / "SD1.5")
    (tmp_path / "models" / "SD1.5" / "unet" / "diffusion_pytorch_model.safetensors").chmod(0o600)
    models.require_inputs(tmp_path / "models", {"SDXL"}, None, READER)       # no folder: left to its tasks
    with pytest.raises(ConfigError) as err:
        models.require_inputs(tmp_path / "models", {"SD1.5", "SDXL"}, None, READER)
    text = str(err.value)
    assert text.startswith(f"--model-dir {tmp_path / 'models' / 'SD1.5'}: 1 problem(s)")
    assert "diffusion_pytorch_model.safetensors" in text and f"fix: chmod -R a+rX {tmp_path / 'models' / 'SD1.5'}" in text
    with pytest.raises(ConfigError, match="(?s)--clip-model .*is not a folder"):
        models.require_inputs(None, set(), tmp_path / "no-clip", None)


def test_validate_refuses_a_truncated_model_with_exit_2(tmp_path, capsys):
    from support import metrics, sleepy, task_set, write

    tasks = task_set(tmp_path / "tasks", [{"prompt_id": "1", "gt": sleepy()}])
    for name, text in (("1_baseline.py", sleepy()), ("1_experiment.py", sleepy()), ("1_metrics.json", metrics())):
        write(tmp_path / "sub" / name, text)
    folder = pipeline(tmp_path / "models" / "SD1.5")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    args = ["validate", str(tmp_path / "sub"), "--tasks", str(tasks), "--model-dir", str(tmp_path / "models")]
    assert cli.main(args + ["--sandbox", "local"]) == 0
    weights.write_bytes(weights.read_bytes()[:-1])
    assert cli.main(args + ["--sandbox", "local"]) == 2
    err = capsys.readouterr().err
    assert f"{weights}: is truncated" in err and "re-download or re-save" in err


def test_doctor_exits_2_on_a_truncated_model(tmp_path, capsys):
    folder = pipeline(tmp_path / "models" / "SD1.5")
    clip = tmp_path / "models" / "clip"
    clip.mkdir()
    (clip / "config.json").write_text("{}")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    assert cli.main(["doctor", "--device", "cpu", "--model-dir", str(tmp_path / "models")]) == 2
    out = capsys.readouterr().out
    assert "FAIL  model folder" in out and f"{weights}: is truncated" in out


def test_an_owner_only_clip_folder_is_fine_it_is_read_by_the_grader(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    (clip / "config.json").write_text(json.dumps({"architectures": ["CLIPModel"]}))
    (clip / "model.safetensors").write_bytes(safetensors_bytes({"w": 3}))
    (clip / "model.safetensors").chmod(0o600)
    models.require_inputs(None, set(), clip, READER)
    (clip / "model.safetensors").write_bytes(safetensors_bytes({"w": 3})[:-1])
    with pytest.raises(ConfigError, match="model.safetensors: is truncated"):
        models.require_inputs(None, set(), clip, READER)
