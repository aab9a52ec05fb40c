"""Helpers of the adversarial suite (tests/adversarial): small submissions that each try one trick, and what the grader makes of them.

Each case is a module file in ``cases/`` (its docstring says the trick and the defence). A test
module grades its cases in one run (``grade_cases``) per sandbox and asserts, per case, the
status, the flags and that every flag comes with evidence. Most cases are pipeline-free: the
trusted reference baseline (the task set's plain pipeline, ``honest_baseline.py`` unless a case
names another), the GT, the agent's baseline and honest experiments wait ``PER_IMAGE`` seconds
per image and return images that are a deterministic function of (prompt, seed), so a whole run
takes seconds and the tricks cheat relative to them. ``docs/integrity.md`` is the table of
tricks, defences and tests.

Sandboxes: every case runs under ``local`` and, where a Docker engine and the CPU image are
there (see ``tests/conftest.py``), under ``docker`` too. Cases that only a real sandbox can stop
(reading GT files, other tasks' files, signalling other workers) are docker-only.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import prompt_file, small_timing, task_set, write

from grader.config import GradeConfig, QualityConfig
from grader.evidence.flags import TAMPER_FLAGS
from grader.pipeline.run import grade

CASES_DIR = Path(__file__).resolve().parent / "cases"

SANDBOXES = [
    pytest.param("local", id="local"),
    pytest.param("docker", id="docker", marks=[pytest.mark.docker, pytest.mark.slow]),
]

# What the runtime integrity checks can say (grader/evidence/, the supervisor's flags); an
# honest submission must get none of them, nor a static_* flag from grader/evidence/static_check.py.
RUNTIME_INTEGRITY_FLAGS = TAMPER_FLAGS | {
    "nondeterministic", "baseline_sandbagged", "implausible_speedup", "load_cap_exceeded",
    "bad_image", "wrong_image_count", "wrong_image_size",
}
GOOD_STATUSES = ("ok", "quality_failed", "tampered")   # every variant ran to the end


def integrity_flags(flags) -> set[str]:
    return {f for f in flags if f in RUNTIME_INTEGRITY_FLAGS or f.startswith(("static_", "baseline_static_"))}


@dataclass(frozen=True)
class Case:
    """One submission for one task: which files, and what the grader must make of it."""

    name: str
    experiment: str
    baseline: str = "honest_baseline"
    gt: str = "honest_gt"
    # The task set's reference baseline (trusted, carries the headline): the plain-pipeline
    # stand-in by default; None: none in the task set (a diffusers GT gets the grader's template).
    reference: str | None = "honest_baseline"
    status: tuple[str, ...] = ("tampered",)
    flags: tuple[str, ...] = ()             # flags the task must carry, each with evidence
    honest: bool = False                    # no integrity flag at all (runtime or static) ...
    allowed: tuple[str, ...] = ()           # ... but these advisory ones
    message: str = ""                       # a piece of the task's message (failures)
    static: tuple[str, ...] = ()            # static flags scan() must find in the experiment file
    baseline_static: tuple[str, ...] = ()   # ... and in the baseline file
    claimed: float = 3.0                    # the self-reported speedup in the metrics file
    manifest_speedup: float = 1.5           # the GT's known speedup (the honest baseline is 1.5x the GT)
    sandboxes: tuple[str, ...] = ("local", "docker")
    subs: tuple[tuple[str, str], ...] = ()  # text replacements in this case's experiment and baseline files
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def __str__(self) -> str:
        return self.name


def source(stem: str) -> str:
    return (CASES_DIR / f"{stem}.py").read_text(encoding="utf-8")


def _metrics(claimed: float) -> str:
    return json.dumps({
        "schema_version": 1, "device": "cpu", "batch_size": 2, "num_inference_steps": 10,
        "optimizations": ["adversarial"], "baseline": {"per_image_seconds": 1.0},
        "experiment": {"per_image_seconds": 1.0 / claimed}, "speedup": claimed,
    })


def timing(**overrides):
    """Four timed batches of two, one warm-up; the load cap's floor low enough to bite in tests."""
    base = {"min_batches": 4, "max_batches": 4, "warmup_batches": 1, "load_cap_floor": 8.0}
    base.update(overrides)
    return small_timing(**base)


def build(root: Path, cases: list[Case], substitutions: dict[str, str] | None = None) -> tuple[Path, Path, dict]:
    """Write a task set and a submission for ``cases``; returns (tasks, submission, id by case name)."""
    ids = {case.name: str(100 + k) for k, case in enumerate(cases)}
    entries = [{"prompt_id": ids[c.name], "gt": source(c.gt), "speedup": c.manifest_speedup,
                "original_filename": f"SD1.5_DDIM_10_{c.name}_{c.manifest_speedup}x.py",
                **({"reference": source(c.reference)} if c.reference is not None else {})} for c in cases]
    tasks = task_set(root / "tasks", entries)
    sub = root / "sub"
    for case in cases:
        pid = ids[case.name]
        experiment, baseline = source(case.experiment), source(case.baseline)
        for key, value in (*(substitutions or {}).items(), *case.subs):
            experiment = experiment.replace(key, value)
        for key, value in case.subs:
            baseline = baseline.replace(key, value)
        write(sub / f"{pid}_experiment.py", experiment)
        write(sub / f"{pid}_baseline.py", baseline)
        write(sub / f"{pid}_metrics.json", _metrics(case.claimed))
    return tasks, sub, ids


def model_dir(root: Path) -> Path:
    folder = root / "models"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text("{}")
    for path in (root, folder):
        os.chmod(path, 0o755)
    os.chmod(folder / "model_index.json", 0o644)
    return folder


def grade_cases(root: Path, sandbox: str, cases: list[Case], substitutions: dict[str, str] | None = None,
                models: Path | None = None, device: str = "cpu", seed: int | None = 11,
                **timing_overrides) -> dict[str, dict]:
    """Grade every case that applies to ``sandbox`` in one run; results by case name.

    ``models``: a models folder for real pipelines (``tiny_models``); pipeline-free cases get an
    empty stand-in. ``seed``: the run's explicit ``--seed`` (schedules derived from it and the
    task id, so predictable); None grades as a run without one does (secret schedules)."""
    cases = [c for c in cases if sandbox in c.sandboxes]
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    os.chmod(root, 0o755)
    tasks, sub, ids = build(root, cases, substitutions)
    cfg = GradeConfig(submission=sub, tasks=tasks, model_dir=models or model_dir(root), out=root / "run", sandbox=sandbox, device=device,
                      seed=seed, prompts_file=prompt_file(root / "prompts.txt"), timing=timing(**timing_overrides),
                      quality=QualityConfig(ssim_tolerance=0.05))
    doc = grade(cfg, progress=lambda _: None)
    by_id = {t["prompt_id"]: t for t in doc["tasks"]}
    results = {}
    for case in cases:
        result = dict(by_id[ids[case.name]])
        result["_run_dir"] = str(root / "run" / "tasks" / ids[case.name])
        results[case.name] = result
    if os.environ.get("ADV_SUMMARY"):
        with open(os.environ["ADV_SUMMARY"], "a", encoding="utf-8") as fh:
            for name, result in results.items():
                fh.write(json.dumps({"root": root.name, "sandbox": sandbox, "case": name, **summary(result)}, default=str) + "\n")
    return results


def summary(result: dict) -> dict:
    """The figures docs/integrity.md quotes (``ADV_SUMMARY=path`` appends one JSON line per case)."""
    variants = result.get("variants", {})
    quality = result.get("quality") or {}
    return {
        "status": result["status"], "flags": result["flags"], "speedup": result.get("speedup"),
        "agent_baseline_speedup": result.get("agent_baseline_speedup"), "relative_to_gt": result.get("relative_to_gt"),
        "baseline_vs_reference": result.get("baseline_vs_reference"),
        "per_image_median": {v: (r.get("timing") or {}).get("per_image_median") for v, r in variants.items()},
        "quality_failures": quality.get("failures"), "ssim_experiment_vs_reference": quality.get("ssim_experiment_vs_reference"),
        "batch_ssim_loss_max": quality.get("batch_ssim_loss_max"), "batches_failed": quality.get("batches_failed"),
        "evidence": {k: v for k, v in (result.get("evidence") or {}).items() if not k.startswith("static_")},
        "message": result.get("message", "")[:300],
    }


def applies(graded: tuple[str, dict], name: str) -> dict:
    """Case ``name``'s result from a ``(sandbox, results)`` fixture; skipped where it was not graded."""
    sandbox, results = graded
    if name not in results:
        pytest.skip(f"{name}: not graded under {sandbox}")
    return results[name]


def describe(result: dict) -> str:
    """What a failing assertion prints: enough to see why without opening the run folder."""
    exp = result.get("variants", {}).get("experiment", {})
    timings = {v: (r.get("timing") or {}).get("per_image_median") for v, r in result.get("variants", {}).items()}
    quality = result.get("quality") or {}
    return json.dumps({
        "status": result["status"], "message": result["message"][:600], "flags": result["flags"],
        "evidence": result.get("evidence"), "speedup": result.get("speedup"),
        "agent_baseline_speedup": result.get("agent_baseline_speedup"),
        "baseline_vs_reference": result.get("baseline_vs_reference"),
        "relative_to_gt": result.get("relative_to_gt"), "per_image_median": timings,
        "quality": {k: quality.get(k) for k in ("failures", "ssim_experiment_vs_reference", "ssim_gt_vs_reference",
                                                "batches_failed", "batch_ssim_loss_max")},
        "experiment_probes": exp.get("probes"), "gt_probes": result.get("variants", {}).get("gt", {}).get("probes"),
        "experiment_stderr": (exp.get("stderr_tail") or "")[-800:],
    }, indent=1, default=str)


def assert_caught(result: dict, case: Case) -> None:
    """The status, the flags and their evidence that ``case`` must get."""
    info = describe(result)
    assert result["status"] in case.status, f"{case.name}: status {result['status']!r}, expected {case.status}\n{info}"
    missing = set(case.flags) - set(result["flags"])
    assert not missing, f"{case.name}: flags {sorted(missing)} missing\n{info}"
    if result["status"] in GOOD_STATUSES:
        evidence = result.get("evidence") or {}
        undocumented = [f for f in case.flags if not evidence.get(f)]
        assert not undocumented, f"{case.name}: flags without evidence in the report: {undocumented}\n{info}"
    else:
        assert result["message"], f"{case.name}: failed without a message\n{info}"
    if case.message:
        assert case.message in result["message"], f"{case.name}: message lacks {case.message!r}\n{info}"
    if case.honest:
        unwanted = integrity_flags(result["flags"]) - set(case.allowed)
        assert not unwanted, f"{case.name}: honest submission got integrity flags {sorted(unwanted)}\n{info}"


def assert_static_in_report(result: dict, case: Case) -> None:
    """The runner adds scan()'s flags to the task (baseline ones prefixed ``baseline_``), with evidence."""
    expected = set(case.static) | {f"baseline_{f}" for f in case.baseline_static}
    info = describe(result)
    missing = expected - set(result["flags"])
    assert not missing, f"{case.name}: static flags {sorted(missing)} not in the report\n{info}"
    evidence = result.get("evidence") or {}
    undocumented = sorted(f for f in expected if not evidence.get(f))
    assert not undocumented, f"{case.name}: static flags without evidence: {undocumented}\n{info}"
