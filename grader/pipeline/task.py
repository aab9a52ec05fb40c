"""Grading one task, stage after stage: its files, its variants' runs, their evidence, its scores.

:func:`grade_task` is the grading function the executors are given. One task's failure
never stops the others: every outcome, from a missing file to a crashed sandbox, ends as
a status and a message in that task's :class:`~grader.scores.result.TaskResult`.
"""

from __future__ import annotations

from pathlib import Path

from grader.errors import GraderError, SchemaViolation
from grader.evidence import integrity, runtime, static_check
from grader.evidence.flags import variant_flag
from grader.executors.context import TaskContext
from grader.runs.interleave import run_variants
from grader.runs.placement import cpu_share, thread_share
from grader.runs.script_mode import run_script
from grader.runs.variant import IMAGE_VARIANTS, TRUSTED_VARIANTS, VARIANTS, VariantRun, VariantSpec
from grader.scores.result import TaskResult
from grader.scores.task import apply_quality, score_speedups
from grader.taskset import models, reference, submission
from grader.taskset.manifest import InvalidEntry, TaskEntry
from grader.taskset.prompts import Schedule


def resolve_model_dir(root: Path, model: str) -> Path:
    """``root/<model>/`` when present, else ``root`` itself if it is a diffusers folder."""
    return models.resolve(root, model)


def invalid_entry_result(entry: InvalidEntry) -> TaskResult:
    return TaskResult(prompt_id=entry.prompt_id, status="error", message=entry.message,
                      flags=["invalid_manifest_entry"])


def grade_task(task: TaskEntry, ctx: TaskContext, gpu: str | None = None) -> TaskResult:
    result = TaskResult.for_task(task)
    cfg = ctx.config
    files = submission.find(cfg.submission, task)
    if not files.complete:
        return result.fail("missing", "; ".join(files.problems))
    try:
        metrics = submission.load_metrics(files.metrics)
        result.self_reported_speedup = metrics["speedup"]
    except SchemaViolation as exc:
        result.metrics_error = {"json_path": exc.json_path, "message": exc.detail}
        return result.fail("invalid_metrics", str(exc))
    try:
        model_dir = resolve_model_dir(cfg.model_dir, task.task_key.model)
    except GraderError as exc:
        return result.fail("error", str(exc), "no_model")
    static = {**static_check.scan(files.experiment),
              **{variant_flag("baseline", flag): e for flag, e in static_check.scan(files.baseline).items()}}
    result.evidence = {}
    result.add_flags(static, static)
    task_dir = ctx.run_dir / "tasks" / task.prompt_id
    on_phase = ctx.phases(task.prompt_id)
    if not submission.is_module(files.experiment):
        ctx.note(f"task {task.prompt_id}: script")
        on_phase("script", "script", "")
        return _script_result(result, run_script(
            files.experiment, model_dir, task_dir / "script", sandbox=cfg.sandbox, device=cfg.device,
            timeout=cfg.script_timeout, gpu=gpu, labels={"sd-grader.task": task.prompt_id, "sd-grader.variant": "script"},
            docker_runtime=cfg.docker_runtime),
            task)

    code = ctx.code.get(task.prompt_id) or reference.task_code(cfg.tasks, task)   # Ray nodes read it here
    if isinstance(code, str):
        return result.fail("error", code, "no_reference")
    result.reference = code.reference.describe()
    ref_path = code.reference.write_to(task_dir / "trusted_code")
    gt_path = code.write_gt(task_dir / "trusted_code")
    cpuset = cpu_share(gpu, cfg.gpus) if cfg.pins_cpus else None
    threads = thread_share(cfg.gpus, cpuset)
    limits = {"baseline": dict(max_batches=min(cfg.timing.baseline_batches, cfg.timing.max_batches), probes=False,
                               keeps_images=False, warmup_batches=0,
                               loads_alongside=True),
              "reference": dict(probes=False, loads_alongside=True)}
    specs = [
        VariantSpec(name=variant, module_path=path, model_dir=model_dir, steps=task.task_key.steps,
                    device=cfg.device, sandbox=cfg.sandbox, gpu=gpu,
                    timeout=cfg.variant_timeout, cpuset=cpuset, threads=threads, docker_runtime=cfg.docker_runtime,
                    labels=(("sd-grader.task", task.prompt_id), ("sd-grader.variant", variant)), **limits.get(variant, {}))
        for variant, path in (("gt", gt_path), ("reference", ref_path), ("baseline", files.baseline),
                              ("experiment", files.experiment))
    ]
    result.gpu, result.cpuset, result.threads = gpu, list(cpuset) if cpuset else None, threads
    ctx.note(f"task {task.prompt_id}: running reference, baseline, experiment and GT (interleaved)"
             + (f" on GPU {gpu}" if gpu else ""))
    schedule = ctx.schedule.for_task(task.prompt_id)
    runs = run_variants(specs, schedule, cfg.timing, task_dir, on_phase=on_phase, compare=_compare_batch)
    on_phase("", "scoring", "")
    return score_task(result, runs, ctx, schedule)


def _compare_batch(index: int, arrays: dict) -> dict:
    from grader.scores.quality import compare_batch  # torch: only once there are images to compare

    return compare_batch(index, arrays)


def score_task(result: TaskResult, runs: dict[str, VariantRun], ctx: TaskContext, schedule: Schedule) -> TaskResult:
    """Evidence and scores for a task whose variants ran (some may have failed)."""
    cfg = ctx.config
    for run in runs.values():
        runtime.check_variant(run, cfg.integrity)
    for name, run in runs.items():
        result.add_flags([variant_flag(name, f) for f in run.flags])
    failed = next((runs[v] for v in VARIANTS if v in runs and runs[v].status != "ok"), None)
    if failed is not None:
        result.variants = {name: run.to_dict() for name, run in runs.items()}
        status = "error" if failed.name in TRUSTED_VARIANTS else failed.status
        extra = {"gt": ["gt_failed"], "baseline": ["baseline_failed"], "reference": ["reference_failed"]}.get(failed.name, [])
        return result.fail(status, f"{failed.name}: {failed.message}", *extra)
    score_speedups(result, runs, cfg.integrity)
    found = integrity.check(runs, result.manifest_speedup, cfg.integrity)
    result.add_flags(found, {**{f: e for r in runs.values() for f, e in r.evidence.items()}, **found})
    result.variants = {name: run.to_dict() for name, run in runs.items()}
    labels = runs["experiment"].kept
    batches = [schedule.timed(int(label[1:])) for label in labels]
    result.quality_inputs = {"labels": labels, "prompts": [p for b in batches for p in b.prompts],
                             "seeds": [s for b in batches for s in b.seeds or ()],
                             "batches": runs["experiment"].comparisons,
                             # per variant, the kept images' digests in label order, as the gate loads them
                             "digests": {v: [d for label in labels for d in runs[v].digests.get(label, [])]
                                         for v in IMAGE_VARIANTS}}
    return apply_quality(result, ctx.run_dir / "tasks" / result.prompt_id, cfg.quality)


def _script_result(result: TaskResult, script, task: TaskEntry) -> TaskResult:
    result.mode, result.self_reported = "script", True
    result.add_flags(["self_reported"])
    result.variants["script"] = script.variant
    if script.metrics_error is not None:
        exc = script.metrics_error
        result.metrics_error = {"json_path": exc.json_path, "message": exc.detail}
    if script.metrics is None:
        return result.fail(script.status, script.message)
    speedup = float(script.metrics["speedup"])
    result.speedup = result.self_reported_speedup = speedup
    result.relative_to_gt = speedup / task.speedup if task.speedup else None
    result.message = "script mode: scores are self-reported, not measured"
    return result
