"""``report.md``: the report as Markdown, for a pull request or a wiki page.

A rendering of ``report.json`` only: it holds nothing the JSON lacks.
"""

from __future__ import annotations

from grader.reports.console import fmt, table


def markdown(doc: dict) -> str:
    p = doc["provenance"]
    out = [f"# Grading report: {doc['run_id']}", "",
           f"grader {p['grader_version']} (commit {p['git_commit'] or 'unknown'}), sandbox `{p['sandbox']}`"
           f"{' (runtime `' + p['sandbox_runtime'] + '`)' if p.get('sandbox_runtime') else ''}"
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
                           f"per batch median {fmt(timing['per_batch_median'], '.3f')} s "
                           f"(min {fmt(timing['per_batch_min'], '.3f')}, max {fmt(timing['per_batch_max'], '.3f')}); "
                           f"{timing['images_per_second']:.2f} images/s")
            else:
                out.append(f"- {name}: {v['status']}: {v['message']}")
        if t.get("quality"):
            q = t["quality"]
            out.append(f"- quality: SSIM exp/ref {q['ssim_experiment_vs_reference']:.3f} (GT {q['ssim_gt_vs_reference']:.3f}), "
                       f"PSNR exp/ref {q['psnr_experiment_vs_reference']:.1f} dB (GT {q['psnr_gt_vs_reference']:.1f} dB), "
                       f"CLIP ref/exp/GT {fmt(q['clip_reference'])}/{fmt(q['clip_experiment'])}/{fmt(q['clip_gt'])}")
        out.append("")
    return "\n".join(out)

