"""Finding a task's files in a submission folder, without trusting the folder.

A missing file is an outcome (status ``missing``), not a crash. Files are only
accepted when they are regular files that resolve inside the submission folder, so a
symlink cannot point the grader at GT code or at another task's files. Whether an
experiment is a module or a script is decided by reading its syntax tree: the
grader never imports agent code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from grader import schemas
from grader.errors import SchemaViolation
from grader.files import read_regular
from grader.taskset.manifest import TaskEntry

MAX_METRICS_BYTES = 1 << 20


@dataclass(frozen=True)
class SubmissionFiles:
    baseline: Path | None
    experiment: Path | None
    metrics: Path | None
    problems: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.problems


def _accept(root: Path, name: str, role: str, problems: list[str]) -> Path | None:
    path = root / name
    if not path.exists() and not path.is_symlink():
        problems.append(f"{role} file {name} is missing")
        return None
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
        problems.append(f"{role} file {name} is not a regular file inside the submission folder")
        return None
    return resolved


def find(root: Path, task: TaskEntry) -> SubmissionFiles:
    problems: list[str] = []
    baseline = _accept(root, task.baseline_name, "baseline", problems)
    experiment = _accept(root, task.experiment_name, "experiment", problems)
    metrics = _accept(root, task.metrics_name, "metrics", problems)
    return SubmissionFiles(baseline, experiment, metrics, tuple(problems))


def load_metrics(path: Path) -> dict:
    """The agent's metrics: at most MAX_METRICS_BYTES, strict JSON, valid against ``schemas/metrics.schema.json``."""
    try:
        data = read_regular(path, MAX_METRICS_BYTES)
    except (OSError, ValueError) as exc:
        raise SchemaViolation(str(path), "metrics.schema.json", "$", f"cannot read file: {exc}") from None
    return schemas.load_bytes(data, "metrics.schema.json", str(path))


def is_module(path: Path) -> bool:
    """True when the file defines ``load_pipeline`` at top level (module mode).

    A file that does not parse counts as a module: the worker will then report the
    syntax error as an import error with its traceback.
    """
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), filename=str(path))
    except SyntaxError:
        return True
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "load_pipeline":
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "load_pipeline" for t in node.targets):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == "load_pipeline" for a in node.names):
            return True
    return False


def task_files(submission_dir: Path, task: TaskEntry) -> dict[str, Path | None]:
    """Every file a task's result depends on, by role (baseline, experiment, metrics, gt)."""
    found = find(Path(submission_dir), task)
    return {"baseline": found.baseline, "experiment": found.experiment, "metrics": found.metrics, "gt": task.gt_path}
