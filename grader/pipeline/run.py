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
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grader import __version__
from grader.config import GradeConfig
from grader.errors import GraderError, SchemaViolation
from grader.evidence import integrity, static_check
from grader.runs.placement import cpu_share, thread_share
from grader.runs.supervisor import VariantRun, VariantSpec, run_variants
from grader.scores import aggregate as scoring
from grader.scores import quality
from grader.taskset import submission
from grader.taskset.manifest import InvalidEntry, TaskEntry, TaskSet
from grader.taskset.prompts import Schedule, load_pool

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


def grade_task(task: TaskEntry, ctx: TaskContext, gpu: str | None = None) -> dict:
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
    static = {**static_check.scan(files.experiment),
              **{f"baseline_{flag}": e for flag, e in static_check.scan(files.baseline).items()}}
    result["flags"].extend(static)
    result["evidence"] = dict(static)
    if not submission.is_module(files.experiment):
        from grader.runs.script_mode import grade_script

        return grade_script(task, files, model_dir, ctx, result, gpu=gpu)

    task_dir = ctx.run_dir / "tasks" / task.prompt_id
    cpuset = cpu_share(gpu, cfg.gpus) if cfg.pins_cpus else None
    threads = thread_share(cfg.gpus, cpuset)
    specs = [
        VariantSpec(name=variant, module_path=path, model_dir=model_dir, steps=task.task_key.steps,
                    device=cfg.device, sandbox=cfg.sandbox, gpu=gpu,
                    timeout=cfg.variant_timeout, cpuset=cpuset, threads=threads,
                    labels=(("sd-grader.task", task.prompt_id), ("sd-grader.variant", variant)))
        for variant, path in (("gt", task.gt_path), ("baseline", files.baseline), ("experiment", files.experiment))
    ]
    result["gpu"] = gpu
    result["cpuset"] = list(cpuset) if cpuset else None
    result["threads"] = threads
    ctx.progress(f"task {task.prompt_id}: running baseline, experiment and GT (interleaved)" + (f" on GPU {gpu}" if gpu else ""))
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
    base, exp, gt = (runs[v] for v in VARIANTS)
    point, low, high = _speedup(base, exp)
    result.update(speedup=point, speedup_ci=[low, high], gt_speedup=_speedup(base, gt)[0],
                  relative_to_gt=_speedup(gt, exp)[0])
    result["self_report_discrepancy"] = scoring.discrepancy(result["self_reported_speedup"], point)
    if result["self_report_discrepancy"] is not None and result["self_report_discrepancy"] > scoring.SELF_REPORT_TOLERANCE:
        flags.append("self_report_mismatch")
        result.setdefault("evidence", {})["self_report_mismatch"] = (
            f"metrics file claims {result['self_reported_speedup']:.2f}x; measured {point:.2f}x "
            f"({result['self_report_discrepancy']:.0%} apart, tolerance {scoring.SELF_REPORT_TOLERANCE:.0%})")
    evidence = integrity.check(runs, result["manifest_speedup"], schedule=ctx.schedule)
    for name, run in runs.items():
        result["variants"][name]["probes"] = run.probes
    flags.extend(evidence)
    result["evidence"] = {**result.get("evidence", {}), **{f: e for r in runs.values() for f, e in r.evidence.items()},
                          **evidence}
    labels = sorted(set.intersection(*(set(p.name for p in runs[v].image_dir.iterdir()) for v in VARIANTS)))
    prompts = [p for label in labels for p in ctx.schedule.timed(int(label[1:])).prompts]
    result["quality_inputs"] = {"labels": labels, "prompts": prompts}
    return apply_quality(result, ctx.run_dir / "tasks" / result["prompt_id"], ctx.config.quality)


def apply_quality(result: dict, task_dir: Path, cfg) -> dict:
    """(Re)compute the quality gate from stored images; sets status ok/quality_failed.

    Used by grading and by ``grader rescore``, which changes only tolerances: it
    touches no result whose status came from anything but the gate.
    """
    labels, prompts = result["quality_inputs"]["labels"], result["quality_inputs"]["prompts"]
    flags = set(result["flags"]) - {"quality_incomparable"}
    started = time.monotonic()
    try:
        q = quality.assess(*(quality.load_images(task_dir / v / "images", labels) for v in VARIANTS), prompts, cfg)
    except (ValueError, OSError) as exc:
        result.update(status="error", message=f"quality: {exc}", quality=None)
        flags.add("quality_incomparable")
    else:
        result["quality"] = q.to_dict()
        if q.passed:
            result.update(status="ok", message="")
        else:
            result.update(status="quality_failed", message="quality gate failed: " + ", ".join(q.failures))
    result["flags"] = sorted(flags)
    result["scoring_seconds"] = time.monotonic() - started
    tampering = sorted(flags & scoring.TAMPER_FLAGS)
    if tampering and result["status"] in ("ok", "quality_failed"):
        result.update(status="tampered", message="integrity check failed: " + ", ".join(tampering))
    return result


def _speedup(slow: VariantRun, fast: VariantRun) -> tuple[float, float, float]:
    """Paired per-batch speedup when enough batches pair up; else the ratio of medians."""
    from grader.scores.statistics import paired_speedup, speedup

    return paired_speedup(slow.batches, fast.batches) or speedup(slow.timing, fast.timing)


def crashed_result(task: TaskEntry, exc: BaseException) -> dict:
    result = _base_result(task)
    result.update(status="error", message=f"grader error: {type(exc).__name__}: {exc}", flags=["grader_error"],
                  traceback=traceback.format_exc()[-4000:])
    return result


def grade(cfg: GradeConfig, progress=None) -> dict:
    """Grade every task of ``cfg``; write results and every report to the run folder ``cfg.out``.

    The run folder survives crashes (see :mod:`grader.record.resume`): each task's result is
    written atomically when it ends, and running the same command again reuses every
    stored result whose resume key still matches. ``progress`` is ``None`` (a live
    display on a terminal, plain lines elsewhere), ``"rich"``/``"plain"``, a callable
    taking one line, or a :class:`grader.pipeline.progress.Reporter`; the JSON log goes to
    ``RUN_DIR/log.jsonl`` in every case.
    """
    from grader.pipeline import progress as progress_mod
    from grader.record import resume

    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    with resume.RunLock(run_dir):
        reporter = progress if isinstance(progress, progress_mod.Reporter) else \
            progress_mod.Reporter(run_dir, "auto" if progress is None else progress)
        try:
            return _grade_locked(cfg, run_dir, reporter)
        except BaseException as exc:
            reporter.log("error", "run_aborted", error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        finally:
            reporter.close()


def _grade_locked(cfg: GradeConfig, run_dir: Path, reporter) -> dict:
    from grader.pipeline import progress as progress_mod
    from grader.record import resume

    task_set = TaskSet.from_dir(cfg.tasks).select(set(cfg.only) or None)
    pool = load_pool(cfg.prompts_file)
    options = cfg.as_dict()
    record, notes = resume.RunRecord.open_for_grading(run_dir, options, seed=cfg.seed, version=__version__,
                                                      new_seed=lambda: secrets.randbelow(2**31))
    run_seed = record.run_seed
    schedule = progress_mod.ObservedSchedule(pool, run_seed, cfg.timing.batch_size, cfg.timing.max_images,
                                             reporter=reporter, warmups=cfg.timing.warmup_batches)
    plain = Schedule(pool, run_seed, cfg.timing.batch_size, cfg.timing.max_images)
    if "environment" not in record.doc or record.doc.get("environment_options") != _env_options(options):
        record.doc["environment"] = resume.collect_environment(options)
        record.doc["environment_options"] = _env_options(options)
    record.doc["task_ids"] = [e.prompt_id for e in task_set.invalid] + [t.prompt_id for t in task_set.tasks]
    record.doc["pool_digest"] = resume.pool_digest(pool)
    record.doc["kept_batches"] = {
        plain.timed(i).label: {"seed": plain.timed(i).seed, "prompts": list(plain.timed(i).prompts)}
        for i in range(cfg.timing.quality_batches) if plain.timed_size(i) > 0
    }
    record.save()
    ctx = TaskContext(cfg, schedule, run_dir, reporter)
    qkey = resume.quality_key(options, __version__)
    pool_key = record.doc["pool_digest"]

    results: dict[str, dict] = {}
    for entry in task_set.invalid:
        result = invalid_entry_result(entry)
        result["resume"] = {"key": resume.digest({"invalid": entry.message, "v": __version__}), "quality_key": qkey}
        write_json_atomic(run_dir / "tasks" / entry.prompt_id / resume.RESULT_FILE, result)
        results[entry.prompt_id] = result

    plan = []
    for task in task_set.tasks:
        task_dir = run_dir / "tasks" / task.prompt_id
        key = resume.task_key(options, task, resume.task_files(cfg.submission, task), run_seed=run_seed,
                              pool=pool_key, version=__version__, model_index=_model_index(cfg, task))
        stored, why = resume.trusted_result(task_dir, key)
        plan.append((task, task_dir, key, stored, why))
    n_reused = sum(1 for p in plan if p[3] is not None)
    reporter.run_started(run_id=record.doc["run_id"], run_dir=run_dir, n_tasks=len(task_set.invalid) + len(plan),
                         reused=len(task_set.invalid) + n_reused, notes=notes, run_seed=run_seed,
                         attempt=len(record.doc["attempts"]), workers=max(1, len(cfg.gpus)))
    for entry in task_set.invalid:
        reporter.task_reused(entry.prompt_id, "error", "invalid manifest entry")

    attempt = record.attempt()
    to_grade = []
    for task, task_dir, key, stored, why in plan:
        if stored is not None:
            if stored["resume"]["quality_key"] != qkey:
                # Only quality options changed for this task: re-gate its stored images, run nothing.
                if resume.regatable(stored):
                    stored = apply_quality(stored, task_dir, cfg.quality)
                    attempt["regated"].append(task.prompt_id)
                stored["resume"] = dict(stored["resume"], quality_key=qkey)
                write_json_atomic(task_dir / resume.RESULT_FILE, stored)
            results[task.prompt_id] = stored
            attempt["reused"].append(task.prompt_id)
            reporter.task_reused(task.prompt_id, stored["status"])
        else:
            to_grade.append((task, task_dir, key, why))

    lock = threading.Lock()

    def run_one(task, task_dir, key, why, gpu, grade=grade_task):
        # Nothing of an earlier attempt at this task may pass for a result of this one.
        (task_dir / resume.RESULT_FILE).unlink(missing_ok=True)
        resume.remove_partials(task_dir)
        with lock:
            reporter.task_started(task.prompt_id, task_dir, "" if why == "no stored result" else why)
        t0 = time.monotonic()
        try:
            result = grade(task, ctx, gpu=gpu)
        except Exception as exc:  # noqa: BLE001 - one task's grader bug must not sink the run
            result = crashed_result(task, exc)
        result["grade_seconds"] = time.monotonic() - t0
        result["resume"] = {"key": key, "quality_key": qkey}
        write_json_atomic(task_dir / resume.RESULT_FILE, result)
        with lock:
            results[task.prompt_id] = result
            attempt["graded"].append(task.prompt_id)
            reporter.task_finished(task.prompt_id, result["status"], result["message"], result["grade_seconds"],
                                   result["flags"])

    for_each_gpu(cfg.gpus, to_grade, run_one, ctx=ctx)

    finished = time.time()
    attempt["finished_at"] = finished
    record.doc["finished_at"] = finished
    record.save()
    doc = build_report(record, list(results.values()))
    outputs = report_outputs(run_dir, doc)
    reporter.run_finished(doc["summary"], outputs)
    return doc


def for_each_gpu(gpus: tuple[str, ...], items: list[tuple], work: Callable, ctx: TaskContext | None = None) -> None:
    """Call ``work(*item, gpu)`` for every item, one item per GPU at a time.

    With one GPU or none, items run in order in this thread. With several, each GPU
    has one thread taking the next item, so independent tasks run concurrently while
    no GPU ever holds two timed runs at once (a task's variants share its GPU and
    are interleaved, never simultaneous).

    With ``ctx.config.executor == "ray"`` the items go to a Ray cluster instead
    (:mod:`grader.executors.ray`): ``work`` still runs on this host, its grading on a node.
    """
    if ctx is not None and ctx.config.executor == "ray":
        from grader.executors.ray import run_on_ray

        run_on_ray(ctx, items, work)
        return
    if len(gpus) <= 1:
        for item in items:
            work(*item, gpus[0] if gpus else None)
        return
    pending = list(reversed(items))
    guard = threading.Lock()

    def drain(gpu: str) -> None:
        while True:
            with guard:
                if not pending:
                    return
                item = pending.pop()
            work(*item, gpu)

    threads = [threading.Thread(target=drain, args=(gpu,), name=f"gpu-{gpu}") for gpu in gpus]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _env_options(options: dict) -> dict:
    return {k: options.get(k) for k in ("sandbox", "device", "gpus")}


def _model_index(cfg: GradeConfig, task: TaskEntry) -> Path | None:
    try:
        return resolve_model_dir(cfg.model_dir, task.task_key.model) / "model_index.json"
    except GraderError:
        return None


def build_report(record, results: list[dict], extra_provenance: dict | None = None) -> dict:
    """The report of a run from its run record and stored results (grade, report, rescore)."""
    from grader.reports import document as report

    provenance = {"attempts": len(record.doc.get("attempts", [])),
                  "reused_tasks": sorted(record.doc["attempts"][-1].get("reused", []), key=_id_key)
                  if record.doc.get("attempts") else [],
                  "complete": {r["prompt_id"] for r in results} >= set(record.doc.get("task_ids", []))}
    rescores = record.doc.get("rescores") or []
    if rescores:
        last = rescores[-1]
        provenance["rescored"] = {"at": report._iso(last["at"]), "previous_thresholds": last["previous"],
                                  "changed": last["changed"], "times": len(rescores)}
    provenance.update(extra_provenance or {})
    return report.build(record.options, results, run_seed=record.run_seed, started=record.started,
                        finished=record.finished or time.time(), version=record.doc.get("grader_version", __version__),
                        environment=record.doc.get("environment"), extra=provenance)


def _id_key(prompt_id: str):
    return (0, int(prompt_id), "") if prompt_id.isdigit() else (1, 0, prompt_id)


def report_outputs(run_dir: Path, doc: dict) -> list[str]:
    from grader.reports import document as report

    return [str(path) for path in report.write(run_dir, doc)]
