"""A run folder that survives a crash: its layout, its lock, and ``run.json``.

A run folder (``--out``) holds one run::

    RUN_DIR/run.json                 what report/rescore need: options, run seed, start time,
                                     environment (provenance), attempts, prompts of the kept batches
    RUN_DIR/tasks/<id>/result.json   one task's result, written atomically when the task ends
    RUN_DIR/log.jsonl                structured log, one JSON object a line
    RUN_DIR/report.{json,md,html}, junit.xml

Re-running the same ``grader grade`` command resumes (:mod:`grader.record.keys`,
:mod:`grader.record.stored`). Everything here writes through
:func:`grader.files.atomic_write`: after a ``kill -9`` a reader finds the old file or the
whole new one, never a part.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import time
from pathlib import Path

from grader.errors import ConfigError
from grader.files import atomic_write_json
from grader.schemas import InvalidJSON, parse_json
from grader.taskset.manifest import is_prompt_id

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
LOCK_FILE = ".lock"
RUN_SCHEMA_VERSION = 1


def task_path(run_dir: Path, prompt_id: str) -> Path:
    """``RUN_DIR/tasks/<id>``; an id the manifest schema refuses (``..``, ``/``) is never made a path."""
    if not is_prompt_id(prompt_id):
        raise ValueError(f"{prompt_id!r} is not a prompt_id the manifest schema accepts; no folder is made of it")
    return Path(run_dir) / "tasks" / prompt_id


def result_path(run_dir: Path, prompt_id: str) -> Path:
    return task_path(run_dir, prompt_id) / RESULT_FILE


def open_run_dir(run_dir: Path) -> Path:
    """Make ``--out`` (and its parents) and check the grader can write in it; ConfigError naming it otherwise."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir}: exists and is not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {run_dir}: cannot create the run folder: {exc.strerror or exc}") from None
    probe = run_dir / f".write-check.{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"--out {run_dir}: the run folder is not writable: {exc.strerror or exc}") from None
    return run_dir


class RunLock:
    """An exclusive lock on a run folder; the kernel drops it when the process dies."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"run folder {self.path.parent}: cannot open its lock file: {exc.strerror or exc}") from None
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
            doc = parse_json(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"{run_dir}: no {RUN_FILE}: not a run folder written by `grader grade`") from None
        except (OSError, InvalidJSON) as exc:
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
