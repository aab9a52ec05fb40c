"""Typed task sets: the benchmark owner's manifest, loaded and checked up front.

The manifest is data written by someone else, so it is validated before anything
runs: schema first (unknown fields, wrong types), then what a schema cannot say
(duplicate ids, paths that leave the task folder through ``..`` or a symlink, GT
files that do not exist). A broken entry does not sink the others: it is kept as an
:class:`InvalidEntry` and graded as an ``error`` with the message that names the
file, the entry and the field. Its name (the folder its result is written to) is its
``prompt_id`` only when that matches the schema's pattern and no earlier entry has it;
otherwise a safe, unique ``invalid-<index>``: nothing is ever written under an id the
schema refuses, and a duplicate is reported as its own invalid entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from grader import schemas
from grader.errors import ManifestError

MANIFEST_RELPATH = Path("config_data") / "dataset_manifest.json"
MAPPING_RELPATH = Path("config_data") / "file_id_mapping.json"
GT_DIRNAME = "gt_code"
SCHEMA = "manifest.schema.json"
PROMPT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")   # the schema's prompt_id pattern (a test checks they agree)
_PATH_FIELDS = ("path_to_gt_code", "path_to_gen_code", "path_to_gen_code_baseline", "path_to_metrics")


@dataclass(frozen=True)
class TaskKey:
    """``SD1.5_DDIM_50`` split into model, sampler and steps."""

    model: str
    sampler: str
    steps: int

    @classmethod
    def parse(cls, text: str) -> "TaskKey":
        parts = text.split("_")
        if len(parts) < 3 or not parts[-1].isdigit():
            raise ValueError(f"task_key {text!r} is not MODEL_SAMPLER_STEPS (e.g. 'SD1.5_DDIM_50')")
        return cls(model=parts[0], sampler="_".join(parts[1:-1]), steps=int(parts[-1]))

    def __str__(self) -> str:
        return f"{self.model}_{self.sampler}_{self.steps}"


@dataclass(frozen=True)
class TaskEntry:
    """One manifest entry, with its GT file resolved inside the task folder."""

    prompt_id: str
    task_key: TaskKey
    original_filename: str
    speedup: float
    category: str
    difficulty: str
    prompt_context: str
    gt_path: Path
    experiment_name: str
    baseline_name: str
    metrics_name: str
    reference_name: str | None = None   # path_to_reference_code, a file in reference_code/


def is_prompt_id(value: object) -> bool:
    """Whether ``value`` is a prompt_id the schema accepts (safe as a folder name)."""
    return isinstance(value, str) and PROMPT_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class InvalidEntry:
    """An entry that failed validation; graded as ``error`` with ``message``.

    ``prompt_id`` always matches :data:`PROMPT_ID`: the entry's own id when usable,
    else ``invalid-<index>``."""

    prompt_id: str
    message: str


@dataclass(frozen=True)
class TaskSet:
    root: Path
    tasks: tuple[TaskEntry, ...]
    invalid: tuple[InvalidEntry, ...]

    @classmethod
    def from_dir(cls, root: Path | str) -> "TaskSet":
        root = Path(root)
        manifest_path = root / MANIFEST_RELPATH
        if not manifest_path.is_file():
            raise ManifestError(str(manifest_path), "manifest not found (expected <tasks>/config_data/dataset_manifest.json)")
        try:
            raw = schemas.parse_json(manifest_path.read_bytes())
        except (OSError, schemas.InvalidJSON) as exc:
            raise ManifestError(str(manifest_path), f"cannot read manifest as JSON: {exc}") from None
        if not isinstance(raw, list) or not raw:
            raise ManifestError(str(manifest_path), "expected a non-empty JSON list of task entries")
        return cls.from_entries(root, raw, source=str(manifest_path))

    @classmethod
    def from_entries(cls, root: Path, raw: list, source: str) -> "TaskSet":
        tasks: list[TaskEntry] = []
        invalid: list[InvalidEntry] = []
        ids = [_raw_id(item) for item in raw]
        taken: set[str] = set()   # ids (and generated names) in use; the first entry with an id keeps it
        for index, item in enumerate(raw):
            label = _label(item, index)
            pid = ids[index]
            duplicate = pid is not None and pid in taken
            try:
                if duplicate:
                    raise ManifestError(source, f"duplicate prompt_id {pid!r}", label, "prompt_id")
                entry = _parse_entry(root, item, index, source)
                taken.add(entry.prompt_id)
                tasks.append(entry)
            except ManifestError as exc:
                name = pid if is_prompt_id(pid) and not duplicate else _fresh_name(index, taken, ids)
                taken.add(name)
                invalid.append(InvalidEntry(prompt_id=name, message=str(exc)))
        return cls(root=root, tasks=tuple(tasks), invalid=tuple(invalid))

    def select(self, only: set[str] | None) -> "TaskSet":
        if not only:
            return self
        unknown = only - {t.prompt_id for t in self.tasks} - {i.prompt_id for i in self.invalid}
        if unknown:
            raise ManifestError(str(self.root / MANIFEST_RELPATH), f"--only names unknown prompt_id(s): {', '.join(sorted(unknown))}")
        return TaskSet(self.root, tuple(t for t in self.tasks if t.prompt_id in only),
                       tuple(i for i in self.invalid if i.prompt_id in only))


def _raw_id(item: object) -> str | None:
    """An entry's prompt_id as text (a number counts: the schema reports its type), else None."""
    pid = item.get("prompt_id") if isinstance(item, dict) else None
    if isinstance(pid, bool) or not isinstance(pid, (str, int)):
        return None
    return pid if isinstance(pid, str) else str(pid)


def _fresh_name(index: int, taken: set[str], ids: list[str | None]) -> str:
    """``invalid-<index>``, made unique against every id of the manifest and every name given."""
    name, n = f"invalid-{index}", 1
    while name in taken or name in ids:
        n += 1
        name = f"invalid-{index}-{n}"
    return name


def _label(item: object, index: int) -> str:
    if isinstance(item, dict) and isinstance(item.get("prompt_id"), str):
        return f"#{index} (prompt_id {item['prompt_id'][:80]!r})" if not is_prompt_id(item["prompt_id"]) \
            else f"#{index} (prompt_id {item['prompt_id']})"
    return f"#{index}"


def _parse_entry(root: Path, item: object, index: int, source: str) -> TaskEntry:
    label = _label(item, index)
    problems = schemas.errors(SCHEMA, [item])
    if problems:
        json_path, message = problems[0]
        field = json_path.split(".", 1)[1] if "." in json_path else None
        raise ManifestError(source, f"{message} (expected by {SCHEMA})", label, field)
    assert isinstance(item, dict)
    try:
        key = TaskKey.parse(item["task_key"])
    except ValueError as exc:
        raise ManifestError(source, str(exc), label, "task_key") from exc
    for field in (*_PATH_FIELDS, "path_to_reference_code"):
        value = item.get(field, "")
        if "/" in value and field != "path_to_gt_code":
            raise ManifestError(source, f"expected a bare file name, got {value!r}", label, field)
    gt_dir = (root / GT_DIRNAME).resolve()
    gt_path = root / GT_DIRNAME / item["path_to_gt_code"]
    resolved = gt_path.resolve()
    if not resolved.is_relative_to(gt_dir):
        raise ManifestError(source, f"{item['path_to_gt_code']!r} resolves outside {gt_dir} (symlink or '..')", label, "path_to_gt_code")
    if not resolved.is_file():
        raise ManifestError(source, f"GT file {gt_path} does not exist", label, "path_to_gt_code")
    ref = item.get("path_to_reference_code")
    if ref is not None:
        ref_path = root / "reference_code" / ref
        if ref_path.is_symlink() or not ref_path.is_file():
            raise ManifestError(source, f"reference file {ref_path} is not a regular file", label, "path_to_reference_code")
    return TaskEntry(
        prompt_id=item["prompt_id"], task_key=key, original_filename=item["original_filename"],
        speedup=float(item["speedup"]), category=item["category"], difficulty=item["difficulty"],
        prompt_context=item["prompt_context"], gt_path=resolved,
        experiment_name=item["path_to_gen_code"], baseline_name=item["path_to_gen_code_baseline"],
        metrics_name=item["path_to_metrics"], reference_name=item.get("path_to_reference_code"),
    )
