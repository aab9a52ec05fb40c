"""One conformance suite for every sandbox provider.

Each test is one named check, run against ``local``, ``fake`` (its real mode, i.e. a plain
subprocess), ``bwrap``, ``docker`` and ``docker-runsc`` (docker under gVisor's runsc; skipped, even in
CI, where the engine has not registered it). A provider lists the checks it cannot pass in its
``known_differences``; those are marked here, explicitly:

- ``xfail(strict=True)`` where the difference shows on this machine, so the list is kept
  honest: a provider that starts passing a check it claims to fail breaks the suite;
- ``xfail(strict=False)`` where whether it shows depends on the machine (``non_root_uid`` only
  shows when the grader runs as root, ``network_isolation`` only on a host with interfaces
  besides loopback);
- ``skip`` where running the check without the protection it tests would hurt the host (a fork
  bomb without a pids limit) or where the check has no meaning (no daemon-side container to
  kill).

Nothing here sends network traffic: isolation is checked by listing interfaces.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from conformance_support import PROVIDERS, providers_for, py, split_id

from grader.isolation import Limits, provider


@pytest.mark.parametrize("name", providers_for("exec"))
def test_exec_captures_output_and_exit_code(box, name):
    sandbox = box(name)
    result = sandbox.exec(py("""
        import sys
        print("to stdout")
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """), timeout=60)
    assert result.returncode == 3 and not result.ok
    assert result.stdout == b"to stdout\n"
    assert result.stderr.startswith(b"to stderr\n")
    assert not result.timed_out and not result.oom and result.killed_by_signal is None
    ok = sandbox.exec(py("print('fine')"), timeout=60)
    assert ok.ok and ok.stdout == b"fine\n" and ok.retries == 0


@pytest.mark.parametrize("name", providers_for("exit_code_above_128"))
def test_exit_codes_above_128_are_exit_codes(box, name):
    result = box(name).exec(py("import sys; sys.exit(130)"), timeout=60)
    assert result.returncode == 130 and result.killed_by_signal is None


@pytest.mark.parametrize("name", providers_for("scrubbed_env"))
def test_environment_is_scrubbed(box, name, monkeypatch):
    monkeypatch.setenv("SD_GRADER_HOST_SECRET", "do-not-leak")
    sandbox = box(name, env={"GRADER_DEVICE": "cpu"})
    result = sandbox.exec(py("import json, os; print(json.dumps(dict(os.environ)))"), timeout=60)
    assert result.ok, result.stderr_tail()
    env = json.loads(result.stdout)
    assert "SD_GRADER_HOST_SECRET" not in env
    assert env["GRADER_DEVICE"] == "cpu"
    assert env["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize("name", providers_for("mounts"))
def test_mounts_are_visible_and_work_is_writable(box, name):
    sandbox = box(name)
    code, model, work = sandbox.path("code"), sandbox.path("model"), sandbox.path("work")
    result = sandbox.exec(py(f"""
        import os, runpy
        assert runpy.run_path({code!r} + "/module.py")["VALUE"] == 42
        assert open({model!r} + "/model_index.json").read() == "{{}}"
        os.makedirs({work!r} + "/out/deep", exist_ok=True)
        with open({work!r} + "/out/deep/image.npy", "wb") as fh:
            fh.write(b"x" * 1000)
        print("done")
    """), timeout=60)
    assert result.ok, result.stderr_tail()
    assert sandbox.read_file(work + "/out/deep/image.npy") == b"x" * 1000
    host_out = box.root / "work" / "out"
    assert (host_out / "deep" / "image.npy").stat().st_size == 1000
    shutil.rmtree(host_out)  # the grader can delete whatever the run wrote
    sandbox.write_file(work + "/config.json", b"{}")
    assert sandbox.exec(py(f"print(open({work!r} + '/config.json').read())"), timeout=60).stdout == b"{}\n"


@pytest.mark.parametrize("name", providers_for("file_access"))
def test_host_side_file_access_stays_inside_mounts(box, name):
    sandbox = box(name)
    with pytest.raises(PermissionError):
        sandbox.read_file(sandbox.path("work") + "/../code/module.py")
    with pytest.raises(PermissionError):
        sandbox.write_file(sandbox.path("code") + "/evil.py", b"")
    with pytest.raises(PermissionError):
        sandbox.read_file("/etc/hostname")


@pytest.mark.parametrize("name", providers_for("fifo"))
def test_fifo_channel_through_the_work_mount(box, name):
    from sandbox.protocol import Channel

    sandbox = box(name)
    channel = Channel.create(box.root / "work" / "proto")
    os.chmod(box.root / "work" / "proto", 0o777)
    try:
        proc = sandbox.start(py(f"""
            from pathlib import Path
            from sandbox.protocol import Channel
            channel = Channel.connect(Path({sandbox.path('work')!r}) / "proto")
            channel.send({{"type": "hello"}})
            channel.send({{"echo": channel.recv()}})
        """))
        assert channel.recv(timeout=60) == {"type": "hello"}
        channel.send({"op": "ping", "n": 1})
        assert channel.recv(timeout=30) == {"echo": {"op": "ping", "n": 1}}
        result = proc.wait(30)
        assert result.ok, result.stderr_tail()
    finally:
        channel.close()


# ---------------------------------------------------------------------------- limits


@pytest.mark.parametrize("name", providers_for("timeout"))
def test_timeout_kills_the_run_and_its_children(box, name):
    sandbox = box(name)
    beat = f"{sandbox.path('work')}/heartbeat"
    child = f"import time\nwhile True:\n    open({beat!r}, 'a').write('.')\n    time.sleep(0.05)"
    t0 = time.monotonic()
    result = sandbox.exec(py(f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {child!r}], start_new_session=True)
        while True:
            pass
    """), timeout=3)
    elapsed = time.monotonic() - t0
    assert result.timed_out and not result.ok
    assert result.killed_by_signal == 9
    assert elapsed < 3 + 15, elapsed
    host_beat = box.root / "work" / "heartbeat"
    assert host_beat.exists(), "the child never ran"
    size = host_beat.stat().st_size
    time.sleep(0.5)
    assert host_beat.stat().st_size == size, "a child outlived the timeout"


@pytest.mark.parametrize("name", providers_for("kill"))
def test_kill_stops_a_running_command(box, name):
    proc = box(name).start(py("import time; time.sleep(60)"))
    assert proc.poll() is None
    proc.kill()
    proc.kill()  # idempotent
    result = proc.wait(20)
    assert result.killed_by_signal == 9 and not result.ok and not result.timed_out
    assert proc.poll() is not None


@pytest.mark.parametrize("name", providers_for("output_cap"))
def test_output_flood_is_capped_and_survived(box, name):
    cap = 64 << 10
    t0 = time.monotonic()
    result = box(name, limits=Limits(output_bytes=cap)).exec(py("""
        import sys
        sys.stdout.write("FIRST-LINE\\n")
        block = "y" * 65535 + "\\n"
        for _ in range(320):          # 20 MiB
            sys.stdout.write(block)
        sys.stdout.write("LAST-LINE\\n")
        sys.stderr.write("e" * 300000 + "STDERR-END")
    """), timeout=120)
    assert result.ok, result.stderr_tail()
    assert result.stdout_truncated and result.stderr_truncated
    assert len(result.stdout) <= cap + 100 and len(result.stderr) <= cap + 100
    assert result.stdout.startswith(b"FIRST-LINE\n") and result.stdout.endswith(b"LAST-LINE\n")
    assert result.stderr.endswith(b"STDERR-END")
    assert time.monotonic() - t0 < 100


@pytest.mark.parametrize("name", providers_for("oom"))
def test_memory_hog_is_reported_as_oom(box, name):
    result = box(name, limits=Limits(memory_bytes=256 << 20)).exec(py("""
        hog = []
        while True:
            hog.append(bytearray(32 << 20))
    """), timeout=120)
    assert result.oom and not result.ok and not result.timed_out


@pytest.mark.parametrize("name", providers_for("cpuset"))
def test_cpuset_pins_the_run_to_its_cores(box, name):
    cores = sorted(os.sched_getaffinity(0))
    wanted = (cores[-1],)
    result = box(name, limits=Limits(cpuset=wanted)).exec(py("""
        import json, os
        print(json.dumps(sorted(os.sched_getaffinity(0))))
    """), timeout=60)
    assert result.ok, result.stderr_tail()
    assert tuple(json.loads(result.stdout)) == wanted


@pytest.mark.parametrize("name", providers_for("cpu_accounting"))
def test_cpu_time_counts_detached_children_and_never_goes_down(box, name):
    """The idle check reads the run's CPU time twice: children that detach or that nobody
    reaps must count, and their exit between two readings must not make it go down."""
    proc = box(name).start(py("""
        import os, signal, time

        def burn(seconds):  # CPU seconds, not wall: a loaded machine slows it, never shortens it
            end = time.process_time() + seconds
            while time.process_time() < end:
                pass

        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reaped by nobody in the run
        if os.fork() == 0:
            burn(0.6)
            os._exit(0)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                burn(0.6)
            os._exit(0)
        time.sleep(30)
    """))
    readings = []
    try:
        deadline, settled = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            readings.append(proc.cpu_seconds())
            if readings[-1] is not None and readings[-1] >= 1.0 and settled is None:
                settled = time.monotonic() + 0.5      # keep reading a while after both burners exited
            if settled is not None and time.monotonic() > settled:
                break
            time.sleep(0.05)
    finally:
        proc.kill()
    values = [r for r in readings if r is not None]
    assert len(values) == len(readings), readings
    assert all(b >= a - 0.005 for a, b in zip(values, values[1:])), values
    assert values[-1] >= 1.0, values   # both burners (2 x 0.6 s of CPU, less what the last reading before
    # an unreaped one exited missed) counted after they exited


# ---------------------------------------------------------------------------- freezing


@pytest.mark.parametrize("name", providers_for("network_isolation"))
def test_only_loopback_is_visible(box, name):
    """Asked of the kernel (netlink), not of /sys, which a sandbox need not mount (bwrap does not)."""
    result = box(name).exec(py("import socket; print(','.join(sorted(n for _, n in socket.if_nameindex())))"), timeout=60)
    assert result.ok, result.stderr_tail()
    assert result.stdout.strip() == b"lo"


@pytest.mark.parametrize("name", providers_for("readonly_root"))
def test_root_filesystem_and_input_mounts_are_read_only(box, name):
    sandbox = box(name)
    code, model = sandbox.path("code"), sandbox.path("model")
    result = sandbox.exec(py(f"""
        import os
        writable = []
        for target in ({code!r} + "/new.py", {model!r} + "/new.bin", {code!r} + "/module.py"):
            try:
                open(target, "a").close()
                writable.append(target)
            except OSError:
                pass
        print(bool(os.statvfs("/").f_flag & os.ST_RDONLY), writable)
    """), timeout=60)
    assert result.ok, result.stderr_tail()
    assert result.stdout.strip() == b"True []"


@pytest.mark.parametrize("name", providers_for("non_root_uid"))
def test_runs_as_a_non_root_uid(box, name):
    result = box(name).exec(py("import os; print(os.getuid(), os.geteuid())"), timeout=60)
    assert result.ok, result.stderr_tail()
    uid, euid = map(int, result.stdout.split())
    assert uid != 0 and euid != 0


@pytest.mark.parametrize("name", providers_for("hidden_host_files"))
def test_gt_code_and_results_are_not_readable(box, name, tmp_path):
    secret = tmp_path / "tasks"
    (secret / "gt_code").mkdir(parents=True)
    gt = secret / "gt_code" / "141.py"
    gt.write_text("SECRET_GT = 1\n")
    results = tmp_path / "results"
    results.mkdir()
    report = results / "report.json"
    report.write_text('{"secret": true}')
    for path in (gt, report):
        os.chmod(path, 0o644)
    result = box(name).exec(py(f"""
        readable = []
        for path in ({str(gt)!r}, {str(report)!r}, {str(secret)!r} + "/gt_code"):
            try:
                with open(path, "rb") as fh:
                    fh.read(1)
                readable.append(path)
            except OSError:
                pass
        print(readable)
    """), timeout=60)
    assert result.ok, result.stderr_tail()
    assert result.stdout.strip() == b"[]"


@pytest.mark.parametrize("name", providers_for("pids_limit"))
def test_fork_bomb_is_stopped_by_the_pids_limit(box, name):
    limit = 64
    result = box(name, limits=Limits(pids=limit, cpus=1.0)).exec(py("""
        import os, time
        while True:  # every process forks, and so does every child: a real bomb
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    """), timeout=6)
    assert not result.ok
    assert "pids" in getattr(result, "limit_events", ()), result.stderr_tail()
    assert b"pids limit" in result.stderr


@pytest.mark.parametrize("name", providers_for("container_kill"))
def test_external_kill_is_an_error_and_the_next_run_works(box, name):
    import docker as docker_py

    sandbox = box(name)
    proc = sandbox.start(py("import time; time.sleep(60)"))
    time.sleep(1.0)
    docker_py.from_env().api.kill(proc.id)
    result = proc.wait(30)
    assert not result.ok and not result.oom and not result.timed_out
    assert result.killed_by_signal == 9
    assert "killed_externally" in result.limit_events
    again = box(name).exec(py("print('next task')"), timeout=60)
    assert again.ok and again.stdout == b"next task\n"


@pytest.mark.parametrize("name", [p for p in providers_for("runtime") if split_id(p.values[0])[0] == "docker"])
def test_containers_run_with_the_runtime_their_id_names(box, name):
    from grader.isolation import docker as docker_sandbox

    kind, runtime = split_id(name)
    proc = box(name).start(py("import time; time.sleep(30)"))
    try:
        proc.container.reload()
        used = proc.container.attrs["HostConfig"]["Runtime"]
    finally:
        proc.kill()
        proc.wait(30)
    assert used == (runtime or docker_sandbox.runtimes()[1])


def test_every_known_difference_names_a_check():
    checks = {
        "exec", "exit_code_above_128", "scrubbed_env", "mounts", "file_access", "fifo", "timeout", "kill",
        "output_cap", "oom", "network_isolation", "readonly_root", "non_root_uid", "hidden_host_files",
        "pids_limit", "container_kill", "cpu_accounting", "cpuset", "freeze", "pids", "runtime",
        # the escape probes (test_sandbox_escape.py)
        "no_capabilities", "no_new_privs", "engine_socket", "writable_outside_work", "private_tmp", "ptrace",
        "mountinfo_host_paths",
    }
    for name in PROVIDERS:
        unknown = set(provider(name).known_differences) - checks
        assert not unknown, f"{name} lists differences no check tests: {unknown}"


def test_docker_is_isolated_and_local_says_it_is_not():
    assert provider("docker").isolated is True
    assert provider("bwrap").isolated is True
    assert provider("local").isolated is False
    assert provider("fake").isolated is False

