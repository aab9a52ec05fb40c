"""Every rendering of a run, written into its run folder, each atomically.

``report.json`` first (the contract), then ``report.md`` and ``junit.xml``; ``report.html``
last, as the only one that reads the run folder's images: if it cannot be rendered, a page
saying why is written instead and the others stand. :func:`render_run` re-renders a
finished run from what its folder stores (``grader report``); nothing runs or is re-scored.
"""

from __future__ import annotations

import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

from grader.files import atomic_write, atomic_write_json
from grader.record.folder import RunRecord
from grader.record.stored import stored_results
from grader.reports import html, junit
from grader.reports.document import build_report
from grader.reports.markdown import markdown


def write(run_dir: Path, doc: dict) -> list[Path]:
    """Write report.json, report.md, junit.xml and report.html; returns their paths."""
    run_dir = Path(run_dir)
    atomic_write_json(run_dir / "report.json", doc)
    atomic_write(run_dir / "report.md", markdown(doc))
    atomic_write(run_dir / "junit.xml", junit.render(doc))
    try:
        page = html.render(doc, run_dir)
    except Exception as exc:  # noqa: BLE001 - the JSON is the contract; the page is a rendering
        print(f"grader: warning: report.html could not be rendered: {type(exc).__name__}: {exc}", file=sys.stderr)
        page = html.error_page(doc, traceback.format_exc())
    atomic_write(run_dir / "report.html", page)
    return [run_dir / name for name in ("report.json", "report.md", "junit.xml", "report.html")]


def render_run(run_dir: Path) -> tuple[dict, list[str]]:
    """Re-render every output of ``run_dir`` from what it stores; returns the report and notes."""
    run_dir = Path(run_dir)
    record = RunRecord.load(run_dir)
    results, notes = stored_results(run_dir, record.doc.get("task_ids"))
    rendered_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    doc = build_report(record, results, {"rendered_at": rendered_at})
    write(run_dir, doc)
    return doc, notes
