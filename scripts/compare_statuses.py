"""Compare the per-task statuses of two gradings of one submission (``scripts/ci_without_docker.sh``).

The bundled example graded under docker and again under bwrap must give every task the same
status: a sandbox that changed an outcome (a crash that only happens in one, a quality gate that
only fails in the other) is a difference a user would be misled by. Both reports are validated
against ``schemas/report.schema.json`` and must say which sandbox graded them.

    python scripts/compare_statuses.py DOCKER_REPORT BWRAP_REPORT [--expect docker,bwrap]

Prints one line per task and a summary; exits 0 when every status matches, 1 on any mismatch,
2 when a report cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Comparison:
    """Per-task statuses of two reports, and what differs between them."""

    sandboxes: tuple[str, str]
    rows: tuple[tuple[str, str | None, str | None], ...]    # (prompt_id, first status, second status)
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def statuses(report: dict) -> dict[str, str]:
    """prompt_id -> status of a report document."""
    return {task["prompt_id"]: task["status"] for task in report["tasks"]}


def compare(first: dict, second: dict, expect: tuple[str, str] | None = None) -> Comparison:
    """The comparison of two report documents; ``expect`` the sandboxes each must name."""
    sandboxes = (first["provenance"]["sandbox"], second["provenance"]["sandbox"])
    problems = []
    if expect is not None:
        for which, (got, want) in enumerate(zip(sandboxes, expect), 1):
            if got != want:
                problems.append(f"report {which} was graded with --sandbox {got}, not {want}")
    a, b = statuses(first), statuses(second)
    ids = sorted(set(a) | set(b), key=lambda i: (len(i), i))
    rows = tuple((pid, a.get(pid), b.get(pid)) for pid in ids)
    for pid, sa, sb in rows:
        if sa is None or sb is None:
            problems.append(f"task {pid}: graded only under {sandboxes[0] if sb is None else sandboxes[1]}")
        elif sa != sb:
            problems.append(f"task {pid}: {sa} under {sandboxes[0]}, {sb} under {sandboxes[1]}")
    if not rows:
        problems.append("no task was graded")
    return Comparison(sandboxes, rows, tuple(problems))


def render(result: Comparison) -> str:
    left, right = result.sandboxes
    width = max([len("task"), *(len(pid) for pid, _, _ in result.rows)])
    lines = [f"{'task':<{width}}  {left:<16} {right:<16} same"]
    for pid, sa, sb in result.rows:
        lines.append(f"{pid:<{width}}  {sa or '-':<16} {sb or '-':<16} {'yes' if sa == sb else 'NO'}")
    same = sum(1 for _, sa, sb in result.rows if sa == sb and sa is not None)
    lines.append(f"{same}/{len(result.rows)} task statuses match between {left} and {right}")
    lines += [f"MISMATCH: {p}" for p in result.problems]
    return "\n".join(lines)


def load_report(path: Path) -> dict:
    from grader import schemas

    return schemas.load_json(path, "report.schema.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="report.json of the first grading (docker)")
    parser.add_argument("second", type=Path, help="report.json of the second grading (bwrap)")
    parser.add_argument("--expect", default="docker,bwrap", metavar="A,B",
                        help="the sandbox each report must name; '' for any (default: docker,bwrap)")
    args = parser.parse_args(argv)
    from grader.errors import GraderError

    try:
        first, second = load_report(args.first), load_report(args.second)
    except (GraderError, OSError) as exc:
        print(f"compare_statuses: {exc}", file=sys.stderr)
        return 2
    expect = tuple(args.expect.split(",")) if args.expect else None
    if expect is not None and len(expect) != 2:
        parser.error("--expect takes two sandbox names, A,B")
    result = compare(first, second, expect)  # type: ignore[arg-type]
    print(render(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
