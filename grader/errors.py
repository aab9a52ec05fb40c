"""One exception tree for the whole grader.

Foreign errors (docker, subprocess, jsonschema, OS) are translated at the boundary
where they happen, with ``raise ... from exc``, so callers only ever catch these::

    GraderError
    ├── ConfigError                bad input from the user or the benchmark owner
    │   ├── ManifestError          a task set that does not load (file, entry, field)
    │   └── SubmissionError        a submission folder that cannot be read at all
    ├── SchemaViolation            a JSON document that fails its schema (file, JSON path)
    ├── SandboxError               the sandbox could not run something
    │   ├── SandboxUnavailable     provider missing (no docker engine, no image)
    │   └── SandboxInfraError      a provider call failed (create, start, remove)
    └── WorkerError                the untrusted worker misbehaved; carries a status
        ├── WorkerTimeout          status "timeout"
        ├── WorkerOOM              status "oom"
        ├── WorkerCrashed          status "error" (crash, import error, bad output)
        └── ProtocolViolation      status "tampered": the worker broke the protocol

Worker errors are expected outcomes for one variant of one task; everything else
aborts what it concerns, and the runner turns it into an ``error`` for that task only.
"""

from __future__ import annotations


class GraderError(Exception):
    """Base of every error the grader raises on purpose."""


class ConfigError(GraderError):
    """User-supplied configuration or input is unusable."""


class ManifestError(ConfigError):
    """A task set failed to load; the message names file, entry and field."""

    def __init__(self, file: str, message: str, entry: str | None = None, field: str | None = None):
        self.file, self.entry, self.field = str(file), entry, field
        where = self.file
        if entry is not None:
            where += f": entry {entry}"
        if field is not None:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")


class SubmissionError(ConfigError):
    """A submission folder that cannot be read at all."""


class SchemaViolation(GraderError):
    """A JSON document does not match its schema."""

    def __init__(self, source: str, schema: str, json_path: str, message: str):
        self.source, self.schema, self.json_path, self.detail = source, schema, json_path, message
        super().__init__(f"{source}: does not match {schema} at {json_path}: {message}")


class SandboxError(GraderError):
    """The sandbox itself failed (not the code inside it)."""


class SandboxUnavailable(SandboxError):
    """The requested sandbox provider cannot be used on this machine."""


class SandboxInfraError(SandboxError):
    """A provider operation (create, start, remove) failed."""


class WorkerError(GraderError):
    """The untrusted side failed; ``status`` is the task status it maps to."""

    status = "error"

    def __init__(self, message: str, stderr_tail: str = "", flags: tuple[str, ...] = ()):
        self.stderr_tail = stderr_tail
        self.flags = tuple(flags)
        super().__init__(message)


class WorkerTimeout(WorkerError):
    status = "timeout"


class WorkerOOM(WorkerError):
    status = "oom"


class WorkerCrashed(WorkerError):
    status = "error"


class ProtocolViolation(WorkerError):
    status = "tampered"
