"""Typed, frozen configuration for a grading run.

The CLI builds a :class:`GradeConfig` and hands it to the library; nothing below
the CLI reads argv or the environment for options. Defaults favour trustworthy
numbers on a GPU; the example and the tests shrink the budgets explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from grader.errors import ConfigError


def _check(condition: bool, name: str, value: object, expected: str) -> None:
    if not condition:
        raise ConfigError(f"option {name}={value!r}: expected {expected}")


_RUNTIME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    load_cap_factor: float = 3.0
    load_cap_floor: float = 60.0
    probes: bool = True
    # Variants import and load side by side (False: the GT alone, then each capped variant alone).
    load_together: bool = True
    # The agent's baseline is timed for this many batches only: enough to compare it with the
    # reference baseline, which carries the headline (paired ratios need 6).
    baseline_batches: int = 6
    # Before each batch on a GPU, wait at most this long for work queued by other variants to drain.
    quiet_timeout: float = 10.0
    # The idle check: a worker's CPU use in a window opening ``idle_grace_seconds`` after its
    # last answer (the grace lets an honest worker's thread pools go to sleep) and lasting
    # ``idle_window_seconds``.
    idle_grace_seconds: float = 0.5
    idle_window_seconds: float = 1.0

    def __post_init__(self) -> None:
        _check(_int(self.batch_size) and self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(_int(self.warmup_batches) and self.warmup_batches >= 0, "warmup_batches", self.warmup_batches,
               "an integer >= 0")
        _check(_int(self.min_batches) and self.min_batches >= 1, "min_batches", self.min_batches, "an integer >= 1")
        _check(_int(self.max_batches) and self.max_batches >= self.min_batches, "max_batches", self.max_batches,
               f"an integer >= min_batches ({self.min_batches})")
        _check(self.max_images is None or (_int(self.max_images) and self.max_images >= 1), "max_images",
               self.max_images, "None or an integer >= 1")
        _check(0 < self.target_rel_ci < 1, "target_rel_ci", self.target_rel_ci, "a fraction in (0, 1)")
        _check(self.budget_seconds > 0, "budget_seconds", self.budget_seconds, "> 0")
        _check(_int(self.quality_batches) and 1 <= self.quality_batches <= self.min_batches, "quality_batches", self.quality_batches, f"between 1 and min_batches ({self.min_batches})")
        _check(self.load_cap_factor >= 1, "load_cap_factor", self.load_cap_factor, ">= 1")
        _check(self.load_cap_floor > 0, "load_cap_floor", self.load_cap_floor, "> 0")
        _check(self.idle_grace_seconds >= 0, "idle_grace_seconds", self.idle_grace_seconds, ">= 0")
        _check(self.idle_window_seconds > 0, "idle_window_seconds", self.idle_window_seconds, "> 0")
        _check(_int(self.baseline_batches) and self.baseline_batches >= 1, "baseline_batches", self.baseline_batches,
               "an integer >= 1")
        _check(self.quiet_timeout > 0, "quiet_timeout", self.quiet_timeout, "> 0")
        _check(isinstance(self.load_together, bool), "load_together", self.load_together, "true or false")


@dataclass(frozen=True)
class IntegrityConfig:
    """Thresholds of the integrity checks (grader.evidence); the report lists them all."""

    timer_tolerance: float = 0.25       # worker time under (1 - this) x the supervisor's on most batches
    cache_ratio: float = 0.6            # a repeated batch faster than this share of a fresh one
    idle_cpu: float = 0.3               # CPU seconds per idle second after answering
    baseline_tolerance: float = 0.10    # agent's baseline slower than the reference by more than this
    frozen_cpu: float = 0.05            # CPU seconds a frozen variant may show in one frozen spell (clock grain)
    implausible_factor: float = 3.0     # experiment faster than the GT by more than this
    identical_db: float = 60.0          # PSNR at or above this: the same image
    different_db: float = 35.0          # PSNR below this: clearly another image
    self_report_tolerance: float = 0.25  # relative gap between claimed and measured speedup

    def __post_init__(self) -> None:
        _check(0 < self.timer_tolerance < 1, "timer_tolerance", self.timer_tolerance, "a fraction in (0, 1)")
        _check(0 < self.cache_ratio < 1, "cache_ratio", self.cache_ratio, "a fraction in (0, 1)")
        _check(self.idle_cpu > 0, "idle_cpu", self.idle_cpu, "> 0")
        _check(0 <= self.baseline_tolerance < 10, "baseline_tolerance", self.baseline_tolerance, "a fraction >= 0")
        _check(self.frozen_cpu > 0, "frozen_cpu", self.frozen_cpu, "> 0")
        _check(self.implausible_factor >= 1, "implausible_factor", self.implausible_factor, ">= 1")
        _check(0 < self.different_db < self.identical_db, "different_db", self.different_db,
               f"> 0 and below identical_db ({self.identical_db})")
        _check(self.self_report_tolerance >= 0, "self_report_tolerance", self.self_report_tolerance, ">= 0")


@dataclass(frozen=True)
class QualityConfig:
    """The GT-calibrated gate (DESIGN section 5): tolerances on top of the GT's own loss."""

    clip_model: Path | None = None
    clip_tolerance: float = 1.0
    ssim_tolerance: float = 0.05
    psnr_tolerance_db: float | None = None
    # Every timed batch is compared (SSIM at a reduced size): a batch whose loss beyond the GT's
    # exceeds ssim_tolerance + this margin fails the gate, so no batch can be answered with cheap
    # images unseen (one batch of 8 images is noisier than the kept set, hence the margin).
    batch_ssim_margin: float = 0.10

    def __post_init__(self) -> None:
        for name in ("clip_tolerance", "ssim_tolerance", "batch_ssim_margin"):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and value >= 0, name, value, "a number >= 0")
        value = self.psnr_tolerance_db
        _check(value is None or value >= 0, "psnr_tolerance_db", value, "a number >= 0, or None (no PSNR check)")


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
    integrity: IntegrityConfig = field(default_factory=IntegrityConfig)
    executor: str = "local"
    ray_address: str | None = None
    pin_cpus: bool | None = None
    docker_runtime: str | None = None   # OCI runtime of the docker sandbox (runsc: gVisor); None: the engine's default

    def __post_init__(self) -> None:
        _check(self.device in ("cpu", "cuda"), "device", self.device, "'cpu' or 'cuda'")
        _check(self.sandbox in ("local", "bwrap", "docker", "fake"), "sandbox", self.sandbox, "'local', 'bwrap' or 'docker'")
        runtime = self.docker_runtime
        _check(runtime is None or (isinstance(runtime, str) and runtime != "" and len(runtime) <= 64
                                   and set(runtime) <= _RUNTIME_CHARS and runtime[0].isalnum()),
               "docker_runtime", runtime, "None, or a runtime name (letters, digits, '.', '_', '-')")
        _check(runtime is None or self.sandbox == "docker", "docker_runtime", runtime,
               f"None with sandbox={self.sandbox!r} (a runtime is for the docker sandbox only)")
        _check(self.executor in ("local", "ray"), "executor", self.executor, "'local' or 'ray'")
        _check(self.ray_address is None or (self.executor == "ray" and isinstance(self.ray_address, str) and self.ray_address.strip() != ""),
               "ray_address", self.ray_address, "None, or a non-empty address with executor='ray'")
        _check(self.pin_cpus in (None, True, False), "pin_cpus", self.pin_cpus, "None (pin on CUDA only), True or False")
        _check(self.variant_timeout > 0, "variant_timeout", self.variant_timeout, "> 0")
        _check(self.script_timeout > 0, "script_timeout", self.script_timeout, "> 0")
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


SECTIONS = {"timing": TimingConfig, "quality": QualityConfig, "integrity": IntegrityConfig}


def _convert(text: str, kind: str, where: str):
    value = text.strip()
    if value.lower() in ("none", "null") and "None" in kind:
        return None
    try:
        if kind.startswith("bool"):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("Path"):
            return Path(value)
    except ValueError:
        pass
    else:
        return value
    _check(False, where, text, f"a value of type {kind}")


def with_settings(configs: dict[str, object], settings: list[str] | tuple[str, ...]) -> dict[str, object]:
    """``SECTION.NAME=VALUE`` assignments (``--set``) applied to the typed configs of ``SECTIONS``.

    Every field of the timing, quality and integrity configs can be set this way; each value
    is converted to the field's type and checked by the config itself.
    """
    out = dict(configs)
    for item in settings:
        key, sep, value = item.partition("=")
        section, _, name = key.strip().partition(".")
        _check(bool(sep) and section in SECTIONS, "set", item,
               f"SECTION.NAME=VALUE with SECTION in {', '.join(SECTIONS)}")
        kinds = {f.name: str(f.type) for f in fields(SECTIONS[section])}
        _check(name in kinds, "set", item, f"a field of {section}: {', '.join(kinds)}")
        out[section] = replace(out[section], **{name: _convert(value, kinds[name], f"{section}.{name}")})
    return out
