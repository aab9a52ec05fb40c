"""Typed, frozen configuration for a grading run.

The CLI builds a :class:`GradeConfig` and hands it to the library; nothing below
the CLI reads argv or the environment for options. Defaults favour trustworthy
numbers on a GPU; the example and the tests shrink the budgets explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from grader.errors import ConfigError


def _check(condition: bool, name: str, value: object, expected: str) -> None:
    if not condition:
        raise ConfigError(f"option {name}={value!r}: expected {expected}")


@dataclass(frozen=True)
class TimingConfig:
    """How each variant is timed (DESIGN section 4)."""

    batch_size: int = 8
    warmup_batches: int = 2
    min_batches: int = 5
    max_batches: int = 50
    max_images: int | None = None
    target_rel_ci: float = 0.01
    budget_seconds: float = 300.0
    load_timeout: float = 900.0
    batch_timeout: float = 600.0
    quality_batches: int = 2
    timer_tolerance: float = 0.25
    load_cap_factor: float = 3.0
    load_cap_floor: float = 60.0
    probes: bool = True

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.warmup_batches >= 0, "warmup_batches", self.warmup_batches, "an integer >= 0")
        _check(self.min_batches >= 1, "min_batches", self.min_batches, "an integer >= 1")
        _check(self.max_batches >= self.min_batches, "max_batches", self.max_batches, f">= min_batches ({self.min_batches})")
        _check(self.max_images is None or self.max_images >= 1, "max_images", self.max_images, "None or an integer >= 1")
        _check(0 < self.target_rel_ci < 1, "target_rel_ci", self.target_rel_ci, "a fraction in (0, 1)")
        _check(self.budget_seconds > 0, "budget_seconds", self.budget_seconds, "> 0")
        _check(1 <= self.quality_batches <= self.min_batches, "quality_batches", self.quality_batches, f"between 1 and min_batches ({self.min_batches})")
        _check(self.timer_tolerance > 0, "timer_tolerance", self.timer_tolerance, "> 0")


@dataclass(frozen=True)
class QualityConfig:
    """The GT-calibrated gate (DESIGN section 5): tolerances on top of the GT's own loss."""

    clip_model: Path | None = None
    clip_tolerance: float = 1.0
    ssim_tolerance: float = 0.05
    psnr_tolerance_db: float | None = None

    def __post_init__(self) -> None:
        for name in ("clip_tolerance", "ssim_tolerance", "psnr_tolerance_db"):
            value = getattr(self, name)
            _check(value is None or value >= 0, name, value, "a number >= 0")


@dataclass(frozen=True)
class GradeConfig:
    submission: Path
    tasks: Path
    model_dir: Path
    out: Path
    sandbox: str = "local"
    device: str = "cpu"
    gpus: tuple[str, ...] = ()
    only: frozenset[str] = frozenset()
    run_id: str | None = None
    prompts_file: Path | None = None
    seed: int | None = None
    variant_timeout: float = 1800.0
    script_timeout: float = 1800.0
    timing: TimingConfig = field(default_factory=TimingConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    executor: str = "local"
    ray_address: str | None = None
    pin_cpus: bool | None = None

    def __post_init__(self) -> None:
        _check(self.device in ("cpu", "cuda"), "device", self.device, "'cpu' or 'cuda'")
        _check(self.sandbox in ("local", "docker", "fake"), "sandbox", self.sandbox, "'local' or 'docker'")
        _check(self.executor in ("local", "ray"), "executor", self.executor, "'local' or 'ray'")
        _check(self.ray_address is None or (self.executor == "ray" and isinstance(self.ray_address, str) and self.ray_address.strip() != ""),
               "ray_address", self.ray_address, "None, or a non-empty address with executor='ray'")
        _check(self.pin_cpus in (None, True, False), "pin_cpus", self.pin_cpus, "None (pin on CUDA only), True or False")
        _check(self.variant_timeout > 0, "variant_timeout", self.variant_timeout, "> 0")
        for name in ("submission", "tasks", "model_dir"):
            path = getattr(self, name)
            _check(Path(path).is_dir(), name, str(path), "an existing directory")
        if self.prompts_file is not None:
            _check(Path(self.prompts_file).is_file(), "prompts", str(self.prompts_file), "an existing file")
        if self.quality.clip_model is not None:
            _check(Path(self.quality.clip_model).is_dir(), "clip_model", str(self.quality.clip_model), "an existing CLIP model folder")

    @property
    def pins_cpus(self) -> bool:
        """Whether variants run on a fixed share of the cores (default: on CUDA only)."""
        return self.device == "cuda" if self.pin_cpus is None else self.pin_cpus

    def as_dict(self) -> dict:
        """JSON-friendly view for the report's provenance."""

        def convert(value):
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, (frozenset, tuple)):
                return sorted(value) if isinstance(value, frozenset) else list(value)
            if hasattr(value, "__dataclass_fields__"):
                return {f.name: convert(getattr(value, f.name)) for f in fields(value)}
            return value

        return convert(self)
