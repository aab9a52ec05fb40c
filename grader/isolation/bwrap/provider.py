"""The bwrap provider: each run in its own bubblewrap sandbox, no daemon.

What every run gets (docs/isolation.md has the table and the tests that prove each line):

- new user, PID, network, IPC and UTS namespaces (and cgroup where the kernel allows): only
  loopback, only its own processes, hostname ``sandbox``;
- host uid and gid :data:`~.layout.SANDBOX_UID` when the grader is root (in a user namespace the
  provider makes, :mod:`.userns`), else the grader's own uid seen as 10001 inside; no capabilities
  (``--cap-drop ALL``, an empty bounding set), ``no_new_privs``, no nested user namespaces;
- the filesystem of :mod:`.layout`: a read-only root with ``/usr``, the interpreter, the worker
  package and the spec's mounts at ``/mnt/<name>``, a private tmpfs ``/tmp``, minimal ``/dev``;
- the environment of :func:`~.layout.sandbox_env` and nothing else (``--clearenv``);
- rlimits set before bwrap starts: ``RLIMIT_AS`` (``Limits.memory_bytes``, when set, as the local
  provider), ``RLIMIT_FSIZE`` (the work folder's cap), ``RLIMIT_NOFILE`` (:data:`NOFILE`),
  ``RLIMIT_CORE`` 0, the cpuset as CPU affinity; ``RLIMIT_NPROC`` (``Limits.pids``) inside, where
  the kernel counts only the sandbox's tasks (:mod:`.process`);
- ``--die-with-parent``: a grader that dies takes its sandboxes with it.

Not done: cgroup limits. ``Limits.cpus`` is not enforced and there is no memory cap unless
``memory_bytes`` is set (docker caps every container at 75% of the host's memory).
"""

from __future__ import annotations

import functools
import os
import re
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar, Sequence

from grader.errors import SandboxError, SandboxInfraError, SandboxUnavailable
from grader.isolation.bwrap.layout import (
    MOUNT_ROOT,
    SANDBOX_GID,
    SANDBOX_UID,
    check_mount_names,
    env_args,
    filesystem_args,
    gpu_selection,
    python_env,
    sandbox_env,
)
from grader.isolation.bwrap.process import LAUNCHER, BwrapProcess
from grader.isolation.bwrap.userns import sandbox_userns
from grader.isolation.contract import Limits, Mount, Sandbox, SandboxSpec, register
from grader.isolation.output import hand_over

BWRAP_ENV = "GRADER_BWRAP"       # path of the bwrap binary (default: bwrap on PATH)
NOFILE = 65536
# Options this provider needs from bwrap (0.8 has them all); the others depend on the user.
_NEEDED = ("--die-with-parent", "--as-pid-1", "--ro-bind-data", "--clearenv", "--perms", "--size", "--cap-drop")
_AS_ROOT = ("--userns",)
_AS_USER = ("--disable-userns",)


def bwrap_path() -> str | None:
    return os.environ.get(BWRAP_ENV) or shutil.which("bwrap")


@functools.lru_cache(maxsize=4)
def bwrap_features(path: str) -> tuple[str, frozenset[str]]:
    """(version, the options ``bwrap --help`` lists)."""
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        help_text = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailable(f"{path} does not run: {exc}") from exc
    return version, frozenset(re.findall(r"^\s+(--[a-z0-9-]+)", help_text, re.M))


@register("bwrap")
class BwrapSandbox(Sandbox):
    isolated = True
    known_differences: ClassVar[tuple[str, ...]] = (
        "container_kill",  # no daemon-side container: an outside SIGKILL of bwrap reads as killed_externally
        "mountinfo_host_paths",  # /proc/self/mountinfo shows each bind's source: the host path of its folder
    )

    def __init__(self, spec: SandboxSpec):
        super().__init__(spec)
        check_mount_names(spec)
        for name, mount in spec.mounts.items():
            if not mount.host_path.exists():
                raise SandboxInfraError(f"mount {name!r}: {mount.host_path} does not exist")
        path = bwrap_path()
        if not path:
            raise SandboxUnavailable("bwrap is not installed (Debian: apt-get install bubblewrap), or set "
                                     f"{BWRAP_ENV} to its path")
        self.bwrap = path
        self.version, features = bwrap_features(path)
        self.as_root = os.geteuid() == 0
        missing = [o for o in (*_NEEDED, *(_AS_ROOT if self.as_root else _AS_USER)) if o not in features]
        if missing:
            raise SandboxUnavailable(f"{path} ({self.version}) is too old for the sandbox: it lacks {', '.join(missing)}")
        self.uid, self.gid = (SANDBOX_UID, SANDBOX_GID) if self.as_root else (os.getuid(), os.getgid())
        wants_gpu = spec.gpu is not None or str(spec.env.get("GRADER_DEVICE", "")).startswith("cuda")
        self.gpu_nodes, self.cuda_visible = gpu_selection(spec.gpu) if wants_gpu else ([], None)
        self.python_env = python_env()
        self._procs: list[BwrapProcess] = []

    # -- contract
    def path(self, mount: str) -> str:
        if mount not in self.spec.mounts:
            raise KeyError(mount)
        return f"{MOUNT_ROOT}/{mount}"

    def describe(self) -> dict:
        """What a report should record about this sandbox."""
        return {"provider": "bwrap", "bwrap": self.bwrap, "version": self.version, "uid": self.uid,
                "user_namespace": "the provider's own (the grader is root)" if self.as_root else "bwrap's",
                "memory_limit": self.spec.limits.memory_bytes, "pids_limit": self.spec.limits.pids, "gpu": self.spec.gpu}

    def start(self, argv: Sequence[str]) -> BwrapProcess:
        if not argv:
            raise ValueError("empty argv")
        python = self.python_env.python
        argv = [python if a == "{python}" else str(a) for a in argv]
        self._prepare_work()
        limits = self.spec.limits
        passed: list[int] = []
        status_r, status_w = os.pipe()
        passed.append(status_w)

        def data_fd(content: bytes) -> int:
            fd = os.memfd_create("sandbox-file", os.MFD_CLOEXEC)
            passed.append(fd)
            os.write(fd, content)
            os.lseek(fd, 0, os.SEEK_SET)
            return fd

        try:
            if self.as_root:
                userns = sandbox_userns(self.uid, self.gid)
                passed.append(userns)
                namespaces = ["--userns", str(userns), "--unshare-ipc", "--unshare-pid", "--unshare-net",
                              "--unshare-uts", "--unshare-cgroup-try"]
            else:
                namespaces = ["--unshare-all", "--unshare-user", "--disable-userns"]
            args = [
                self.bwrap, *namespaces, "--die-with-parent", "--new-session", "--as-pid-1", "--hostname", "sandbox",
                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--cap-drop", "ALL",
                *filesystem_args(self.spec, self.python_env, gpu_nodes=self.gpu_nodes, uid=SANDBOX_UID,
                                 gid=SANDBOX_GID, data_fd=data_fd),
                *env_args(sandbox_env(self.spec, self.python_env, self.cuda_visible)), "--chdir", self.path("work"),
                "--", python, "-I", "-S", "-c", LAUNCHER, str(status_w), str(limits.pids or 0), *argv,
            ]
            popen = subprocess.Popen(
                args, cwd="/", env={}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, preexec_fn=_preexec(limits, self.uid, self.gid, self.as_root),
                pass_fds=tuple(passed), close_fds=True,
            )
        except OSError as exc:
            os.close(status_r)
            raise SandboxInfraError(f"cannot start bwrap: {exc}") from exc
        except BaseException:
            os.close(status_r)
            raise
        finally:
            for fd in passed:
                os.close(fd)
        proc = BwrapProcess(popen, self.spec, status_r)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._procs:
            if proc._result is None:
                proc.kill()
                proc.wait(10)
        self._procs.clear()

    # -- details
    def _prepare_work(self) -> None:
        work = self.spec.mounts["work"].host_path
        if self.as_root:
            hand_over(work, self.uid, self.gid)
        else:
            work.mkdir(parents=True, exist_ok=True)


def _preexec(limits: Limits, uid: int, gid: int, drop: bool):
    """What bwrap's process does before it runs bwrap (as the grader, then, as root, as ``uid``)."""
    def preexec() -> None:
        if limits.memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        if limits.work_dir_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.work_dir_bytes, limits.work_dir_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        nofile = NOFILE if hard == resource.RLIM_INFINITY else min(hard, NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        if limits.cpuset:
            os.sched_setaffinity(0, limits.cpuset)
        if drop:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
    return preexec


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when a trivial command runs under bwrap here (checked once per process), else why not."""
    try:
        with tempfile.TemporaryDirectory(prefix="sd-grader-bwrap-probe-") as tmp:
            root = Path(tmp)
            for name in ("work", "code", "model"):
                (root / name).mkdir()
            spec = SandboxSpec(mounts={"work": Mount(root / "work", read_only=False), "code": Mount(root / "code"),
                                       "model": Mount(root / "model")})
            with BwrapSandbox(spec) as box:
                result = box.exec(["{python}", "-c", "import sandbox.protocol; print('ok')"], timeout=60)
    except (SandboxError, OSError) as exc:
        return str(exc)
    if result.ok and result.stdout == b"ok\n":
        return None
    return f"a trivial command failed under bwrap (exit {result.returncode}): {result.stderr_tail(400).strip()}"
