"""What a bwrap sandbox sees: its filesystem, its devices and its environment, as bwrap arguments.

Nothing of the host is there unless it is bound in, and only these are (all read-only but
``work``):

- ``/usr`` and the top-level links into it (``/bin``, ``/lib``, ...): the system's programs and
  libraries, which the interpreter and its extension modules link against;
- of ``/etc``, only the loader's cache, the alternatives links that ``/usr/bin`` points through,
  and the time zone; ``passwd``, ``group``, ``hosts`` and ``nsswitch.conf`` are the sandbox's own
  (the sandbox user, localhost);
- the interpreter's prefix and the virtual environment's ``bin``, ``lib`` and ``pyvenv.cfg``, at
  their host paths (the interpreter's RUNPATH and the venv's links name them);
- the ``sandbox`` package (the worker, found by import: the checkout's or the installed one) at ``/opt/grader/sandbox``, on ``PYTHONPATH``:
  not ``grader/``, not the tests, not the task set;
- the spec's mounts at ``/mnt/<name>`` (``work`` writable);
- a private, size-capped tmpfs on ``/tmp`` (also ``HOME``) and on ``/dev/shm``, a minimal, read-only
  ``/dev`` (null, zero, full, random, urandom, tty, pts), a ``/proc`` of the sandbox's own PID namespace
  (with the host-wide ``timer_list`` and ``sched_debug``, which name other processes, masked);
- with a GPU, the ``/dev/nvidia*`` nodes (:func:`gpu_selection`; the driver's user-space libraries
  are in ``/usr``, found through the loader's cache; ``/proc/driver/nvidia`` is in any ``/proc``).

No ``/sys``, no home folder, no ``/var``, no ``/run`` (so no Docker socket). The root is a tmpfs
remounted read-only once everything is in place.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from grader.isolation.contract import SandboxSpec
from grader.isolation.local import _PASSTHROUGH, WORKER_PACKAGE

SANDBOX_UID = SANDBOX_GID = 10001
MOUNT_ROOT = "/mnt"
WORKER_ROOT = "/opt/grader"      # PYTHONPATH inside; the project's sandbox/ is WORKER_ROOT/sandbox
TMPFS_BYTES = 1 << 30
SHM_BYTES = 1 << 30
_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC_FROM_HOST = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")
_PROC_MASKED = ("timer_list", "sched_debug", "timer_stats", "latency_stats")
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True)
class PythonEnv:
    """The interpreter the worker runs with, and the host folders it needs (bound at their paths)."""

    python: str
    binds: tuple[str, ...]


def python_env() -> PythonEnv:
    """This grader's own interpreter: its prefix (unless it lives in ``/usr``, bound anyway) and,
    in a virtual environment, the venv's ``bin``, ``lib`` (``lib64``) and ``pyvenv.cfg``."""
    binds: list[str] = []
    for prefix in dict.fromkeys((sys.base_prefix, sys.prefix)):
        path = Path(prefix)
        if not path.is_absolute() or path == Path("/usr") or Path("/usr") in path.parents:
            continue
        binds += [str(path / part) for part in ("bin", "lib", "lib64", "pyvenv.cfg")
                  if (path / part).exists() or (path / part).is_symlink()]   # a link (lib64 -> lib) stays one
    return PythonEnv(python=sys.executable, binds=tuple(binds))


def check_mount_names(spec: SandboxSpec) -> None:
    for name in spec.mounts:
        if not name or not set(name) <= _NAME_OK or name in (".", ".."):
            raise ValueError(f"mount name {name!r} must be a plain name")


def _etc_files(uid: int, gid: int) -> dict[str, bytes]:
    return {
        "/etc/passwd": f"sandbox:x:{uid}:{gid}:sandbox:/tmp:/usr/sbin/nologin\n".encode(),
        "/etc/group": f"sandbox:x:{gid}:\n".encode(),
        "/etc/hosts": b"127.0.0.1 localhost sandbox\n::1 localhost\n",
        "/etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files\n",
        "/etc/hostname": b"sandbox\n",
    }


@functools.lru_cache(maxsize=1)
def _gpu_table() -> tuple[tuple[str, str, int], ...]:
    """(index, UUID, device minor) of every GPU: nvidia-smi's index, UUID and PCI bus id, the bus
    id's minor from /proc/driver/nvidia; empty when any of it cannot be read. Read once."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,pci.bus_id", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    table = []
    for line in out.splitlines():
        try:
            index, uuid, bus = (f.strip() for f in line.split(","))
            info = Path(f"/proc/driver/nvidia/gpus/{bus[-12:].lower()}/information").read_text()
            minor = int(re.search(r"Device Minor:\s*(\d+)", info).group(1))
        except (ValueError, OSError, AttributeError):
            return ()
        table.append((index, uuid, minor))
    return tuple(table)


def gpu_selection(gpu: str | None) -> tuple[list[str], str | None]:
    """The NVIDIA device nodes to bind and the ``CUDA_VISIBLE_DEVICES`` to set, best effort (no GPU
    on the machines this was written on). With ``gpu`` ("0", "1,2", UUIDs) resolved through
    :func:`_gpu_table`: the control nodes and only those GPUs' ``/dev/nvidiaN``, named by UUID
    (right however the sandbox's CUDA numbers what it can open). Otherwise: every ``/dev/nvidia*``
    node and ``gpu`` as it is, so that another GPU is reachable by code that ignores the variable."""
    nodes = sorted(glob.glob("/dev/nvidia*"))
    if gpu is None:
        return nodes, None
    wanted = [g.strip() for g in gpu.split(",") if g.strip()]
    table = _gpu_table()
    picked = [row for want in wanted for row in table if want in (row[0], row[1])]   # in the order asked
    if not table or len(picked) != len(wanted):
        return nodes, gpu
    gpu_node = re.compile(r"/dev/nvidia\d+$")
    keep = {f"/dev/nvidia{minor}" for _, _, minor in picked}
    return [n for n in nodes if not gpu_node.match(n) or n in keep], ",".join(uuid for _, uuid, _ in picked)


def filesystem_args(spec: SandboxSpec, env: PythonEnv, *, gpu_nodes: list[str], uid: int, gid: int,
                    data_fd) -> list[str]:
    """The bwrap arguments that build the sandbox's filesystem. ``data_fd(bytes) -> int`` makes a
    readable fd holding a file's content (for the sandbox's own ``/etc`` files)."""
    # /tmp's tmpfs first: binds below it (a venv or a run folder under /tmp, as in a CI clone)
    # must land on top of it, not be hidden by it
    args = ["--ro-bind", "/usr", "/usr", "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    for name in _TOP_LEVEL:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    for name in _ETC_FROM_HOST:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for dest, content in _etc_files(uid, gid).items():
        args += ["--ro-bind-data", str(data_fd(content)), dest]
    for path in env.binds:
        if Path(path).is_symlink():
            args += ["--symlink", os.readlink(path), path]
        else:
            args += ["--ro-bind", str(Path(path).resolve()), path]
    args += ["--ro-bind", str(WORKER_PACKAGE), f"{WORKER_ROOT}/sandbox"]
    for name, mount in sorted(spec.mounts.items()):
        args += ["--ro-bind" if mount.read_only else "--bind", str(mount.host_path.resolve()), f"{MOUNT_ROOT}/{name}"]
    args += ["--dev", "/dev", "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    for node in gpu_nodes:
        args += ["--dev-bind-try", node, node]
    # /dev's own tmpfs read-only (its device nodes still work); /tmp and /dev/shm stay writable
    args += ["--remount-ro", "/dev", "--proc", "/proc"]
    for name in _PROC_MASKED:   # host-wide lists naming other processes: hidden, as docker hides them
        if os.path.exists(f"/proc/{name}"):
            args += ["--ro-bind", "/dev/null", f"/proc/{name}"]
    return args + ["--remount-ro", "/"]


def sandbox_env(spec: SandboxSpec, env: PythonEnv, cuda_visible: str | None = None) -> dict[str, str]:
    """The whole environment inside (bwrap starts from ``--clearenv``): what the local provider
    passes through, the offline switches, the GPU (``cuda_visible``, else ``spec.gpu``), and the
    spec's own variables."""
    out = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ and k != "PATH"}
    out.update({
        "PATH": f"{Path(env.python).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp",
        "PYTHONPATH": WORKER_ROOT, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DIFFUSERS_OFFLINE": "1", "USER": "sandbox",
        "LOGNAME": "sandbox",
    })
    if spec.gpu is not None:
        out["CUDA_VISIBLE_DEVICES"] = cuda_visible or spec.gpu
    elif "CUDA_VISIBLE_DEVICES" in os.environ:
        out["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    out.update(spec.env)
    return out


def env_args(env: Mapping[str, str]) -> list[str]:
    args = ["--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args
