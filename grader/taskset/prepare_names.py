"""The file name grammar of ``grader prepare`` and the scan of its source folder.

Kept apart from planning because it is the one part a benchmark owner changes
(``--pattern``) and the one part with its own error vocabulary: every name that does
not parse is kept as a :class:`SkippedFile` with a reason for people, and everything
else in the folder as an :class:`IgnoredEntry`. It reads file names only, never
their contents, and writes nothing.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from grader.errors import ConfigError
from grader.taskset.manifest import TaskKey

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
_NAME_PART = re.compile(r"[A-Za-z0-9.+-]+")


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
        """``MODEL_SAMPLER_STEPS``, spelled as the manifest's :class:`TaskKey` spells it."""
        return str(TaskKey(self.model, self.sampler, self.steps))


@dataclass(frozen=True)
class SkippedFile:
    """A ``.py`` file that could not be used because its name does not parse."""

    filename: str
    reason: str


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


@dataclass(frozen=True)
class IgnoredEntry:
    """Something in the source folder that is not a candidate (not a visible ``.py`` file)."""

    name: str
    reason: str


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
