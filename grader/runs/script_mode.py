"""Script mode: an experiment file without ``load_pipeline`` runs as a plain script.

The grader cannot time what it does not drive, so the numbers come from the script
itself: it must write metrics JSON (``schemas/metrics.schema.json``) to the path in
``$GRADER_METRICS_PATH``. It runs in the same sandbox with the same timeout as any
variant, through ``sandbox.confine`` (the worker's own seccomp filter: a kernel that has
seccomp and refuses it fails the script rather than run it unfiltered), and its metrics are
validated like any other boundary JSON; the pipeline marks
the task ``self_reported`` and keeps it out of the measured aggregates. The metrics file is
read without following a link (a link to a file outside the work folder is refused, not
read), capped at :data:`MAX_METRICS_BYTES` before reading, and parsed strictly.
"""

from __future__ import annotations

import dataclasses
import errno
import shutil
from dataclasses import dataclass
from pathlib import Path

from grader import schemas
from grader.errors import SchemaViolation
from grader.files import FileTooLarge, NotRegularFile, atomic_write_json, read_regular
from grader.isolation import Limits, Mount, SandboxSpec, get
from grader.taskset.models import mount_for

METRICS_FILE = "metrics.json"
MAX_METRICS_BYTES = 1 << 20


@dataclass
class ScriptRun:
    """What running the script gave: the variant entry, and its metrics or why there are none."""

    variant: dict
    status: str = "ok"
    message: str = ""
    metrics: dict | None = None
    metrics_error: SchemaViolation | None = None


def run_script(script: Path, model_dir: Path, root: Path, *, sandbox: str, device: str, timeout: float,
               gpu: str | None = None, labels: dict[str, str] | None = None,
               docker_runtime: str | None = None) -> ScriptRun:
    """Run ``script`` in a fresh sandbox rooted at ``root`` and read the metrics it wrote."""
    if root.exists():
        shutil.rmtree(root)
    work, code = root / "work", root / "code"
    (work / "tmp").mkdir(parents=True)
    code.mkdir()
    shutil.copyfile(script, code / script.name)
    for folder in (root, work, work / "tmp"):
        folder.chmod(0o777)
    model = mount_for(model_dir)
    spec = SandboxSpec(mounts={"work": Mount(work, read_only=False), "code": Mount(code), "model": Mount(model.root)},
                       limits=Limits(), gpu=gpu, labels=dict(labels or {}), runtime=docker_runtime)
    probe = get(sandbox, spec)
    env = {"GRADER_DEVICE": device, "GRADER_MODEL_DIR": model.inside(probe.path("model")),
           "GRADER_METRICS_PATH": f"{probe.path('work')}/{METRICS_FILE}"}
    probe.close()
    with get(sandbox, dataclasses.replace(spec, env=env)) as box:
        run = box.exec(["{python}", "-m", "sandbox.confine", "--", "{python}", f"{box.path('code')}/{script.name}"],
                       timeout=timeout)
    variant = {"name": "script", "status": "ok", "message": "", "flags": [], "timing": None,
               "phases": {"total": run.duration}, "stderr_tail": run.stderr_tail(), "retries": run.retries}
    if run.timed_out or run.oom or run.returncode != 0:
        status = "timeout" if run.timed_out else "oom" if run.oom else "error"
        how = "timed out" if run.timed_out else "ran out of memory" if run.oom else f"exited with code {run.returncode}"
        variant.update(status=status, message=f"script {how}")
        return ScriptRun(variant, status, f"script {how}")
    metrics_path = work / METRICS_FILE
    try:
        metrics = schemas.load_bytes(_read_metrics(metrics_path), "metrics.schema.json", str(metrics_path))
    except SchemaViolation as exc:
        return ScriptRun(variant, "invalid_metrics", f"script metrics: {exc}", metrics_error=exc)
    atomic_write_json(root / "emitted_metrics.json", metrics)
    return ScriptRun(variant, metrics=metrics)


def _read_metrics(path: Path) -> bytes:
    """The metrics file's bytes: a regular file in the work folder, not a link, at most MAX_METRICS_BYTES."""
    def refuse(why: str) -> SchemaViolation:
        return SchemaViolation(str(path), "metrics.schema.json", "$", why)

    try:
        return read_regular(path, MAX_METRICS_BYTES)
    except FileNotFoundError:
        raise refuse("the script wrote no metrics file at $GRADER_METRICS_PATH") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise refuse("the metrics file is a link (links are not followed)") from None
        raise refuse(f"cannot read the metrics file: {exc.strerror or exc}") from None
    except FileTooLarge:
        raise refuse("metrics file larger than 1 MiB") from None
    except NotRegularFile:
        raise refuse("the metrics file is not a regular file (a FIFO or device is not read)") from None
