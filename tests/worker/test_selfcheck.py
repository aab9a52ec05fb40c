"""``python -m sandbox.worker --self-check`` on the host (the image runs it in tests/isolation/test_gpu_image.py).

The report must be the only line on stdout whatever the imports print, match its schema, name
every failed check, and exit 1 exactly when one failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader import schemas

ROOT = Path(__file__).resolve().parents[2]


def self_check(*args: str, code: str | None = None, extra_path: Path | None = None) -> tuple[int, dict, str]:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "sandbox.worker", "--self-check", *args]
    path = os.pathsep.join(str(p) for p in (ROOT, extra_path) if p)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": path})
    lines = out.stdout.splitlines()
    assert len(lines) == 1, f"stdout {out.stdout!r}, stderr {out.stderr[-2000:]}"
    report = schemas.validate("selfcheck.schema.json", schemas.parse_json(lines[0]), source="self-check")
    return out.returncode, report, out.stderr


def test_report_matches_schema_and_exit_code(tmp_path):
    code, report, _ = self_check("--work", str(tmp_path))
    failed = [name for name, check in report["checks"].items() if not check["ok"]]
    assert report["failed"] == failed and report["ok"] is (not failed) and code == (1 if failed else 0)
    checks = report["checks"]
    assert checks["imports"]["ok"] and {"torch", "diffusers", "transformers"} <= set(checks["imports"]["versions"])
    assert checks["user"]["uid"] == os.getuid() and checks["user"]["ok"] is (os.getuid() != 0)
    assert checks["work"] == {"ok": True, "path": str(tmp_path), "state": "writable"}
    assert checks["tmp"]["ok"]


def test_a_noisy_and_a_broken_import_leave_one_line(tmp_path):
    (tmp_path / "noisy_pkg.py").write_text("print('hello from an import')\n")
    (tmp_path / "broken_pkg.py").write_text("raise ImportError('no libcudart.so.12')\n")
    code, report, stderr = self_check(code=textwrap.dedent("""
        import sys
        from sandbox import selfcheck
        selfcheck.MODULES += ("noisy_pkg", "broken_pkg")
        sys.exit(selfcheck.main(None, False))
    """), extra_path=tmp_path)
    assert code == 1 and "imports" in report["failed"]
    assert report["checks"]["imports"]["failed"] == {"broken_pkg": "ImportError: no libcudart.so.12"}
    assert "noisy_pkg" in report["checks"]["imports"]["versions"]
    assert "hello from an import" in stderr


def test_missing_work_folder_fails(tmp_path):
    code, report, _ = self_check("--work", str(tmp_path / "absent"))
    assert code == 1 and "work" in report["failed"] and report["checks"]["work"]["state"] == "missing"


def test_require_cuda_without_a_gpu_fails():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    code, report, _ = self_check("--require-cuda")
    assert code == 1 and "cuda" in report["failed"]
    assert report["checks"]["cuda"] == {"ok": False, "available": False, "required": True}


def test_serving_still_needs_work():
    out = subprocess.run([sys.executable, "-m", "sandbox.worker"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "--work is required" in out.stderr
