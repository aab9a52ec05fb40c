"""Stored task results, read back without trusting them.

A stored ``result.json`` is reused only when it is whole: it parses, matches the report
schema's task definition, carries a resume key, and the images its quality verdict was
drawn from are still there. Anything else is graded again, so a file cut short by a crash
never passes for a finished result.
"""

from __future__ import annotations

from pathlib import Path

from grader import schemas
from grader.files import remove_partials
from grader.record.folder import RESULT_FILE, result_path
from grader.runs.variant import IMAGE_VARIANTS
from grader.scores.result import TaskResult
from grader.taskset.manifest import is_prompt_id


def validate_result(result: object) -> str | None:
    """Why ``result`` is not a whole task result, or None when it is."""
    if not isinstance(result, dict):
        return "not a JSON object"
    problems = schemas.errors("report.schema.json", result, definition="task")
    if problems:
        where, message = problems[0]
        return f"does not match the report schema's task at {where}: {message}"
    resume = result.get("resume")
    if not isinstance(resume, dict) or not isinstance(resume.get("key"), str) or not isinstance(resume.get("quality_key"), str):
        return "has no resume key"
    return None


def images_present(result: TaskResult, task_dir: Path) -> bool:
    inputs = result.quality_inputs
    if not inputs:
        return True
    for variant in IMAGE_VARIANTS:
        for label in inputs.get("labels", []):
            if not any((task_dir / variant / "images" / label).glob("*.npy")):
                return False
    return True


def read_result(path: Path) -> tuple[TaskResult | None, str]:
    """A stored result if it is whole, else (None, why not)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None, "no stored result"
    except OSError as exc:
        return None, f"unreadable: {exc}"
    try:
        document = schemas.parse_json(data)
    except schemas.InvalidJSON as exc:
        return None, f"not valid JSON: {exc}"
    why = validate_result(document)
    if why is not None:
        return None, why
    return TaskResult.from_dict(document), "ok"


def trusted_result(task_dir: Path, key: str) -> tuple[TaskResult | None, str]:
    """The stored result of a task when it can be reused for ``key``, else (None, why not)."""
    result, why = read_result(task_dir / RESULT_FILE)
    if result is None:
        return None, why
    if result.resume["key"] != key:
        return None, "inputs, options or grader version changed"
    if not images_present(result, task_dir):
        return None, "stored images are missing"
    return result, "ok"


def clear_result(task_dir: Path) -> None:
    """Remove a task's stored result and any partial write of it: nothing of an earlier
    attempt may pass for a result of this one."""
    (task_dir / RESULT_FILE).unlink(missing_ok=True)
    remove_partials(task_dir, RESULT_FILE)


def stored_results(run_dir: Path, task_ids: list[str] | None) -> tuple[list[TaskResult], list[str]]:
    """The run's whole stored results, and a note for each task without one."""
    run_dir = Path(run_dir)
    ids = task_ids
    if ids is None:
        tasks = run_dir / "tasks"
        ids = sorted(p.name for p in tasks.iterdir() if (p / RESULT_FILE).exists()) if tasks.is_dir() else []
    results, notes = [], []
    for prompt_id in ids:
        if not is_prompt_id(prompt_id):
            notes.append(f"task {str(prompt_id)[:80]!r}: not a valid prompt_id; left out of the report")
            continue
        result, why = read_result(result_path(run_dir, prompt_id))
        if result is None:
            notes.append(f"task {prompt_id}: {why}; left out of the report")
        else:
            results.append(result)
    return results, notes
