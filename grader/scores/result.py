"""The typed result of one task, and its one conversion to the report's task entry.

The pipeline builds a :class:`TaskResult` as a task moves through the stages; the run
folder stores :meth:`TaskResult.to_dict` as ``tasks/<id>/result.json`` and the report
lists the same dicts under ``tasks[]`` (``schemas/report.schema.json``, ``$defs/task``;
a test checks that every shape the pipeline makes validates). :meth:`from_dict` reads a
stored one back (resume, rescore); keys this version does not know are kept as they were.
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass, field
from typing import Any

# Keys every task entry has, in the order the report shows them.
CORE_KEYS = ("prompt_id", "task_key", "difficulty", "category", "status", "message", "flags", "mode",
             "self_reported", "speedup", "speedup_ci", "agent_baseline_speedup", "gt_speedup", "relative_to_gt",
             "manifest_speedup",
             "self_reported_speedup", "self_report_discrepancy", "quality", "variants")


@dataclass
class TaskResult:
    prompt_id: str
    task_key: str | None = None
    difficulty: str | None = None
    category: str | None = None
    status: str = "ok"
    message: str = ""
    flags: list[str] = field(default_factory=list)
    mode: str = "module"
    self_reported: bool = False
    speedup: float | None = None
    speedup_ci: list[float] | None = None
    agent_baseline_speedup: float | None = None
    gt_speedup: float | None = None
    relative_to_gt: float | None = None
    manifest_speedup: float | None = None
    self_reported_speedup: float | None = None
    self_report_discrepancy: float | None = None
    quality: dict | None = None
    variants: dict[str, dict] = field(default_factory=dict)
    # Present in the entry only when set.
    metrics_error: dict | None = None
    evidence: dict[str, str] | None = None
    gpu: str | None = None
    cpuset: list[int] | None = None
    threads: int | None = None
    quality_inputs: dict | None = None
    reference: dict | None = None
    baseline_vs_reference: dict | None = None
    scoring_seconds: float | None = None
    traceback: str | None = None
    grade_seconds: float | None = None
    resume: dict | None = None
    ray: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_task(cls, task) -> "TaskResult":
        """A fresh result for a manifest entry (``grader.taskset.manifest.TaskEntry``)."""
        return cls(prompt_id=task.prompt_id, task_key=str(task.task_key), difficulty=task.difficulty,
                   category=task.category, manifest_speedup=task.speedup)

    @classmethod
    def crashed(cls, task, exc: BaseException) -> "TaskResult":
        """A task the grader itself failed on; call it while ``exc`` is being handled."""
        result = cls.for_task(task)
        result.fail("error", f"grader error: {type(exc).__name__}: {exc}", "grader_error")
        result.traceback = traceback.format_exc()[-4000:]
        return result

    def fail(self, status: str, message: str, *flags: str) -> "TaskResult":
        self.status, self.message = status, message
        self.add_flags(flags)
        return self

    def add_flags(self, flags, evidence: dict[str, str] | None = None) -> None:
        """Raise ``flags`` (kept sorted and unique), recording ``evidence`` lines for them."""
        self.flags = sorted(set(self.flags) | set(flags))
        if evidence:
            self.evidence = {**(self.evidence or {}), **evidence}

    def to_dict(self) -> dict:
        """The task entry of ``report.json`` and the content of ``result.json``."""
        out = {key: getattr(self, key) for key in CORE_KEYS}
        for f in dataclasses.fields(self):
            if f.name not in CORE_KEYS and f.name != "extra" and getattr(self, f.name) is not None:
                out[f.name] = getattr(self, f.name)
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TaskResult":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})
