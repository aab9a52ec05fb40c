"""``grader prepare SOURCE_DIR --out TASKS_DIR``: build a task set from reference files.

Parses arguments, builds a :class:`~grader.taskset.prepare.PrepareConfig`, calls
:func:`~grader.taskset.prepare.prepare` and prints its summary (or ``--json``).
Exit codes: 0 ok; 1 ``--strict`` and something was skipped (nothing written);
2 an error (nothing to prepare, a conflict with the existing task set, bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grader.errors import GraderError
from grader.taskset import prepare as lib


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="turn a folder of reference speedup files into a task set",
        description=(
            "Turn a folder of reference speedup implementations (GT files named "
            "MODEL_SAMPLER_STEPS[_TEXT]_SPEEDUPx.py) into a task set: gt_code/<id>.py, "
            "config_data/dataset_manifest.json and config_data/file_id_mapping.json. See docs/prepare.md."
        ),
    )
    parser.add_argument("source_dir", metavar="SOURCE_DIR", type=Path, help="folder of GT *.py files")
    parser.add_argument("--out", dest="out_dir", metavar="TASKS_DIR", type=Path, required=True,
                        help="task set folder to create or update")
    parser.add_argument("--start-id", type=int, default=lib.DEFAULT_START_ID, metavar="N",
                        help=f"first prompt_id (default {lib.DEFAULT_START_ID})")
    parser.add_argument("--per-task", type=int, default=lib.DEFAULT_PER_TASK, metavar="N",
                        help=f"files taken per task key, lowest speedups first (default {lib.DEFAULT_PER_TASK})")
    parser.add_argument("--category", default=lib.DEFAULT_CATEGORY, metavar="NAME",
                        help=f"manifest category (default {lib.DEFAULT_CATEGORY!r})")
    parser.add_argument("--pattern", default=lib.DEFAULT_PATTERN, metavar="REGEX",
                        help="filename grammar, matched against the whole file name; named groups "
                             "model, sampler, steps, speedup and optionally desc")
    parser.add_argument("--reference-template", type=Path, default=None, metavar="FILE",
                        help="template of each task key's reference baseline, reference_code/<TASK_KEY>.py "
                             "(string.Template: $task_key $model $sampler $steps; default: the grader's plain "
                             "diffusers pipeline). Existing reference files are never overwritten")
    parser.add_argument("--template", dest="template_path", type=Path, default=None, metavar="FILE",
                        help="prompt_context template (string.Template: $task_key $model $sampler $steps "
                             "$description $speedup ...; default grader/data/prompt_context.txt)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be done; write nothing")
    parser.add_argument("--force", action="store_true",
                        help="overwrite GT files whose content differs and accept renumbered tasks")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 and write nothing when a file does not parse or a task key is short")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = lib.PrepareConfig(
            source_dir=args.source_dir, out_dir=args.out_dir, start_id=args.start_id, per_task=args.per_task,
            category=args.category, pattern=args.pattern, template_path=args.template_path,
            reference_template=args.reference_template,
            dry_run=args.dry_run, force=args.force, strict=args.strict,
        )
        result = lib.prepare(config)
    except GraderError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "exit_code": 2}, indent=2, ensure_ascii=False))
        raise
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(lib.summary(result))
    if result.exit_code == 2 and not args.json:
        print("grader: error: the real run would fail (see above)", file=sys.stderr)
    return result.exit_code
