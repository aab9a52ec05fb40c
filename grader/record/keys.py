"""Resume keys: when may a stored task result stand for a new run of the same command?

The key hashes the bytes of the task's baseline, experiment, metrics and GT files, the
manifest entry, the options that change a result, the prompt pool, the run seed and the
grader version. Quality tolerances are kept apart in ``quality_key``: when only they
changed, a stored result is re-gated from its stored images (as ``grader rescore`` does)
instead of re-run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from grader.files import file_digest

# Options that never change a task's result. The submission and task folders are
# represented by the bytes of the files read from them, not by their paths.
NON_RESULT_OPTIONS = frozenset({"out", "run_id", "only", "submission", "tasks", "seed", "quality", "executor", "ray_address"})


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest(obj: object) -> str:
    return hashlib.sha256(_canonical(obj)).hexdigest()


def pool_digest(pool: tuple[str, ...]) -> str:
    return digest(list(pool))


def _abs(value: str | None) -> str | None:
    return None if value is None else str(Path(value).resolve())


def result_options(options: dict) -> dict:
    """The options that change a task's result (quality tolerances apart)."""
    out = {k: v for k, v in options.items() if k not in NON_RESULT_OPTIONS}
    if out.get("docker_runtime") is None:
        out.pop("docker_runtime", None)  # the default: keys stay those of runs recorded before the option
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
