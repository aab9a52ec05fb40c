"""Unit tests for grader.taskset.manifest: errors name the file, the entry and the field, and
one broken entry does not sink the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import task_set, write

from grader.errors import ManifestError
from grader.taskset.manifest import MANIFEST_RELPATH, InvalidEntry, TaskKey, TaskSet

GT = "def load_pipeline():\n    return None\n"


def three(root: Path) -> Path:
    return task_set(root, [{"prompt_id": pid, "gt": GT} for pid in ("1", "2", "3")])


def edit(root: Path, change) -> Path:
    """Apply ``change(entries)`` to the manifest's JSON in place."""
    path = root / MANIFEST_RELPATH
    entries = json.loads(path.read_text(encoding="utf-8"))
    change(entries)
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")
    return path


def only_invalid(root: Path) -> InvalidEntry:
    """Load; the two untouched entries load, the edited one is the single InvalidEntry."""
    loaded = TaskSet.from_dir(root)
    assert len(loaded.tasks) == 2, loaded
    assert len(loaded.invalid) == 1, loaded
    return loaded.invalid[0]


def test_a_valid_set_loads_every_entry(tmp_path):
    root = three(tmp_path)
    loaded = TaskSet.from_dir(root)
    assert loaded.invalid == ()
    assert [t.prompt_id for t in loaded.tasks] == ["1", "2", "3"]
    first = loaded.tasks[0]
    assert first.task_key == TaskKey("SD1.5", "DDIM", 10) and str(first.task_key) == "SD1.5_DDIM_10"
    assert first.gt_path == (root / "gt_code" / "1.py").resolve()
    assert (first.experiment_name, first.baseline_name, first.metrics_name) == (
        "1_experiment.py", "1_baseline.py", "1_metrics.json")


# ----------------------------------------------------------------------------- whole-file errors


def test_missing_manifest_names_the_file(tmp_path):
    with pytest.raises(ManifestError) as info:
        TaskSet.from_dir(tmp_path)
    assert info.value.file == str(tmp_path / MANIFEST_RELPATH)
    assert str(info.value).startswith(str(tmp_path / MANIFEST_RELPATH))
    assert "manifest not found" in str(info.value)


def test_invalid_json_names_the_file(tmp_path):
    path = write(tmp_path / MANIFEST_RELPATH, "[{\"prompt_id\": ")
    with pytest.raises(ManifestError, match="cannot read manifest as JSON") as info:
        TaskSet.from_dir(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("document", [{"prompt_id": "1"}, [], "tasks", 3])
def test_not_a_list_or_empty_list(tmp_path, document):
    path = write(tmp_path / MANIFEST_RELPATH, json.dumps(document))
    with pytest.raises(ManifestError, match="expected a non-empty JSON list") as info:
        TaskSet.from_dir(tmp_path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- entry errors


def test_a_field_of_the_wrong_type(tmp_path):
    path = edit(three(tmp_path), lambda e: e[1].update(speedup="fast"))
    bad = only_invalid(tmp_path)
    assert bad.prompt_id == "2"
    assert bad.message.startswith(f"{path}: entry #1 (prompt_id 2): field 'speedup': ")
    assert "'fast' is not of type 'number'" in bad.message


def test_a_prompt_id_of_the_wrong_type_is_still_labelled(tmp_path):
    edit(three(tmp_path), lambda e: e[0].update(prompt_id=7))
    bad = only_invalid(tmp_path)
    assert bad.prompt_id == "7"
    assert ": entry #0: field 'prompt_id': " in bad.message


def test_an_unknown_field(tmp_path):
    path = edit(three(tmp_path), lambda e: e[2].update(colour="blue"))
    bad = only_invalid(tmp_path)
    assert bad.prompt_id == "3"
    assert bad.message.startswith(f"{path}: entry #2 (prompt_id 3): ")
    assert "'colour' was unexpected" in bad.message


def test_a_missing_field(tmp_path):
    edit(three(tmp_path), lambda e: e[0].pop("category"))
    bad = only_invalid(tmp_path)
    assert "entry #0 (prompt_id 1)" in bad.message and "'category' is a required property" in bad.message


@pytest.mark.parametrize("key", ["SD15", "SD1.5_DDIM", "SD1.5_DDIM_fast", "SD1.5 DDIM 50"])
def test_a_bad_task_key(tmp_path, key):
    edit(three(tmp_path), lambda e: e[0].update(task_key=key))
    bad = only_invalid(tmp_path)
    assert "entry #0 (prompt_id 1): field 'task_key'" in bad.message
    assert repr(key) in bad.message


def test_task_key_parse():
    assert TaskKey.parse("SD2.1_DPM++_25") == TaskKey("SD2.1", "DPM++", 25)
    with pytest.raises(ValueError, match="MODEL_SAMPLER_STEPS"):
        TaskKey.parse("SD1.5_50")


@pytest.mark.parametrize("field", ["path_to_gen_code", "path_to_gen_code_baseline", "path_to_metrics"])
def test_a_submission_path_field_with_a_slash(tmp_path, field):
    edit(three(tmp_path), lambda e: e[1].update({field: f"sub/{e[1][field]}"}))
    bad = only_invalid(tmp_path)
    assert f"entry #1 (prompt_id 2): field '{field}': expected a bare file name, got 'sub/" in bad.message


def test_a_gt_path_in_a_subfolder_of_gt_code_is_allowed(tmp_path):
    root = three(tmp_path)
    write(root / "gt_code" / "sub" / "1.py", GT)
    edit(root, lambda e: e[0].update(path_to_gt_code="sub/1.py"))
    loaded = TaskSet.from_dir(root)
    assert loaded.invalid == () and loaded.tasks[0].gt_path == (root / "gt_code" / "sub" / "1.py").resolve()


@pytest.mark.parametrize("value", ["../outside.py", "sub/../../outside.py", "/etc/passwd", "a\\b.py"])
def test_a_gt_path_escaping_by_name(tmp_path, value):
    root = three(tmp_path / "tasks")
    write(tmp_path / "tasks" / "outside.py", GT)
    edit(root, lambda e: e[0].update(path_to_gt_code=value))
    bad = only_invalid(root)
    assert "entry #0 (prompt_id 1): field 'path_to_gt_code'" in bad.message


def test_a_gt_path_escaping_through_a_symlink(tmp_path):
    root = three(tmp_path / "tasks")
    outside = write(tmp_path / "elsewhere.py", GT)
    (root / "gt_code" / "1.py").unlink()
    (root / "gt_code" / "1.py").symlink_to(outside)
    bad = only_invalid(root)
    assert "entry #0 (prompt_id 1): field 'path_to_gt_code'" in bad.message
    assert "resolves outside" in bad.message


def test_a_missing_gt_file(tmp_path):
    root = three(tmp_path)
    (root / "gt_code" / "3.py").unlink()
    bad = only_invalid(root)
    assert bad.prompt_id == "3"
    assert "entry #2 (prompt_id 3): field 'path_to_gt_code'" in bad.message
    assert f"GT file {root / 'gt_code' / '3.py'} does not exist" in bad.message


def test_a_gt_path_that_is_a_folder(tmp_path):
    root = three(tmp_path)
    (root / "gt_code" / "2.py").unlink()
    (root / "gt_code" / "2.py").mkdir()
    assert "does not exist" in only_invalid(root).message


def test_duplicate_prompt_id(tmp_path):
    path = edit(three(tmp_path), lambda e: e[2].update(prompt_id="1", path_to_gt_code="1.py"))
    loaded = TaskSet.from_dir(tmp_path)
    assert [t.prompt_id for t in loaded.tasks] == ["1", "2"]  # the first one wins
    (bad,) = loaded.invalid
    assert bad.prompt_id == "invalid-2"   # its own entry, never under the id the first one holds
    assert bad.message == f"{path}: entry #2 (prompt_id 1): field 'prompt_id': duplicate prompt_id '1'"


def test_an_entry_that_is_not_an_object(tmp_path):
    edit(three(tmp_path), lambda e: e.insert(1, ["not", "an", "entry"]))
    loaded = TaskSet.from_dir(tmp_path)
    assert [t.prompt_id for t in loaded.tasks] == ["1", "2", "3"]
    (bad,) = loaded.invalid
    assert bad.prompt_id == "invalid-1" and ": entry #1: " in bad.message


def test_many_broken_entries_each_reported(tmp_path):
    root = three(tmp_path)
    edit(root, lambda e: (e[0].update(speedup=-1), e[2].update(difficulty="extreme")))
    loaded = TaskSet.from_dir(root)
    assert [t.prompt_id for t in loaded.tasks] == ["2"]
    assert [(i.prompt_id, "field 'speedup'" in i.message, "field 'difficulty'" in i.message) for i in loaded.invalid] == [
        ("1", True, False), ("3", False, True)]


# ----------------------------------------------------------------------------- select


def test_select_keeps_named_tasks_and_invalid_entries(tmp_path):
    root = three(tmp_path)
    edit(root, lambda e: e[2].update(speedup="x"))
    loaded = TaskSet.from_dir(root)
    assert loaded.select(None) is loaded and loaded.select(set()) is loaded
    picked = loaded.select({"1", "3"})
    assert [t.prompt_id for t in picked.tasks] == ["1"]
    assert [i.prompt_id for i in picked.invalid] == ["3"]
    assert picked.root == loaded.root


def test_select_with_unknown_ids_names_them(tmp_path):
    loaded = TaskSet.from_dir(three(tmp_path))
    with pytest.raises(ManifestError, match=r"--only names unknown prompt_id\(s\): 4, 9") as info:
        loaded.select({"1", "9", "4"})
    assert info.value.file == str(tmp_path / MANIFEST_RELPATH)


@pytest.mark.parametrize(("value", "expected"), [
    ("sub/1.py", "expected a bare file name"),
    ("../gt_code/1.py", "path_to_reference_code"),
    ("absent.py", "is not a regular file"),
])
def test_a_named_reference_must_be_a_file_in_reference_code(tmp_path, value, expected):
    root = three(tmp_path)
    edit(root, lambda entries: entries[1].update(path_to_reference_code=value))
    invalid = only_invalid(root)
    assert invalid.prompt_id == "2" and "path_to_reference_code" in invalid.message and expected in invalid.message


def test_a_named_reference_is_carried_on_the_entry(tmp_path):
    root = three(tmp_path)
    write(root / "reference_code" / "plain.py", GT)
    edit(root, lambda entries: entries[0].update(path_to_reference_code="plain.py"))
    assert TaskSet.from_dir(root).tasks[0].reference_name == "plain.py"
