"""Grading a submission: for each task, run baseline, experiment and GT under one
protocol, check quality, score, and write the task's result atomically.

One task's failure never stops the others: every outcome, from a missing file to a
crashed sandbox, ends as a status and a message in that task's result.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grader import __version__, quality, scoring, submission
from grader.config import GradeConfig
from grader.errors import GraderError, SchemaViolation
from grader.manifest import InvalidEntry, TaskEntry, TaskSet
from grader.prompts import Schedule, load_pool
from grader.supervisor import VariantRun, VariantSpec, run_variants

VARIANTS = ("baseline", "experiment", "gt")


def write_json_atomic(path: Path, document: object) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=2, sort_keys=False, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_model_dir(root: Path, model: str) -> Path:
    """``root/<model>/`` when present, else ``root`` itself if it is a diffusers folder."""
    if (root / model / "model_index.json").is_file():
        return (root / model).resolve()
    if (root / "model_index.json").is_file():
        return root.resolve()
    raise GraderError(f"--model-dir {root}: no diffusers folder for model {model!r} "
                      f"(expected {root / model}/model_index.json or {root}/model_index.json)")


@dataclass
class TaskContext:
    config: GradeConfig
    schedule: Schedule
    run_dir: Path
    progress: Callable[[str], None]


def _base_result(task: TaskEntry) -> dict:
    return {
        "prompt_id": task.prompt_id, "task_key": str(task.task_key), "difficulty": task.difficulty,
        "category": task.category, "status": "ok", "message": "", "flags": [], "mode": "module",
        "self_reported": False, "speedup": None, "speedup_ci": None, "gt_speedup": None,
        "relative_to_gt": None, "manifest_speedup": task.speedup, "self_reported_speedup": None,
        "self_report_discrepancy": None, "quality": None, "variants": {},
    }


def invalid_entry_result(entry: InvalidEntry) -> dict:
    result = {k: None for k in ("task_key", "difficulty", "category", "speedup", "speedup_ci", "gt_speedup",
                                "relative_to_gt", "manifest_speedup", "self_reported_speedup",
                                "self_report_discrepancy", "quality")}
    result.update(prompt_id=entry.prompt_id, status="error", message=entry.message, flags=["invalid_manifest_entry"],
                  mode="module", self_reported=False, variants={})
    return result


def grade_task(task: TaskEntry, ctx: TaskContext) -> dict:
    result = _base_result(task)
    cfg = ctx.config
    files = submission.find(cfg.submission, task)
    if not files.complete:
        result.update(status="missing", message="; ".join(files.problems))
        return result
    try:
        metrics = submission.load_metrics(files.metrics)
        result["self_reported_speedup"] = metrics["speedup"]
    except SchemaViolation as exc:
        result.update(status="invalid_metrics", message=str(exc),
                      metrics_error={"json_path": exc.json_path, "message": exc.detail})
        return result
    try:
        model_dir = resolve_model_dir(cfg.model_dir, task.task_key.model)
    except GraderError as exc:
        result.update(status="error", message=str(exc), flags=["no_model"])
        return result
    if not submission.is_module(files.experiment):
        from grader.script_mode import grade_script

        return grade_script(task, files, model_dir, ctx, result)

    task_dir = ctx.run_dir / "tasks" / task.prompt_id
    specs = [
        VariantSpec(name=variant, module_path=path, model_dir=model_dir, steps=task.task_key.steps,
                    device=cfg.device, sandbox=cfg.sandbox, gpu=cfg.gpus[0] if cfg.gpus else None,
                    timeout=cfg.variant_timeout,
                    labels=(("sd-grader.task", task.prompt_id), ("sd-grader.variant", variant)))
        for variant, path in (("baseline", files.baseline), ("experiment", files.experiment), ("gt", task.gt_path))
    ]
    ctx.progress(f"task {task.prompt_id}: running baseline, experiment and GT (interleaved)")
    runs = run_variants(specs, ctx.schedule, cfg.timing, task_dir)
    for name, run in runs.items():
        result["variants"][name] = run.to_dict()
    return score_task(result, runs, ctx)


def score_task(result: dict, runs: dict[str, VariantRun], ctx: TaskContext) -> dict:
    flags = result["flags"]
    for name, run in runs.items():
        flags.extend(f if name == "experiment" else f"{name}_{f}" for f in run.flags)
    failed = next((runs[v] for v in VARIANTS if v in runs and runs[v].status != "ok"), None)
    if failed is not None:
        status = failed.status
        if failed.name == "gt":
            status = "error"
            flags.append("gt_failed")
        elif failed.name == "baseline":
            flags.append("baseline_failed")
        result.update(status=status, message=f"{failed.name}: {failed.message}")
        result["flags"] = sorted(set(flags))
        return result
    base, exp, gt = (runs[v].timing for v in VARIANTS)
    point, low, high = _speedup(base, exp)
    result.update(speedup=point, speedup_ci=[low, high], gt_speedup=_speedup(base, gt)[0],
                  relative_to_gt=_speedup(gt, exp)[0])
    result["self_report_discrepancy"] = scoring.discrepancy(result["self_reported_speedup"], point)
    if result["self_report_discrepancy"] is not None and result["self_report_discrepancy"] > scoring.SELF_REPORT_TOLERANCE:
        flags.append("self_report_mismatch")
    labels = sorted(set.intersection(*(set(p.name for p in runs[v].image_dir.iterdir()) for v in VARIANTS)))
    prompts = [p for label in labels for p in ctx.schedule.timed(int(label[1:])).prompts]
    try:
        q = quality.assess(*(quality.load_images(runs[v].image_dir, labels) for v in VARIANTS), prompts,
                           ctx.config.quality)
    except ValueError as exc:
        result.update(status="error", message=f"quality: {exc}")
        flags.append("quality_incomparable")
    else:
        result["quality"] = q.to_dict()
        if not q.passed:
            result.update(status="quality_failed", message="quality gate failed: " + ", ".join(q.failures))
    result["flags"] = sorted(set(flags))
    return result


def _speedup(slow, fast) -> tuple[float, float, float]:
    from grader.timing import speedup

    return speedup(slow, fast)


def crashed_result(task: TaskEntry, exc: BaseException) -> dict:
    result = _base_result(task)
    result.update(status="error", message=f"grader error: {type(exc).__name__}: {exc}", flags=["grader_error"],
                  traceback=traceback.format_exc()[-4000:])
    return result


def grade(cfg: GradeConfig, progress: Callable[[str], None] = print) -> dict:
    """Grade every task of ``cfg`` and write ``report.json`` and ``report.md`` to ``cfg.out``."""
    from grader import report

    started = time.time()
    task_set = TaskSet.from_dir(cfg.tasks).select(set(cfg.only) or None)
    pool = load_pool(cfg.prompts_file)
    run_seed = cfg.seed if cfg.seed is not None else secrets.randbelow(2**31)
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    schedule = Schedule(pool, run_seed, cfg.timing.batch_size, cfg.timing.max_images)
    ctx = TaskContext(cfg, schedule, run_dir, progress)
    results = [invalid_entry_result(e) for e in task_set.invalid]
    for entry in task_set.invalid:
        write_json_atomic(run_dir / "tasks" / entry.prompt_id / "result.json", results[-1])
    for task in task_set.tasks:
        t0 = time.monotonic()
        try:
            result = grade_task(task, ctx)
        except Exception as exc:  # noqa: BLE001 - one task's grader bug must not sink the run
            result = crashed_result(task, exc)
        result["grade_seconds"] = time.monotonic() - t0
        write_json_atomic(run_dir / "tasks" / task.prompt_id / "result.json", result)
        results.append(result)
        progress(f"task {task.prompt_id}: {result['status']}" + (f" ({result['message'][:120]})" if result["message"] else ""))
    doc = report.build(cfg, results, run_seed=run_seed, started=started, finished=time.time(), version=__version__)
    report.write(run_dir, doc)
    return doc
