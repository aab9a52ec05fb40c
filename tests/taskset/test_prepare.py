"""Tests for ``grader prepare`` (grader/taskset/prepare*.py, grader/commands/prepare.py)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from grader import cli, files
from grader.errors import ConfigError, SchemaViolation
from grader.taskset import prepare as lib
from grader.taskset.manifest import MANIFEST_RELPATH, MAPPING_RELPATH, TaskSet
from grader.taskset.prepare import (
    PrepareConfig,
    difficulty_for,
    parse_filename,
    plan,
    prepare,
)

PATTERN = lib.compile_pattern(lib.DEFAULT_PATTERN)


# ----------------------------------------------------------------------------- helpers


def make_source(folder: Path, names: list[str], shuffle_seed: int | None = None) -> Path:
    """Create GT files whose content names the file (so copies can be checked)."""
    folder.mkdir(parents=True, exist_ok=True)
    order = list(names)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    for name in order:
        (folder / name).write_text(f"# GT {name}\ndef load_pipeline():\n    return None\n", encoding="utf-8")
    return folder


def cfg(src: Path, out: Path, **kw) -> PrepareConfig:
    return PrepareConfig(source_dir=src, out_dir=out, **kw)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def stats(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def manifest(out: Path) -> list[dict]:
    return json.loads((out / MANIFEST_RELPATH).read_text(encoding="utf-8"))


def mapping(out: Path) -> dict:
    return json.loads((out / MAPPING_RELPATH).read_text(encoding="utf-8"))


THREE = ["SD1.5_DDIM_50_deepcache_i3_2.15x.py", "SD1.5_DDIM_50_tome_1.30x.py", "SD1.5_DDIM_50_fp16_1.10x.py"]


# ----------------------------------------------------------------------------- grammar


def test_default_grammar_parses_the_documented_examples():
    a = parse_filename("SD1.5_DDIM_50_deepcache_i3_2.15x.py", PATTERN)
    assert (a.model, a.sampler, a.steps, a.description, a.speedup, a.speedup_text) == ("SD1.5", "DDIM", 50, "deepcache_i3", 2.15, "2.15")
    assert a.task_key == "SD1.5_DDIM_50"
    b = parse_filename("SDXL_Euler_30_tome-r0.5+fp16_1.42x.py", PATTERN)
    assert (b.model, b.sampler, b.steps, b.description, b.speedup) == ("SDXL", "Euler", 30, "tome-r0.5+fp16", 1.42)
    c = parse_filename("SD2.1_DPM++_25_3x.py", PATTERN)  # free text is optional; integer speedup
    assert (c.task_key, c.description, c.speedup) == ("SD2.1_DPM++_25", "", 3.0)
    d = parse_filename("SD1.5_DDIM_50_cache_2.0x_then_fp16_2.5x.py", PATTERN)  # the last speedup counts
    assert (d.description, d.speedup) == ("cache_2.0x_then_fp16", 2.5)


@pytest.mark.parametrize("name, reason", [
    ("helper.py", "speedup"),
    ("SD1.5_DDIM_50_deepcache.py", "speedup"),
    ("SD1.5_DDIM_50_deepcache_2.15.py", "speedup"),          # no x
    ("SD1.5_DDIM_50_deepcache_2.15X.py", "speedup"),         # upper-case X
    ("SD1.5_DDIM_fast_deepcache_2.15x.py", "MODEL_SAMPLER_STEPS"),
    ("SD1.5 DDIM_50_x_2.15x.py", "MODEL_SAMPLER_STEPS"),
    ("SD1.5_DDIM_50_deepcache_0x.py", "above 0"),
    ("SD1.5_DDIM_0_deepcache_2x.py", "positive integer"),
])
def test_unparseable_names_carry_a_reason(name, reason):
    outcome = parse_filename(name, PATTERN)
    assert isinstance(outcome, lib.SkippedFile)
    assert reason in outcome.reason


def test_custom_pattern_and_its_checks():
    pattern = lib.compile_pattern(r"(?P<speedup>[0-9.]+)x-(?P<model>\w+?)-(?P<sampler>\w+?)-(?P<steps>\d+)\.py")
    ok = parse_filename("2.5x-SD15-DDIM-20.py", pattern)
    assert (ok.task_key, ok.speedup, ok.description) == ("SD15_DDIM_20", 2.5, "")
    bad = parse_filename("2.5x-SD_15-DDIM-20.py", pattern)  # underscore would break task_key
    assert isinstance(bad, lib.SkippedFile) and "model" in bad.reason
    assert "does not match --pattern" in parse_filename("nope.py", pattern).reason
    assert "not a number" in parse_filename("1.2.3x-a-b-20.py", pattern).reason
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        lib.compile_pattern("(?P<model>")
    with pytest.raises(ConfigError, match="speedup"):
        lib.compile_pattern(r"(?P<model>a)_(?P<sampler>b)_(?P<steps>1)")


def test_config_rejects_bad_values(tmp_path):
    for kw in ({"per_task": 0}, {"start_id": -1}, {"category": " "}, {"pattern": "(?P<model>x)"}, {"per_task": True}):
        with pytest.raises(ConfigError):
            cfg(tmp_path, tmp_path / "out", **kw)


# ----------------------------------------------------------------------------- ordering


def test_three_level_ordering_ids_and_difficulty(tmp_path):
    names = [
        "SDXL_Euler_30_a_1.50x.py", "SDXL_Euler_30_b_1.20x.py", "SDXL_Euler_30_c_1.90x.py",
        # a tie on speedup is broken by filename: "alpha" < "beta"
        "SD1.5_DDIM_50_beta_1.30x.py", "SD1.5_DDIM_50_alpha_1.30x.py", "SD1.5_DDIM_50_gamma_1.1x.py",
        "SD1.5_DDIM_50_delta_9.0x.py",  # fourth by speedup: unused
        # task keys sort as strings: "SD1.5_DDIM_100" < "SD1.5_DDIM_50" < "SDXL_..."
        "SD1.5_DDIM_100_x_3.0x.py", "SD1.5_DDIM_100_y_2.0x.py", "SD1.5_DDIM_100_z_1.0x.py",
    ]
    src = make_source(tmp_path / "src", names, shuffle_seed=7)
    out = tmp_path / "tasks"
    result = prepare(cfg(src, out, start_id=100))
    got = [(e["prompt_id"], e["task_key"], e["difficulty"], e["original_filename"]) for e in manifest(out)]
    assert got == [
        ("100", "SD1.5_DDIM_100", "easy", "SD1.5_DDIM_100_z_1.0x.py"),
        ("101", "SD1.5_DDIM_100", "medium", "SD1.5_DDIM_100_y_2.0x.py"),
        ("102", "SD1.5_DDIM_100", "hard", "SD1.5_DDIM_100_x_3.0x.py"),
        ("103", "SD1.5_DDIM_50", "easy", "SD1.5_DDIM_50_gamma_1.1x.py"),
        ("104", "SD1.5_DDIM_50", "medium", "SD1.5_DDIM_50_alpha_1.30x.py"),
        ("105", "SD1.5_DDIM_50", "hard", "SD1.5_DDIM_50_beta_1.30x.py"),
        ("106", "SDXL_Euler_30", "easy", "SDXL_Euler_30_b_1.20x.py"),
        ("107", "SDXL_Euler_30", "medium", "SDXL_Euler_30_a_1.50x.py"),
        ("108", "SDXL_Euler_30", "hard", "SDXL_Euler_30_c_1.90x.py"),
    ]
    assert [u.filename for u in result.unused] == ["SD1.5_DDIM_50_delta_9.0x.py"]
    assert mapping(out) == {row[3]: row[0] for row in got}
    assert list(mapping(out)) == [row[3] for row in got]  # mapping in id order
    for pid, _, _, original in got:  # GT copied byte for byte
        assert (out / "gt_code" / f"{pid}.py").read_bytes() == (src / original).read_bytes()


def test_manifest_entries_have_fixed_fields_and_names(tmp_path):
    src = make_source(tmp_path / "src", THREE)
    out = tmp_path / "tasks"
    prepare(cfg(src, out, category="cat4"))
    entry = manifest(out)[0]
    assert list(entry) == [
        "original_filename", "prompt_id", "task_key", "speedup", "category", "difficulty", "prompt_context",
        "path_to_gt_code", "path_to_gen_code", "path_to_gen_code_baseline", "path_to_metrics",
    ]
    assert entry == {**entry, "original_filename": "SD1.5_DDIM_50_fp16_1.10x.py", "prompt_id": "1", "speedup": 1.1,
                     "category": "cat4", "path_to_gt_code": "1.py", "path_to_gen_code": "1_experiment.py",
                     "path_to_gen_code_baseline": "1_baseline.py", "path_to_metrics": "1_metrics.json"}
    assert entry["prompt_context"].startswith("SD1.5_DDIM_50 by applying the following optimizations: fp16")
    text = (out / MANIFEST_RELPATH).read_text(encoding="utf-8")
    assert text.endswith("]\n") and text.startswith("[\n  {\n    \"original_filename\"")
    loaded = TaskSet.from_dir(out)  # the grader's own loader accepts it
    assert not loaded.invalid and [t.prompt_id for t in loaded.tasks] == ["1", "2", "3"]


@pytest.mark.parametrize("per_task, expected", [
    (1, ["easy"]),
    (2, ["easy", "medium"]),
    (3, ["easy", "medium", "hard"]),
    (4, ["easy", "easy", "medium", "hard"]),
    (6, ["easy", "easy", "medium", "medium", "hard", "hard"]),
])
def test_difficulty_by_thirds(per_task, expected):
    assert [difficulty_for(i, per_task) for i in range(per_task)] == expected


def test_per_task_other_than_three(tmp_path):
    names = [f"SD1.5_DDIM_50_v{i}_{i}.0x.py" for i in range(1, 5)] + ["SDXL_Euler_30_a_1x.py"]
    src = make_source(tmp_path / "src", names)
    result = prepare(cfg(src, tmp_path / "t2", per_task=2))
    assert [(t.source.filename, t.difficulty) for t in result.tasks] == [
        ("SD1.5_DDIM_50_v1_1.0x.py", "easy"), ("SD1.5_DDIM_50_v2_2.0x.py", "medium")]
    assert [g.task_key for g in result.short_groups] == ["SDXL_Euler_30"]
    result = prepare(cfg(src, tmp_path / "t1", per_task=1))
    assert [(t.prompt_id, t.source.filename, t.difficulty) for t in result.tasks] == [
        ("1", "SD1.5_DDIM_50_v1_1.0x.py", "easy"), ("2", "SDXL_Euler_30_a_1x.py", "easy")]


# ----------------------------------------------------------------------------- skips


def test_short_groups_and_unparseable_files_are_reported(tmp_path):
    names = THREE + ["SDXL_Euler_30_a_1.5x.py", "SDXL_Euler_30_b_1.6x.py", "helper.py", "SD1.5_DDIM_x_1x.py"]
    src = make_source(tmp_path / "src", names)
    (src / "README.md").write_text("notes")
    (src / "sub").mkdir()
    (src / ".hidden.py").write_text("")
    out = tmp_path / "tasks"
    result = prepare(cfg(src, out))
    assert result.written and result.exit_code == 0
    assert [t.source.filename for t in result.tasks] == sorted(THREE, key=lambda n: parse_filename(n, PATTERN).speedup)
    assert [(s.filename, bool(s.reason)) for s in result.skipped] == [("SD1.5_DDIM_x_1x.py", True), ("helper.py", True)]
    assert result.short_groups == (lib.ShortGroup("SDXL_Euler_30", ("SDXL_Euler_30_a_1.5x.py", "SDXL_Euler_30_b_1.6x.py"), 3),)
    assert [i.name for i in result.ignored] == [".hidden.py", "README.md", "sub"]
    assert "SDXL" not in json.dumps(manifest(out)) and "SDXL" not in json.dumps(mapping(out))
    text = lib.summary(result)
    for needle in ("helper.py", "SD1.5_DDIM_x_1x.py", "SDXL_Euler_30: 2 file(s)", "README.md"):
        assert needle in text


def test_strict_exits_1_and_writes_nothing(tmp_path, capsys):
    src = make_source(tmp_path / "src", THREE + ["helper.py"])
    out = tmp_path / "tasks"
    assert cli.main(["prepare", str(src), "--out", str(out), "--strict"]) == 1
    assert not out.exists()
    assert "helper.py" in capsys.readouterr().out
    # short group alone also fails strict
    src2 = make_source(tmp_path / "src2", THREE + ["SDXL_Euler_30_a_1.5x.py"])
    assert cli.main(["prepare", str(src2), "--out", str(out), "--strict"]) == 1
    assert not out.exists()
    # without skips strict passes; non-.py files do not count
    src3 = make_source(tmp_path / "src3", THREE)
    (src3 / "README.md").write_text("x")
    assert cli.main(["prepare", str(src3), "--out", str(out), "--strict"]) == 0
    assert len(manifest(out)) == 3


def test_json_output_lists_everything(tmp_path, capsys):
    src = make_source(tmp_path / "src", THREE + ["helper.py", "SDXL_Euler_30_a_1.5x.py"])
    out = tmp_path / "tasks"
    assert cli.main(["prepare", str(src), "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["written"] is True and doc["exit_code"] == 0
    assert [t["prompt_id"] for t in doc["tasks"]] == ["1", "2", "3"]
    assert doc["skipped_files"] == [{"filename": "helper.py", "reason": "name does not end in a speedup such as '_2.15x.py'"}]
    assert doc["short_groups"] == [{"task_key": "SDXL_Euler_30", "files": ["SDXL_Euler_30_a_1.5x.py"], "count": 1, "needed": 3}]
    assert doc["manifest"]["action"] == "create"
    # errors come out as JSON too, with exit code 2
    assert cli.main(["prepare", str(tmp_path / "missing"), "--out", str(out), "--json"]) == 2
    captured = capsys.readouterr()
    assert "does not exist" in json.loads(captured.out)["error"]


def test_nothing_to_prepare_is_an_error(tmp_path, capsys):
    src = make_source(tmp_path / "src", ["SDXL_Euler_30_a_1.5x.py", "junk.py"])
    with pytest.raises(ConfigError, match="no task key has at least 3"):
        prepare(cfg(src, tmp_path / "tasks"))
    assert cli.main(["prepare", str(src), "--out", str(tmp_path / "tasks")]) == 2
    assert not (tmp_path / "tasks").exists()
    assert cli.main(["prepare", str(src), "--out", str(tmp_path / "tasks"), "--dry-run"]) == 2


# ----------------------------------------------------------------------------- determinism, idempotence


def test_same_input_gives_byte_identical_output(tmp_path):
    names = THREE + ["SDXL_Euler_30_tome-r0.5+fp16_1.42x.py", "SDXL_Euler_30_b_1.1x.py", "SDXL_Euler_30_c_1.2x.py",
                     "SD1.5_DDIM_50_ünïcode_0.5x.py"]
    src_a = make_source(tmp_path / "a", names, shuffle_seed=1)
    src_b = make_source(tmp_path / "b", names, shuffle_seed=2)
    os.utime(src_b / names[0], (0, 0))  # timestamps must not matter
    prepare(cfg(src_a, tmp_path / "out_a"))
    prepare(cfg(src_b, tmp_path / "out_b"))
    assert tree(tmp_path / "out_a") == tree(tmp_path / "out_b")
    assert "ünïcode" in (tmp_path / "out_a" / MAPPING_RELPATH).read_text(encoding="utf-8")  # ensure_ascii=False


def test_rerun_changes_nothing(tmp_path):
    src = make_source(tmp_path / "src", THREE)
    out = tmp_path / "tasks"
    prepare(cfg(src, out))
    before_bytes, before_stats = tree(out), stats(out)
    again = prepare(cfg(src, out))
    assert again.written and again.conflicts == ()
    assert {t.gt_action for t in again.tasks} == {"unchanged"}
    assert again.manifest_action == again.mapping_action == "unchanged"
    assert tree(out) == before_bytes
    assert stats(out) == before_stats  # not even rewritten (same inode, same mtime)
    assert not [p for p in out.rglob("*.tmp")]


def test_outputs_are_readable_and_no_temp_files_remain(tmp_path):
    src = make_source(tmp_path / "src", THREE)
    os.chmod(src / THREE[0], 0o600)
    out = tmp_path / "tasks"
    prepare(cfg(src, out))
    for path in out.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o644, path
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "1.py", "2.py", "3.py", "SD1.5_DDIM_50.py", "dataset_manifest.json", "file_id_mapping.json"]


def test_a_reference_baseline_per_task_key_is_written_once_and_then_kept(tmp_path):
    """prepare writes reference_code/<TASK_KEY>.py from the template; an owner's edit survives re-running."""
    from grader.taskset import reference
    from grader.taskset.manifest import TaskSet

    src = make_source(tmp_path / "src", ["SD1.5_DDIM_50_a_1.2x.py", "SD1.5_DDIM_50_b_1.5x.py", "SD1.5_DDIM_50_c_2.0x.py"])
    out = tmp_path / "tasks"
    result = lib.prepare(cfg(src, out))
    ref = out / "reference_code" / "SD1.5_DDIM_50.py"
    assert result.references == {"SD1.5_DDIM_50": "written"}
    text = ref.read_text()
    assert 'SAMPLER = "DDIM"' in text and "STEPS = 50" in text and "DiffusionPipeline.from_pretrained" in text
    compile(text, str(ref), "exec")
    ref.write_text(text + "\n# owner's edit\n")
    again = lib.prepare(cfg(src, out))
    assert again.references == {"SD1.5_DDIM_50": "kept"} and ref.read_text().endswith("# owner's edit\n")
    task = TaskSet.from_dir(out).tasks[0]
    code = reference.for_task(out, task)
    assert code.origin == reference.TASK_SET and code.path == ref
    ref.unlink()
    assert reference.for_task(out, task).origin == reference.GRADER_DEFAULT


def test_an_owner_reference_template_is_used(tmp_path):
    src = make_source(tmp_path / "src", ["SD1.5_Euler_30_a_1.2x.py", "SD1.5_Euler_30_b_1.5x.py",
                                          "SD1.5_Euler_30_c_2.0x.py"])
    template = tmp_path / "ref.tmpl"
    template.write_text("# plain $model with $sampler for $steps steps ($task_key)\n")
    out = tmp_path / "tasks"
    lib.prepare(cfg(src, out, reference_template=template))
    assert (out / "reference_code" / "SD1.5_Euler_30.py").read_text() == "# plain SD1.5 with Euler for 30 steps (SD1.5_Euler_30)\n"


def test_atomic_write_cleans_up_on_failure(tmp_path, monkeypatch):
    """prepare writes through grader.files.atomic_write: a failed rename keeps the old bytes, leaves no temp file."""
    assert lib.atomic_write is files.atomic_write  # the writer prepare calls is the shared one
    target = tmp_path / "d" / "f.json"
    files.atomic_write(target, b"old\n")

    def boom(a, b):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError):
        files.atomic_write(target, b"new\n")
    assert target.read_bytes() == b"old\n"
    assert os.listdir(target.parent) == ["f.json"]


def test_failed_write_during_prepare_leaves_no_file(tmp_path, monkeypatch):
    src = make_source(tmp_path / "src", THREE)
    out = tmp_path / "tasks"

    def boom(a, b):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(ConfigError, match="cannot write task set .*disk full"):
        prepare(cfg(src, out))
    assert [p for p in out.rglob("*") if not p.is_dir()] == []  # no GT file, no manifest, no temp file
    monkeypatch.undo()
    assert prepare(cfg(src, out)).written and len(manifest(out)) == 3


# ----------------------------------------------------------------------------- refusal to clobber


def test_refuses_to_overwrite_a_differing_gt_file(tmp_path, capsys):
    src = make_source(tmp_path / "src", THREE)
    out = tmp_path / "tasks"
    prepare(cfg(src, out))
    (src / "SD1.5_DDIM_50_tome_1.30x.py").write_text("# edited reference\n")
    before = tree(out)
    with pytest.raises(ConfigError, match=r"gt_differs: .*2\.py differs from SD1.5_DDIM_50_tome_1.30x.py"):
        prepare(cfg(src, out))
    assert tree(out) == before
    assert cli.main(["prepare", str(src), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert tree(out) == before
    forced = prepare(cfg(src, out, force=True))
    assert [t.gt_action for t in forced.tasks] == ["unchanged", "replace", "unchanged"]
    assert (out / "gt_code" / "2.py").read_text() == "# edited reference\n"
    assert forced.manifest_action == "unchanged"


def test_refuses_to_renumber_existing_tasks(tmp_path):
    src = make_source(tmp_path / "src", THREE)
    out = tmp_path / "tasks"
    prepare(cfg(src, out))
    # a new key that sorts first would shift every id by 3
    make_source(src, ["SD1.5_DDIM_100_a_1x.py", "SD1.5_DDIM_100_b_2x.py", "SD1.5_DDIM_100_c_3x.py"])
    result = prepare(cfg(src, out, dry_run=True))
    kinds = sorted({c.kind for c in result.conflicts})
    assert kinds == ["gt_differs", "renumbered"] and result.exit_code == 2
    assert any("SD1.5_DDIM_50_fp16_1.10x.py has prompt_id 1 in the existing task set and would get 4" in c.message
               for c in result.conflicts)
    with pytest.raises(ConfigError, match="renumbered"):
        prepare(cfg(src, out))
    # renumbering is caught even when the moved GT files happen to be identical
    (tmp_path / "same").mkdir()
    same = make_source(tmp_path / "same", ["SD1.5_DDIM_50_a_1x.py", "SD1.5_DDIM_50_b_2x.py", "SD1.5_DDIM_50_c_3x.py"])
    for p in same.iterdir():
        p.write_text("# identical\n")
    prepare(cfg(same, tmp_path / "t2"))
    (same / "SD1.5_DDIM_50_a_1x.py").rename(same / "SD1.5_DDIM_50_a_4x.py")
    result = prepare(cfg(same, tmp_path / "t2", dry_run=True))
    assert [c.kind for c in result.conflicts] == ["renumbered"] * 2  # b: 2 -> 1, c: 3 -> 2


def test_gt_symlink_is_not_written_through(tmp_path):
    src = make_source(tmp_path / "src", THREE)
    out = tmp_path / "tasks"
    (out / "gt_code").mkdir(parents=True)
    victim = tmp_path / "victim.py"
    victim.write_text("precious\n")
    (out / "gt_code" / "1.py").symlink_to(victim)
    with pytest.raises(ConfigError, match="not a regular file"):
        prepare(cfg(src, out))
    prepare(cfg(src, out, force=True))
    assert victim.read_text() == "precious\n"
    assert not (out / "gt_code" / "1.py").is_symlink()


def test_stale_gt_files_are_reported_not_deleted(tmp_path):
    src = make_source(tmp_path / "src", THREE)
    out = tmp_path / "tasks"
    prepare(cfg(src, out))
    (out / "gt_code" / "99.py").write_text("old task\n")
    result = prepare(cfg(src, out))
    assert result.stale_gt == (str(out / "gt_code" / "99.py"),)
    assert (out / "gt_code" / "99.py").exists()


# ----------------------------------------------------------------------------- dry run


def test_dry_run_writes_nothing(tmp_path, capsys):
    src = make_source(tmp_path / "src", THREE + ["helper.py"])
    out = tmp_path / "tasks"
    result = prepare(cfg(src, out, dry_run=True))
    assert not out.exists() and not result.written
    assert [t.gt_action for t in result.tasks] == ["create"] * 3 and result.manifest_action == "create"
    assert json.loads(result.manifest_bytes)[0]["prompt_id"] == "1"
    assert cli.main(["prepare", str(src), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "DRY RUN" in text and "would create" in text and "helper.py" in text
    assert not out.exists()
    # over an existing set: the plan matches what a real run then writes
    prepare(cfg(src, out))
    before = stats(out)
    assert prepare(cfg(src, out, dry_run=True)).manifest_bytes == (out / MANIFEST_RELPATH).read_bytes()
    assert stats(out) == before


# ----------------------------------------------------------------------------- template, schema


def test_template_override(tmp_path):
    src = make_source(tmp_path / "src", ["SDXL_Euler_30_tome-r0.5+fp16_1.42x.py", "SDXL_Euler_30_b_1.10x.py",
                                         "SDXL_Euler_30_c_1.20x.py"])
    template = tmp_path / "t.txt"
    template.write_text("[$task_key] $model/$sampler/$steps: $description at ${speedup}x costs $$0 ($difficulty, "
                        "$experiment_file)\n", encoding="utf-8")
    out = tmp_path / "tasks"
    assert cli.main(["prepare", str(src), "--out", str(out), "--template", str(template)]) == 0
    assert manifest(out)[2]["prompt_context"] == \
        "[SDXL_Euler_30] SDXL/Euler/30: tome-r0.5+fp16 at 1.42x costs $0 (hard, 3_experiment.py)"


@pytest.mark.parametrize("text, match", [("$nope here", "unknown placeholder"), ("costs $5", "invalid placeholder")])
def test_bad_template_is_a_config_error(tmp_path, text, match):
    src = make_source(tmp_path / "src", THREE)
    template = tmp_path / "t.txt"
    template.write_text(text)
    with pytest.raises(ConfigError, match=match):
        prepare(cfg(src, tmp_path / "tasks", template_path=template))
    with pytest.raises(ConfigError, match="cannot read --template"):
        prepare(cfg(src, tmp_path / "tasks", template_path=tmp_path / "missing.txt"))
    assert not (tmp_path / "tasks").exists()


def test_default_template_uses_only_known_fields():
    import string
    template = string.Template(lib.default_template())
    assert template.is_valid() and set(template.get_identifiers()) <= set(lib.TEMPLATE_FIELDS)


def test_manifest_is_schema_checked_before_writing(tmp_path):
    src = make_source(tmp_path / "src", THREE)
    out = tmp_path / "tasks"
    with pytest.raises(SchemaViolation, match=r"prompt_id"):  # 70-digit ids break the id pattern
        prepare(cfg(src, out, start_id=10**70))
    assert not out.exists()


def test_plan_is_what_prepare_writes(tmp_path):
    src = make_source(tmp_path / "src", THREE)
    out = tmp_path / "tasks"
    planned = plan(cfg(src, out))
    prepare(cfg(src, out))
    assert (out / MANIFEST_RELPATH).read_bytes() == planned.manifest_bytes
    assert (out / MAPPING_RELPATH).read_bytes() == planned.mapping_bytes


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["prepare", "--help"])
    text = capsys.readouterr().out
    for option in ("--out", "--start-id", "--per-task", "--category", "--dry-run", "--force", "--strict",
                   "--json", "--pattern", "--template"):
        assert option in text


# ----------------------------------------------------------------------------- round trip


GT_TEMPLATE = '''"""Reference implementation: {label}."""
import os

import torch
from diffusers import StableDiffusionPipeline


def load_pipeline():
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cuda" if torch.cuda.is_available() else "cpu")
'''


def _gt_sources(folder: Path) -> None:
    """Three GT files for one task key; each runs the task's own steps (a GT that ran the
    example's 35 steps on a 2-step task would only make the test slow)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("SD1.5_DDIM_2_plain_1.00x.py", "SD1.5_DDIM_2_same_1.01x.py", "SD1.5_DDIM_2_again_1.02x.py"):
        (folder / name).write_text(GT_TEMPLATE.format(label=name), encoding="utf-8")


@pytest.mark.slow
def test_round_trip_prepared_set_is_graded(tmp_path):
    """`prepare` then `grade` with no edit in between: every prepared task is graded `ok`
    (the submission's baseline and experiment are the GT itself)."""
    from grader import tinymodels

    models = tmp_path / "models"
    tinymodels.build_sd15(models / "sd", size="tiny")
    tinymodels.build_clip(models / "clip")
    src, tasks, sub, run = tmp_path / "src", tmp_path / "tasks", tmp_path / "submission", tmp_path / "run"
    _gt_sources(src)
    assert cli.main(["prepare", str(src), "--out", str(tasks), "--strict"]) == 0
    entries = manifest(tasks)
    sub.mkdir()
    for entry in entries:  # a submission whose experiment is the GT itself
        gt = (tasks / "gt_code" / entry["path_to_gt_code"]).read_text(encoding="utf-8")
        (sub / entry["path_to_gen_code_baseline"]).write_text(gt, encoding="utf-8")
        (sub / entry["path_to_gen_code"]).write_text(gt, encoding="utf-8")
        (sub / entry["path_to_metrics"]).write_text(json.dumps({
            "schema_version": 1, "task_id": entry["prompt_id"], "device": "cpu", "batch_size": 2,
            "num_inference_steps": 2, "optimizations": [], "baseline": {"per_image_seconds": 1.0},
            "experiment": {"per_image_seconds": 1.0}, "speedup": 1.0}), encoding="utf-8")
    code = cli.main(["grade", str(sub), "--tasks", str(tasks), "--model-dir", str(models / "sd"),
                     "--clip-model", str(models / "clip"), "--out", str(run), "--sandbox", "local", "--device", "cpu",
                     "--batch-size", "2", "--warmup-batches", "1", "--min-batches", "2", "--max-batches", "2",
                     "--quality-batches", "1"])
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    by_id = {t["prompt_id"]: t for t in report["tasks"]}
    assert sorted(by_id) == sorted(e["prompt_id"] for e in entries), report
    for pid, task in by_id.items():
        assert task["status"] == "ok", (pid, task["status"], task["message"], task["flags"])
        assert task["task_key"] == "SD1.5_DDIM_2" and task["gt_speedup"] is not None
    assert code == 0, report
