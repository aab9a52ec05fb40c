"""The pictures of ``report.html``: stored images and charts as base64 PNG data URIs.

Kept apart from the page so that the page's module holds only what reaches the HTML:
images are thumbnailed with PIL, charts drawn with matplotlib's object API (no pyplot
state). Nothing here makes markup: every string returned is a ``data:image/png;base64,``
URI. Task ids label the charts as plain text (no mathtext), and name a folder to read
images from only when they are one plain path component.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from grader.runs.variant import IMAGE_VARIANTS, VARIANTS

STATUS_COLORS = {"ok": "#2e7d32", "quality_failed": "#ef6c00", "missing": "#757575", "invalid_metrics": "#8d6e63",
                 "error": "#c62828", "timeout": "#6a1b9a", "oom": "#ad1457", "tampered": "#000000"}
DEFAULT_COLOR = "#1565c0"
MAX_ROWS = 8        # image rows (prompt, seed) per task
THUMB = 256         # longest side of an embedded image, in pixels


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
                   color=STATUS_COLORS.get(status, DEFAULT_COLOR), label=status, zorder=3)
    for t in points:
        ax.annotate(t["prompt_id"], (t["gt_speedup"], t["speedup"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8, parse_math=False)
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
    ax.set_title(f"task {task['prompt_id']}: per-image time of each timed batch", fontsize=10, parse_math=False)
    ax.grid(axis="y", alpha=0.3)
    return _figure_uri(fig)


def _plain(name: object) -> bool:
    """One path component: no separator, not ``.`` or ``..``, no NUL."""
    return isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\x00")


def image_rows(task: dict, run_dir: Path, max_rows: int = MAX_ROWS, thumb: int = THUMB) -> list[dict]:
    """Up to ``max_rows`` rows of (label, index, prompt, seed, cells) from the stored images.

    ``cells`` has one ``{"variant", "uri", "error"}`` per image variant: a data URI, or
    why the stored image could not be read.
    """
    inputs = task.get("quality_inputs") or {}
    labels, prompts, seeds = inputs.get("labels") or [], inputs.get("prompts") or [], inputs.get("seeds") or []
    if not _plain(task["prompt_id"]):
        return []
    task_dir = run_dir / "tasks" / task["prompt_id"]
    rows, n = [], 0
    for label in labels:
        if not _plain(label):
            continue
        files = {v: sorted((task_dir / v / "images" / label).glob("*.npy")) for v in IMAGE_VARIANTS}
        count = min(len(f) for f in files.values())
        for k in range(count):
            if len(rows) >= max_rows:
                return rows
            cells = []
            for v in IMAGE_VARIANTS:
                try:
                    cells.append({"variant": v, "uri": image_uri(np.load(files[v][k], allow_pickle=False), thumb),
                                  "error": None})
                except (OSError, ValueError) as exc:
                    cells.append({"variant": v, "uri": None, "error": str(exc)})
            rows.append({"label": label, "index": k, "prompt": prompts[n] if n < len(prompts) else None,
                         "seed": seeds[n] if n < len(seeds) else None, "cells": cells})
            n += 1
    return rows
