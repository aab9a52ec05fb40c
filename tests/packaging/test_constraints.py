"""constraints.txt is the one list of versions: complete, obeyed by this venv, and an image input.

Every install takes its versions from it (``make setup``/``setup-test`` with ``-c``, the images
through ``docker/requirements.txt``'s ``-c ../constraints.txt``), so these checks keep it whole:
it pins every dependency the grader, its tests and the images name, with the grader's whole
installed closure at the installed versions; the image build hashes it and refuses a wheel it
does not pin (docker/check_pins.py).
"""

from __future__ import annotations

import importlib.util
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")   # Python 3.11+
ROOT = Path(__file__).resolve().parents[2]
DIST = "sd-speedup-grader"


def _load_check_pins():
    spec = importlib.util.spec_from_file_location("check_pins", ROOT / "docker" / "check_pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_pins = _load_check_pins()
PINS = check_pins.pins(ROOT / "constraints.txt")


def _names(requirements) -> set[str]:
    return {check_pins.normalize(Requirement(r).name) for r in requirements}


def test_every_line_is_one_exact_pin_and_torch_is_not_there():
    names = []
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.+!-]*", line), line
            names.append(check_pins.normalize(line.split("==")[0]))
    assert len(names) == len(set(names)) == len(PINS) > 20
    assert "torch" not in PINS


def test_every_named_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = _names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        named |= _names(extra)
    image = [line.split("#", 1)[0].strip() for line in (ROOT / "docker" / "requirements.txt").read_text().splitlines()]
    named |= _names(line for line in image if line and not line.startswith("-"))
    assert sorted(named - {"torch"} - set(PINS)) == []


def test_the_image_requirements_take_their_versions_from_constraints():
    text = (ROOT / "docker" / "requirements.txt").read_text()
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    assert "-c ../constraints.txt" in lines
    assert not [line for line in lines if "==" in line or ">=" in line]


def test_the_installed_closure_is_pinned_at_the_installed_versions():
    try:
        metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{DIST} is not installed here")
    seen, todo, wrong = set(), [(DIST, ("test",))], []
    while todo:
        name, extras = todo.pop()
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (*extras, "")):
                continue
            key = check_pins.normalize(req.name)
            if key in seen or key == "torch":
                continue
            seen.add(key)
            version = metadata.version(req.name)
            if PINS.get(key) != version:
                wrong.append(f"{req.name} {version} installed, constraints.txt: {PINS.get(key)}")
            todo.append((req.name, tuple(req.extras)))
    assert wrong == [], "this venv disagrees with constraints.txt (make setup-test): " + "; ".join(wrong)
    assert {"diffusers", "transformers", "jsonschema", "numpy", "pillow", "safetensors", "pytest"} <= seen


def test_a_wheelhouse_package_not_pinned_is_refused(tmp_path):
    for name in ("numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl", "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl",
                 "typing_extensions-4.16.0-py3-none-any.whl", "left_pad-1.0-py3-none-any.whl",
                 "pillow-12.0.0-cp311-cp311-manylinux_2_28_x86_64.whl"):
        (tmp_path / name).write_bytes(b"")
    assert PINS["numpy"] == "2.4.6" and PINS["typing-extensions"] == "4.16.0" and PINS["pillow"] != "12.0.0"
    assert check_pins.unpinned(tmp_path, ROOT / "constraints.txt") == [
        "left_pad-1.0-py3-none-any.whl", "pillow-12.0.0-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert check_pins.main([str(tmp_path), str(ROOT / "constraints.txt")]) == 1


def test_constraints_is_an_input_of_every_image_hash():
    script = (ROOT / "scripts" / "build_image.sh").read_text()
    calls = re.findall(r"inputs_hash\.py inputs ((?:[^\n]*\\\n)*[^\n]*)", script)
    assert len(calls) == 4   # the CPU image, its wheelhouse, the GPU wheelhouse, the GPU image
    assert all("constraints.txt" in call for call in calls), calls
    assert "docker/check_pins.py" in script
    assert "COPY constraints.txt" in (ROOT / "docker" / "Dockerfile.cpu").read_text()
    assert "COPY constraints.txt" in (ROOT / "Dockerfile.gpu").read_text()
