"""JSON Schema validation for every document that crosses a trust boundary, and the one
strict parser for untrusted JSON text.

Schemas live in the top-level ``schemas/`` folder so that benchmark owners and
outside tools can read them; a wheel carries a copy as ``grader/schemas_data/`` (setup.py
copies it at build time), and :func:`schema_dir` is the one place that picks between the
two. This module loads them once and turns jsonschema's errors into
:class:`~grader.errors.SchemaViolation` naming the source and JSON path.

:func:`parse_json` is how every untrusted JSON text is read (the manifest, the mapping
file, metrics files, worker messages, stored results): it refuses what ``json.loads``
lets through or turns into a traceback: ``NaN``/``Infinity`` (and ``1e999``, which
parses as infinity), duplicate keys, nesting deeper than :data:`MAX_DEPTH` (measured
before parsing, without recursion) and numbers longer than :data:`MAX_NUMBER_CHARS`.
Each refusal is an :class:`InvalidJSON` with a message that says why.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from grader.errors import GraderError, SchemaViolation

PACKAGED_SCHEMAS = "schemas_data"   # the wheel's copy of schemas/, inside the grader package
MAX_DEPTH = 64            # arrays and objects nested in each other; the grader's own documents stay under 10
MAX_NUMBER_CHARS = 100    # digits (and sign, point, exponent) of one number literal
_TOKENS = re.compile(r'["\\\[\]{}]')


class InvalidJSON(ValueError):
    """Untrusted text the strict parser refuses; the message says why."""


def _refuse_constant(name: str):
    raise InvalidJSON(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise InvalidJSON(f"duplicate key {duplicate[:100]!r}")
    return document


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidJSON(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    return int(text)


def _finite_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidJSON(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJSON(f"{text[:40]} is out of range for a finite number")
    return value


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise InvalidJSON when arrays and objects nest deeper than ``max_depth`` (a scan, no recursion)."""
    depth, in_string, skip = 0, False, -1
    for match in _TOKENS.finditer(text):
        at = match.start()
        if at == skip:
            continue
        char = text[at]
        if in_string:
            if char == "\\":
                skip = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise InvalidJSON(f"nested deeper than {max_depth} levels")
        elif char in "]}":
            depth -= 1


def parse_json(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON text strictly (see the module's docstring); raise InvalidJSON."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON(f"not UTF-8 text: {exc}") from None
    check_depth(text, max_depth)
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys,
                          parse_int=_bounded_int, parse_float=_finite_float)
    except InvalidJSON:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:   # defence in depth: nothing else may escape as a traceback
        raise InvalidJSON(f"{type(exc).__name__}: {str(exc)[:200]}") from None


@lru_cache(maxsize=1)
def schema_dir() -> Path:
    """The folder of the schemas: the installed package's copy, else the checkout's ``schemas/``."""
    package = Path(__file__).resolve().parent
    for folder in (package / PACKAGED_SCHEMAS, package.parent / "schemas"):
        if (folder / "manifest.schema.json").is_file():
            return folder
    raise GraderError(f"no JSON schemas in {package / PACKAGED_SCHEMAS} or {package.parent / 'schemas'}: "
                            "a broken install (reinstall the wheel) or checkout")


@lru_cache(maxsize=None)
def validator(name: str, definition: str | None = None) -> jsonschema.protocols.Validator:
    """The checked validator of schema ``name``, or of one of its ``$defs`` (``definition``)."""
    schema = json.loads((schema_dir() / name).read_text(encoding="utf-8"))
    if definition is not None:
        schema = {"$schema": schema.get("$schema"), "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def json_path(parts) -> str:
    """``$.tasks[0].flags`` from the parts of a path into a JSON document."""
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def errors(name: str, document: Any, definition: str | None = None) -> list[tuple[str, str]]:
    """All violations of schema ``name`` (or its ``definition``) as ``(json_path, message)``, most specific first."""
    found = sorted(validator(name, definition).iter_errors(document),
                   key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [(json_path(e.absolute_path), e.message) for e in found]


def validate(name: str, document: Any, source: str) -> Any:
    """Return ``document`` when it matches schema ``name``; raise SchemaViolation otherwise."""
    problems = errors(name, document)
    if problems:
        json_path, message = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SchemaViolation(source, name, json_path, message + more)
    return document


def load_json(path: Path, name: str) -> Any:
    """Read ``path`` as strict JSON (:func:`parse_json`) and validate it against schema ``name``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SchemaViolation(str(path), name, "$", f"cannot read file: {exc}") from exc
    return load_bytes(data, name, str(path))


def load_bytes(data: bytes, name: str, source: str) -> Any:
    """``data`` parsed as strict JSON and validated against schema ``name``; SchemaViolation otherwise."""
    try:
        document = parse_json(data)
    except InvalidJSON as exc:
        raise SchemaViolation(source, name, "$", f"not valid JSON: {exc}") from None
    return validate(name, document, source)
