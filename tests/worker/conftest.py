"""A real worker process on CPU around a pipeline-free module, for the worker's own tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import worker
from sandbox.protocol import Channel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_module() -> str:
    """The module the worker loads (a test file overrides this fixture for another one)."""
    return "def load_pipeline():\n    return lambda **kw: None\n"


@pytest.fixture
def worker_process(tmp_path, worker_module):
    """(channel, process) of a started worker, before its hello is read; killed afterwards."""
    work = tmp_path / "work"
    work.mkdir()
    module = tmp_path / "m.py"
    module.write_text(worker_module)
    (work / worker.CONFIG_FILE).write_text(json.dumps({"module_path": str(module), "device": "cpu",
                                                       "model_dir": str(tmp_path)}))
    channel = Channel.create(work / "proto")
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.worker", "--work", str(work)], cwd=ROOT)
    try:
        yield channel, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        channel.close()


@pytest.fixture
def cpu_worker(worker_process):
    """The started worker once it has said hello and loaded: (channel, process)."""
    channel, proc = worker_process
    for kind in ("hello", "ready"):
        message = channel.recv(120)
        assert message is not None and message["type"] == kind, message
    return channel, proc
