"""``report.html``: one self-contained page to look at a run.

Everything is inside the file: images as base64 PNG (PIL), charts as base64 PNG
(matplotlib, no pyplot state), styles and a small script that builds and sorts the
task table from the report's own JSON. No external URL anywhere, so the page opens
offline and in sandboxes.

Sections: summary (and by difficulty), the speedup-vs-GT chart, the sortable task
table, then per task its numbers, its flags with their evidence, the per-image time
distribution of each variant, and a grid of baseline / experiment / GT images for the
same prompts and seeds; last the thresholds and the run's provenance.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import numpy as np

from grader.evidence.flags import flag_evidence
from grader.runs.variant import IMAGE_VARIANTS, VARIANTS

STATUS_COLORS = {"ok": "#2e7d32", "quality_failed": "#ef6c00", "missing": "#757575", "invalid_metrics": "#8d6e63",
                 "error": "#c62828", "timeout": "#6a1b9a", "oom": "#ad1457", "tampered": "#000000"}
MAX_ROWS = 8        # image rows (prompt, seed) per task
THUMB = 256         # longest side of an embedded image, in pixels

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(value: object) -> str:
    """Text for HTML: escaped, without control characters."""
    return html.escape(_CONTROL.sub("", "" if value is None else str(value)), quote=True)


def _num(value, spec: str = ".3f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


# --------------------------------------------------------------------------- images and charts


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image_uri(array: np.ndarray, thumb: int = THUMB) -> str:
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    image.thumbnail((thumb, thumb))
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return _png_data_uri(buf.getvalue())


def _figure_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return _png_data_uri(buf.getvalue())


def speedup_chart(tasks: list[dict]) -> str | None:
    points = [t for t in tasks if t.get("speedup") and t.get("gt_speedup") and not t.get("self_reported")]
    if not points:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.subplots()
    xs = [t["gt_speedup"] for t in points]
    ys = [t["speedup"] for t in points]
    top = max(xs + ys) * 1.15
    ax.plot([0, top], [0, top], color="#999999", linestyle="--", linewidth=1, label="same as GT")
    for status in sorted({t["status"] for t in points}):
        sel = [t for t in points if t["status"] == status]
        ax.scatter([t["gt_speedup"] for t in sel], [t["speedup"] for t in sel], s=40,
                   color=STATUS_COLORS.get(status, "#1565c0"), label=status, zorder=3)
    for t in points:
        ax.annotate(t["prompt_id"], (t["gt_speedup"], t["speedup"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("GT speedup (t_reference / t_gt)")
    ax.set_ylabel("experiment speedup (t_reference / t_experiment)")
    ax.set_title("Speedup vs GT (above the line: faster than the GT)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _figure_uri(fig)


def timing_chart(task: dict) -> str | None:
    series = []
    for name in VARIANTS:
        batches = ((task.get("variants") or {}).get(name) or {}).get("batches") or []
        values = [b["seconds"] / b["n_images"] for b in batches if b.get("n_images")]
        if values:
            series.append((name, values))
    if not series:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 3.2), dpi=100)
    ax = fig.subplots()
    ax.boxplot([v for _, v in series], showfliers=False)
    ax.set_xticks(range(1, len(series) + 1), [n for n, _ in series])
    rng = np.random.default_rng(0)
    for i, (name, values) in enumerate(series, 1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=12, alpha=0.7, zorder=3)
    ax.set_ylabel("seconds per image")
    ax.set_title(f"task {task['prompt_id']}: per-image time of each timed batch", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _figure_uri(fig)


def image_rows(task: dict, run_dir: Path, max_rows: int = MAX_ROWS, thumb: int = THUMB) -> list[dict]:
    """Up to ``max_rows`` rows of (prompt, seed, {variant: data URI}) from the stored images."""
    inputs = task.get("quality_inputs") or {}
    labels, prompts, seeds = inputs.get("labels") or [], inputs.get("prompts") or [], inputs.get("seeds") or []
    task_dir = run_dir / "tasks" / task["prompt_id"]
    rows, n = [], 0
    for label in labels:
        files = {v: sorted((task_dir / v / "images" / label).glob("*.npy")) for v in IMAGE_VARIANTS}
        count = min(len(f) for f in files.values())
        for k in range(count):
            if len(rows) >= max_rows:
                return rows
            cells = {}
            for v in IMAGE_VARIANTS:
                try:
                    cells[v] = image_uri(np.load(files[v][k], allow_pickle=False), thumb)
                except (OSError, ValueError) as exc:
                    cells[v] = None
                    cells[v + "_error"] = str(exc)
            seed = seeds[n] if n < len(seeds) else None
            rows.append({"label": label, "index": k, "prompt": prompts[n] if n < len(prompts) else None,
                         "seed": seed, "cells": cells})
            n += 1
    return rows


# --------------------------------------------------------------------------- page

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin-bottom:.3em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f4f4f4}#tasks th{cursor:pointer;user-select:none}#tasks th.sorted-asc::after{content:" \\25B2"}
#tasks th.sorted-desc::after{content:" \\25BC"}td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:600;padding:1px 6px;border-radius:3px;color:#fff}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:1.4em}.grid img{width:160px;image-rendering:pixelated;display:block}
.grid td{vertical-align:top}.prompt{max-width:260px;font-size:.85em}.task{border-top:2px solid #eee;margin-top:24px}
.flags li{margin:2px 0}code,pre{background:#f6f6f6}pre{padding:8px;overflow:auto;max-height:400px}
.note{color:#555;font-size:.9em}.banner{background:#fff3e0;border:1px solid #ffb74d;padding:8px;border-radius:4px}
"""

_JS = r"""
(function () {
  var root = document.documentElement;
  window.addEventListener('error', function (e) {
    root.setAttribute('data-js-errors', (root.getAttribute('data-js-errors') || '') + (e.message || 'error') + ';');
  });
  var data = JSON.parse(document.getElementById('task-data').textContent);
  var colors = JSON.parse(document.getElementById('status-colors').textContent);
  var cols = [
    {key: 'prompt_id', label: 'id', num: false},
    {key: 'task_key', label: 'task', num: false},
    {key: 'difficulty', label: 'difficulty', num: false},
    {key: 'status', label: 'status', num: false},
    {key: 'speedup', label: 'speedup', num: true},
    {key: 'gt_speedup', label: 'GT speedup', num: true},
    {key: 'relative_to_gt', label: 'vs GT', num: true},
    {key: 'manifest_speedup', label: 'manifest', num: true},
    {key: 'self_reported_speedup', label: 'self-reported', num: true},
    {key: 'ssim', label: 'SSIM exp/ref', num: true},
    {key: 'flags', label: 'flags', num: false}
  ];
  var table = document.getElementById('tasks');
  var head = table.querySelector('thead tr');
  var body = table.querySelector('tbody');
  var state = {key: 'prompt_id', dir: 1};
  // A link may name the order: report.html#sort=speedup:desc
  var wanted = /^#sort=([a-z_]+)(?::(asc|desc))?$/.exec(window.location.hash || '');
  if (wanted && cols.some(function (c) { return c.key === wanted[1]; })) {
    state.key = wanted[1];
    state.dir = wanted[2] === 'desc' ? -1 : 1;
  }
  function fmt(v, c) {
    if (v === null || v === undefined || v === '') return '-';
    if (c.num) return (c.key === 'ssim' ? v.toFixed(3) : v.toFixed(2) + (c.key === 'relative_to_gt' ? '' : 'x'));
    return String(v);
  }
  function cmp(a, b) {
    var x = a[state.key], y = b[state.key];
    if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
    if (y === null || y === undefined) return -1;
    if (state.key === 'prompt_id' && /^\d+$/.test(x) && /^\d+$/.test(y)) { x = +x; y = +y; }
    return (x < y ? -1 : x > y ? 1 : 0) * state.dir;
  }
  function render() {
    var rows = data.slice().sort(cmp);
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (t) {
      var tr = document.createElement('tr');
      tr.className = 'task-row';
      tr.setAttribute('data-id', t.prompt_id);
      cols.forEach(function (c) {
        var td = document.createElement('td');
        if (c.num) td.className = 'num';
        if (c.key === 'prompt_id') {
          var a = document.createElement('a');
          a.href = '#task-' + t.prompt_id;
          a.textContent = t.prompt_id;
          td.appendChild(a);
        } else if (c.key === 'status') {
          var s = document.createElement('span');
          s.className = 'status';
          s.style.background = colors[t.status] || '#1565c0';
          s.textContent = t.status;
          td.appendChild(s);
        } else {
          td.textContent = fmt(t[c.key], c);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    Array.prototype.forEach.call(head.children, function (th) {
      th.className = th.getAttribute('data-key') === state.key ? (state.dir > 0 ? 'sorted-asc' : 'sorted-desc') : '';
    });
    table.setAttribute('data-rendered', String(rows.length));
  }
  cols.forEach(function (c) {
    var th = document.createElement('th');
    th.textContent = c.label;
    th.setAttribute('data-key', c.key);
    th.addEventListener('click', function () {
      state.dir = state.key === c.key ? -state.dir : 1;
      state.key = c.key;
      render();
    });
    head.appendChild(th);
  });
  render();
})();
"""


def _json_script(element_id: str, value: object) -> str:
    text = json.dumps(value, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _status(status: str) -> str:
    return f'<span class="status" style="background:{STATUS_COLORS.get(status, "#1565c0")}">{esc(status)}</span>'


def _table(rows: list[tuple], header: tuple | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _summary(doc: dict) -> str:
    s = doc["summary"]
    cards = [("tasks", s["n_tasks"]), ("passing", s["n_passing"]),
             ("geomean speedup", _num(s.get("geomean_speedup"), ".2f", "x")),
             ("geomean vs GT", _num(s.get("geomean_relative_to_gt"), ".2f")),
             *((f"fast_{p}", f"{v:.0%}") for p, v in s["fast_p"].items()), ("beats GT", f"{s['beats_gt']:.0%}"),
             ("self-reported", s.get("n_self_reported", 0)), ("flagged", s.get("n_flagged", 0))]
    out = ['<div class="cards">'] + [f'<div class="card">{esc(k)}<b>{esc(v)}</b></div>' for k, v in cards] + ["</div>"]
    statuses = [(_status(k), v) for k, v in s["by_status"].items() if v]
    out.append("<h3>By status</h3>" + _table(statuses, ("status", "tasks")))
    if s.get("by_difficulty"):
        rows = [(esc(d), a["n_tasks"], a["n_passing"], _num(a.get("geomean_speedup"), ".2f", "x"),
                 *(f"{v:.0%}" for v in a["fast_p"].values()), f"{a['beats_gt']:.0%}")
                for d, a in s["by_difficulty"].items()]
        out.append("<h3>By difficulty</h3>" + _table(
            rows, ("difficulty", "tasks", "passing", "geomean", *(f"fast_{p}" for p in s["fast_p"]), "beats GT")))
    return "".join(out)


def _task_section(task: dict, run_dir: Path, max_rows: int, thumb: int) -> str:
    pid = task["prompt_id"]
    out = [f'<section class="task" id="task-{esc(pid)}">',
           f"<h3>Task {esc(pid)} <code>{esc(task.get('task_key'))}</code> {_status(task['status'])}</h3>"]
    if task.get("message"):
        out.append(f"<p>{esc(task['message'])}</p>")
    ci = task.get("speedup_ci")
    facts = [("difficulty", esc(task.get("difficulty"))), ("mode", esc(task.get("mode"))),
             ("speedup", _num(task.get("speedup"), ".3f", "x") + (f" (95% CI {ci[0]:.3f} to {ci[1]:.3f})" if ci else "")),
             ("over the agent's baseline", _num(task.get("agent_baseline_speedup"), ".3f", "x")),
             ("reference", esc((task.get("reference") or {}).get("origin"))),
             ("GT speedup", _num(task.get("gt_speedup"), ".3f", "x")), ("relative to GT", _num(task.get("relative_to_gt"))),
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
        facts.append(("quality", f"gate {'passed' if q.get('passed') else 'failed: ' + esc(', '.join(q.get('failures') or []))}; "
                                 f"SSIM exp/ref {_num(q.get('ssim_experiment_vs_reference'))} (GT {_num(q.get('ssim_gt_vs_reference'))}); "
                                 f"PSNR exp/ref {_num(q.get('psnr_experiment_vs_reference'), '.1f')} dB "
                                 f"(GT {_num(q.get('psnr_gt_vs_reference'), '.1f')} dB); CLIP ref/exp/GT "
                                 f"{_num(q.get('clip_reference'), '.2f')}/{_num(q.get('clip_experiment'), '.2f')}/{_num(q.get('clip_gt'), '.2f')}"))
    out.append(_table([(esc(k), v) for k, v in facts]))
    flags = task.get("flags") or []
    if flags:
        out.append('<h4>Flags</h4><ul class="flags">' + "".join(
            f"<li><code>{esc(f)}</code>: {esc(flag_evidence(task, f))}</li>" for f in flags) + "</ul>")
    chart = timing_chart(task)
    if chart:
        out.append(f'<h4>Per-image time</h4><img alt="per-image time distribution of task {esc(pid)}" src="{chart}">')
    rows = image_rows(task, run_dir, max_rows, thumb)
    if rows:
        n_total = len((task.get("quality_inputs") or {}).get("prompts") or [])
        out.append(f"<h4>Images (same prompt and seed per row; {len(rows)} of {n_total})</h4>")
        body = []
        for r in rows:
            cells = "".join(
                f'<td><img alt="{v} {esc(r["label"])}/{r["index"]}" src="{r["cells"][v]}"></td>' if r["cells"].get(v)
                else f"<td>unreadable: {esc(r['cells'].get(v + '_error'))}</td>" for v in IMAGE_VARIANTS)
            body.append((f'<span class="prompt">{esc(r["prompt"])}</span>',
                         f"{esc(r['seed'])}<br><span class=note>{esc(r['label'])}/{r['index']:03d}</span>", cells))
        out.append('<table class="grid"><tr><th>prompt</th><th>seed</th><th>reference</th><th>experiment</th><th>GT</th></tr>'
                   + "".join(f"<tr><td>{a}</td><td>{b}</td>{c}</tr>" for a, b, c in body) + "</table>")
    out.append("</section>")
    return "".join(out)


def _table_data(tasks: list[dict]) -> list[dict]:
    out = []
    for t in tasks:
        q = t.get("quality") or {}
        out.append({k: t.get(k) for k in ("prompt_id", "task_key", "difficulty", "status", "speedup",
                                          "agent_baseline_speedup", "gt_speedup",
                                          "relative_to_gt", "manifest_speedup", "self_reported_speedup")}
                   | {"ssim": q.get("ssim_experiment_vs_reference"), "flags": ", ".join(t.get("flags") or [])})
    return out


def _banners(p: dict) -> list[str]:
    out = []
    if p.get("complete") is False:
        out.append('<p class="banner">This run is not complete: tasks without a stored result are left out. '
                   "Re-run the same <code>grader grade</code> command to finish it.</p>")
    rescored = p.get("rescored")
    if rescored:
        changed = "; ".join(rescored.get("changed") or []) or "no status changed"
        out.append(f'<p class="banner">Rescored {esc(rescored.get("at"))} with new thresholds (below); previous: '
                   f'{esc(", ".join(f"{k}={v}" for k, v in (rescored.get("previous_thresholds") or {}).items()))}. '
                   f"{esc(changed)}.</p>")
    if p.get("reused_tasks"):
        out.append(f'<p class="note">Resumed run (attempt {esc(p.get("attempts"))}): '
                   f'{len(p["reused_tasks"])} task result(s) reused from earlier attempts.</p>')
    return out


def render(doc: dict, run_dir: Path, *, max_rows: int = MAX_ROWS, thumb: int = THUMB) -> str:
    run_dir = Path(run_dir)
    p = doc["provenance"]
    chart = speedup_chart(doc["tasks"])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Grading report: {esc(doc['run_id'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>Grading report: {esc(doc['run_id'])}</h1>",
        f"<p class=note>grader {esc(p['grader_version'])} (commit {esc(p.get('git_commit') or 'unknown')}), sandbox "
        f"<code>{esc(p['sandbox'])}</code>{'' if p['isolated'] else ' (NOT isolated)'}, device "
        f"<code>{esc((p.get('machine') or {}).get('device'))}</code>, GPU {esc(p.get('gpu') or 'none')}; "
        f"{esc(p['started_at'])} to {esc(p['finished_at'])}</p>",
        *_banners(p),
        "<h2>Summary</h2>", _summary(doc),
        "<h2>Speedup vs GT</h2>",
        f'<img alt="speedup vs GT" src="{chart}">' if chart else "<p>No task has both a measured speedup and a GT speedup.</p>",
        "<h2>Tasks</h2><p class=note>Click a column to sort.</p>",
        '<table id="tasks" data-rendered="0"><thead><tr></tr></thead><tbody></tbody></table>',
        "<noscript><p>The task table needs JavaScript; every task is listed below.</p></noscript>",
        _json_script("task-data", _table_data(doc["tasks"])), _json_script("status-colors", STATUS_COLORS),
    ]
    parts += [_task_section(t, run_dir, max_rows, thumb) for t in doc["tasks"]]
    parts += ["<h2>Thresholds</h2>",
              _table([(f"<code>{esc(k)}</code>", esc("none" if v is None else v)) for k, v in doc["thresholds"].items()]),
              "<p class=note>The quality gate is calibrated by the GT: the experiment may lose as much CLIP score and "
              "SSIM (against the baseline's images) as the GT loses, plus these tolerances.</p>",
              "<h2>Provenance</h2>", f"<pre>{esc(json.dumps(p, indent=2, sort_keys=True))}</pre>",
              f"<script>{_JS}</script>", "</body></html>"]
    return "\n".join(parts)


def error_page(doc: dict, trace: str) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>report.html failed</title></head><body>"
            f"<h1>report.html could not be rendered for run {esc(doc.get('run_id'))}</h1>"
            "<p>report.json and report.md hold the results; re-render with <code>grader report RUN_DIR</code>.</p>"
            f"<pre>{esc(trace)}</pre></body></html>")
