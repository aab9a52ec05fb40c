"""A variant whose worker never connected is torn down without asking it anything: the error
that stopped it is the one the caller sees (it used to be hidden behind an AttributeError)."""

from __future__ import annotations

import pytest
from support import small_timing

from grader.errors import SandboxUnavailable
from grader.runs import supervisor
from grader.runs.interleave import run_variants
from grader.runs.variant import VariantSpec
from grader.taskset.prompts import Schedule


def test_a_sandbox_that_fails_before_hello_surfaces_its_own_error(tmp_path, monkeypatch):
    def no_sandbox(name, spec):
        raise SandboxUnavailable("docker: the engine went away")

    monkeypatch.setattr(supervisor, "get", no_sandbox)
    module = tmp_path / "m.py"
    module.write_text("def load_pipeline():\n    return None\n")
    (tmp_path / "model").mkdir()
    specs = [VariantSpec(name=n, module_path=module, model_dir=tmp_path / "model", steps=2, device="cpu",
                         sandbox="docker") for n in ("gt", "baseline", "experiment")]
    with pytest.raises(SandboxUnavailable, match="engine went away"):
        run_variants(specs, Schedule(tuple(f"p{i}" for i in range(20)), 1, 2), small_timing(), tmp_path / "runs")
