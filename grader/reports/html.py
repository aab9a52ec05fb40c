"""``report.html``: one self-contained page to look at a run, from a Jinja2 template.

The page is ``templates/report.html.j2`` rendered with autoescape on, so text from the
run (prompts, messages, stderr tails, evidence, task ids and keys, all of which an agent
can shape) reaches the page only as escaped text; control characters are dropped on the
way out. This module builds plain values for the template and nothing that is markup,
except what the grader itself ships: ``report.css`` and ``report.js``, package data
inlined into the page at render time, and the task table's JSON, embedded by ``tojson``
(which writes ``<``, ``>``, ``&`` and ``'`` as ``\\u`` escapes, so no ``</script>`` or
``<!--`` can close or bend the script element). Images and charts are data URIs
(:mod:`grader.reports.figures`); no external URL anywhere, so the page opens offline.

Sections: summary (and by difficulty), the speedup-vs-GT chart, the sortable task
table, then per task its numbers, its flags with their evidence, each failed variant's
message and stderr tail, the per-image time distribution of each variant, and a grid of
baseline / experiment / GT images for the same prompts and seeds; last the thresholds
and the run's provenance.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from grader.errors import GraderError
from grader.evidence.flags import flag_evidence
from grader.reports import figures
from grader.runs.variant import VARIANTS

TEMPLATE = "report.html.j2"
ASSETS = {"css": ("report.css", "</style"), "js": ("report.js", "</script")}

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _finalize(value: object) -> object:
    """Every ``{{ }}`` of the template passes here before autoescape: None shows as nothing."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    return _CONTROL.sub("", str(value))


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader.reports", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, finalize=_finalize, trim_blocks=True,
                             lstrip_blocks=True)
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "allow_nan": False}
    return env


@functools.cache
def _assets() -> dict[str, Markup]:
    """The page's CSS and JS, read once from the package; trusted, so inlined as markup."""
    folder = resources.files("grader.reports") / "templates"
    out = {}
    for key, (name, closer) in ASSETS.items():
        try:
            text = (folder / name).read_text(encoding="utf-8")
        except OSError as exc:
            raise GraderError(f"report.html: {name} is missing from the installed grader ({exc})") from exc
        if closer in text.lower():
            raise GraderError(f"report.html: {name} contains {closer!r}, which would end its element early")
        out[key] = Markup(text)
    return out


def _num(value, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _summary(s: dict) -> dict:
    cards = [("tasks", s["n_tasks"]), ("passing", s["n_passing"]),
             ("geomean speedup", _num(s.get("geomean_speedup"), ".2f", "x")),
             ("geomean vs GT", _num(s.get("geomean_relative_to_gt"), ".2f")),
             *((f"fast_{p}", f"{v:.0%}") for p, v in s["fast_p"].items()), ("beats GT", f"{s['beats_gt']:.0%}"),
             ("self-reported", s.get("n_self_reported", 0)), ("flagged", s.get("n_flagged", 0))]
    by_difficulty = None
    if s.get("by_difficulty"):
        by_difficulty = {
            "header": ("difficulty", "tasks", "passing", "geomean", *(f"fast_{p}" for p in s["fast_p"]), "beats GT"),
            "rows": [(d, a["n_tasks"], a["n_passing"], _num(a.get("geomean_speedup"), ".2f", "x"),
                      *(f"{v:.0%}" for v in a["fast_p"].values()), f"{a['beats_gt']:.0%}")
                     for d, a in s["by_difficulty"].items()]}
    return {"cards": cards, "by_status": [(k, v) for k, v in s["by_status"].items() if v],
            "by_difficulty": by_difficulty}


def _facts(task: dict) -> list[tuple[str, str]]:
    ci = task.get("speedup_ci")
    speedup = _num(task.get("speedup"), ".3f", "x") + (f" (95% CI {ci[0]:.3f} to {ci[1]:.3f})" if ci else "")
    facts = [("difficulty", task.get("difficulty")), ("mode", task.get("mode")), ("speedup", speedup),
             ("over the agent's baseline", _num(task.get("agent_baseline_speedup"), ".3f", "x")),
             ("reference", (task.get("reference") or {}).get("origin")),
             ("GT speedup", _num(task.get("gt_speedup"), ".3f", "x")),
             ("relative to GT", _num(task.get("relative_to_gt"))),
             ("manifest speedup", _num(task.get("manifest_speedup"), ".2f", "x")),
             ("self-reported speedup", _num(task.get("self_reported_speedup"), ".2f", "x")),
             ("self-report discrepancy", _num(task.get("self_report_discrepancy"), ".0%"))]
    for name in VARIANTS:
        timing = ((task.get("variants") or {}).get(name) or {}).get("timing")
        if timing:
            facts.append((f"{name} time", f"{timing['per_image_median']:.4f} s/image median "
                                          f"[{timing['per_image_ci_low']:.4f}, {timing['per_image_ci_high']:.4f}], "
                                          f"{timing['n_batches']} batches, {timing['n_images']} images"))
    q = task.get("quality")
    if q:
        gate = "passed" if q.get("passed") else "failed: " + ", ".join(q.get("failures") or [])
        clip = "/".join(_num(q.get(k), ".2f") for k in ("clip_reference", "clip_experiment", "clip_gt"))
        facts.append(("quality", f"gate {gate}; SSIM exp/ref {_num(q.get('ssim_experiment_vs_reference'))} "
                                 f"(GT {_num(q.get('ssim_gt_vs_reference'))}); "
                                 f"PSNR exp/ref {_num(q.get('psnr_experiment_vs_reference'), '.1f')} dB "
                                 f"(GT {_num(q.get('psnr_gt_vs_reference'), '.1f')} dB); CLIP ref/exp/GT {clip}"))
    return facts


def _failed_variants(task: dict) -> list[dict]:
    """Each variant that did not end ``ok``, with what it said: its message and stderr tail."""
    out = []
    for name, v in (task.get("variants") or {}).items():
        if v and v.get("status") not in (None, "ok") and (v.get("message") or v.get("stderr_tail")):
            out.append({"name": name, "status": v["status"], "message": v.get("message") or "",
                        "stderr_tail": v.get("stderr_tail") or ""})
    return out


def _task(task: dict, run_dir: Path, max_rows: int, thumb: int) -> dict:
    return {"prompt_id": task["prompt_id"], "task_key": task.get("task_key"), "status": task["status"],
            "message": task.get("message") or "", "facts": _facts(task),
            "flags": [(f, flag_evidence(task, f)) for f in task.get("flags") or []],
            "failed_variants": _failed_variants(task), "timing_chart": figures.timing_chart(task),
            "images": {"rows": figures.image_rows(task, run_dir, max_rows, thumb),
                       "n_total": len((task.get("quality_inputs") or {}).get("prompts") or [])}}


def _table_data(tasks: list[dict]) -> list[dict]:
    out = []
    for t in tasks:
        q = t.get("quality") or {}
        out.append({k: t.get(k) for k in ("prompt_id", "task_key", "difficulty", "status", "speedup",
                                          "agent_baseline_speedup", "gt_speedup",
                                          "relative_to_gt", "manifest_speedup", "self_reported_speedup")}
                   | {"ssim": q.get("ssim_experiment_vs_reference"), "flags": ", ".join(t.get("flags") or [])})
    return out


def _banners(p: dict) -> dict:
    rescored = p.get("rescored")
    if rescored:
        rescored = {"at": rescored.get("at"),
                    "changed": "; ".join(rescored.get("changed") or []) or "no status changed",
                    "previous": ", ".join(f"{k}={v}" for k, v in (rescored.get("previous_thresholds") or {}).items())}
    reused = {"attempts": p.get("attempts"), "n": len(p["reused_tasks"])} if p.get("reused_tasks") else None
    return {"incomplete": p.get("complete") is False, "rescored": rescored, "reused": reused}


def context(doc: dict, run_dir: Path, *, max_rows: int = figures.MAX_ROWS, thumb: int = figures.THUMB) -> dict:
    """Everything the template shows, as plain values (nothing here is trusted as markup)."""
    p = doc["provenance"]
    return {
        "run_id": doc["run_id"], "colors": figures.STATUS_COLORS, "default_color": figures.DEFAULT_COLOR,
        "run": {"grader_version": p["grader_version"], "git_commit": p.get("git_commit") or "unknown",
                "sandbox": p["sandbox"], "isolated": p["isolated"], "device": (p.get("machine") or {}).get("device"),
                "gpu": p.get("gpu") or "none", "started_at": p["started_at"], "finished_at": p["finished_at"]},
        "banners": _banners(p), "summary": _summary(doc["summary"]), "chart": figures.speedup_chart(doc["tasks"]),
        "table_data": _table_data(doc["tasks"]),
        "tasks": [_task(t, Path(run_dir), max_rows, thumb) for t in doc["tasks"]],
        "thresholds": [(k, "none" if v is None else v) for k, v in doc["thresholds"].items()],
        "provenance_json": json.dumps(p, indent=2, sort_keys=True),
    }


def render(doc: dict, run_dir: Path, *, max_rows: int = figures.MAX_ROWS, thumb: int = figures.THUMB) -> str:
    try:
        template = _environment().get_template(TEMPLATE)
    except jinja2.TemplateNotFound as exc:
        raise GraderError(f"report.html: the template {TEMPLATE} is missing from the installed grader") from exc
    return template.render(**context(doc, run_dir, max_rows=max_rows, thumb=thumb), **_assets())


def _esc(value: object) -> str:
    return str(escape(_CONTROL.sub("", "" if value is None else str(value))))


def error_page(doc: dict, trace: str) -> str:
    """The page written when :func:`render` failed: no template, so a broken install still gets it."""
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            "<title>report.html failed</title></head><body>"
            f"<h1>report.html could not be rendered for run {_esc(doc.get('run_id'))}</h1>"
            "<p>report.json and report.md hold the results; re-render with <code>grader report RUN_DIR</code>.</p>"
            f"<pre>{_esc(trace)}</pre></body></html>")
