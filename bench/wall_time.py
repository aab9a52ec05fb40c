"""Where the grader's wall time goes, per variant phase, for a finished run.

    python bench/wall_time.py RUN_DIR            # after `make grade` (RUN_DIR=runs/latest)

Reads the per-task results a run stored and prints one table: process start, model
load (import + load_pipeline), warm-up, timed work, integrity probes, teardown and
scoring (quality in the grader process), each as seconds and as a share of the sum.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PHASES = ("process_start", "load", "warmup", "timed", "probes", "teardown")


def collect(run_dir: Path) -> tuple[dict[str, float], float, int]:
    totals = {p: 0.0 for p in (*PHASES, "scoring", "other")}
    grade_wall, n = 0.0, 0
    for path in sorted((run_dir / "tasks").glob("*/result.json")):
        result = json.loads(path.read_text())
        n += 1
        grade_wall += result.get("grade_seconds") or 0.0
        accounted = 0.0
        for variant in (result.get("variants") or {}).values():
            for phase in PHASES:
                value = (variant.get("phases") or {}).get(phase) or 0.0
                totals[phase] += value
                accounted += value
        totals["scoring"] += result.get("scoring_seconds") or 0.0
        accounted += result.get("scoring_seconds") or 0.0
        totals["other"] += max((result.get("grade_seconds") or 0.0) - accounted, 0.0)
    return totals, grade_wall, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?", default=Path("runs/latest"))
    args = parser.parse_args(argv)
    totals, wall, n = collect(args.run_dir)
    if not n:
        parser.error(f"no task results under {args.run_dir}/tasks")
    whole = sum(totals.values()) or 1.0
    print(f"{n} tasks, {wall:.1f} s graded wall time")
    print(f"{'phase':<15}{'seconds':>10}{'share':>8}")
    for phase, seconds in totals.items():
        print(f"{phase:<15}{seconds:>10.1f}{seconds / whole:>8.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
