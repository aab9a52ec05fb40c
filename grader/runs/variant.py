"""What one variant run is given and what it gives back.

:class:`VariantSpec` says what to run (one module file against one model folder, where
and with which limits); :class:`VariantRun` is everything the supervisor measured and
kept: timed batches, phase times, image digests, probe readings, telemetry and the
worker's own faults as status and flags. Evidence and scores read these, never the
worker's files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grader.runs.timing import BatchTime, TimingStats

# The variants of a task, in the order reports list them: the trusted reference baseline the
# headline speedup is measured against, the agent's baseline and experiment, and the GT.
VARIANTS = ("reference", "baseline", "experiment", "gt")
IMAGE_VARIANTS = ("reference", "experiment", "gt")   # whose timed images the quality gate compares
TRUSTED_VARIANTS = ("reference", "gt")               # grader-side code: what the headline leans on
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class VariantSpec:
    """What to run: one module file against one model folder."""

    name: str
    module_path: Path
    model_dir: Path
    steps: int
    device: str
    sandbox: str
    gpu: str | None = None
    timeout: float = 1800.0
    labels: tuple[tuple[str, str], ...] = ()
    cpuset: tuple[int, ...] | None = None
    threads: int | None = None          # OpenMP/MKL threads; None: the libraries' default
    max_batches: int | None = None      # timed batches at most (the agent's baseline); None: the run's rule
    probes: bool = True                 # answers the integrity probes and has its idle window measured
    keeps_images: bool = True           # its timed images are compared and kept for the gate
    warmup_batches: int | None = None   # None: the run's; the agent's baseline needs fewer
    loads_alongside: bool = False       # loads at the same time as the other such variants, uncapped
    docker_runtime: str | None = None   # the docker sandbox's OCI runtime; None: the engine's default


@dataclass
class VariantRun:
    name: str
    status: str = "ok"
    message: str = ""
    stderr_tail: str = ""
    flags: list[str] = field(default_factory=list)
    batches: list[BatchTime] = field(default_factory=list)
    timing: TimingStats | None = None
    phases: dict[str, float] = field(default_factory=dict)
    image_dir: Path | None = None
    image_shape: tuple[int, int] | None = None
    digests: dict[str, list[str]] = field(default_factory=dict)
    has_inference: bool | None = None
    passes: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    retries: int = 0
    evidence: dict[str, str] = field(default_factory=dict)
    probes: dict = field(default_factory=dict)
    telemetry: dict | None = None
    kept: list[str] = field(default_factory=list)          # labels of the kept timed batches
    comparisons: list[dict] = field(default_factory=list)  # every timed batch's comparison figures

    def flag(self, name: str, evidence: str | None = None) -> None:
        """Raise ``name`` on this variant (once), with its line of evidence when there is one."""
        if name not in self.flags:
            self.flags.append(name)
        if evidence is not None:
            self.evidence.setdefault(name, evidence)

    def to_dict(self) -> dict:
        """The variant's entry in the report (``schemas/report.schema.json``, task.variants)."""
        return {
            "name": self.name, "status": self.status, "message": self.message,
            "stderr_tail": self.stderr_tail, "flags": sorted(set(self.flags)),
            "timing": self.timing.to_dict() if self.timing else None,
            "batches": [b.__dict__ for b in self.batches],
            "phases": self.phases, "image_shape": list(self.image_shape) if self.image_shape else None,
            "has_inference": self.has_inference, "passes": self.passes, "versions": self.versions,
            "retries": self.retries, "evidence": self.evidence, "probes": self.probes,
            "telemetry": self.telemetry, "kept": self.kept,
        }
