"""Where the grader's wall time goes, per variant phase, for finished runs side by side.

    python bench/wall_time.py RUN_DIR [RUN_DIR ...]     # after `make grade` (RUN_DIR=runs/latest)

Reads the per-task results each run stored and prints one table, a column per run:
process start, model load (import + load_pipeline), warm-up, timed work, integrity
probes, teardown and scoring (quality in the grader process), each summed over the
variants (with loads side by side these sums exceed the wall time they took), then the
graded wall time, the timed rounds' wall time (the variants' timed work, which never
overlaps) and their ratio: the share of a grading that needed the device to itself.

The CPU comparison of issue 17 (loading side by side against one at a time), on one
machine, back to back:

    make grade RUN_DIR=runs/apart GRADE_ARGS="--set timing.load_together=false"
    make grade RUN_DIR=runs/together
    python bench/wall_time.py runs/apart runs/together
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PHASES = ("process_start", "load", "warmup", "timed", "probes", "teardown")


def collect(run_dir: Path) -> dict:
    """Phase sums over every variant of every graded task, the graded wall time and the statuses."""
    totals = {p: 0.0 for p in (*PHASES, "scoring")}
    wall, statuses = 0.0, {}
    for path in sorted((run_dir / "tasks").glob("*/result.json")):
        result = json.loads(path.read_text())
        statuses[result.get("prompt_id", path.parent.name)] = result.get("status")
        wall += result.get("grade_seconds") or 0.0
        for variant in (result.get("variants") or {}).values():
            for phase in PHASES:
                totals[phase] += (variant.get("phases") or {}).get(phase) or 0.0
        totals["scoring"] += result.get("scoring_seconds") or 0.0
    return {"phases": totals, "wall": wall, "statuses": statuses}


def table(runs: dict[str, dict]) -> list[str]:
    names = list(runs)
    width = max(12, *(len(n) + 2 for n in names))
    lines = [f"{'phase (sum over variants)':<28}" + "".join(f"{n:>{width}}" for n in names)]
    for phase in (*PHASES, "scoring"):
        lines.append(f"{phase:<28}" + "".join(f"{runs[n]['phases'][phase]:>{width}.1f}" for n in names))
    lines.append(f"{'graded wall (s)':<28}" + "".join(f"{runs[n]['wall']:>{width}.1f}" for n in names))
    lines.append(f"{'timed rounds (s)':<28}" + "".join(f"{runs[n]['phases']['timed']:>{width}.1f}" for n in names))
    lines.append(f"{'wall / timed':<28}" + "".join(
        f"{runs[n]['wall'] / runs[n]['phases']['timed'] if runs[n]['phases']['timed'] else float('nan'):>{width}.2f}"
        for n in names))
    if len(names) > 1:
        first = runs[names[0]]["wall"] or float("nan")
        lines.append(f"{'graded wall vs the first':<28}" + "".join(f"{runs[n]['wall'] / first:>{width}.2f}" for n in names))
        same = all(runs[n]["statuses"] == runs[names[0]]["statuses"] for n in names)
        lines.append("statuses: " + ("the same in every run" if same else "DIFFER: " + "; ".join(
            f"{n}: {runs[n]['statuses']}" for n in names)))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="*", default=[Path("runs/latest")])
    args = parser.parse_args(argv)
    runs = {}
    for run_dir in args.run_dirs:
        runs[str(run_dir)] = collect(run_dir)
        if not runs[str(run_dir)]["statuses"]:
            parser.error(f"no task results under {run_dir}/tasks")
    n = len(next(iter(runs.values()))["statuses"])
    print(f"{n} tasks per run")
    print("\n".join(table(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
