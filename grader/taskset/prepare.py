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

This is the entry module (what ``grader prepare`` and callers import) and the only
one that writes. The work is split by concern:

- :mod:`grader.taskset.prepare_names`: the file name grammar and the source scan (steps 1-2);
- :mod:`grader.taskset.prepare_result`: the config, the result dataclasses, the summary text;
- :mod:`grader.taskset.prepare_plan`: the plan, computed without writing (steps 3-4);
- here: writing a plan (step 5) and :func:`prepare`, which plans, then writes.
"""

from __future__ import annotations

from grader.errors import ConfigError
from grader.files import atomic_write
from grader.taskset import reference
from grader.taskset.manifest import TaskKey, TaskSet
from grader.taskset.prepare_names import (
    DEFAULT_PATTERN,
    OPTIONAL_GROUPS,
    REQUIRED_GROUPS,
    IgnoredEntry,
    SkippedFile,
    SourceFile,
    compile_pattern,
    parse_filename,
    scan_source,
)
from grader.taskset.prepare_plan import TEMPLATE_FIELDS, default_template, dumps, plan
from grader.taskset.prepare_result import (
    DEFAULT_CATEGORY,
    DEFAULT_PER_TASK,
    DEFAULT_START_ID,
    DIFFICULTIES,
    Conflict,
    PlannedTask,
    PrepareConfig,
    PrepareResult,
    ShortGroup,
    UnusedFile,
    describe_blockers,
    difficulty_for,
    summary,
)


def write(result: PrepareResult) -> None:
    """Write a planned result: GT files, then the mapping, then the manifest (last, so a
    crash leaves the previous manifest in place). Files whose bytes are unchanged are not touched."""
    try:
        for task in result.tasks:
            if task.gt_action != "unchanged":
                atomic_write(task.gt_path, task.gt_bytes)
        result.references = write_references(result)
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


def write_references(result: PrepareResult) -> dict[str, str]:
    """``reference_code/<TASK_KEY>.py`` for each task key, from the reference template, where none exists.

    An existing file is the owner's, frozen in the task set: it is never overwritten.
    """
    template = reference.template_text(result.config.reference_template)
    actions = {}
    for task in result.tasks:
        key = TaskKey.parse(task.source.task_key)
        path = result.config.out_dir / reference.REFERENCE_DIRNAME / reference.default_name(key)
        if str(key) in actions:
            continue
        if path.exists() or path.is_symlink():
            actions[str(key)] = "kept"
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, reference.render(key, template, str(result.config.reference_template or reference.TEMPLATE)).encode())
        actions[str(key)] = "written"
    return actions


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
        raise ConfigError(describe_blockers(result))
    if config.strict and result.has_skips:
        return result
    write(result)
    return result


__all__ = [
    "DEFAULT_PATTERN", "DEFAULT_CATEGORY", "DEFAULT_START_ID", "DEFAULT_PER_TASK", "DIFFICULTIES", "REQUIRED_GROUPS",
    "OPTIONAL_GROUPS", "TEMPLATE_FIELDS", "PrepareConfig", "PrepareResult", "PlannedTask", "SourceFile", "SkippedFile",
    "ShortGroup", "UnusedFile", "IgnoredEntry", "Conflict", "prepare", "plan", "write", "summary", "parse_filename",
    "scan_source", "difficulty_for", "compile_pattern", "default_template", "describe_blockers", "dumps",
]
