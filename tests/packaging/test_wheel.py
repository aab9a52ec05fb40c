"""The wheel carries everything the grader reads at runtime, and works with no checkout around.

The wheel is built offline from a copy of the sources (``pip wheel --no-deps
--no-build-isolation --no-index``: no network, no build of the checkout in place), installed
with ``pip install --no-deps --target`` into a folder outside the checkout, and run from a
working folder outside it with ``python -S``: ``sys.path`` is then only the install folder and
this interpreter's site-packages (for the dependencies) given through ``PYTHONPATH``, so the
checkout's editable install (a ``.pth`` finder) cannot stand in for a file the wheel lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support import metrics, sleepy, task_set, write

from grader import schemas

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "grader", "sandbox", "schemas")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "schemas_data"))
        else:
            shutil.copy2(path, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"),
                            str(src)], capture_output=True, text=True, timeout=300, cwd=tmp)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("sd_speedup_grader-*.whl")
    target = tmp / "target"
    done = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300, cwd=tmp)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), *deps])
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    return target, env, cwd


def run(installed, *args: str, timeout: float = 300, site: bool = False) -> subprocess.CompletedProcess:
    """``python -S ARGS`` with the install first on the path; ``site``: without ``-S`` (see bwrap below)."""
    target, env, cwd = installed
    return subprocess.run([sys.executable, *([] if site else ["-S"]), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_the_installed_grader_is_the_wheel_not_the_checkout(installed):
    target = installed[0]
    probe = run(installed, "-c", "import json, sys, grader, sandbox\n"
                "from grader import schemas\nfrom grader.isolation import local\nfrom grader.isolation.bwrap import layout\n"
                "print(json.dumps({'grader': grader.__file__, 'sandbox': sandbox.__file__, 'path': sys.path,"
                " 'schemas': str(schemas.schema_dir()), 'worker': str(local.WORKER_PACKAGE),"
                " 'n_schemas': len(list(schemas.schema_dir().glob('*.schema.json')))}))")
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout)
    resolved = target.resolve()
    assert Path(found["grader"]).resolve().is_relative_to(resolved)
    assert Path(found["sandbox"]).resolve().is_relative_to(resolved)
    assert Path(found["worker"]) == resolved / "sandbox"
    assert Path(found["schemas"]) == resolved / "grader" / "schemas_data"
    assert found["n_schemas"] == len(list((ROOT / "schemas").glob("*.schema.json"))) > 0
    venv = Path(sys.prefix).resolve()   # the dependencies' site-packages (with -S, no editable .pth is read)
    for entry in found["path"]:
        path = Path(entry).resolve() if entry else None
        assert not (path and path.is_relative_to(ROOT) and not path.is_relative_to(venv)), \
            f"the checkout is on sys.path: {entry}"
    for name in ("data/prompts.txt", "data/prompt_context.txt", "data/reference_template.py.tmpl"):
        assert (resolved / "grader" / name).is_file(), name


def test_the_packaged_schemas_are_the_checkouts(installed):
    packaged = installed[0] / "grader" / "schemas_data"
    for path in sorted((ROOT / "schemas").glob("*.schema.json")):
        assert (packaged / path.name).read_bytes() == path.read_bytes(), path.name


def _submission(root: Path, pids: str) -> tuple[Path, Path]:
    tasks = task_set(root / "tasks", [{"prompt_id": pid, "gt": sleepy(0.005)} for pid in pids])
    sub = root / "sub"
    for pid in pids:
        write(sub / f"{pid}_baseline.py", sleepy(0.005))
        write(sub / f"{pid}_experiment.py", sleepy(0.005))
        write(sub / f"{pid}_metrics.json", metrics(1.0))
    return sub, tasks


def test_installed_validate_reads_a_task_set(installed, tmp_path):
    sub, tasks = _submission(tmp_path, "12")
    (sub / "2_experiment.py").unlink()
    out = run(installed, "-m", "grader.cli", "validate", str(sub), "--tasks", str(tasks), "--json")
    assert out.returncode == 1, out.stderr[-3000:]
    doc = json.loads(out.stdout)
    assert {v["prompt_id"]: v["status"] for v in doc["verdicts"]} == {"1": "ok", "2": "missing"}


@pytest.mark.parametrize("sandbox", ["local", "bwrap"])
def test_installed_grade_runs_a_task(installed, tmp_path, sandbox):
    """Both providers that run the host's interpreter find the installed worker package.

    bwrap binds the interpreter's prefix (the venv, which ``-S`` hides from ``sys.prefix``) and
    not ``PYTHONPATH``: its run keeps the site folder, the install still first on the path."""
    if sandbox == "bwrap":
        from grader.isolation.bwrap import unavailable_reason

        reason = unavailable_reason()
        if reason and not (os.environ.get("GRADER_REQUIRE_BWRAP") == "1" or os.environ.get("CI")):
            pytest.skip(f"bwrap does not work here: {reason}")
    sub, tasks = _submission(tmp_path, "1")
    write(tmp_path / "models" / "model_index.json", "{}")
    run_dir = tmp_path / "run"
    out = run(installed, "-m", "grader.cli", "grade", str(sub), "--tasks", str(tasks), "--model-dir",
              str(tmp_path / "models"), "--out", str(run_dir), "--sandbox", sandbox, "--batch-size", "2",
              "--warmup-batches", "1", "--min-batches", "2", "--max-batches", "2", "--quality-batches", "1",
              "--target-ci", "0.5", timeout=420, site=sandbox == "bwrap")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = schemas.load_json(run_dir / "report.json", "report.schema.json")
    assert [(t["prompt_id"], t["status"]) for t in report["tasks"]] == [("1", "ok")]
    assert report["summary"]["n_passing"] == 1
    assert (run_dir / "report.md").read_text().startswith("# Grading report")


def test_installed_console_script_starts(installed):
    target, env, cwd = installed
    out = subprocess.run([str(target / "bin" / "grader"), "--version"], env=env, cwd=cwd, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("grader "), out.stderr[-2000:]
