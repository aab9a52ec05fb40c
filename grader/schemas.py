"""JSON Schema validation for every document that crosses a trust boundary.

Schemas live in the top-level ``schemas/`` folder so that benchmark owners and
outside tools can read them; this module loads them once and turns jsonschema's
errors into :class:`~grader.errors.SchemaViolation` naming the source and JSON path.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from grader.errors import SchemaViolation

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@lru_cache(maxsize=None)
def validator(name: str, definition: str | None = None) -> jsonschema.protocols.Validator:
    """The checked validator of schema ``name``, or of one of its ``$defs`` (``definition``)."""
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
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
    """Read ``path`` as JSON and validate it against schema ``name``."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaViolation(str(path), name, "$", f"cannot read file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SchemaViolation(str(path), name, "$", f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    return validate(name, document, str(path))
