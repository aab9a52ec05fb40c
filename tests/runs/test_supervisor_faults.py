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


def _spec(tmp_path, name="gt"):
    module = tmp_path / "m.py"
    module.write_text("def load_pipeline():\n    return None\n")
    (tmp_path / "model").mkdir(exist_ok=True)
    return VariantSpec(name=name, module_path=module, model_dir=tmp_path / "model", steps=2, device="cpu",
                       sandbox="local")


def test_a_worker_that_dies_before_hello_ends_error_with_its_stderr(tmp_path, monkeypatch):
    real_get = supervisor.get

    def dying(name, spec):
        box = real_get("local", spec)
        start = box.start
        box.start = lambda argv: start(["{python}", "-c", "import sys; sys.stderr.write('no model for me\\n'); sys.exit(3)"])
        return box

    monkeypatch.setattr(supervisor, "get", dying)
    worker = supervisor.VariantWorker(_spec(tmp_path), Schedule(tuple(f"p{i}" for i in range(20)), 1, 2),
                                      small_timing(), tmp_path / "gt")
    worker.start()
    worker.step()
    run = worker.finish()
    assert run.status == "error" and "exited with code 3" in run.message
    assert "no model for me" in run.stderr_tail


def test_a_worker_never_launched_is_an_error_not_an_attribute_error(tmp_path):
    worker = supervisor.VariantWorker(_spec(tmp_path), Schedule(tuple(f"p{i}" for i in range(20)), 1, 2),
                                      small_timing(), tmp_path / "gt")
    worker.step()
    run = worker.finish()
    assert run.status == "error" and "never connected" in run.message
