"""The worker's own seccomp filter (``sandbox/confine.py``): the BPF program's answers for
every ABI it may see (run through a small interpreter of classic BPF, so aarch64 and foreign
ABIs are covered on any machine), the real filter on this kernel (every thread, children,
x32), ``python -m sandbox.confine --`` and the worker's hello reporting it."""

from __future__ import annotations

import errno
import json
import platform
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox import confine

ROOT = Path(__file__).resolve().parents[2]
ALLOW, DENY = confine.SECCOMP_RET_ALLOW, confine.SECCOMP_RET_ERRNO | errno.EPERM
AUDIT_ARCH_I386 = 0x40000003


def run_bpf(code: bytes, nr: int, arch: int) -> int:
    """What classic BPF ``code`` returns for a syscall ``nr`` of ABI ``arch``."""
    data = struct.pack("=iI", nr, arch) + bytes(56)
    insns = [struct.unpack("=HBBI", code[i:i + 8]) for i in range(0, len(code), 8)]
    pc, acc = 0, 0
    for _ in range(len(insns) + 1):
        op, jt, jf, k = insns[pc]
        if op == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif op in (0x15, 0x35):
            taken = acc == k if op == 0x15 else acc >= k
            pc += 1 + (jt if taken else jf)
        elif op == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
    raise AssertionError("the program did not return")


@pytest.mark.parametrize("arch, column", [(confine.AUDIT_ARCH_X86_64, 0), (confine.AUDIT_ARCH_AARCH64, 1)],
                         ids=["x86_64", "aarch64"])
def test_the_program_denies_the_listed_syscalls_and_allows_the_rest(arch, column):
    code = confine.program()
    denied = {numbers[column] for numbers in confine.DENIED.values()}
    for nr in denied:
        assert run_bpf(code, nr, arch) == DENY, nr
    for nr in set(range(0, 460)) - denied:
        assert run_bpf(code, nr, arch) == ALLOW, nr


def test_the_program_refuses_foreign_abis_and_x32():
    code = confine.program()
    for nr in (0, 1, 39, 101, 200):
        assert run_bpf(code, nr, AUDIT_ARCH_I386) == DENY
        assert run_bpf(code, nr | confine.X32_SYSCALL_BIT, confine.AUDIT_ARCH_X86_64) == DENY
    assert run_bpf(code, 0x40000000 | 101, confine.AUDIT_ARCH_AARCH64) == ALLOW  # no x32 bit on aarch64


needs_filter = pytest.mark.skipif(platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"),
                                  reason="the filter is for Linux on x86_64 and aarch64")

PROBE = textwrap.dedent("""
    import ctypes, errno, json, os, platform, sys, threading, time
    libc = ctypes.CDLL(None, use_errno=True)
    PTRACE = {"x86_64": 101, "aarch64": 117}[platform.machine()]
    VM_READV = {"x86_64": 310, "aarch64": 270}[platform.machine()]

    def call(nr, *args):
        rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
        return "ok" if rc >= 0 else errno.errorcode[ctypes.get_errno()]

    out = {}
    if sys.argv[1:] == ["install"]:
        started = threading.Event()
        done = threading.Event()
        def thread():              # a thread that exists before the filter is installed
            started.set()
            done.wait()
            out["thread_traceme"] = call(PTRACE, 0, 0, 0, 0)  # PTRACE_TRACEME
        t = threading.Thread(target=thread)
        t.start()
        started.wait()
        sys.path.insert(0, os.environ["ROOT"])
        from sandbox import confine
        out["install"] = confine.install()["status"]
        done.set()
        t.join()
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    out["attach"] = call(PTRACE, 16, child, 0, 0)              # PTRACE_ATTACH
    buf = ctypes.create_string_buffer(8)
    iov = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 8)
    out["vm_readv"] = call(VM_READV, child, ctypes.addressof(iov), 1, ctypes.addressof(iov), 1, 0)
    if platform.machine() == "x86_64":
        out["x32_getpid"] = call(0x40000000 | 39)
    out["getpid"] = call(39 if platform.machine() == "x86_64" else 172)
    os.kill(child, 9)
    os.waitpid(child, 0)
    print(json.dumps(out))
""")


def _probe(*argv: str) -> dict:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, env={"ROOT": str(ROOT)}, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_filter
def test_installed_filter_covers_every_thread_and_children():
    out = _probe(sys.executable, "-c", PROBE, "install")
    assert out["install"] == "installed"
    assert out["thread_traceme"] == "EPERM"     # TSYNC: a thread started before it is filtered too
    assert out["attach"] == "EPERM" and out["vm_readv"] == "EPERM"
    assert out.get("x32_getpid", "EPERM") == "EPERM"
    assert out["getpid"] == "ok"


@needs_filter
def test_without_the_filter_the_same_probe_can_attach():
    """The control: on this machine, unfiltered, the probe does reach its child."""
    out = _probe(sys.executable, "-c", PROBE)
    assert out["attach"] == "ok" and out["vm_readv"] == "ok"


@needs_filter
def test_python_m_sandbox_confine_runs_the_command_under_the_filter():
    out = _probe(sys.executable, "-m", "sandbox.confine", "--", sys.executable, "-c", PROBE)
    assert out["attach"] == "EPERM" and out["vm_readv"] == "EPERM"
    missing = subprocess.run([sys.executable, "-m", "sandbox.confine", "--", "/nonexistent/cmd"],
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert missing.returncode == 127 and "cannot run" in missing.stderr
    usage = subprocess.run([sys.executable, "-m", "sandbox.confine"], capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
    assert usage.returncode == 2


def test_a_refused_filter_is_reported_and_confine_does_not_run_the_command(monkeypatch, capsys):
    monkeypatch.setattr(confine, "install", lambda: {"status": "failed", "detail": "seccomp(): EACCES"})
    ran = []
    monkeypatch.setattr(confine.os, "execvp", lambda *a: ran.append(a))
    assert confine.main(["--", "true"]) == confine.EXIT_FAILED
    assert ran == [] and "not installed: seccomp(): EACCES" in capsys.readouterr().err


@needs_filter
def test_the_worker_says_in_its_hello_that_the_filter_is_installed(worker_process):
    from grader import schemas

    channel, _ = worker_process
    hello = channel.recv(120)
    assert hello is not None and hello["type"] == "hello", hello
    schemas.validate("run_result.schema.json", hello, source="test")
    assert hello["seccomp"]["status"] == "installed", hello
    channel.send({"op": "stop"})


@needs_filter
def test_a_variant_run_records_the_filter_in_its_probes(tmp_path):
    from support import sleepy, small_timing, write

    from grader.runs.interleave import run_variant
    from grader.runs.variant import VariantSpec
    from grader.taskset.prompts import Schedule

    timing = small_timing(batch_size=2, max_images=2, min_batches=1, max_batches=1, warmup_batches=0)
    spec = VariantSpec(name="experiment", module_path=write(tmp_path / "src" / "experiment.py", sleepy(0.001)),
                       model_dir=tmp_path, steps=2, device="cpu", sandbox="local", probes=False)
    schedule = Schedule(("a", "b", "c", "d"), run_seed=1, batch_size=2, max_images=2)
    run = run_variant(spec, schedule, timing, tmp_path / "runs" / "experiment")
    assert run.status == "ok", run.message
    assert run.probes["seccomp"]["status"] == "installed", run.probes
    assert run.to_dict()["probes"]["seccomp"] == run.probes["seccomp"]
