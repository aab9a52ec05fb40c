"""Unit tests for grader.config: every check rejects a bad value with a ConfigError naming
the option and its value, and accepts the boundary values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from grader.config import GradeConfig, QualityConfig, TimingConfig
from grader.errors import ConfigError


def rejects(cls, name: str, value, **kw) -> str:
    """Construct ``cls`` with ``name=value``; expect a ConfigError naming both; return its message."""
    with pytest.raises(ConfigError) as info:
        cls(**{name: value}, **kw)
    message = str(info.value)
    assert message.startswith(f"option {name}={value!r}: expected "), message
    return message


# ----------------------------------------------------------------------------- TimingConfig

# (option, bad values, boundary values that pass, other options needed for the boundary)
TIMING = [
    ("batch_size", [0, -1], [1], {}),
    ("warmup_batches", [-1], [0], {}),
    ("min_batches", [0], [1], {"quality_batches": 1}),
    ("max_images", [0, -3], [None, 1], {}),
    ("target_rel_ci", [0, 0.0, 1, 1.5, -0.1, math.nan], [1e-12, 0.999999], {}),
    ("budget_seconds", [0, -5.0, math.nan], [1e-9], {}),
    ("load_cap_factor", [0.999, 0, math.nan], [1, 1.0], {}),
    ("load_cap_floor", [0, -1.0, math.nan], [1e-9], {}),
    ("idle_grace_seconds", [-1e-9, math.nan], [0, 0.0], {}),
    ("idle_window_seconds", [0, -1.0, math.nan], [1e-9], {}),
]


@pytest.mark.parametrize("name, bad, good, extra", TIMING, ids=[t[0] for t in TIMING])
def test_timing_checks(name, bad, good, extra):
    for value in bad:
        rejects(TimingConfig, name, value, **extra)
    for value in good:
        assert getattr(TimingConfig(**{name: value}, **extra), name) == value


def test_timing_max_batches_at_least_min_batches():
    message = rejects(TimingConfig, "max_batches", 4, min_batches=5)
    assert "min_batches (5)" in message
    assert TimingConfig(min_batches=5, max_batches=5).max_batches == 5


def test_timing_quality_batches_between_1_and_min_batches():
    rejects(TimingConfig, "quality_batches", 0)
    message = rejects(TimingConfig, "quality_batches", 6, min_batches=5)
    assert "min_batches (5)" in message
    assert TimingConfig(quality_batches=1).quality_batches == 1
    assert TimingConfig(quality_batches=5, min_batches=5).quality_batches == 5


def test_timing_defaults_are_valid():
    TimingConfig()


@pytest.mark.parametrize("name", ["batch_size", "warmup_batches", "min_batches", "max_images"])
def test_timing_integer_options_reject_fractions(name):
    extra = {"quality_batches": 1} if name == "min_batches" else {}
    rejects(TimingConfig, name, 2.5, **extra)


# ----------------------------------------------------------------------------- QualityConfig


@pytest.mark.parametrize("name", ["clip_tolerance", "ssim_tolerance", "psnr_tolerance_db"])
def test_quality_tolerances(name):
    for bad in (-1e-9, -1.0, math.nan):
        message = rejects(QualityConfig, name, bad)
        assert "a number >= 0" in message
    assert getattr(QualityConfig(**{name: 0.0}), name) == 0.0
    assert getattr(QualityConfig(**{name: 0}), name) == 0


def test_quality_psnr_check_may_be_off():
    assert QualityConfig(psnr_tolerance_db=None).psnr_tolerance_db is None
    assert QualityConfig().psnr_tolerance_db is None


@pytest.mark.parametrize("name", ["clip_tolerance", "ssim_tolerance"])
def test_quality_clip_and_ssim_tolerance_may_not_be_none(name):
    rejects(QualityConfig, name, None)


# ----------------------------------------------------------------------------- GradeConfig


@pytest.fixture
def dirs(tmp_path) -> dict:
    for name in ("sub", "tasks", "models"):
        (tmp_path / name).mkdir()
    return {"submission": tmp_path / "sub", "tasks": tmp_path / "tasks", "model_dir": tmp_path / "models",
            "out": tmp_path / "run"}


GRADE_CHOICES = [
    ("device", ["gpu", "CUDA", ""], ["cpu", "cuda"]),
    ("sandbox", ["podman", "auto"], ["local", "docker", "fake"]),
    ("executor", ["slurm", ""], ["local", "ray"]),
    ("pin_cpus", ["yes", "no"], [None, True, False]),
    ("variant_timeout", [0, -1.0, math.nan], [1e-9]),
]


@pytest.mark.parametrize("name, bad, good", GRADE_CHOICES, ids=[g[0] for g in GRADE_CHOICES])
def test_grade_checks(dirs, name, bad, good):
    for value in bad:
        rejects(GradeConfig, name, value, **dirs)
    for value in good:
        assert getattr(GradeConfig(**{name: value}, **dirs), name) == value


def test_grade_ray_address_only_with_ray(dirs):
    for value in ("", "   "):
        rejects(GradeConfig, "ray_address", value, executor="ray", **dirs)
    rejects(GradeConfig, "ray_address", "10.0.0.5:6379", executor="local", **dirs)
    assert GradeConfig(ray_address="auto", executor="ray", **dirs).ray_address == "auto"
    assert GradeConfig(ray_address=None, executor="ray", **dirs).ray_address is None


@pytest.mark.parametrize("name", ["submission", "tasks", "model_dir"])
def test_grade_folders_must_exist(dirs, name):
    missing = Path(dirs[name]).parent / "nowhere"
    with pytest.raises(ConfigError) as info:
        GradeConfig(**{**dirs, name: missing})
    assert str(info.value) == f"option {name}={str(missing)!r}: expected an existing directory"
    a_file = Path(dirs[name]).parent / "a_file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match=f"option {name}="):
        GradeConfig(**{**dirs, name: a_file})


def test_grade_prompts_file_must_be_a_file(dirs):
    folder = Path(dirs["submission"]).parent
    with pytest.raises(ConfigError) as info:
        GradeConfig(prompts_file=folder / "missing.txt", **dirs)
    assert str(info.value) == f"option prompts={str(folder / 'missing.txt')!r}: expected an existing file"
    with pytest.raises(ConfigError, match="option prompts="):
        GradeConfig(prompts_file=folder, **dirs)  # a folder is not a prompt file
    (folder / "p.txt").write_text("a cat\n")
    assert GradeConfig(prompts_file=folder / "p.txt", **dirs).prompts_file == folder / "p.txt"


def test_grade_clip_model_must_be_a_folder(dirs):
    folder = Path(dirs["submission"]).parent
    with pytest.raises(ConfigError) as info:
        GradeConfig(quality=QualityConfig(clip_model=folder / "clip"), **dirs)
    assert str(info.value) == f"option clip_model={str(folder / 'clip')!r}: expected an existing CLIP model folder"
    (folder / "clip").mkdir()
    assert GradeConfig(quality=QualityConfig(clip_model=folder / "clip"), **dirs).quality.clip_model == folder / "clip"


def test_grade_out_need_not_exist_and_pins_cpus(dirs):
    cfg = GradeConfig(**dirs)
    assert not Path(cfg.out).exists()
    assert cfg.pins_cpus is False
    assert GradeConfig(device="cuda", **dirs).pins_cpus is True
    assert GradeConfig(device="cuda", pin_cpus=False, **dirs).pins_cpus is False
    assert GradeConfig(pin_cpus=True, **dirs).pins_cpus is True


def test_grade_script_timeout_is_checked(dirs):
    rejects(GradeConfig, "script_timeout", 0, **dirs)
