"""What grading one task needs, wherever it runs: the contract between the pipeline and an executor.

An executor decides *where* a task is graded (this host's GPUs, a Ray node); the grading
function itself comes from the pipeline as an argument, so executors import nothing above
them. On a Ray node the context is rebuilt from plain data (config, schedule, a scratch
run folder) with silent callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from grader.config import GradeConfig
from grader.runs.supervisor import PhaseCallback, no_phases
from grader.scores.result import TaskResult
from grader.taskset.manifest import TaskEntry
from grader.taskset.prompts import Schedule


def _silent_note(text: str) -> None:
    pass


def _silent_phases(task_id: str) -> PhaseCallback:
    return no_phases


@dataclass
class TaskContext:
    """``note(text)`` logs a line; ``phases(task_id)`` gives the ``on_phase`` callback of one task."""

    config: GradeConfig
    schedule: Schedule
    run_dir: Path
    note: Callable[[str], None] = _silent_note
    phases: Callable[[str], PhaseCallback] = _silent_phases
    # Trusted code read before anything ran (grader.taskset.reference.snapshot): TaskCode or a message.
    code: dict = field(default_factory=dict)


class GradeTask(Protocol):
    def __call__(self, task: TaskEntry, ctx: TaskContext, gpu: str | None = None) -> TaskResult: ...
