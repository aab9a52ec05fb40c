"""Who owns a container, and the child that removes a dead grader's containers.

Every container carries ``sd-grader.managed=1`` and its grader's host, pid and process start
time (:func:`owner_labels`), so that what a grader left behind can be told from what a live
one still uses (:func:`owner_alive`, used by ``grader cleanup``).

``atexit`` does not run when the grader is SIGKILLed or dies of SIGTERM, and a container has
no deadline of its own on the daemon side. So the first container a grader starts also starts
a reaper (:func:`ensure_reaper`): this module run as ``python -m grader.isolation.docker.reaper
--reap PID START``, a detached child that blocks reading a pipe whose only writer is the grader.
However the grader ends, the pipe closes and the reaper removes every container labelled with
that grader's host, pid and start time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil

from grader.isolation.docker.engine import client

LABEL_PREFIX = "sd-grader."
MANAGED_LABEL = "sd-grader.managed"
RUN_LABEL = "sd-grader.run"
OWNER_HOST_LABEL = "sd-grader.owner-host"
OWNER_PID_LABEL = "sd-grader.owner-pid"
OWNER_START_LABEL = "sd-grader.owner-start"
REAPER_MODULE = "grader.isolation.docker"  # its __main__ runs reap_main
IMPORT_ROOT = Path(__file__).resolve().parents[3]  # the folder holding grader/: a checkout or site-packages

_reaper_lock = threading.Lock()
_reaper: subprocess.Popen | None = None


def owner_labels() -> dict[str, str]:
    """The labels that name this grader process as a container's owner."""
    return {OWNER_HOST_LABEL: socket.gethostname(), OWNER_PID_LABEL: str(os.getpid()),
            OWNER_START_LABEL: f"{psutil.Process().create_time():.3f}"}


def owner_alive(labels: dict) -> bool:
    """Whether the grader named in a container's ``labels`` still runs (another host's: assumed so)."""
    if labels.get(OWNER_HOST_LABEL) != socket.gethostname():
        return True  # another host's grader: we cannot tell, so it is not ours to remove
    try:
        proc = psutil.Process(int(labels.get(OWNER_PID_LABEL, "0")))
        return abs(proc.create_time() - float(labels.get(OWNER_START_LABEL, "0"))) < 1.0
    except (psutil.Error, ValueError):
        return False


def ensure_reaper() -> None:
    """Start (once per grader process) a watcher that removes this process's containers when it dies."""
    global _reaper
    with _reaper_lock:
        if _reaper is not None and _reaper.poll() is None:
            return
        labels = owner_labels()
        try:
            _reaper = subprocess.Popen(
                [sys.executable, "-m", REAPER_MODULE, "--reap", labels[OWNER_PID_LABEL], labels[OWNER_START_LABEL]],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, cwd=str(IMPORT_ROOT),
            )
        except OSError:  # without it, atexit and `grader cleanup` remain
            _reaper = None


def reap_main(pid: str, start: str) -> int:
    """The reaper child: wait for the grader's pipe to close, then remove that grader's containers."""
    try:
        sys.stdin.buffer.read()  # returns at EOF: the grader is gone
    except OSError:
        pass
    cl = client()
    host = socket.gethostname()
    for c in cl.api.containers(all=True, filters={"label": [f"{MANAGED_LABEL}=1", f"{OWNER_PID_LABEL}={pid}"]}):
        labels = c.get("Labels") or {}
        if labels.get(OWNER_HOST_LABEL) == host and labels.get(OWNER_START_LABEL) == start:
            try:
                cl.api.remove_container(c["Id"], force=True, v=True)
            except Exception:  # noqa: BLE001 - `grader cleanup` is the fallback
                pass
    return 0
