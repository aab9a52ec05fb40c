"""Thin command line: parse arguments, build typed config, call the library.

Each command lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``func`` to a callable taking the parsed namespace and
returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from grader import __version__
from grader.errors import GraderError

COMMAND_MODULES = (
    "grader.commands.grade",
    "grader.commands.prepare",
    "grader.commands.doctor",
    "grader.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grader", description="Grade Stable Diffusion speedup submissions.")
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
    except GraderError as exc:
        print(f"grader: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
