"""Trick: look around from inside the worker: read the GT code, the manifest, other tasks' files,
the run folder (the GT's images, results) and the grader's sources; write where nothing may be
written (its own code, the model, the image's root, the worker's sources); reach the network;
find and signal the other variants' workers; reach the Docker socket; and note who it runs as (uid,
capabilities, no_new_privs), which network interfaces it sees, which mounts it could write to and
what /proc/self/mountinfo tells of the host. It writes what it managed to `spy-<stage>.json` in its
work folder and otherwise behaves honestly. Defence: the docker and bwrap sandboxes show the worker
only its own module (/mnt/code), the model (/mnt/model, read-only) and its work folder (/mnt/work),
on a read-only root, without network, as a non-root uid without capabilities, in its own PID
namespace."""

import json
import os
import socket
import threading
import zlib
from pathlib import Path

import numpy as np

HOST_PATHS = []   # the test fills in host paths of GT code, manifest, other tasks' files, run folder
WRITE_PATHS = ["/mnt/code/evil.py", "/mnt/model/evil.bin", "/evil", "/etc/evil", "/opt/grader/sandbox/worker.py",
               "/opt/grader/sandbox/evil.py", "/usr/lib/evil"]
PER_IMAGE = 0.025


def _try(action):
    try:
        return {"ok": True, "detail": str(action())[:200]}
    except Exception as exc:   # noqa: BLE001 - the point is to record what fails
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:200]}


def _read(path):
    p = Path(path)
    return sorted(os.listdir(p)) if p.is_dir() else len(p.read_bytes())


def _write(path):
    with open(path, "a") as fh:
        fh.write("# tampered\n")
    return "written"


def _connect(address):
    with socket.create_connection(address, timeout=2):
        return "connected"


def _ancestors():
    seen, pid = set(), os.getpid()
    while pid > 0 and pid not in seen:
        seen.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return seen


def _siblings():
    found, mine = [], _ancestors()
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) not in mine:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "sandbox.worker" in cmdline:
                found.append((int(pid), cmdline))
    return found


def _status():
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
            fields[key] = value.split()[0] if key not in ("Uid", "Gid") else value.split()
    return fields


def _unix_connect(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(path)
        return "connected"


def _writable_mounts():
    """Mounted folders this process could create files in (a read-write mount, write access to its
    root); device nodes bound one by one (/dev/null, ...) are not folders and do not count."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point, options = fields[4].replace("\\040", " "), fields[5].split(",")
        if "rw" in options and os.path.isdir(point) and os.access(point, os.W_OK):
            found.append(point)
    return sorted(set(found))


def spy(stage):
    report = {
        "stage": stage,
        "reads": {p: _try(lambda p=p: _read(p)) for p in HOST_PATHS},
        "writes": {p: _try(lambda p=p: _write(p)) for p in WRITE_PATHS},
        "network": {f"{h}:{port}": _try(lambda a=(h, port): _connect(a))
                    for h, port in (("1.1.1.1", 53), ("8.8.8.8", 443), ("10.0.0.1", 80))},
        "mnt": _try(lambda: sorted(os.listdir("/mnt"))),
        "code": _try(lambda: sorted(os.listdir("/mnt/code"))),
        "siblings": _siblings(),
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
        "status": _status(),
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
        "docker_socket": {p: _try(lambda p=p: _unix_connect(p)) for p in ("/var/run/docker.sock", "/run/docker.sock")},
        "writable_mounts": _writable_mounts(),
        "mountinfo": Path("/proc/self/mountinfo").read_text()[:20000],
    }
    signalled = {}
    for pid, _ in report["siblings"]:
        signalled[pid] = _try(lambda pid=pid: os.kill(pid, 19))   # SIGSTOP: slow the GT down
    report["signalled"] = signalled
    Path.cwd().joinpath(f"spy-{stage}.json").write_text(json.dumps(report, indent=1))


def load_pipeline():
    spy("load")
    return {"calls": 0}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    pipe["calls"] += 1
    if pipe["calls"] == 3:   # mid-run: the GT's images of the first timed batches exist by now
        spy("inference")
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
