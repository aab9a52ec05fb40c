"""Planning a ``grader prepare`` run: everything it would write, computed without writing.

Kept apart from writing so that a dry run and a real run share every decision (which
files, which ids, which bytes, which conflicts with an existing task set): the real
run only writes the bytes this module planned. It reads the source folder, the
prompt_context template and the existing task set; it never writes.
"""

from __future__ import annotations

import json
import os
import string
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader import schemas
from grader.errors import ConfigError
from grader.taskset.manifest import GT_DIRNAME, MANIFEST_RELPATH, MAPPING_RELPATH, SCHEMA
from grader.taskset.prepare_names import SourceFile, compile_pattern, scan_source
from grader.taskset.prepare_result import Conflict, PlannedTask, PrepareResult, ShortGroup, UnusedFile, difficulty_for

if TYPE_CHECKING:  # annotations only: the config is built by the caller
    from grader.taskset.prepare_result import PrepareConfig

#: Placeholders a prompt_context template may use (string.Template syntax).
TEMPLATE_FIELDS = (
    "task_key", "model", "sampler", "steps", "description", "speedup", "original_filename",
    "prompt_id", "difficulty", "category", "gt_file", "baseline_file", "experiment_file", "metrics_file",
)
_MANIFEST_FIELDS = (
    "original_filename", "prompt_id", "task_key", "speedup", "category", "difficulty", "prompt_context",
    "path_to_gt_code", "path_to_gen_code", "path_to_gen_code_baseline", "path_to_metrics",
)


def default_template() -> str:
    """The packaged prompt_context template (grader/data/prompt_context.txt)."""
    return resources.files("grader").joinpath("data/prompt_context.txt").read_text(encoding="utf-8")


def dumps(document: Any) -> bytes:
    """The one JSON encoding used for every output: stable order, indent 2, UTF-8, trailing newline."""
    return (json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _read_template(config: PrepareConfig) -> string.Template:
    if config.template_path is None:
        text = default_template()
    else:
        try:
            text = config.template_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read --template {config.template_path}: {exc}") from exc
    template = string.Template(text)
    bad = [ident for ident in template.get_identifiers() if ident not in TEMPLATE_FIELDS]
    if not template.is_valid():
        raise ConfigError(f"--template {config.template_path or 'default'}: invalid placeholder "
                          "(use $name or ${name}; write $$ for a literal $)")
    if bad:
        raise ConfigError(f"--template {config.template_path or 'default'}: unknown placeholder(s) "
                          f"{', '.join('$' + b for b in bad)}; known: {', '.join('$' + f for f in TEMPLATE_FIELDS)}")
    return template


def _entry(source: SourceFile, prompt_id: str, difficulty: str, category: str, template: string.Template) -> dict[str, Any]:
    names = {
        "path_to_gt_code": f"{prompt_id}.py",
        "path_to_gen_code": f"{prompt_id}_experiment.py",
        "path_to_gen_code_baseline": f"{prompt_id}_baseline.py",
        "path_to_metrics": f"{prompt_id}_metrics.json",
    }
    context = template.substitute(
        task_key=source.task_key, model=source.model, sampler=source.sampler, steps=str(source.steps),
        description=source.description, speedup=source.speedup_text,
        original_filename=source.filename, prompt_id=prompt_id, difficulty=difficulty, category=category,
        gt_file=names["path_to_gt_code"], baseline_file=names["path_to_gen_code_baseline"],
        experiment_file=names["path_to_gen_code"], metrics_file=names["path_to_metrics"],
    ).rstrip("\n")
    entry = {
        "original_filename": source.filename,
        "prompt_id": prompt_id,
        "task_key": source.task_key,
        "speedup": source.speedup,
        "category": category,
        "difficulty": difficulty,
        "prompt_context": context,
        **names,
    }
    assert tuple(entry) == _MANIFEST_FIELDS
    return entry


def _existing_mapping(path: Path) -> tuple[dict[str, str] | None, Conflict | None]:
    if not path.exists() and not path.is_symlink():
        return None, None
    try:
        raw = schemas.parse_json(path.read_bytes())
    except (OSError, schemas.InvalidJSON) as exc:
        return None, Conflict("mapping_unreadable", str(path), f"existing mapping cannot be read ({exc}); "
                              "cannot tell whether tasks would be renumbered")
    if not isinstance(raw, dict) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in raw.values()):
        return None, Conflict("mapping_unreadable", str(path), "existing mapping is not an object of filename -> prompt_id; "
                              "cannot tell whether tasks would be renumbered")
    return {str(k): str(v) for k, v in raw.items()}, None


def _action(path: Path, data: bytes) -> str:
    if not path.exists() and not path.is_symlink():
        return "create"
    try:
        return "unchanged" if path.is_file() and not path.is_symlink() and path.read_bytes() == data else "replace"
    except OSError:
        return "replace"


def plan(config: PrepareConfig) -> PrepareResult:
    """Compute everything ``prepare`` would do, reading but never writing."""
    pattern = compile_pattern(config.pattern)
    template = _read_template(config)
    parsed, skipped, ignored = scan_source(config.source_dir, pattern)

    groups: dict[str, list[SourceFile]] = {}
    for source in parsed:  # already in filename order
        groups.setdefault(source.task_key, []).append(source)

    out = config.out_dir
    gt_dir = out / GT_DIRNAME
    tasks: list[PlannedTask] = []
    short: list[ShortGroup] = []
    unused: list[UnusedFile] = []
    manifest: list[dict[str, Any]] = []
    mapping: dict[str, str] = {}
    next_id = config.start_id
    for task_key in sorted(groups):
        files = sorted(groups[task_key], key=lambda s: (s.speedup, s.filename))
        if len(files) < config.per_task:
            short.append(ShortGroup(task_key, tuple(s.filename for s in files), config.per_task))
            continue
        for position, source in enumerate(files[: config.per_task]):
            prompt_id = str(next_id)
            next_id += 1
            difficulty = difficulty_for(position, config.per_task)
            entry = _entry(source, prompt_id, difficulty, config.category, template)
            try:
                data = (config.source_dir / source.filename).read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read GT file {config.source_dir / source.filename}: {exc}") from exc
            gt_path = gt_dir / entry["path_to_gt_code"]
            tasks.append(PlannedTask(prompt_id, source, difficulty, entry, gt_path, data, _action(gt_path, data)))
            manifest.append(entry)
            mapping[source.filename] = prompt_id
        unused.extend(UnusedFile(s.filename, task_key, i) for i, s in enumerate(files) if i >= config.per_task)

    manifest_path = out / MANIFEST_RELPATH
    if manifest:
        schemas.validate(SCHEMA, manifest, source=f"{manifest_path} (to be written)")
    manifest_bytes, mapping_bytes = dumps(manifest), dumps(mapping)

    conflicts: list[Conflict] = []
    _check_out_dir(out)
    for task in tasks:
        if task.gt_path.is_symlink() or (task.gt_path.exists() and not task.gt_path.is_file()):
            conflicts.append(Conflict("gt_not_a_file", str(task.gt_path),
                                      f"{task.gt_path} exists and is not a regular file"))
        elif task.gt_action == "replace":
            conflicts.append(Conflict("gt_differs", str(task.gt_path),
                                      f"{task.gt_path} differs from {task.source.filename} (prompt_id {task.prompt_id})"))
    old_mapping, unreadable = _existing_mapping(out / MAPPING_RELPATH)
    if unreadable:
        conflicts.append(unreadable)
    if old_mapping:
        for filename, new_id in mapping.items():
            old_id = old_mapping.get(filename)
            if old_id is not None and old_id != new_id:
                conflicts.append(Conflict("renumbered", str(out / MAPPING_RELPATH),
                                          f"{filename} has prompt_id {old_id} in the existing task set and would get {new_id}"))

    planned = {t.gt_path.name for t in tasks}
    stale = tuple(sorted(str(gt_dir / n) for n in _list_py(gt_dir) if n not in planned))

    return PrepareResult(
        config=config, tasks=tuple(tasks), skipped=tuple(skipped), short_groups=tuple(short), unused=tuple(unused),
        ignored=tuple(ignored), conflicts=tuple(conflicts), stale_gt=stale,
        manifest_bytes=manifest_bytes, mapping_bytes=mapping_bytes,
        manifest_action=_action(manifest_path, manifest_bytes), mapping_action=_action(out / MAPPING_RELPATH, mapping_bytes),
    )


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    for sub in (out / GT_DIRNAME, out / MANIFEST_RELPATH.parent):
        if sub.is_symlink() or (sub.exists() and not sub.is_dir()):
            raise ConfigError(f"{sub} must be a real folder (not a file or a symlink)")
    for path in (out / MANIFEST_RELPATH, out / MAPPING_RELPATH):
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise ConfigError(f"{path} must be a regular file (not a folder or a symlink)")


def _list_py(folder: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(folder) if n.endswith(".py"))
    except OSError:
        return []
