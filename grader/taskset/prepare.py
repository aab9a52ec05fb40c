"""Turn a folder of reference speedup implementations into a task set.

This is the original benchmark's ``prepare_dataset_manifest`` logic (DESIGN.md
section 2), kept deterministic and made loud about everything it does not use:

1. list the source folder's ``*.py`` files, sorted by name;
2. parse model, sampler, steps, free text and speedup from each name with a
   documented grammar (:data:`DEFAULT_PATTERN`, overridable);
3. group by ``task_key`` (``MODEL_SAMPLER_STEPS``); sort each group by
   ``(speedup, filename)``; walk the groups in sorted ``task_key`` order;
4. take the first ``per_task`` files of each group (shorter groups are skipped),
   difficulty by position, consecutive ``prompt_id``\\s from ``start_id``;
5. copy each file to ``gt_code/<id>.py``; write the manifest and the
   filename-to-id mapping.

Unlike the original, every file that does not parse and every short group is
reported; the manifest is schema-checked before anything is written; every file
is written atomically and only when its bytes change; an existing GT file with
different content, or a task that would get a new id, is a conflict that stops
the run unless ``force`` is set. See docs/prepare.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import string
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from grader import schemas
from grader.errors import ConfigError
from grader.taskset.manifest import (
    GT_DIRNAME,
    MANIFEST_RELPATH,
    MAPPING_RELPATH,
    SCHEMA,
    TaskSet,
)

#: The filename grammar: ``MODEL_SAMPLER_STEPS[_FREE TEXT]_SPEEDUPx.py``, matched with
#: :func:`re.fullmatch` against the whole file name. Model and sampler are runs of
#: ``A-Z a-z 0-9 . + -`` (no underscore: the underscore separates fields), steps are
#: digits, the free text is anything (underscores included), the speedup is a decimal
#: number followed by a lower-case ``x``.
DEFAULT_PATTERN = (
    r"(?P<model>[A-Za-z0-9.+-]+)_(?P<sampler>[A-Za-z0-9.+-]+)_(?P<steps>[0-9]+)"
    r"(?:_(?P<desc>.+?))?_(?P<speedup>[0-9]+(?:\.[0-9]+)?)x\.py"
)
REQUIRED_GROUPS = ("model", "sampler", "steps", "speedup")
OPTIONAL_GROUPS = ("desc",)
DIFFICULTIES = ("easy", "medium", "hard")
DEFAULT_CATEGORY = "diffusion_speedup"
DEFAULT_START_ID = 1
DEFAULT_PER_TASK = 3
#: Placeholders a prompt_context template may use (string.Template syntax).
TEMPLATE_FIELDS = (
    "task_key", "model", "sampler", "steps", "description", "speedup", "original_filename",
    "prompt_id", "difficulty", "category", "gt_file", "baseline_file", "experiment_file", "metrics_file",
)
_NAME_PART = re.compile(r"[A-Za-z0-9.+-]+")
_MANIFEST_FIELDS = (
    "original_filename", "prompt_id", "task_key", "speedup", "category", "difficulty", "prompt_context",
    "path_to_gt_code", "path_to_gen_code", "path_to_gen_code_baseline", "path_to_metrics",
)


def default_template() -> str:
    """The packaged prompt_context template (grader/data/prompt_context.txt)."""
    return resources.files("grader").joinpath("data/prompt_context.txt").read_text(encoding="utf-8")


def difficulty_for(position: int, per_task: int) -> str:
    """Difficulty of the ``position``-th (0-based, ascending speedup) file of a group.

    The group's selected files are cut into thirds: ``DIFFICULTIES[3 * position // per_task]``.
    With 3 per task that is easy, medium, hard; with 1 it is easy; with 2 easy, medium;
    with 6 easy, easy, medium, medium, hard, hard.
    """
    if not 0 <= position < per_task:
        raise ValueError(f"position {position} outside 0..{per_task - 1}")
    return DIFFICULTIES[3 * position // per_task]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a filename grammar; it must name the groups model, sampler, steps, speedup."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--pattern {pattern!r} is not a valid regular expression: {exc}") from exc
    missing = [g for g in REQUIRED_GROUPS if g not in compiled.groupindex]
    if missing:
        raise ConfigError(
            f"--pattern {pattern!r} lacks the named group(s) {', '.join(missing)} "
            f"(needs (?P<model>...), (?P<sampler>...), (?P<steps>...), (?P<speedup>...); (?P<desc>...) is optional)"
        )
    return compiled


@dataclass(frozen=True)
class PrepareConfig:
    """Everything ``prepare`` needs; checked on construction (raises ConfigError)."""

    source_dir: Path
    out_dir: Path
    start_id: int = DEFAULT_START_ID
    per_task: int = DEFAULT_PER_TASK
    category: str = DEFAULT_CATEGORY
    pattern: str = DEFAULT_PATTERN
    template_path: Path | None = None  # None: the packaged default template
    dry_run: bool = False
    force: bool = False  # overwrite differing GT files and accept renumbering
    strict: bool = False  # write nothing when a file or group was skipped

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_dir", Path(self.source_dir))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.template_path is not None:
            object.__setattr__(self, "template_path", Path(self.template_path))
        if isinstance(self.start_id, bool) or not isinstance(self.start_id, int) or self.start_id < 0:
            raise ConfigError(f"--start-id must be a non-negative integer, got {self.start_id!r}")
        if isinstance(self.per_task, bool) or not isinstance(self.per_task, int) or self.per_task < 1:
            raise ConfigError(f"--per-task must be a positive integer, got {self.per_task!r}")
        if not isinstance(self.category, str) or not self.category.strip():
            raise ConfigError("--category must be a non-empty string")
        compile_pattern(self.pattern)


@dataclass(frozen=True)
class SourceFile:
    """One GT file whose name parsed."""

    filename: str
    model: str
    sampler: str
    steps: int
    description: str
    speedup: float
    speedup_text: str  # as written in the file name, e.g. "2.15"

    @property
    def task_key(self) -> str:
        return f"{self.model}_{self.sampler}_{self.steps}"


@dataclass(frozen=True)
class SkippedFile:
    """A ``.py`` file that could not be used because its name does not parse."""

    filename: str
    reason: str


@dataclass(frozen=True)
class IgnoredEntry:
    """Something in the source folder that is not a candidate (not a visible ``.py`` file)."""

    name: str
    reason: str


@dataclass(frozen=True)
class ShortGroup:
    """A task key with fewer files than ``per_task``; none of its files is used."""

    task_key: str
    files: tuple[str, ...]
    needed: int


@dataclass(frozen=True)
class UnusedFile:
    """A parsed file beyond the first ``per_task`` of its group (by design, not an error)."""

    filename: str
    task_key: str
    position: int


@dataclass(frozen=True)
class Conflict:
    """Something in the existing task set the run would change; needs ``force``."""

    kind: str  # "gt_differs", "gt_not_a_file", "renumbered", "mapping_unreadable"
    path: str
    message: str


@dataclass(frozen=True)
class PlannedTask:
    prompt_id: str
    source: SourceFile
    difficulty: str
    entry: dict[str, Any]
    gt_path: Path
    gt_bytes: bytes = field(repr=False)
    gt_action: str  # "create", "unchanged", "replace"


@dataclass
class PrepareResult:
    """What ``prepare`` found and did. ``written`` says whether files were written."""

    config: PrepareConfig
    tasks: tuple[PlannedTask, ...]
    skipped: tuple[SkippedFile, ...]
    short_groups: tuple[ShortGroup, ...]
    unused: tuple[UnusedFile, ...]
    ignored: tuple[IgnoredEntry, ...]
    conflicts: tuple[Conflict, ...]
    stale_gt: tuple[str, ...]
    manifest_bytes: bytes = field(repr=False)
    mapping_bytes: bytes = field(repr=False)
    manifest_action: str
    mapping_action: str
    written: bool = False

    @property
    def manifest_path(self) -> Path:
        return self.config.out_dir / MANIFEST_RELPATH

    @property
    def mapping_path(self) -> Path:
        return self.config.out_dir / MAPPING_RELPATH

    @property
    def has_skips(self) -> bool:
        """True when a ``.py`` file did not parse or a task key was short (what --strict fails on)."""
        return bool(self.skipped or self.short_groups)

    @property
    def blocking_conflicts(self) -> tuple[Conflict, ...]:
        return () if self.config.force else self.conflicts

    @property
    def exit_code(self) -> int:
        """0 ok; 1 strict and something was skipped; 2 the run cannot (or could not) write."""
        if not self.tasks or self.blocking_conflicts:
            return 2
        if self.config.strict and self.has_skips:
            return 1
        return 0

    def to_dict(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "source_dir": str(cfg.source_dir),
            "out_dir": str(cfg.out_dir),
            "dry_run": cfg.dry_run,
            "strict": cfg.strict,
            "force": cfg.force,
            "written": self.written,
            "exit_code": self.exit_code,
            "pattern": cfg.pattern,
            "per_task": cfg.per_task,
            "start_id": cfg.start_id,
            "category": cfg.category,
            "tasks": [
                {
                    "prompt_id": t.prompt_id, "task_key": t.source.task_key, "original_filename": t.source.filename,
                    "speedup": t.source.speedup, "difficulty": t.difficulty, "gt_file": str(t.gt_path),
                    "gt_action": t.gt_action,
                }
                for t in self.tasks
            ],
            "skipped_files": [{"filename": s.filename, "reason": s.reason} for s in self.skipped],
            "short_groups": [{"task_key": g.task_key, "files": list(g.files), "count": len(g.files), "needed": g.needed}
                             for g in self.short_groups],
            "unused_files": [{"filename": u.filename, "task_key": u.task_key, "position": u.position} for u in self.unused],
            "ignored": [{"name": i.name, "reason": i.reason} for i in self.ignored],
            "conflicts": [{"kind": c.kind, "path": c.path, "message": c.message} for c in self.conflicts],
            "stale_gt_files": list(self.stale_gt),
            "manifest": {"path": str(self.manifest_path), "action": self.manifest_action},
            "mapping": {"path": str(self.mapping_path), "action": self.mapping_action},
        }


# --------------------------------------------------------------------------- parsing


def parse_filename(filename: str, pattern: re.Pattern[str]) -> SourceFile | SkippedFile:
    """Parse one file name with the grammar; a SkippedFile carries the reason it failed."""
    match = pattern.fullmatch(filename)
    if match is None:
        return SkippedFile(filename, _diagnose(filename, pattern))
    groups = match.groupdict()
    model, sampler, steps_text, speedup_text = (groups.get(g) or "" for g in REQUIRED_GROUPS)
    description = groups.get("desc") or ""
    for name, value in (("model", model), ("sampler", sampler)):
        if not _NAME_PART.fullmatch(value):
            return SkippedFile(filename, f"{name} {value!r} must be one or more of A-Z a-z 0-9 . + - (no underscore)")
    if not steps_text.isascii() or not steps_text.isdigit() or int(steps_text) < 1:
        return SkippedFile(filename, f"steps {steps_text!r} must be a positive integer")
    try:
        speedup = float(speedup_text)
    except ValueError:
        return SkippedFile(filename, f"speedup {speedup_text!r} is not a number")
    if not math.isfinite(speedup) or speedup <= 0:
        return SkippedFile(filename, f"speedup {speedup_text!r} must be a finite number above 0")
    return SourceFile(filename, model, sampler, int(steps_text), description, speedup, speedup_text)


def _diagnose(filename: str, pattern: re.Pattern[str]) -> str:
    if pattern.pattern != DEFAULT_PATTERN:
        return f"name does not match --pattern {pattern.pattern!r}"
    if not re.search(r"_[0-9]+(?:\.[0-9]+)?x\.py$", filename):
        return "name does not end in a speedup such as '_2.15x.py'"
    if not re.match(r"[A-Za-z0-9.+-]+_[A-Za-z0-9.+-]+_[0-9]+_", filename):
        return "name does not start with MODEL_SAMPLER_STEPS_ such as 'SD1.5_DDIM_50_'"
    return "name does not follow MODEL_SAMPLER_STEPS[_TEXT]_SPEEDUPx.py"


def scan_source(source_dir: Path, pattern: re.Pattern[str]) -> tuple[list[SourceFile], list[SkippedFile], list[IgnoredEntry]]:
    """Parse every visible ``*.py`` regular file of ``source_dir``, in name order."""
    if not source_dir.is_dir():
        raise ConfigError(f"source folder {source_dir} does not exist or is not a folder")
    try:
        names = sorted(os.listdir(source_dir))
    except OSError as exc:
        raise ConfigError(f"cannot list source folder {source_dir}: {exc}") from exc
    parsed: list[SourceFile] = []
    skipped: list[SkippedFile] = []
    ignored: list[IgnoredEntry] = []
    for name in names:
        path = source_dir / name
        if name.startswith("."):
            ignored.append(IgnoredEntry(name, "hidden"))
        elif not name.endswith(".py"):
            ignored.append(IgnoredEntry(name, "folder" if path.is_dir() else "not a .py file"))
        elif not path.is_file():
            ignored.append(IgnoredEntry(name, "not a regular file"))
        else:
            outcome = parse_filename(name, pattern)
            (parsed if isinstance(outcome, SourceFile) else skipped).append(outcome)
    return parsed, skipped, ignored


# --------------------------------------------------------------------------- planning


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


def dumps(document: Any) -> bytes:
    """The one JSON encoding used for every output: stable order, indent 2, UTF-8, trailing newline."""
    return (json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _existing_mapping(path: Path) -> tuple[dict[str, str] | None, Conflict | None]:
    if not path.exists() and not path.is_symlink():
        return None, None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
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


# --------------------------------------------------------------------------- writing


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder, fsync, os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _describe_blockers(result: PrepareResult) -> str:
    if not result.tasks:
        parts = [f"no task key has at least {result.config.per_task} parseable file(s) in {result.config.source_dir}"]
        if result.skipped:
            parts.append(f"{len(result.skipped)} file(s) did not parse, e.g. {result.skipped[0].filename}: {result.skipped[0].reason}")
        if result.short_groups:
            parts.append(f"{len(result.short_groups)} task key(s) were short, e.g. {result.short_groups[0].task_key} "
                         f"with {len(result.short_groups[0].files)}")
        return "; ".join(parts) + " (run with --dry-run for the full list)"
    lines = [f"refusing to change the existing task set in {result.config.out_dir} ({len(result.conflicts)} conflict(s); "
             "pass --force to overwrite):"]
    lines += [f"  {c.kind}: {c.message}" for c in result.conflicts]
    return "\n".join(lines)


def write(result: PrepareResult) -> None:
    """Write a planned result: GT files, then the mapping, then the manifest (last, so a
    crash leaves the previous manifest in place). Files whose bytes are unchanged are not touched."""
    try:
        for task in result.tasks:
            if task.gt_action != "unchanged":
                atomic_write(task.gt_path, task.gt_bytes)
        if result.mapping_action != "unchanged":
            atomic_write(result.mapping_path, result.mapping_bytes)
        if result.manifest_action != "unchanged":
            atomic_write(result.manifest_path, result.manifest_bytes)
    except OSError as exc:
        raise ConfigError(f"cannot write task set in {result.config.out_dir}: {exc}") from exc
    result.written = True
    loaded = TaskSet.from_dir(result.config.out_dir)
    if loaded.invalid:
        raise ConfigError(f"the written task set does not load: {loaded.invalid[0].message}")


def prepare(config: PrepareConfig) -> PrepareResult:
    """Plan, then write unless ``dry_run``.

    Raises ConfigError when nothing can be prepared or when the existing task set
    would change (a differing GT file, a renumbered task) and ``force`` is off; in a
    dry run those are reported in the result instead (``exit_code`` 2). With ``strict``,
    nothing is written when a file or a task key was skipped (``exit_code`` 1).
    """
    result = plan(config)
    if config.dry_run:
        return result
    if not result.tasks or result.blocking_conflicts:
        raise ConfigError(_describe_blockers(result))
    if config.strict and result.has_skips:
        return result
    write(result)
    return result


# --------------------------------------------------------------------------- reporting


_PAST = {"create": "created", "replace": "replaced", "unchanged": "unchanged"}


def _verb(action: str, done: bool) -> str:
    return _PAST[action] if done else ("unchanged" if action == "unchanged" else f"would {action}")


def summary(result: PrepareResult) -> str:
    """A readable account of a result, for people."""
    cfg = result.config
    done = result.written
    lines: list[str] = []
    ids = f" (prompt_id {result.tasks[0].prompt_id}..{result.tasks[-1].prompt_id})" if result.tasks else ""
    lines.append(f"{'DRY RUN: ' if cfg.dry_run else ''}{len(result.tasks)} task(s) from {cfg.source_dir} -> {cfg.out_dir}{ids}")
    if result.tasks:
        width = max(len(t.source.task_key) for t in result.tasks)
        for t in result.tasks:
            lines.append(f"  {t.prompt_id:>5}  {t.source.task_key:<{width}}  {t.difficulty:<6}  {t.source.speedup_text:>6}x  "
                         f"gt {_verb(t.gt_action, done):<13}  {t.source.filename}")
    if result.skipped:
        lines.append(f"skipped files ({len(result.skipped)}): the name does not parse")
        lines += [f"  {s.filename}: {s.reason}" for s in result.skipped]
    if result.short_groups:
        lines.append(f"skipped task keys ({len(result.short_groups)}): fewer than {cfg.per_task} file(s)")
        lines += [f"  {g.task_key}: {len(g.files)} file(s): {', '.join(g.files)}" for g in result.short_groups]
    if result.unused:
        lines.append(f"unused files ({len(result.unused)}): beyond the first {cfg.per_task} of their task key")
        lines += [f"  {u.filename} ({u.task_key}, position {u.position + 1})" for u in result.unused]
    if result.ignored:
        lines.append(f"ignored ({len(result.ignored)}): " + ", ".join(f"{i.name} ({i.reason})" for i in result.ignored))
    if result.conflicts:
        head = "conflicts, overwritten because of --force" if cfg.force else "conflicts (pass --force to overwrite)"
        lines.append(f"{head} ({len(result.conflicts)}):")
        lines += [f"  {c.kind}: {c.message}" for c in result.conflicts]
    if result.stale_gt:
        lines.append(f"GT files not in the new manifest, left in place ({len(result.stale_gt)}): " + ", ".join(result.stale_gt))
    if result.tasks:
        lines.append(f"manifest: {_verb(result.manifest_action, done)} {result.manifest_path}")
        lines.append(f"mapping:  {_verb(result.mapping_action, done)} {result.mapping_path}")
    code = result.exit_code
    if code == 1:
        lines.append("strict: something was skipped; " + ("a real run would write nothing" if cfg.dry_run else "nothing written"))
    elif code == 2 and cfg.dry_run:
        lines.append("a real run would fail: " + _describe_blockers(result).splitlines()[0])
    return "\n".join(lines)


__all__ = [
    "DEFAULT_PATTERN", "DIFFICULTIES", "PrepareConfig", "PrepareResult", "PlannedTask", "SourceFile", "SkippedFile",
    "ShortGroup", "UnusedFile", "IgnoredEntry", "Conflict", "prepare", "plan", "write", "summary", "parse_filename",
    "difficulty_for", "compile_pattern", "default_template", "atomic_write", "dumps",
]
