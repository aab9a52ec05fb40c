"""The reference baseline of a task: the trusted plain pipeline that every speedup is measured against.

The agent's own baseline cannot carry the headline figure: a baseline slowed on purpose
inflates ``t_baseline / t_experiment``, and a baseline that agrees with a degraded
experiment fools a gate that compares the two. The reference is grader-side code instead,
shipped in the task set and frozen there: ``reference_code/<TASK_KEY>.py`` (or the file an
entry names in ``path_to_reference_code``). ``grader prepare`` writes one per task key
from :data:`TEMPLATE` (the owner may pass another); a task set without one gets the same
template rendered for the task key, and the report says which it was.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from grader.errors import ConfigError
from grader.files import atomic_write
from grader.taskset.manifest import TaskEntry, TaskKey

REFERENCE_DIRNAME = "reference_code"
TEMPLATE = "data/reference_template.py.tmpl"
TASK_SET, GRADER_DEFAULT = "task set", "grader default"
MAX_REFERENCE_BYTES = 1 << 20


@dataclass(frozen=True)
class ReferenceCode:
    """A reference module's text and where it came from."""

    task_key: str
    text: str
    origin: str                 # TASK_SET or GRADER_DEFAULT
    path: Path | None = None    # the task set's file; None for the grader's default

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def describe(self) -> dict:
        """The task entry's ``reference`` in the report."""
        return {"origin": self.origin, "path": str(self.path) if self.path else None, "sha256": self.sha256}

    def write_to(self, folder: Path) -> Path:
        """The module as a file the sandbox can be given (named by task key and content)."""
        path = folder / f"reference_{self.sha256[:16]}.py"
        if not path.is_file():
            atomic_write(path, self.text)
        return path


def template_text(path: Path | None = None) -> str:
    """The reference template: the packaged one, or an owner's ``string.Template`` file."""
    if path is None:
        return resources.files("grader").joinpath(TEMPLATE).read_text(encoding="utf-8")
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--reference-template {path}: cannot read: {exc}") from exc


def render(key: TaskKey, template: str | None = None, source: str = "the reference template") -> str:
    """The template filled in for one task key ($task_key, $model, $sampler, $steps)."""
    try:
        return string.Template(template if template is not None else template_text()).substitute(
            task_key=str(key), model=key.model, sampler=key.sampler, steps=key.steps)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{source}: bad placeholder {exc} (known: $task_key $model $sampler $steps)") from exc


def default_name(key: TaskKey | str) -> str:
    return f"{key}.py"


def for_task(root: Path, task: TaskEntry) -> ReferenceCode:
    """The task's reference: the task set's file when there is one, else the grader's default.

    A named file that is missing, a link, not a regular file, too large or outside
    ``reference_code/`` is an error (the owner asked for it), never a silent default.
    """
    folder = Path(root) / REFERENCE_DIRNAME
    name = task.reference_name or default_name(task.task_key)
    path = folder / name
    if task.reference_name is None and not path.exists() and not path.is_symlink():
        return ReferenceCode(str(task.task_key), render(task.task_key), GRADER_DEFAULT)
    what = f"reference code {path} (task {task.prompt_id})"
    if path.is_symlink() or not path.is_file():
        raise ConfigError(f"{what}: expected a regular file")
    if path.stat().st_size > MAX_REFERENCE_BYTES:
        raise ConfigError(f"{what}: larger than {MAX_REFERENCE_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: cannot read: {exc}") from exc
    return ReferenceCode(str(task.task_key), text, TASK_SET, path)


@dataclass(frozen=True)
class TaskCode:
    """A task's trusted code as read before any submission ran: the GT's bytes and the reference."""

    gt_name: str
    gt: bytes
    reference: ReferenceCode

    def write_gt(self, folder: Path) -> Path:
        path = folder / self.gt_name
        atomic_write(path, self.gt)
        return path


def task_code(root: Path, task) -> TaskCode | str:
    """One task's trusted code, or the message that says why it cannot be read."""
    try:
        return TaskCode(Path(task.gt_path).name, Path(task.gt_path).read_bytes(), for_task(root, task))
    except ConfigError as exc:
        return str(exc)
    except OSError as exc:
        return f"GT file {task.gt_path}: cannot read: {exc}"


def snapshot(root: Path, tasks) -> dict[str, TaskCode | str]:
    """Every task's trusted code, read once up front (a message per task that cannot be read).

    Under a sandbox that does not isolate, a submission graded early could rewrite a later
    task's GT or reference file; grading from this snapshot makes that rewrite come too late.
    """
    return {task.prompt_id: task_code(root, task) for task in tasks}
