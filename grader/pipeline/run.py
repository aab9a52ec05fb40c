"""Grading a submission: every task of the task set, into one run folder that survives a crash.

For each task, the stored result is reused when its resume key still matches
(:mod:`grader.record.keys`); only quality tolerances changed: it is re-gated from its
stored images; otherwise the task is graded (:func:`grader.pipeline.task.grade_task`) by
the chosen executor and its result written atomically the moment it ends. Last, every
report is rendered from the stored results.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

from grader import __version__
from grader.config import GradeConfig
from grader.errors import GraderError
from grader.executors.context import TaskContext
from grader.executors.local import for_each_gpu
from grader.files import atomic_write_json
from grader.pipeline.progress import Reporter
from grader.pipeline.task import grade_task, invalid_entry_result, resolve_model_dir
from grader.record.folder import RESULT_FILE, RunLock, RunRecord, open_run_dir, result_path
from grader.record.keys import digest, pool_digest, quality_key, task_key
from grader.record.provenance import collect_environment
from grader.record.stored import clear_result, trusted_result
from grader.reports import outputs
from grader.reports.document import build_report
from grader.scores.result import TaskResult
from grader.scores.task import apply_quality, regatable
from grader.taskset import reference
from grader.taskset.manifest import TaskEntry, TaskSet
from grader.taskset.prompts import Schedule, load_pool
from grader.taskset.submission import task_files


def grade(cfg: GradeConfig, progress=None) -> dict:
    """Grade every task of ``cfg``; write results and every report to the run folder ``cfg.out``.

    Running the same command again reuses every stored result whose resume key still
    matches. ``progress`` is ``None`` (a live display on a terminal, plain lines
    elsewhere), ``"rich"``/``"plain"``, a callable taking one line, or a
    :class:`~grader.pipeline.progress.Reporter`; the JSON log goes to
    ``RUN_DIR/log.jsonl`` in every case. Returns the report document.
    """
    run_dir = open_run_dir(Path(cfg.out))   # a file, or a folder it cannot write: ConfigError naming it
    with RunLock(run_dir):
        reporter = progress if isinstance(progress, Reporter) else Reporter(run_dir, "auto" if progress is None else progress)
        try:
            return _grade_locked(cfg, run_dir, reporter)
        except BaseException as exc:
            reporter.log("error", "run_aborted", error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        finally:
            reporter.close()


def _grade_locked(cfg: GradeConfig, run_dir: Path, reporter: Reporter) -> dict:
    task_set = TaskSet.from_dir(cfg.tasks).select(set(cfg.only) or None)
    pool = load_pool(cfg.prompts_file)
    options = cfg.as_dict()
    record, notes = RunRecord.open_for_grading(run_dir, options, seed=cfg.seed, version=__version__,
                                               new_seed=lambda: secrets.randbelow(2**31))
    run_seed = record.run_seed
    # Without an explicit --seed each task draws a secret schedule when it starts (never written anywhere).
    schedule = Schedule(pool, run_seed, cfg.timing.batch_size, cfg.timing.max_images, predictable=cfg.seed is not None)
    if "environment" not in record.doc or record.doc.get("environment_options") != _env_options(options):
        record.doc["environment"] = collect_environment(options)
        record.doc["environment_options"] = _env_options(options)
    record.doc["task_ids"] = [e.prompt_id for e in task_set.invalid] + [t.prompt_id for t in task_set.tasks]
    record.doc["pool_digest"] = pool_digest(pool)
    record.doc.pop("kept_batches", None)
    record.save()
    ctx = TaskContext(cfg, schedule, run_dir, note=reporter, phases=reporter.phases,
                      code=reference.snapshot(cfg.tasks, task_set.tasks))
    qkey = quality_key(options, __version__)
    pool_key = record.doc["pool_digest"]

    results: dict[str, TaskResult] = {}
    for entry in task_set.invalid:
        result = invalid_entry_result(entry)
        result.resume = {"key": digest({"invalid": entry.message, "v": __version__}), "quality_key": qkey}
        atomic_write_json(result_path(run_dir, entry.prompt_id), result.to_dict())  # a safe name, never the raw id
        results[entry.prompt_id] = result

    plan = []
    for task in task_set.tasks:
        task_dir = run_dir / "tasks" / task.prompt_id
        key = task_key(options, task, task_files(cfg.submission, task), run_seed=run_seed,
                       pool=pool_key, version=__version__, model_index=_model_index(cfg, task))
        stored, why = trusted_result(task_dir, key)
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
        if stored is None:
            to_grade.append((task, task_dir, key, why))
            continue
        if stored.resume["quality_key"] != qkey:
            # Only quality options changed for this task: re-gate its stored images, run nothing.
            if regatable(stored):
                stored = apply_quality(stored, task_dir, cfg.quality)
                attempt["regated"].append(task.prompt_id)
            stored.resume = dict(stored.resume, quality_key=qkey)
            atomic_write_json(task_dir / RESULT_FILE, stored.to_dict())
        results[task.prompt_id] = stored
        attempt["reused"].append(task.prompt_id)
        reporter.task_reused(task.prompt_id, stored.status)

    lock = threading.Lock()

    def run_one(task: TaskEntry, task_dir: Path, key: str, why: str, gpu: str | None, grade=grade_task) -> None:
        clear_result(task_dir)
        with lock:
            reporter.task_started(task.prompt_id, task_dir, "" if why == "no stored result" else why)
        t0 = time.monotonic()
        try:
            result = grade(task, ctx, gpu=gpu)
        except Exception as exc:  # noqa: BLE001 - one task's grader bug must not sink the run
            result = TaskResult.crashed(task, exc)
        result.grade_seconds = time.monotonic() - t0
        result.resume = {"key": key, "quality_key": qkey}
        try:
            atomic_write_json(task_dir / RESULT_FILE, result.to_dict())
        except (ValueError, TypeError) as exc:  # a value JSON cannot hold (NaN from somewhere): this task's fault only
            try:
                raise GraderError(f"result not storable: {exc}") from exc
            except GraderError as err:
                result = TaskResult.crashed(task, err)
            result.resume = {"key": key, "quality_key": qkey}
            atomic_write_json(task_dir / RESULT_FILE, result.to_dict())
        with lock:
            results[task.prompt_id] = result
            attempt["graded"].append(task.prompt_id)
            reporter.task_finished(task.prompt_id, result.status, result.message, result.grade_seconds, result.flags)

    if cfg.executor == "ray":
        from grader.executors.ray import run_on_ray

        run_on_ray(cfg.ray_address, to_grade, run_one, grade_task)
    else:
        for_each_gpu(cfg.gpus, to_grade, run_one)

    finished = time.time()
    attempt["finished_at"] = finished
    record.doc["finished_at"] = finished
    record.save()
    doc = build_report(record, list(results.values()))
    written = [str(path) for path in outputs.write(run_dir, doc)]
    reporter.run_finished(doc["summary"], written)
    return doc


def _env_options(options: dict) -> dict:
    return {k: options.get(k) for k in ("sandbox", "device", "gpus", "docker_runtime")}


def _model_index(cfg: GradeConfig, task: TaskEntry) -> Path | None:
    try:
        return resolve_model_dir(cfg.model_dir, task.task_key.model) / "model_index.json"
    except GraderError:
        return None
