"""What ``grader prepare`` is asked to do and what it found: the typed config, the
plan's result dataclasses, and the two ways of telling it (``to_dict`` for ``--json``,
:func:`summary` for people).

Kept apart from planning and writing so that the vocabulary of a run (skipped,
short, unused, ignored, conflict; its exit code) is defined once, in one place that
computes nothing and touches no file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.errors import ConfigError
from grader.taskset.manifest import MANIFEST_RELPATH, MAPPING_RELPATH
from grader.taskset.prepare_names import DEFAULT_PATTERN, IgnoredEntry, SkippedFile, SourceFile, compile_pattern

DIFFICULTIES = ("easy", "medium", "hard")
DEFAULT_CATEGORY = "diffusion_speedup"
DEFAULT_START_ID = 1
DEFAULT_PER_TASK = 3


def difficulty_for(position: int, per_task: int) -> str:
    """Difficulty of the ``position``-th (0-based, ascending speedup) file of a group.

    The group's selected files are cut into thirds: ``DIFFICULTIES[3 * position // per_task]``.
    With 3 per task that is easy, medium, hard; with 1 it is easy; with 2 easy, medium;
    with 6 easy, easy, medium, medium, hard, hard.
    """
    if not 0 <= position < per_task:
        raise ValueError(f"position {position} outside 0..{per_task - 1}")
    return DIFFICULTIES[3 * position // per_task]


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
    reference_template: Path | None = None  # None: grader/data/reference_template.py.tmpl
    dry_run: bool = False
    force: bool = False  # overwrite differing GT files and accept renumbering
    strict: bool = False  # write nothing when a file or group was skipped

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_dir", Path(self.source_dir))
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.template_path is not None:
            object.__setattr__(self, "template_path", Path(self.template_path))
        if self.reference_template is not None:
            object.__setattr__(self, "reference_template", Path(self.reference_template))
        if isinstance(self.start_id, bool) or not isinstance(self.start_id, int) or self.start_id < 0:
            raise ConfigError(f"--start-id must be a non-negative integer, got {self.start_id!r}")
        if isinstance(self.per_task, bool) or not isinstance(self.per_task, int) or self.per_task < 1:
            raise ConfigError(f"--per-task must be a positive integer, got {self.per_task!r}")
        if not isinstance(self.category, str) or not self.category.strip():
            raise ConfigError("--category must be a non-empty string")
        compile_pattern(self.pattern)


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
    references: dict[str, str] = field(default_factory=dict)   # task key -> "written" / "kept"

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


# --------------------------------------------------------------------------- telling people


def describe_blockers(result: PrepareResult) -> str:
    """Why a real run of ``result`` cannot write: nothing to prepare, or the conflicts."""
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
        for key, action in sorted(result.references.items()):
            lines.append(f"reference baseline {key}: {action} {cfg.out_dir / 'reference_code' / (key + '.py')}")
        lines.append(f"mapping:  {_verb(result.mapping_action, done)} {result.mapping_path}")
    code = result.exit_code
    if code == 1:
        lines.append("strict: something was skipped; " + ("a real run would write nothing" if cfg.dry_run else "nothing written"))
    elif code == 2 and cfg.dry_run:
        lines.append("a real run would fail: " + describe_blockers(result).splitlines()[0])
    return "\n".join(lines)
