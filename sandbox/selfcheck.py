"""``python -m sandbox.worker --self-check``: does this image hold a worker that can run?

An image is only ever exercised by a grading, where a broken one shows up as every task ending
``error`` with a worker that never said hello. This check says why up front, in one JSON line
(``schemas/selfcheck.schema.json``), on the machine where the image will run: Dockerfile.gpu
runs it at build time (no GPU there, so the CUDA part is skipped), and on a GPU host
``docker run --gpus all --read-only --tmpfs /tmp IMAGE --self-check --require-cuda`` proves the
driver, the container toolkit and the image's torch agree.

What it checks, each one a named entry of ``checks``:

- ``imports``: torch, diffusers, transformers and the worker protocol import (versions recorded);
- ``user``: the process is not root;
- ``root_fs``: neither ``/`` nor the worker's own code can be written (read-only under
  ``--read-only``, as the grader runs it; merely not writable by this user at build time);
- ``tmp``: ``$TMPDIR`` (``/tmp``, also ``HOME``) is writable; ``work``: so is ``--work`` when given;
- ``cuda``: when CUDA is visible, a tiny tensor op runs on it and gives the right answer;
  ``--require-cuda`` makes a missing GPU a failure.

Exit 0 when every check passed, 1 otherwise. Standard library only until torch is imported, so
a broken torch is reported, not raised.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import platform
import sys
import tempfile
import traceback
from pathlib import Path

MODULES = ("torch", "diffusers", "transformers", "sandbox.protocol")


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:400]


def check_imports() -> dict:
    versions, failed = {}, {}
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - a broken package is what this check reports
            failed[name] = _short(exc)
            continue
        versions[name] = getattr(module, "__version__", None)
    return {"ok": not failed, "versions": versions, "failed": failed}


def check_user() -> dict:
    uid, gid = os.getuid(), os.getgid()
    return {"ok": uid != 0, "uid": uid, "gid": gid}


def _write_probe(folder: Path) -> str:
    """``"writable"``, ``"read-only"`` (EROFS) or ``"not writable"`` (permission) for ``folder``."""
    try:
        fd, name = tempfile.mkstemp(prefix=".selfcheck-", dir=folder)
    except OSError as exc:
        return "read-only" if exc.errno == errno.EROFS else "not writable"
    os.close(fd)
    os.unlink(name)
    return "writable"


def check_root_fs() -> dict:
    code = Path(__file__).resolve().parent
    states = {"/": _write_probe(Path("/")), str(code): _write_probe(code)}
    return {"ok": "writable" not in states.values(),
            "read_only": all(s == "read-only" for s in states.values()), "paths": states}


def check_writable(folder: Path) -> dict:
    state = _write_probe(folder) if folder.is_dir() else "missing"
    return {"ok": state == "writable", "path": str(folder), "state": state}


def check_cuda(require: bool) -> dict:
    try:
        import torch

        if not torch.cuda.is_available():
            return {"ok": not require, "available": False, "required": require}
        value = (torch.arange(4, device="cuda", dtype=torch.float32) * 2).sum().item()
        torch.cuda.synchronize()
        return {"ok": value == 12.0, "available": True, "required": require,
                "device": torch.cuda.get_device_name(0), "device_count": torch.cuda.device_count(),
                "cuda": torch.version.cuda, "result": value}
    except BaseException as exc:  # noqa: BLE001 - a driver or toolkit mismatch is the finding
        return {"ok": False, "available": None, "required": require, "error": _short(exc)}


def run(work: Path | None = None, require_cuda: bool = False) -> dict:
    checks: dict[str, dict] = {}
    steps = [("imports", check_imports), ("user", check_user), ("root_fs", check_root_fs),
             ("tmp", lambda: check_writable(Path(tempfile.gettempdir())))]
    if work is not None:
        steps.append(("work", lambda: check_writable(work)))
    steps.append(("cuda", lambda: check_cuda(require_cuda)))
    for name, step in steps:
        try:
            checks[name] = step()
        except BaseException as exc:  # noqa: BLE001 - one broken check must not hide the others
            checks[name] = {"ok": False, "error": _short(exc), "traceback": traceback.format_exc()[-2000:]}
    failed = [name for name, result in checks.items() if not result["ok"]]
    return {"type": "self_check", "ok": not failed, "failed": failed, "python": platform.python_version(),
            "checks": checks}


def main(work: Path | None, require_cuda: bool) -> int:
    """Print the report as the only line on stdout (what the imports print goes to stderr)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        report = run(work, require_cuda)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0 if report["ok"] else 1
