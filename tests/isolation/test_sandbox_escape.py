"""The escape probes: what a submission could reach from inside its sandbox, under every provider.

Each test is one probe, a small Python program started in the sandbox the way the worker is
(``{python}`` with the worker's mounts: work rw, code and model ro), that looks for one way
out and prints what it found; the host side asserts it found nothing. The conformance
machinery (``conformance_support.providers_for``) marks the probes a provider is known to
fail: its ``known_differences`` name them, each with its reason in the provider's source, and
``xfail(strict)`` keeps that list honest. ``local`` isolates nothing and fails most of them;
``bwrap`` and ``docker`` fail only ``mountinfo_host_paths`` (a bind mount's source path inside
its filesystem is what the kernel shows; see docs/isolation.md).

The ptrace probe runs through ``python -m sandbox.confine --``, as script mode does (the worker
installs the same filter in-process): the filter, not the sandbox, is what denies it, so it
holds under every provider; so do the two checks that script mode (its script) and the worker
(its hello's ``seccomp``) have it there. Nothing here sends network traffic: interfaces are listed.
"""

from __future__ import annotations

import inspect
import json
import os
import textwrap
import uuid

import pytest
from conformance_support import ENGINE_SOCKETS, providers_for, visible_engine_sockets


def probe(sandbox, code: str, *, confined: bool = False):
    """Run ``code`` in ``sandbox`` (through sandbox.confine when ``confined``); its JSON output."""
    argv = ["{python}", "-c", textwrap.dedent(code)]
    if confined:
        argv = ["{python}", "-m", "sandbox.confine", "--", *argv]
    result = sandbox.exec(argv, timeout=90)
    assert result.ok, result.stderr_tail()
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("name", providers_for("network_isolation"))
def test_escape_only_loopback_interfaces(box, name):
    """Asked of the kernel twice: netlink (if_nameindex) and /proc/net/dev (no /sys needed)."""
    found = probe(box(name), """
        import json, socket
        names = {n for _, n in socket.if_nameindex()}
        with open("/proc/net/dev") as fh:
            names |= {line.split(":")[0].strip() for line in fh.readlines()[2:]}
        print(json.dumps(sorted(names)))
    """)
    assert found == ["lo"]


@pytest.mark.parametrize("name", providers_for("non_root_uid"))
def test_escape_uid_is_not_root(box, name):
    found = probe(box(name), """
        import json, os
        print(json.dumps([*os.getresuid(), *os.getresgid()]))
    """)
    assert 0 not in found[:3], found
    assert 0 not in found[3:], found


STATUS = """
    import json
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    print(json.dumps({k: v.strip() for k, v in fields.items()}))
"""


@pytest.mark.parametrize("name", providers_for("no_capabilities"))
def test_escape_no_capabilities(box, name):
    status = probe(box(name), STATUS)
    caps = {key: int(status[key], 16) for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    assert caps == dict.fromkeys(caps, 0), caps


@pytest.mark.parametrize("name", providers_for("no_new_privs"))
def test_escape_no_new_privs_is_set(box, name):
    assert probe(box(name), STATUS)["NoNewPrivs"] == "1"


@pytest.mark.parametrize("name", providers_for("engine_socket"))
def test_escape_no_container_engine_socket(box, name):
    source = inspect.getsource(visible_engine_sockets)
    found = probe(box(name), f"ENGINE_SOCKETS = {ENGINE_SOCKETS!r}\n{source}\nimport json\n"
                             "print(json.dumps(visible_engine_sockets()))")
    assert found == []


@pytest.mark.parametrize("name", providers_for("writable_outside_work"))
def test_escape_no_writable_path_outside_work_and_tmp(box, name, tmp_path):
    """Creating a file is tried in the usual places, in every folder a mount point of its
    mount table names, in the interpreter's, the stdlib's and the worker's folders, and at the
    host paths of its run (which it may share with the host under local)."""
    sandbox = box(name)
    host_paths = [str(tmp_path), str(box.root), str(box.root / "code"), str(box.root / "model")]
    found = probe(sandbox, f"""
        import json, os, sys, uuid
        import sandbox
        work = os.path.realpath({sandbox.path('work')!r})
        allowed = {{os.path.realpath(p) for p in (work, "/tmp", "/dev/shm", "/dev/mqueue")}}

        def inside(path):
            real = os.path.realpath(path)
            return any(real == a or real.startswith(a + "/") for a in allowed)

        candidates = {{"/", "/usr", "/usr/lib", "/usr/local", "/usr/local/lib", "/opt", "/opt/grader", "/etc",
                      "/var", "/var/tmp", "/var/lib", "/root", "/home", "/srv", "/mnt", "/media", "/run",
                      os.path.expanduser("~"), sys.prefix, sys.base_prefix, os.path.dirname(os.__file__),
                      os.path.dirname(sandbox.__file__), os.path.dirname(os.path.dirname(sandbox.__file__)),
                      os.path.dirname(work), {sandbox.path('code')!r}, {sandbox.path('model')!r},
                      *{host_paths!r}}}
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                candidates.add(line.split()[4].encode().decode("unicode_escape"))
        writable = []
        for folder in sorted(candidates):
            if inside(folder) or not os.path.isdir(folder):
                continue
            target = os.path.join(folder, ".escape-" + uuid.uuid4().hex)
            try:
                fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
            except OSError:
                continue
            os.close(fd)
            os.unlink(target)
            writable.append(folder)
        print(json.dumps(writable))
    """)
    assert found == []


@pytest.fixture
def host_tmp_files():
    """A file the host puts in its own /tmp and /dev/shm, removed afterwards."""
    paths = [f"{folder}/sd-grader-escape-{uuid.uuid4().hex}" for folder in ("/tmp", "/dev/shm")]
    for path in paths:
        with open(path, "w") as fh:
            fh.write("host\n")
        os.chmod(path, 0o644)
    yield paths
    for path in paths:
        os.unlink(path)


@pytest.mark.parametrize("name", providers_for("private_tmp"))
def test_escape_tmp_and_dev_shm_are_private(box, name, host_tmp_files):
    found = probe(box(name), f"""
        import json, os
        seen = [p for p in {host_tmp_files!r} if os.path.lexists(p)]
        for folder in ("/tmp", "/dev/shm"):
            try:
                seen += [n for n in os.listdir(folder) if n.startswith("sd-grader-escape-")]
            except OSError:
                pass
        print(json.dumps(seen))
    """)
    assert found == []


@pytest.mark.parametrize("name", providers_for("hidden_host_files"))
def test_escape_gt_code_and_other_tasks_are_not_readable(box, name, tmp_path):
    """The host paths of a task set's GT code, another task's run folder (its GT images and
    result) and a report, all readable by anyone on the host, next to this run's folder."""
    files = {
        "gt": tmp_path / "taskset" / "tasks" / "141" / "gt_code" / "141.py",
        "other_task_image": tmp_path / "run" / "tasks" / "7" / "gt" / "images" / "000.npy",
        "other_task_result": tmp_path / "run" / "tasks" / "7" / "result.json",
        "report": tmp_path / "results" / "report.json",
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("SECRET\n")
        os.chmod(path, 0o644)
    folders = sorted({str(p.parent) for p in files.values()} | {str(tmp_path / "taskset"), str(tmp_path)})
    found = probe(box(name), f"""
        import json, os
        readable = []
        for path in {sorted(str(p) for p in files.values())!r}:
            try:
                with open(path, "rb") as fh:
                    fh.read(1)
                readable.append(path)
            except OSError:
                pass
        for folder in {folders!r}:
            try:
                os.listdir(folder)
                readable.append(folder)
            except OSError:
                pass
        print(json.dumps(readable))
    """)
    assert found == []


@pytest.mark.parametrize("name", providers_for("ptrace"))
def test_escape_ptrace_and_process_vm_readv_of_a_child_are_denied(box, name):
    found = probe(box(name), """
        import ctypes, errno, json, os, platform, time
        libc = ctypes.CDLL(None, use_errno=True)
        nrs = {"x86_64": (101, 310), "aarch64": (117, 270)}[platform.machine()]

        def call(nr, *args):
            rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
            return "ok" if rc >= 0 else errno.errorcode[ctypes.get_errno()]

        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        buf = ctypes.create_string_buffer(8)
        iov = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 8)
        out = {"attach": call(nrs[0], 16, child, 0, 0),        # PTRACE_ATTACH
               "attach_pid1": call(nrs[0], 16, 1, 0, 0),
               "vm_readv": call(nrs[1], child, ctypes.addressof(iov), 1, ctypes.addressof(iov), 1, 0),
               "seccomp": dict(l.split(":", 1) for l in open("/proc/self/status"))["Seccomp"].strip()}
        os.kill(child, 9)
        os.waitpid(child, 0)
        print(json.dumps(out))
    """, confined=True)
    assert found == {"attach": "EPERM", "attach_pid1": "EPERM", "vm_readv": "EPERM", "seccomp": "2"}


@pytest.mark.parametrize("name", providers_for("mountinfo_host_paths"))
def test_escape_mountinfo_and_paths_do_not_name_host_folders(box, name, tmp_path):
    """Neither the mount table nor the paths and working folder the run is given name the host
    folders its mounts come from."""
    sandbox = box(name)
    given = {m: sandbox.path(m) for m in ("work", "code", "model")}
    seen = probe(sandbox, f"""
        import json, os
        print(json.dumps({{"mountinfo": open("/proc/self/mountinfo").read(), "cwd": os.getcwd(),
                          "given": {given!r}}}))
    """)
    host = [str(p.resolve()) for p in (box.root / "work", box.root / "code", box.root / "model", tmp_path)]
    named = [h for h in host if h in seen["mountinfo"] or h in seen["cwd"] or any(h in g for g in seen["given"].values())]
    assert named == [], seen["mountinfo"]


SCRIPT_PTRACE = textwrap.dedent("""
    import ctypes, errno, json, os, platform, time
    libc = ctypes.CDLL(None, use_errno=True)
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    nr = {"x86_64": 101, "aarch64": 117}[platform.machine()]
    denied = libc.syscall(ctypes.c_long(nr), ctypes.c_long(16), ctypes.c_long(child), 0, 0) < 0 \\
        and ctypes.get_errno() == errno.EPERM
    os.kill(child, 9)
    json.dump(METRICS_DENIED if denied else METRICS_ALLOWED, open(os.environ["GRADER_METRICS_PATH"], "w"))
""")


@pytest.mark.parametrize("name", providers_for("ptrace"))
def test_escape_script_mode_runs_its_script_under_the_filter(name, tmp_path):
    from support import metrics

    from grader.runs.script_mode import run_script

    script = tmp_path / "script.py"
    script.write_text(f"METRICS_DENIED = {metrics(2.0)}\nMETRICS_ALLOWED = {metrics(9.0)}\n" + SCRIPT_PTRACE)
    (tmp_path / "models").mkdir()
    os.chmod(tmp_path / "models", 0o755)
    result = run_script(script, tmp_path / "models", tmp_path / "run", sandbox=name, device="cpu", timeout=120)
    assert result.status == "ok", (result.message, result.variant["stderr_tail"])
    assert result.metrics["speedup"] == 2.0     # PTRACE_ATTACH of its own child was refused


@pytest.mark.parametrize("name", providers_for("ptrace"))
def test_escape_the_worker_reports_its_filter_in_the_hello(box, name):
    from sandbox.protocol import Channel
    from sandbox.worker import CONFIG_FILE

    sandbox = box(name)
    work = box.root / "work"
    (work / CONFIG_FILE).write_text(json.dumps({"module_path": sandbox.path("code") + "/module.py", "device": "cpu",
                                                "model_dir": sandbox.path("model")}))
    channel = Channel.create(work / "proto")
    os.chmod(work / "proto", 0o777)
    try:
        proc = sandbox.start(["{python}", "-m", "sandbox.worker", "--work", sandbox.path("work")])
        hello = channel.recv(timeout=90)
        proc.kill()
        proc.wait(30)
    finally:
        channel.close()
    assert hello is not None and hello["type"] == "hello", hello
    assert hello["seccomp"]["status"] == "installed", hello
