"""``grader report RUN_DIR`` and ``grader rescore RUN_DIR``: work on a run folder's stored results.

- ``report`` re-renders report.json, report.md, report.html and junit.xml from the
  stored task results and ``run.json``; nothing runs, nothing is re-scored.
- ``rescore`` re-applies the quality gate with new tolerances to every result the gate
  decided (ok, quality_failed, tampered with quality inputs) from the images stored in
  the run folder, rewrites those results, records the new thresholds (and the old ones)
  and re-renders everything. Timing, speedups and flags are left as they were.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

from grader import __version__
from grader.config import QualityConfig
from grader.errors import ConfigError

GATE_KEYS = ("status", "message", "quality", "flags")
TOLERANCE_NAMES = {"clip": "clip_tolerance", "ssim": "ssim_tolerance", "psnr": "psnr_tolerance_db"}


def register(sub) -> None:
    rep = sub.add_parser("report", help="re-render all reports of a run folder from its stored results")
    rep.add_argument("run_dir", type=Path, help="a run folder written by `grader grade`")
    rep.set_defaults(func=run_report)

    res = sub.add_parser("rescore", help="recompute quality gates and scores of a run from its stored images")
    res.add_argument("run_dir", type=Path, help="a run folder written by `grader grade`")
    res.add_argument("--tolerances", default="",
                     help="comma-separated NAME=VALUE with NAME in clip, ssim, psnr (psnr=none turns the PSNR check off)")
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


def stored_results(run_dir: Path, record) -> tuple[list[dict], list[str]]:
    """The run's whole stored results, and a note for each task without one."""
    from grader.record import resume

    run_dir = Path(run_dir)
    ids = record.doc.get("task_ids")
    if ids is None:
        ids = sorted(p.name for p in (run_dir / "tasks").iterdir() if (p / resume.RESULT_FILE).exists()) \
            if (run_dir / "tasks").is_dir() else []
    results, notes = [], []
    for prompt_id in ids:
        result, why = resume.read_result(run_dir / "tasks" / prompt_id / resume.RESULT_FILE)
        if result is None:
            notes.append(f"task {prompt_id}: {why}; left out of the report")
        else:
            results.append(result)
    return results, notes


def render_run(run_dir: Path) -> tuple[dict, list[str]]:
    """Re-render every output of ``run_dir`` from what it stores; returns the report and notes."""
    from grader.pipeline import run as runner
    from grader.record import resume

    run_dir = Path(run_dir)
    record = resume.RunRecord.load(run_dir)
    results, notes = stored_results(run_dir, record)
    doc = runner.build_report(record, results, {"rendered_at": _now_iso()})
    runner.report_outputs(run_dir, doc)
    return doc, notes


def rescore_run(run_dir: Path, tolerances: dict, clip_model: Path | None = None) -> tuple[dict, list[str]]:
    """Re-gate the stored results of ``run_dir`` under ``tolerances`` and re-render everything."""
    from grader.pipeline import run as runner
    from grader.record import resume

    run_dir = Path(run_dir)
    with resume.RunLock(run_dir):
        record = resume.RunRecord.load(run_dir)
        options = copy.deepcopy(record.options)
        quality = options.setdefault("quality", {})
        previous = {k: quality.get(k) for k in TOLERANCE_NAMES.values()}
        for name, value in tolerances.items():
            quality[name] = None if value == "none" else value
        if clip_model is not None:
            quality["clip_model"] = str(clip_model)
        if quality.get("clip_model") is not None and not Path(quality["clip_model"]).is_dir():
            raise ConfigError(f"CLIP folder {quality['clip_model']} of this run is gone: pass --clip-model DIR")
        qcfg = QualityConfig(clip_model=Path(quality["clip_model"]) if quality.get("clip_model") else None,
                             clip_tolerance=quality.get("clip_tolerance", QualityConfig.clip_tolerance),
                             ssim_tolerance=quality.get("ssim_tolerance", QualityConfig.ssim_tolerance),
                             psnr_tolerance_db=quality.get("psnr_tolerance_db"))
        qkey = resume.quality_key(options, __version__)
        results, notes = stored_results(run_dir, record)
        changed = []
        for result in results:
            before = result["status"]
            if resume.regatable(result):
                # The gate's verdict is all a rescore may change; everything else (timings of
                # the original scoring included) stays as graded.
                regated = runner.apply_quality(copy.deepcopy(result), run_dir / "tasks" / result["prompt_id"], qcfg)
                result.update({k: regated[k] for k in GATE_KEYS if k in regated})
            result["resume"] = dict(result["resume"], quality_key=qkey)
            resume.atomic_write_json(run_dir / "tasks" / result["prompt_id"] / resume.RESULT_FILE, result)
            if result["status"] != before:
                changed.append(f"task {result['prompt_id']}: {before} -> {result['status']}")
        record.options.clear()
        record.options.update(options)
        entry = {"at": time.time(), "previous": previous, "new": {k: quality.get(k) for k in TOLERANCE_NAMES.values()},
                 "changed": changed}
        record.doc.setdefault("rescores", []).append(entry)
        record.save()
        doc = runner.build_report(record, results)
        runner.report_outputs(run_dir, doc)
    return doc, notes + changed


def _now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _print_outcome(doc: dict, notes: list[str], run_dir: Path) -> None:
    from grader.reports import document as report

    for note in notes:
        print(f"grader: {note}")
    print(report.table(doc))
    print(f"\nreports: {run_dir / 'report.json'}, report.md, report.html, junit.xml")


def run_report(args) -> int:
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
