"""Conformance checks of freeze, thaw and pids: the supervisor freezes every variant it is not
timing, so a frozen run must get no CPU, wake on thaw, and still die promptly when killed."""

from __future__ import annotations

import time

import pytest
from conformance_support import providers_for, py, split_id


def _spinner(box, name, *, detach: bool = False):
    """A busy loop with a busy child (``detach``: a double-forked ``setsid`` daemon, reparented
    away from the root, instead), started and seen burning CPU."""
    sandbox = box(name)
    ready = f"{sandbox.path('work')}/child-ready"
    child = f"open({ready!r}, 'w').close()\nwhile True:\n    pass"
    spawn = (f"if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
             f"        os.execv(sys.executable, [sys.executable, '-c', {child!r}, 'freeze-child'])\n    os._exit(0)\n"
             "os.wait()" if detach else
             f"subprocess.Popen([sys.executable, '-c', {child!r}, 'freeze-child'])")
    proc = sandbox.start(["{python}", "-c", f"import os, subprocess, sys\n{spawn}\nwhile True:\n    pass"])
    deadline = time.monotonic() + 60
    while not (box.root / "work" / "child-ready").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the child never started"
        time.sleep(0.05)
    return proc


def _cpu_grows(proc, by: float, within: float) -> bool:
    start, deadline = proc.cpu_seconds(), time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.cpu_seconds() - start >= by:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("detach", [False, True], ids=["child", "detached_child"])
@pytest.mark.parametrize("name", providers_for("freeze"))
def test_a_frozen_run_uses_no_cpu_until_thawed(box, name, detach):
    """The supervisor freezes the variants it is not timing and checks they stayed idle."""
    proc = _spinner(box, name, detach=detach)
    try:
        assert _cpu_grows(proc, 0.2, within=30)
        assert proc.freeze() is True and proc.frozen
        time.sleep(0.2)
        before = proc.cpu_seconds()
        time.sleep(1.0)
        assert proc.cpu_seconds() - before < 0.05
        assert proc.poll() is None
        proc.thaw()
        assert not proc.frozen
        assert _cpu_grows(proc, 0.2, within=30), "the run did not get CPU again after thaw"
    finally:
        proc.kill()
        proc.wait(30)


@pytest.mark.parametrize("name", providers_for("freeze"))
def test_freeze_and_thaw_are_idempotent_and_quiet_on_an_exited_run(box, name):
    sandbox = box(name)
    proc = sandbox.start(py("import time; time.sleep(60)"))
    proc.thaw()  # never frozen: a no-op
    assert not proc.frozen
    assert proc.freeze() is True and proc.freeze() is True and proc.frozen
    proc.thaw()
    proc.thaw()
    assert not proc.frozen
    proc.kill()
    proc.wait(30)
    done = sandbox.start(py("pass"))
    deadline = time.monotonic() + 60
    while done.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert isinstance(done.freeze(), bool)   # exited, not yet waited for
    done.thaw()
    assert done.wait(30).ok
    assert done.freeze() is False and not done.frozen  # waited for: nothing left to freeze
    done.thaw()


def _container_gone(proc) -> bool:
    import docker as docker_py

    return not docker_py.from_env().containers.list(all=True, filters={"id": proc.id})


@pytest.mark.parametrize("name", providers_for("freeze"))
def test_kill_and_wait_end_a_frozen_run_promptly(box, name):
    proc = _spinner(box, name)
    assert proc.freeze()
    t0 = time.monotonic()
    proc.kill()
    result = proc.wait(30)
    assert time.monotonic() - t0 < 10
    assert result.killed_by_signal == 9 and not result.timed_out and not proc.frozen
    if split_id(name)[0] == "docker":
        assert _container_gone(proc)

    proc = _spinner(box, name)
    assert proc.freeze()
    t0 = time.monotonic()
    result = proc.wait(2)   # thawed, runs on, times out: not frozen until the timeout and beyond
    assert result.timed_out and result.killed_by_signal == 9
    assert time.monotonic() - t0 < 2 + 10
    if split_id(name)[0] == "docker":
        assert _container_gone(proc)

    sleeper = box(name).start(py("import time; time.sleep(1)"))
    assert sleeper.freeze()
    time.sleep(0.5)
    t0 = time.monotonic()
    result = sleeper.wait(120)  # thawed first, so it finishes its second, well before the timeout
    assert result.ok and not result.timed_out, result.stderr_tail()
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("name", providers_for("pids"))
def test_pids_lists_the_root_and_its_children(box, name):
    proc = _spinner(box, name, detach=False)
    try:
        pids = proc.pids()
        root = proc._host_pid() if split_id(name)[0] == "docker" else proc.popen.pid
        assert root in pids, (root, pids)

        def argv(pid: int) -> bytes:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    return fh.read()
            except OSError:
                return b""

        assert any(b"freeze-child" in argv(pid) for pid in pids), pids
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.pids() == []


def test_scripted_fake_records_freeze_and_thaw(box):
    from grader.isolation.contract import ExecResult
    from grader.isolation.fake import FakeSandbox

    FakeSandbox.queue(ExecResult(returncode=0, stdout=b"", stderr=b"", duration=0.0), delay=0.5)
    try:
        proc = box("fake").start(["worker"])
        assert proc.freeze() is True and proc.frozen and proc.pids() == []
        proc.thaw()
        assert proc.freeze_calls == ["freeze", "thaw"] and not proc.frozen
        assert proc.wait(5).ok
    finally:
        FakeSandbox.reset()


# ---------------------------------------------------------------------------- isolation
