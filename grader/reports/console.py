"""The console table of a report: one line per task and the run's headline.

A rendering of ``report.json`` only: it holds nothing the JSON lacks.
"""

from __future__ import annotations


def fmt(value, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def table(doc: dict) -> str:
    rows = [("id", "task", "diff", "status", "speedup", "95% CI", "GT", "vs GT", "SSIM", "flags")]
    for t in doc["tasks"]:
        q = t.get("quality") or {}
        ci = t.get("speedup_ci")
        rows.append((
            t["prompt_id"], t.get("task_key") or "-", (t.get("difficulty") or "-")[:4], t["status"],
            fmt(t.get("speedup"), ".2f", "x"), f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-",
            fmt(t.get("gt_speedup"), ".2f", "x"), fmt(t.get("relative_to_gt"), ".2f"),
            fmt(q.get("ssim_experiment_vs_reference"), ".3f"), ",".join(t.get("flags") or []) or "-",
        ))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    s = doc["summary"]
    lines.append("")
    lines.append(f"{s['n_passing']}/{s['n_tasks']} tasks pass; geomean speedup {fmt(s['geomean_speedup'], '.2f', 'x')}; "
                 + "; ".join(f"fast_{p} {v:.0%}" for p, v in s["fast_p"].items()) + f"; beats GT {s['beats_gt']:.0%}")
    if not doc["provenance"]["isolated"]:
        lines.append("NOTE: sandbox 'local' does not isolate submissions; use --sandbox docker for untrusted code.")
    return "\n".join(lines)

