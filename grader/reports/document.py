"""The run's report: ``report.json`` (schema-checked), ``report.md`` and a console table.

The JSON is the contract (DESIGN section 6, ``schemas/report.schema.json``); the
Markdown and the table are renderings of it and hold nothing the JSON lacks.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from grader import schemas
from grader.scores import aggregate as scoring

REPORT_SCHEMA = "report.schema.json"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def build(cfg, tasks: list[dict], *, run_seed: int, started: float, finished: float, version: str,
          environment: dict | None = None, extra: dict | None = None) -> dict:
    """The report document. ``cfg`` is a GradeConfig or its ``as_dict()`` (as ``run.json`` stores it).

    ``environment`` is the grading machine's provenance recorded when the run started
    (``grader.record.resume.collect_environment``); without it, this machine's is used.
    ``extra`` adds provenance fields (attempts, reused tasks, a rescore's record).
    """
    from grader.isolation import provider

    options = cfg if isinstance(cfg, dict) else cfg.as_dict()
    if environment is None:
        from grader.record.resume import collect_environment

        environment = collect_environment(options)
    quality, timing = options.get("quality") or {}, options.get("timing") or {}
    machine = dict(environment.get("machine") or {})
    try:
        isolated = bool(provider(options["sandbox"]).isolated)
    except Exception:  # noqa: BLE001 - a provider that no longer loads here: go by name
        isolated = options["sandbox"] == "docker"
    image = environment.get("image") or {}
    doc = {
        "schema_version": 1,
        "run_id": options.get("run_id") or Path(options["out"]).name,
        "provenance": {
            "grader_version": version, "git_commit": environment.get("git_commit"), "started_at": _iso(started),
            "finished_at": _iso(finished), "sandbox": options["sandbox"], "isolated": isolated,
            "run_seed": run_seed, "libraries": environment.get("libraries") or {}, "machine": machine,
            "gpu": machine.get("gpu"), "driver": machine.get("driver"),
            "image_digest": image.get("digest"), "image": image or None,
            "options": options, **(extra or {}),
        },
        "thresholds": {
            "clip_tolerance": quality.get("clip_tolerance"), "ssim_tolerance": quality.get("ssim_tolerance"),
            "psnr_tolerance_db": quality.get("psnr_tolerance_db"),
            "self_report_tolerance": scoring.SELF_REPORT_TOLERANCE, "target_rel_ci": timing.get("target_rel_ci"),
        },
        "tasks": sorted(tasks, key=lambda t: _sort_key(t["prompt_id"])),
        "summary": scoring.summarize(tasks),
    }
    return schemas.validate(REPORT_SCHEMA, doc, source="report.json")


def _sort_key(prompt_id: str):
    return (0, int(prompt_id), "") if prompt_id.isdigit() else (1, 0, prompt_id)


def _fmt(value, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def table(doc: dict) -> str:
    rows = [("id", "task", "diff", "status", "speedup", "95% CI", "GT", "vs GT", "SSIM", "flags")]
    for t in doc["tasks"]:
        q = t.get("quality") or {}
        ci = t.get("speedup_ci")
        rows.append((
            t["prompt_id"], t.get("task_key") or "-", (t.get("difficulty") or "-")[:4], t["status"],
            _fmt(t.get("speedup"), ".2f", "x"), f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-",
            _fmt(t.get("gt_speedup"), ".2f", "x"), _fmt(t.get("relative_to_gt"), ".2f"),
            _fmt(q.get("ssim_experiment_vs_baseline"), ".3f"), ",".join(t.get("flags") or []) or "-",
        ))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    s = doc["summary"]
    lines.append("")
    lines.append(f"{s['n_passing']}/{s['n_tasks']} tasks pass; geomean speedup {_fmt(s['geomean_speedup'], '.2f', 'x')}; "
                 + "; ".join(f"fast_{p} {v:.0%}" for p, v in s["fast_p"].items()) + f"; beats GT {s['beats_gt']:.0%}")
    if not doc["provenance"]["isolated"]:
        lines.append("NOTE: sandbox 'local' does not isolate submissions; use --sandbox docker for untrusted code.")
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    p = doc["provenance"]
    out = [f"# Grading report: {doc['run_id']}", "",
           f"grader {p['grader_version']} (commit {p['git_commit'] or 'unknown'}), sandbox `{p['sandbox']}`"
           f"{'' if p['isolated'] else ' (NOT isolated)'}, device `{p['machine']['device']}`, "
           f"{p['started_at']} to {p['finished_at']}", "", "```", table(doc), "```", "",
           "Per-image times are median seconds per image over timed batches (the supervisor's clock); "
           "per-batch figures use full batches only.", "", "## Thresholds", ""]
    out += [f"- `{k}`: {v}" for k, v in doc["thresholds"].items()]
    out += ["", "## Tasks", ""]
    for t in doc["tasks"]:
        out.append(f"### {t['prompt_id']} `{t.get('task_key')}` - **{t['status']}**")
        if t.get("message"):
            out.append(f"\n{t['message']}\n")
        for name, v in (t.get("variants") or {}).items():
            timing = v.get("timing")
            if timing:
                out.append(f"- {name}: {timing['per_image_median']:.4f} s/image median "
                           f"[{timing['per_image_ci_low']:.4f}, {timing['per_image_ci_high']:.4f}] "
                           f"({timing['ci_confidence']:.0%} CI, {timing['n_batches']} batches, {timing['n_images']} images); "
                           f"per batch median {_fmt(timing['per_batch_median'], '.3f')} s "
                           f"(min {_fmt(timing['per_batch_min'], '.3f')}, max {_fmt(timing['per_batch_max'], '.3f')}); "
                           f"{timing['images_per_second']:.2f} images/s")
            else:
                out.append(f"- {name}: {v['status']}: {v['message']}")
        if t.get("quality"):
            q = t["quality"]
            out.append(f"- quality: SSIM exp/base {q['ssim_experiment_vs_baseline']:.3f} (GT {q['ssim_gt_vs_baseline']:.3f}), "
                       f"PSNR exp/base {q['psnr_experiment_vs_baseline']:.1f} dB (GT {q['psnr_gt_vs_baseline']:.1f} dB), "
                       f"CLIP base/exp/GT {_fmt(q['clip_baseline'])}/{_fmt(q['clip_experiment'])}/{_fmt(q['clip_gt'])}")
        out.append("")
    return "\n".join(out)


def write(run_dir: Path, doc: dict) -> list[Path]:
    """Write every rendering of ``doc``, each atomically: report.json, report.md, junit.xml, report.html.

    The HTML comes last and is the only one that reads the run folder's images; if it
    cannot be rendered, a page saying why is written instead and the others stand.
    """
    import sys
    import traceback

    from grader.record.resume import atomic_write_json, atomic_write_text
    from grader.reports import html as html_report
    from grader.reports import junit

    run_dir = Path(run_dir)
    written = []
    atomic_write_json(run_dir / "report.json", doc)
    written.append(run_dir / "report.json")
    atomic_write_text(run_dir / "report.md", markdown(doc))
    written.append(run_dir / "report.md")
    atomic_write_text(run_dir / "junit.xml", junit.render(doc))
    written.append(run_dir / "junit.xml")
    try:
        page = html_report.render(doc, run_dir)
    except Exception as exc:  # noqa: BLE001 - the JSON is the contract; the page is a rendering
        print(f"grader: warning: report.html could not be rendered: {type(exc).__name__}: {exc}", file=sys.stderr)
        page = html_report.error_page(doc, traceback.format_exc())
    atomic_write_text(run_dir / "report.html", page)
    written.append(run_dir / "report.html")
    return written
