"""Run folders that survive a crash: ``run.json``, resume keys and trusted results.

A run folder (``--out``) holds one run::

    RUN_DIR/run.json                 what report/rescore need: options, run seed, start time,
                                     environment (provenance), attempts, prompts of the kept batches
    RUN_DIR/tasks/<id>/result.json   one task's result, written atomically when the task ends
    RUN_DIR/log.jsonl                structured log, one JSON object a line
    RUN_DIR/report.{json,md,html}, junit.xml

Re-running the same ``grader grade`` command resumes: a task whose stored result is
whole (it parses, matches the report schema's task definition and carries a resume key)
and whose key matches is reused; any other task is graded again. The key hashes the
bytes of the task's baseline, experiment, metrics and GT files, the manifest entry, the
options that change a result, the prompt pool, the run seed and the grader version.
Quality tolerances are kept apart in ``quality_key``: when only they changed, a stored
result is re-gated from its stored images (as ``grader rescore`` does) instead of re-run.

Everything here writes with write-to-temp, fsync, rename: after a ``kill -9`` a reader
finds the old file or the whole new one, never a part.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from grader import schemas
from grader.errors import ConfigError

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
LOCK_FILE = ".lock"
RUN_SCHEMA_VERSION = 1
# Options that never change a task's result. The submission and task folders are
# represented by the bytes of the files read from them, not by their paths.
NON_RESULT_OPTIONS = frozenset({"out", "run_id", "only", "submission", "tasks", "seed", "quality", "executor", "ray_address"})
# Statuses the quality gate decides (ok / quality_failed), plus tampered, which the
# gate keeps; only results with one of these and stored quality inputs are re-gated.
REGATED_STATUSES = ("ok", "quality_failed", "tampered")


# --------------------------------------------------------------------------- atomic files


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` so that a reader sees the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, document: object) -> None:
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_partials(folder: Path) -> None:
    """Delete temp files an interrupted atomic write left (``.<name>.<random>``)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name.startswith(f".{RESULT_FILE}.") and path.is_file():
            path.unlink(missing_ok=True)


class RunLock:
    """An exclusive lock on a run folder; the kernel drops it when the process dies."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise ConfigError(f"run folder {self.path.parent} is in use by another grader process") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------------------- keys


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest(obj: object) -> str:
    return hashlib.sha256(_canonical(obj)).hexdigest()


def file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def pool_digest(pool: tuple[str, ...]) -> str:
    return digest(list(pool))


def _abs(value: str | None) -> str | None:
    return None if value is None else str(Path(value).resolve())


def result_options(options: dict) -> dict:
    """The options that change a task's result (quality tolerances apart)."""
    out = {k: v for k, v in options.items() if k not in NON_RESULT_OPTIONS}
    if out.get("model_dir") is not None:
        out["model_dir"] = _abs(out["model_dir"])
    if out.get("prompts_file") is not None:
        out["prompts_file"] = None  # the pool's content is hashed instead
    return out


def quality_key(options: dict, version: str) -> str:
    quality = dict(options.get("quality") or {})
    if quality.get("clip_model") is not None:
        quality["clip_model"] = _abs(quality["clip_model"])
    return digest({"grader_version": version, "quality": quality})


def task_key(options: dict, task, files: dict[str, Path | None], *, run_seed: int, pool: str, version: str,
             model_index: Path | None = None) -> str:
    """The resume key of one task: inputs, result-changing options, seed, pool, version."""
    entry = {f.name: getattr(task, f.name) for f in dataclasses.fields(task) if f.name != "gt_path"}
    entry["task_key"] = str(entry["task_key"])
    return digest({
        "grader_version": version, "run_seed": run_seed, "pool": pool, "options": result_options(options),
        "entry": entry, "files": {role: file_digest(path) for role, path in sorted(files.items())},
        "model_index": file_digest(model_index),
    })


def task_files(submission_dir: Path, task) -> dict[str, Path | None]:
    from grader.taskset import submission

    found = submission.find(Path(submission_dir), task)
    return {"baseline": found.baseline, "experiment": found.experiment, "metrics": found.metrics, "gt": task.gt_path}


# --------------------------------------------------------------------------- trusted results


@lru_cache(maxsize=1)
def _task_validator():
    import jsonschema

    full = json.loads((schemas.SCHEMA_DIR / "report.schema.json").read_text(encoding="utf-8"))
    schema = {"$schema": full.get("$schema"), "$defs": full["$defs"], "$ref": "#/$defs/task"}
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_result(result: object) -> str | None:
    """Why ``result`` is not a whole task result, or None when it is."""
    if not isinstance(result, dict):
        return "not a JSON object"
    error = next(iter(_task_validator().iter_errors(result)), None)
    if error is not None:
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        return f"does not match the report schema's task at {where}: {error.message}"
    resume = result.get("resume")
    if not isinstance(resume, dict) or not isinstance(resume.get("key"), str) or not isinstance(resume.get("quality_key"), str):
        return "has no resume key"
    return None


def images_present(result: dict, task_dir: Path) -> bool:
    inputs = result.get("quality_inputs")
    if not inputs:
        return True
    for variant in ("baseline", "experiment", "gt"):
        for label in inputs.get("labels", []):
            if not any((task_dir / variant / "images" / label).glob("*.npy")):
                return False
    return True


def read_result(path: Path) -> tuple[dict | None, str]:
    """A stored result if it is whole, else (None, why not)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "no stored result"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable: {exc}"
    try:
        result = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg}"
    why = validate_result(result)
    if why is not None:
        return None, why
    return result, "ok"


def trusted_result(task_dir: Path, key: str) -> tuple[dict | None, str]:
    """The stored result of a task when it can be reused for ``key``, else (None, why not)."""
    result, why = read_result(task_dir / RESULT_FILE)
    if result is None:
        return None, why
    if result["resume"]["key"] != key:
        return None, "inputs, options or grader version changed"
    if not images_present(result, task_dir):
        return None, "stored images are missing"
    return result, "ok"


def regatable(result: dict) -> bool:
    return result.get("status") in REGATED_STATUSES and bool(result.get("quality_inputs"))


# --------------------------------------------------------------------------- run.json


def collect_environment(options: dict) -> dict:
    """Provenance of the machine grading now: libraries, host, GPU and driver, image digest."""
    import platform
    import subprocess

    def git_commit() -> str | None:
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                 text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return (out.stdout.strip() or None) if out.returncode == 0 else None

    libraries = {"python": platform.python_version()}
    for name in ("torch", "diffusers", "transformers", "torchmetrics", "numpy"):
        try:
            libraries[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - provenance is best effort
            libraries[name] = None
    machine = {"device": options.get("device"), "host": platform.node(),
               "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
               "os": platform.platform()}
    gpus = []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            for line in out.stdout.strip().splitlines():
                index, name, driver, memory = (p.strip() for p in line.split(",", 3))
                gpus.append({"index": index, "name": name, "driver": driver, "memory": memory})
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    machine["gpus"] = gpus
    machine["gpu"] = gpus[0]["name"] if gpus else None
    machine["driver"] = gpus[0]["driver"] if gpus else None
    if options.get("device") == "cuda":
        try:
            import torch

            machine["cuda"] = torch.version.cuda
            machine["gpu"] = machine["gpu"] or torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001
            pass
    image = None
    if options.get("sandbox") == "docker":
        try:
            from grader.isolation import docker as docker_sandbox

            info = docker_sandbox.image_info(gpu=options.get("device") == "cuda")
            image = {"name": info.name, "id": info.id, "digest": info.digest}
        except Exception as exc:  # noqa: BLE001
            image = {"error": str(exc)[:300]}
    return {"git_commit": git_commit(), "libraries": libraries, "machine": machine, "image": image,
            "collected_at": time.time()}


@dataclasses.dataclass
class RunRecord:
    """``run.json``: everything ``report`` and ``rescore`` need without the inputs."""

    path: Path
    doc: dict

    @property
    def run_seed(self) -> int:
        return int(self.doc["run_seed"])

    @property
    def options(self) -> dict:
        return self.doc["options"]

    @property
    def started(self) -> float:
        return float(self.doc["created_at"])

    @property
    def finished(self) -> float | None:
        return self.doc.get("finished_at")

    def save(self) -> None:
        atomic_write_json(self.path, self.doc)

    @classmethod
    def load(cls, run_dir: Path) -> "RunRecord":
        path = Path(run_dir) / RUN_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{run_dir}: no {RUN_FILE}: not a run folder written by `grader grade`") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: unreadable: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("schema_version") != RUN_SCHEMA_VERSION or "run_seed" not in doc \
                or not isinstance(doc.get("options"), dict):
            raise ConfigError(f"{path}: not a run record of version {RUN_SCHEMA_VERSION}")
        return cls(path, doc)

    @classmethod
    def open_for_grading(cls, run_dir: Path, options: dict, *, seed: int | None, version: str,
                         new_seed) -> tuple["RunRecord", list[str]]:
        """Start or resume the run in ``run_dir``; returns the record and notes for the log."""
        run_dir = Path(run_dir)
        notes: list[str] = []
        run_id = options.get("run_id") or run_dir.name
        now = time.time()
        try:
            record = cls.load(run_dir)
        except ConfigError as exc:
            if (run_dir / RUN_FILE).exists():
                notes.append(f"ignoring {RUN_FILE}: {exc}")
            record = None
        if record is not None and record.doc.get("run_id") != run_id:
            raise ConfigError(f"{run_dir} holds run {record.doc.get('run_id')!r}, not {run_id!r}: "
                              f"pass --run-id {record.doc.get('run_id')} to resume it, or choose another --out")
        if record is None:
            record = cls(run_dir / RUN_FILE, {
                "schema_version": RUN_SCHEMA_VERSION, "run_id": run_id, "created_at": now,
                "run_seed": seed if seed is not None else new_seed(), "attempts": [],
            })
        else:
            stored = record.run_seed
            if seed is not None and seed != stored:
                notes.append(f"--seed {seed} differs from the run's seed {stored}: every task is graded again")
                record.doc["run_seed"] = seed
            notes.append(f"resuming run {run_id} started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(record.started))}")
        record.doc.update(grader_version=version, options=options, finished_at=None)
        record.doc["attempts"].append({"started_at": now, "finished_at": None, "pid": os.getpid(),
                                       "graded": [], "reused": [], "regated": []})
        return record, notes

    def attempt(self) -> dict:
        return self.doc["attempts"][-1]
