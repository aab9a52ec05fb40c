"""Scores per task and aggregates over a run (DESIGN section 5).

``speedup = t_reference / t_experiment`` is measured against the task set's reference
baseline (never the agent's own, whose figure is ``agent_baseline_speedup`` and is not
aggregated); ``relative_to_gt = t_gt / t_experiment``. All times are median per-image
seconds measured by the supervisor.
"""

from __future__ import annotations

import math
from typing import Iterable

STATUSES = ("ok", "quality_failed", "missing", "invalid_metrics", "error", "timeout", "oom", "tampered")
FAST_P = (1.0, 1.5, 2.0)
DIFFICULTIES = ("easy", "medium", "hard")


def discrepancy(reported: float | None, measured: float | None) -> float | None:
    """Relative gap between a self-reported and a measured speedup."""
    if reported is None or measured is None or measured <= 0:
        return None
    return abs(reported - measured) / measured


def geomean(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _measured_ok(task: dict) -> bool:
    return task["status"] == "ok" and not task.get("self_reported") and task.get("speedup") is not None


def aggregate(tasks: list[dict]) -> dict:
    """Summary of a list of task results; ``fast_p`` and ``beats_gt`` divide by *all* tasks."""
    n = len(tasks)
    passing = [t for t in tasks if _measured_ok(t)]
    by_status = {s: sum(1 for t in tasks if t["status"] == s) for s in STATUSES}
    fast_p = {f"{p:.1f}": (sum(1 for t in passing if t["speedup"] > p) / n if n else 0.0) for p in FAST_P}
    beats = sum(1 for t in passing if (t.get("relative_to_gt") or 0) > 1.0)
    return {
        "n_tasks": n,
        "n_passing": len(passing),
        "by_status": by_status,
        "geomean_speedup": geomean(t["speedup"] for t in passing),
        "geomean_relative_to_gt": geomean(t.get("relative_to_gt") for t in passing),
        "fast_p": fast_p,
        "beats_gt": beats / n if n else 0.0,
        "n_self_reported": sum(1 for t in tasks if t.get("self_reported")),
        "n_flagged": sum(1 for t in tasks if t.get("flags")),
    }


def summarize(tasks: list[dict]) -> dict:
    summary = aggregate(tasks)
    summary["by_difficulty"] = {
        d: aggregate([t for t in tasks if t.get("difficulty") == d]) for d in DIFFICULTIES
        if any(t.get("difficulty") == d for t in tasks)
    }
    return summary
