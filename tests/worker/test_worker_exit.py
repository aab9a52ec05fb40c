"""After ``stop`` the worker answers ``bye`` and ends at once: no interpreter teardown, and
nothing the module left behind (exit handlers, a thread that never ends) runs or holds it."""

from __future__ import annotations

import subprocess
import textwrap

import pytest


@pytest.fixture
def worker_module(tmp_path) -> str:
    marker = tmp_path / "atexit-ran"
    return textwrap.dedent(f'''
        import atexit
        import threading
        import time

        atexit.register(lambda: open({str(marker)!r}, "w").close())
        threading.Thread(target=lambda: time.sleep(3600), daemon=False).start()

        def load_pipeline():
            return lambda **kw: None
    ''')


def test_stop_ends_the_worker_at_once_without_the_modules_exit_handlers(cpu_worker, tmp_path):
    channel, proc = cpu_worker
    channel.send({"op": "stop"})
    assert channel.recv(30) == {"type": "bye"}
    try:
        code = proc.wait(10)   # a normal exit would wait for the module's thread: an hour
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not exit within 10 s of its bye")
    assert code == 0
    assert not (tmp_path / "atexit-ran").exists()
