"""``grader report RUN_DIR`` and ``grader rescore RUN_DIR``: work on a run folder's stored results.

- ``report`` re-renders report.json, report.md, report.html and junit.xml from the
  stored task results and ``run.json``; nothing runs, nothing is re-scored, no torch.
- ``rescore`` re-applies the quality gate with new tolerances to every result the gate
  decided (ok, quality_failed, tampered with quality inputs) from the images stored in
  the run folder, rewrites those results, records the new thresholds (and the old ones)
  and re-renders everything. Timing, speedups and flags are left as they were.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.errors import ConfigError
from grader.record.rescore import TOLERANCE_NAMES


def register(sub) -> None:
    rep = sub.add_parser("report", help="re-render all reports of a run folder from its stored results")
    rep.add_argument("run_dir", type=Path, help="a run folder written by `grader grade`")
    rep.set_defaults(func=run_report)

    res = sub.add_parser("rescore", help="recompute quality gates and scores of a run from its stored images")
    res.add_argument("run_dir", type=Path, help="a run folder written by `grader grade`")
    res.add_argument("--tolerances", default="",
                     help="comma-separated NAME=VALUE with NAME in clip, ssim, psnr, batch_ssim (psnr=none turns the PSNR check off)")
    res.add_argument("--clip-tolerance", type=_tolerance, default=None)
    res.add_argument("--ssim-tolerance", type=_tolerance, default=None)
    res.add_argument("--psnr-tolerance", type=_tolerance, default=None, help="dB, or 'none' to turn the check off")
    res.add_argument("--clip-model", type=Path, default=None, help="CLIP folder, when the run's one has moved")
    res.set_defaults(func=run_rescore)


def _tolerance(text: str):
    if text.strip().lower() in ("none", "off"):
        return "none"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def parse_tolerances(text: str) -> dict:
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in TOLERANCE_NAMES:
            raise ConfigError(f"--tolerances {text!r}: expected NAME=VALUE with NAME in {', '.join(TOLERANCE_NAMES)}")
        try:
            out[TOLERANCE_NAMES[name.strip()]] = _tolerance(value)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--tolerances {part!r}: {exc}") from None
    return out


def rescore_run(run_dir: Path, tolerances: dict, clip_model: Path | None = None) -> tuple[dict, list[str]]:
    """Re-gate the stored results of ``run_dir`` under ``tolerances`` and re-render everything."""
    from grader.record.rescore import rescore_run as regate
    from grader.reports import outputs
    from grader.reports.document import build_report

    record, results, notes = regate(run_dir, tolerances, clip_model)
    doc = build_report(record, results)
    outputs.write(run_dir, doc)
    return doc, notes


def _print_outcome(doc: dict, notes: list[str], run_dir: Path) -> None:
    from grader.reports.console import table

    for note in notes:
        print(f"grader: {note}")
    print(table(doc))
    print(f"\nreports: {run_dir / 'report.json'}, report.md, report.html, junit.xml")


def run_report(args) -> int:
    from grader.reports.outputs import render_run

    doc, notes = render_run(args.run_dir)
    _print_outcome(doc, notes, args.run_dir)
    return 0


def run_rescore(args) -> int:
    tolerances = parse_tolerances(args.tolerances)
    for flag, name in (("clip_tolerance", "clip_tolerance"), ("ssim_tolerance", "ssim_tolerance"),
                       ("psnr_tolerance", "psnr_tolerance_db")):
        if getattr(args, flag) is not None:
            tolerances[name] = getattr(args, flag)
    if not tolerances and args.clip_model is None:
        print("grader: rescore with the run's own tolerances (pass --tolerances or --*-tolerance to change them)")
    doc, notes = rescore_run(args.run_dir, tolerances, args.clip_model)
    _print_outcome(doc, notes, args.run_dir)
    return 0
