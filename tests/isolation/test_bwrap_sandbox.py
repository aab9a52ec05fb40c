"""What the bwrap provider does beyond the conformance suite: the launcher's exact exit status,
the work folder's cap, the uid the run has on the host, limits counted per sandbox, no nested
user namespaces, a grader's death taking its sandboxes along, and the GPU selection logic (the
only part that runs without a GPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conformance_support import bwrap_marks, py

from grader.isolation import Limits

pytestmark = bwrap_marks()


def test_exit_codes_and_signals_read_as_they_happened(box):
    sandbox = box("bwrap")
    by_signal = sandbox.exec(py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"), timeout=60)
    assert by_signal.returncode == -signal.SIGTERM and by_signal.killed_by_signal == signal.SIGTERM
    assert not by_signal.oom and not by_signal.timed_out
    exit_137 = sandbox.exec(py("import sys; sys.exit(137)"), timeout=60)
    assert exit_137.returncode == 137 and exit_137.killed_by_signal is None and not exit_137.oom
    missing = sandbox.exec(["/no/such/program"], timeout=60)
    assert missing.returncode == 127 and b"cannot run" in missing.stderr


def test_a_work_folder_over_its_cap_kills_the_run(box):
    cap = 8 << 20
    result = box("bwrap", limits=Limits(work_dir_bytes=cap)).exec(py(f"""
        import os, time
        for i in range(64):
            with open(os.path.join({'/mnt/work'!r}, f"blob{{i}}"), "wb") as fh:
                fh.write(os.urandom(1 << 20))
                fh.flush()
                os.fsync(fh.fileno())
            time.sleep(0.05)
        time.sleep(30)
    """), timeout=60)
    assert not result.ok and not result.timed_out
    assert "work_dir_bytes" in result.limit_events, result.stderr_tail()
    assert b"the work folder outgrew its cap" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the provider's own user namespace is made only when the grader is root")
def test_as_root_the_run_is_host_uid_10001_without_nested_namespaces(box):
    result = box("bwrap").exec(py("""
        import ctypes, json, os
        open("/mnt/work/written", "w").close()
        print(json.dumps({"uid_map": open("/proc/self/uid_map").read().split(),
                          "unshare": ctypes.CDLL(None, use_errno=True).unshare(0x10000000),
                          "max_userns": open("/proc/sys/user/max_user_namespaces").read().strip()}))
    """), timeout=60)
    assert result.ok, result.stderr_tail()
    report = json.loads(result.stdout)
    assert report["uid_map"] == ["0", "0", "1", "10001", "10001", "1"], report   # 10001 is 10001 on the host
    assert report["unshare"] == -1 and report["max_userns"] == "0", report
    assert (box.root / "work" / "written").stat().st_uid == 10001


def test_the_pids_limit_counts_each_sandbox_on_its_own(box):
    """RLIMIT_NPROC is set inside each sandbox's user namespace: two runs of the same uid, each
    under its limit, never refuse each other's forks."""
    holder = box("bwrap", limits=Limits(pids=40)).start(py("""
        import threading, time
        for _ in range(30):
            threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        open("/mnt/work/holding", "w").close()
        time.sleep(30)
    """))
    try:
        deadline = time.monotonic() + 60
        while not (box.root / "work" / "holding").exists():
            assert time.monotonic() < deadline and holder.poll() is None, "the first run never got its threads"
            time.sleep(0.05)
        second = box("bwrap", limits=Limits(pids=40)).exec(py("""
            import threading, time
            threads = [threading.Thread(target=time.sleep, args=(0.5,)) for _ in range(30)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print("ok")
        """), timeout=60)
        assert second.ok and second.stdout == b"ok\n", second.stderr_tail()
    finally:
        holder.kill()
        holder.wait(30)


def test_a_grader_that_dies_takes_its_sandbox_with_it(box, tmp_path):
    """--die-with-parent: SIGKILL the process that started bwrap and the sandboxed tree dies too."""
    beat = box.root / "work" / "heartbeat"
    script = tmp_path / "fake_grader.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from grader.isolation import Mount, SandboxSpec, get
        root = Path({str(box.root)!r})
        spec = SandboxSpec(mounts={{"work": Mount(root / "work", read_only=False), "code": Mount(root / "code"),
                                   "model": Mount(root / "model")}})
        proc = get("bwrap", spec).start(["{{python}}", "-c",
            "import time\\nwhile True:\\n    open('/mnt/work/heartbeat', 'a').write('.')\\n    time.sleep(0.05)"])
        print("started", flush=True)
        time.sleep(120)
    """))
    grader = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert grader.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 60
        while not beat.exists():
            assert time.monotonic() < deadline, "the sandboxed command never ran"
            time.sleep(0.05)
    finally:
        grader.kill()
        grader.wait(30)
    time.sleep(1.0)
    size = beat.stat().st_size
    time.sleep(1.0)
    assert beat.stat().st_size == size, "the sandbox outlived the grader that started it"


def test_gpu_selection_binds_only_the_chosen_gpus_and_names_them_by_uuid(monkeypatch):
    from grader.isolation.bwrap import layout

    nodes = ["/dev/nvidia-caps", "/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2", "/dev/nvidiactl"]
    monkeypatch.setattr(layout.glob, "glob", lambda pattern: list(nodes))
    monkeypatch.setattr(layout, "_gpu_table", lambda: [("0", "GPU-a", 2), ("1", "GPU-b", 0), ("2", "GPU-c", 1)])
    picked, visible = layout.gpu_selection("1")
    assert picked == ["/dev/nvidia-caps", "/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidiactl"] and visible == "GPU-b"
    picked, visible = layout.gpu_selection("GPU-c,0")
    assert {"/dev/nvidia1", "/dev/nvidia2"} <= set(picked) and "/dev/nvidia0" not in picked
    assert visible == "GPU-c,GPU-a"                             # CUDA numbers them in the order asked
    assert layout.gpu_selection("7") == (nodes, "7")           # unknown: every node, the variable as given
    monkeypatch.setattr(layout, "_gpu_table", lambda: [])
    assert layout.gpu_selection("0") == (nodes, "0")           # no nvidia-smi: the same
    assert layout.gpu_selection(None) == (nodes, None)         # cuda without a pinned GPU: every GPU
