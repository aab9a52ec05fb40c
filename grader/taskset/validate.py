"""Pre-flight check of a submission: the same file discovery, metrics validation and
mode detection that ``grade`` uses, without running anything."""

from __future__ import annotations

from pathlib import Path

from grader.errors import SchemaViolation
from grader.taskset import submission
from grader.taskset.manifest import TaskSet


def validate_submission(root: Path, tasks: Path, only: set[str] | None = None) -> list[tuple[str, str, str]]:
    """``(prompt_id, status, message)`` per task; status is what grading would start from."""
    task_set = TaskSet.from_dir(tasks).select(only)
    out = [(e.prompt_id, "error", e.message) for e in task_set.invalid]
    for task in task_set.tasks:
        files = submission.find(Path(root), task)
        if not files.complete:
            out.append((task.prompt_id, "missing", "; ".join(files.problems)))
            continue
        try:
            submission.load_metrics(files.metrics)
        except SchemaViolation as exc:
            out.append((task.prompt_id, "invalid_metrics", str(exc)))
            continue
        mode = "module" if submission.is_module(files.experiment) else "script (self-reported)"
        out.append((task.prompt_id, "ok", f"ready, experiment in {mode} mode"))
    return out
