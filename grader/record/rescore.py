"""Re-gating a finished run under new quality tolerances, from the images it stored.

Only the gate's verdict may change (status, message, quality, flags of results the gate
decided); timings, speedups and every other flag stay as graded. The new thresholds and
the old ones are recorded in ``run.json`` so the report can say what changed.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from grader import __version__
from grader.config import QualityConfig
from grader.errors import ConfigError
from grader.files import atomic_write_json
from grader.record.folder import RunLock, RunRecord, result_path
from grader.record.keys import quality_key
from grader.record.stored import stored_results
from grader.scores.result import TaskResult
from grader.scores.task import apply_quality, regatable

TOLERANCE_NAMES = {"clip": "clip_tolerance", "ssim": "ssim_tolerance", "psnr": "psnr_tolerance_db",
                   "batch_ssim": "batch_ssim_margin"}
GATE_FIELDS = ("status", "message", "quality", "flags")


def rescore_run(run_dir: Path, tolerances: dict, clip_model: Path | None = None
                ) -> tuple[RunRecord, list[TaskResult], list[str]]:
    """Re-gate the stored results of ``run_dir`` under ``tolerances`` (``"none"`` turns a check off).

    Returns the updated record, every stored result, and notes (tasks left out, statuses changed).
    """
    run_dir = Path(run_dir)
    with RunLock(run_dir):
        record = RunRecord.load(run_dir)
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
                             psnr_tolerance_db=quality.get("psnr_tolerance_db"),
                             batch_ssim_margin=quality.get("batch_ssim_margin", QualityConfig.batch_ssim_margin))
        qkey = quality_key(options, __version__)
        results, notes = stored_results(run_dir, record.doc.get("task_ids"))
        changed = []
        for result in results:
            before = result.status
            if regatable(result):
                regated = apply_quality(copy.deepcopy(result), run_dir / "tasks" / result.prompt_id, qcfg)
                for name in GATE_FIELDS:
                    setattr(result, name, getattr(regated, name))
            result.resume = dict(result.resume, quality_key=qkey)
            atomic_write_json(result_path(run_dir, result.prompt_id), result.to_dict())
            if result.status != before:
                changed.append(f"task {result.prompt_id}: {before} -> {result.status}")
        record.options.clear()
        record.options.update(options)
        record.doc.setdefault("rescores", []).append({
            "at": time.time(), "previous": previous,
            "new": {k: quality.get(k) for k in TOLERANCE_NAMES.values()}, "changed": changed})
        record.save()
    return record, results, notes + changed
