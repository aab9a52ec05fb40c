"""Thin command line: parse arguments, build typed config, call the library.

Each command lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``func`` to a callable taking the parsed namespace and
returning an exit code. Exit codes, in the spirit of pytest's, are the same for every
command (:data:`EXIT_CODES`): a CI job can tell "some task is not ok" from "the grader
or the machine broke".
"""

from __future__ import annotations

import argparse
import importlib
import sys

from grader import __version__
from grader.errors import GraderError, SandboxError

EXIT_OK, EXIT_NOT_OK, EXIT_USAGE, EXIT_INFRA, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    EXIT_OK: "every graded task ok (validate: every task ready)",
    EXIT_NOT_OK: "the command finished and some task is not ok (grade --exit-zero: 0)",
    EXIT_USAGE: "usage or input error: a bad option, an unreadable task set, a run folder in use",
    EXIT_INFRA: "infrastructure: the sandbox or its engine is unavailable or failed",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); re-running the same command resumes the run",
}

COMMAND_MODULES = (
    "grader.commands.grade",
    "grader.commands.prepare",
    "grader.commands.doctor",
    "grader.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    epilog = "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())
    parser = argparse.ArgumentParser(prog="grader", description="Grade Stable Diffusion speedup submissions.",
                                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"grader {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ngrader: interrupted; re-running the same command resumes the run", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SandboxError as exc:
        print(f"grader: error: {exc}", file=sys.stderr)
        return EXIT_INFRA
    except GraderError as exc:
        print(f"grader: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
