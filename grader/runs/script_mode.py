"""Script mode: an experiment file without ``load_pipeline`` runs as a plain script.

The grader cannot time what it does not drive, so the numbers come from the script
itself: it must write metrics JSON (``schemas/metrics.schema.json``) to the path in
``$GRADER_METRICS_PATH``. It runs in the same sandbox with the same timeout as any
variant, its metrics are validated like any other boundary JSON, and the task is
marked ``self_reported`` and kept out of the measured aggregates.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from grader import schemas
from grader.errors import SchemaViolation
from grader.isolation import Limits, Mount, SandboxSpec, get

METRICS_FILE = "metrics.json"


def grade_script(task, files, model_dir: Path, ctx, result: dict, gpu: str | None = None) -> dict:
    cfg = ctx.config
    root = ctx.run_dir / "tasks" / task.prompt_id / "script"
    if root.exists():
        shutil.rmtree(root)
    work, code = root / "work", root / "code"
    (work / "tmp").mkdir(parents=True)
    code.mkdir()
    shutil.copyfile(files.experiment, code / files.experiment.name)
    for folder in (root, work, work / "tmp"):
        folder.chmod(0o777)
    spec = SandboxSpec(mounts={"work": Mount(work, read_only=False), "code": Mount(code), "model": Mount(model_dir)},
                       limits=Limits(), gpu=gpu,
                       labels={"sd-grader.task": task.prompt_id, "sd-grader.variant": "script"})
    probe = get(cfg.sandbox, spec)
    env = {"GRADER_DEVICE": cfg.device, "GRADER_MODEL_DIR": probe.path("model"),
           "GRADER_METRICS_PATH": f"{probe.path('work')}/{METRICS_FILE}"}
    probe.close()
    ctx.progress(f"task {task.prompt_id}: script")
    with get(cfg.sandbox, dataclasses.replace(spec, env=env)) as sandbox:
        run = sandbox.exec(["{python}", f"{sandbox.path('code')}/{files.experiment.name}"], timeout=cfg.script_timeout)
    variant = {"name": "script", "status": "ok", "message": "", "flags": [], "timing": None,
               "phases": {"total": run.duration}, "stderr_tail": run.stderr_tail(), "retries": run.retries}
    result.update(mode="script", self_reported=True)
    result["flags"] = sorted(set(result["flags"]) | {"self_reported"})
    if run.timed_out or run.oom or run.returncode != 0:
        status = "timeout" if run.timed_out else "oom" if run.oom else "error"
        message = f"script {'timed out' if run.timed_out else 'ran out of memory' if run.oom else f'exited with code {run.returncode}'}"
        variant.update(status=status, message=message)
        result.update(status=status, message=message)
    else:
        metrics_path = work / METRICS_FILE
        try:
            if metrics_path.is_symlink() or not metrics_path.is_file():
                raise SchemaViolation(str(metrics_path), "metrics.schema.json", "$", "the script wrote no metrics file at $GRADER_METRICS_PATH")
            if metrics_path.stat().st_size > 1 << 20:
                raise SchemaViolation(str(metrics_path), "metrics.schema.json", "$", "metrics file larger than 1 MiB")
            metrics = schemas.load_json(metrics_path, "metrics.schema.json")
        except SchemaViolation as exc:
            result.update(status="invalid_metrics", message=f"script metrics: {exc}",
                          metrics_error={"json_path": exc.json_path, "message": exc.detail})
        else:
            speedup = float(metrics["speedup"])
            result.update(speedup=speedup, self_reported_speedup=speedup,
                          relative_to_gt=speedup / task.speedup if task.speedup else None,
                          message="script mode: scores are self-reported, not measured")
            (root / "emitted_metrics.json").write_text(json.dumps(metrics, indent=2))
    result["variants"]["script"] = variant
    return result
