"""A task's scores from its variants' runs: speedups over the reference baseline with intervals,
the agent's baseline against the reference, the self-report check, and the GT-calibrated quality gate that decides ``ok`` / ``quality_failed`` / ``tampered``.

:func:`apply_quality` works from the images stored in the run folder alone, so grading,
a resumed run whose quality options changed, and ``grader rescore`` all reach the same
verdict the same way.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from grader.config import IntegrityConfig, QualityConfig
from grader.evidence.flags import TAMPER_FLAGS
from grader.images import load_images
from grader.runs.variant import IMAGE_VARIANTS, VARIANTS, VariantRun
from grader.scores.aggregate import discrepancy
from grader.scores.result import TaskResult
from grader.scores.speedup import paired_speedup, speedup

REGATED_STATUSES = ("ok", "quality_failed", "tampered")


def speedup_between(slow: VariantRun, fast: VariantRun) -> tuple[float, float, float]:
    """Paired per-batch speedup when enough batches pair up; else the ratio of medians."""
    return paired_speedup(slow.batches, fast.batches) or speedup(slow.timing, fast.timing)


def score_speedups(result: TaskResult, runs: dict[str, VariantRun], cfg: IntegrityConfig) -> None:
    """Speedups of a task whose variants all ran, the agent's baseline against the reference,
    and the check of the metrics file's claim.

    The headline ``speedup`` is ``t_reference / t_experiment``: the reference is the
    task set's plain pipeline, so nothing the agent's baseline does can raise it.
    ``agent_baseline_speedup`` is the old scripts' ``t_baseline / t_experiment``, shown beside it.
    """
    ref, base, exp, gt = (runs[v] for v in VARIANTS)
    point, low, high = speedup_between(ref, exp)
    result.speedup, result.speedup_ci = point, [low, high]
    result.agent_baseline_speedup = speedup_between(base, exp)[0]
    result.gt_speedup = speedup_between(ref, gt)[0]
    result.relative_to_gt = speedup_between(gt, exp)[0]
    slower, slow_low, slow_high = speedup_between(base, ref)
    result.baseline_vs_reference = {"ratio": slower, "ci": [slow_low, slow_high], "tolerance": cfg.baseline_tolerance}
    if slow_low > 1.0 + cfg.baseline_tolerance:
        result.add_flags(["baseline_sandbagged"], {"baseline_sandbagged": (
            f"the agent's baseline took {slower:.2f}x the reference baseline's time per image (95% CI "
            f"{slow_low:.2f}-{slow_high:.2f}x; tolerance {cfg.baseline_tolerance:.0%}); the headline speedup is "
            f"measured against the reference, so this cannot raise it")})
    gap = discrepancy(result.self_reported_speedup, result.agent_baseline_speedup)
    result.self_report_discrepancy = gap
    if gap is not None and gap > cfg.self_report_tolerance:
        result.add_flags(["self_report_mismatch"], {"self_report_mismatch": (
            f"metrics file claims {result.self_reported_speedup:.2f}x; measured {result.agent_baseline_speedup:.2f}x "
            f"over the agent's own baseline ({gap:.0%} apart, tolerance {cfg.self_report_tolerance:.0%})")})


def altered_images(images: dict[str, list], labels: list[str], digests: dict | None) -> str | None:
    """Evidence when the stored images differ from the digests taken at answer time."""
    if not digests:
        return None
    for variant, arrays in images.items():
        expected = digests.get(variant) or []
        found = [hashlib.sha1(a.tobytes()).hexdigest() for a in arrays]
        if found != expected:
            return (f"{variant}'s stored images for {', '.join(labels)} are not the ones it answered "
                    f"({sum(a != b for a, b in zip(found, expected)) + abs(len(found) - len(expected))} differ)")
    return None


def regatable(result: TaskResult) -> bool:
    """Whether the quality gate decided this result's status (and its images are recorded)."""
    return result.status in REGATED_STATUSES and bool(result.quality_inputs)


def apply_quality(result: TaskResult, task_dir: Path, cfg: QualityConfig) -> TaskResult:
    """(Re)compute the quality gate from stored images; sets status ok/quality_failed/tampered.

    Used by grading and by ``grader rescore``, which changes only tolerances: it touches
    no result whose status came from anything but the gate.
    """
    from grader.scores import quality  # torch: only once images are scored

    inputs = result.quality_inputs
    labels, prompts = inputs["labels"], inputs["prompts"]
    flags = set(result.flags) - {"quality_incomparable"}
    started = time.monotonic()
    try:
        images = {v: load_images(task_dir / v / "images", labels) for v in IMAGE_VARIANTS}
        altered = altered_images(images, labels, inputs.get("digests"))
        if altered:
            flags.add("images_altered")
            result.evidence = {**(result.evidence or {}), "images_altered": altered}
        q = quality.assess(*images.values(), prompts, cfg, inputs.get("batches"))
    except (ValueError, OSError) as exc:
        result.status, result.message, result.quality = "error", f"quality: {exc}", None
        flags.add("quality_incomparable")
    else:
        result.quality = q.to_dict()
        if q.passed:
            result.status, result.message = "ok", ""
        else:
            result.status, result.message = "quality_failed", "quality gate failed: " + ", ".join(q.failures)
    result.flags = sorted(flags)
    result.scoring_seconds = time.monotonic() - started
    tampering = sorted(flags & TAMPER_FLAGS)
    if tampering and result.status in ("ok", "quality_failed"):
        result.status, result.message = "tampered", "integrity check failed: " + ", ".join(tampering)
    return result
