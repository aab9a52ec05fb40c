"""Fixtures of the sandbox tests."""

from __future__ import annotations

import os

import pytest
from conformance_support import split_id

from grader.isolation import Limits, Mount, SandboxSpec, get


@pytest.fixture
def box(tmp_path):
    """Build sandboxes with the usual mounts: work (rw), code (ro, one file), model (ro); ``name`` is a
    suite id (``docker-runsc``: the docker provider with runtime runsc)."""
    made = []
    root = tmp_path / "run"
    (root / "work").mkdir(parents=True)
    (root / "code").mkdir()
    (root / "code" / "module.py").write_text("VALUE = 42\n")
    (root / "model").mkdir()
    (root / "model" / "model_index.json").write_text("{}")
    for path in (root / "code", root / "model"):
        os.chmod(path, 0o755)

    def make(name: str, limits: Limits = Limits(), env: dict | None = None):
        kind, runtime = split_id(name)
        spec = SandboxSpec(
            mounts={"work": Mount(root / "work", read_only=False), "code": Mount(root / "code"),
                    "model": Mount(root / "model")},
            env=env or {}, limits=limits, labels={"run": "conformance"}, runtime=runtime,
        )
        sandbox = get(kind, spec)
        made.append(sandbox)
        return sandbox

    make.root = root
    yield make
    for sandbox in made:
        sandbox.close()
