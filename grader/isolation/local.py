"""Local sandbox: a subprocess in its own session. It does NOT isolate.

For machines without Docker. What it does guarantee: the command runs in a new
session and process group with a scrubbed environment; the timeout kills the whole
group and every process that still carries the run's token in its environment (so a
child that called ``setsid`` or double-forked dies too); stdout and stderr are read
through pipes and capped in memory, so a flood cannot fill the disk or the grader's
memory. ``freeze`` stops the same set of processes, plus the root's descendants, with
SIGSTOP (``thaw``: SIGCONT). What it cannot do is listed in ``known_differences``.
:class:`TreeProcess` (the process-tree half of that) is shared with the bwrap provider.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

import psutil

import sandbox as _worker_package
from grader.errors import SandboxInfraError
from grader.isolation.contract import (
    ExecResult,
    RunningProcess,
    Sandbox,
    SandboxSpec,
    register,
)
from grader.isolation.output import OOM_MARKERS, CappedOutput

WORKER_PACKAGE = Path(_worker_package.__file__).resolve().parent  # sandbox/, in a checkout or installed
_PASSTHROUGH = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
TOKEN_VAR = "GRADER_RUN_TOKEN"


class _PipeDrain(threading.Thread):
    """Reads a pipe to its end into a :class:`CappedOutput` (a child never blocks on a full pipe)."""

    def __init__(self, stream, cap: int):
        super().__init__(daemon=True)
        self.stream, self.output = stream, CappedOutput(cap)

    def run(self) -> None:
        read = self.stream.read1 if hasattr(self.stream, "read1") else self.stream.read
        while chunk := read(65536):
            self.output.add(chunk)
        self.stream.close()


def token_pids(token: str) -> list[int]:
    """Every process whose environment carries the run's token (escaped daemons too)."""
    needle = f"{TOKEN_VAR}={token}".encode()
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(proc.pid)
        except OSError:
            continue
    return found


def kill_by_token(token: str) -> int:
    """SIGKILL every process whose environment carries ``token``; return how many."""
    killed = 0
    needle = f"{TOKEN_VAR}={token}"
    for proc in psutil.process_iter(["pid"]):
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if needle.encode() in env:
            try:
                os.kill(proc.pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


class TreeProcess(RunningProcess):
    """A run that is a process tree on this host, rooted at ``popen``: its output drained into caps,
    its CPU time, ``freeze``/``thaw`` by SIGSTOP/SIGCONT, ``pids``, and a wait that always sweeps.

    Shared by the local provider and the bwrap one (whose tree is bwrap and what it started). The
    tree is the root (until reaped), its descendants, and the processes :meth:`_extra_roots` names
    with their descendants (local: the token carriers, so escaped daemons count too).
    """

    def __init__(self, popen: subprocess.Popen, cap: int):
        self.popen = popen
        self.started = time.monotonic()
        self.out = _PipeDrain(popen.stdout, cap)
        self.err = _PipeDrain(popen.stderr, cap)
        self.out.start()
        self.err.start()
        self._killed = False
        self._cpu_lock = threading.Lock()
        self._cpu_last: dict[tuple[int, float], tuple[float, float, int]] = {}  # (pid, start) -> (own, children, ppid)
        self._cpu_gone = 0.0
        self._freeze_lock = threading.RLock()
        self._stopped: dict[int, psutil.Process] = {}  # what freeze sent SIGSTOP, for thaw and kill

    def _extra_roots(self) -> list[int]:
        """Pids outside the root's descendants that belong to the run (none by default)."""
        return []

    def poll(self) -> int | None:
        return self.popen.poll()

    def cpu_seconds(self) -> float | None:
        """CPU time of the run's processes, never decreasing while they come and go.

        A process reaped by a parent in the run shows up again in that parent's children
        times; one that nobody in the run reaped (detached to init, its parent gone, or
        SIGCHLD ignored) keeps the CPU time it had when last seen. Without that, a detached
        child exiting between two readings made the run's CPU time go down.
        """
        try:
            root = psutil.Process(self.popen.pid)
            procs = {p.pid: p for p in (root, *root.children(recursive=True))}
        except psutil.Error:
            return None
        for pid in self._extra_roots():
            if pid not in procs:
                try:
                    procs[pid] = psutil.Process(pid)
                except psutil.Error:
                    continue
        seen: dict[tuple[int, float], tuple[float, float, int]] = {}
        for proc in procs.values():
            try:
                with proc.oneshot():
                    times, key, ppid = proc.cpu_times(), (proc.pid, proc.create_time()), proc.ppid()
            except psutil.Error:
                continue
            seen[key] = (times.user + times.system, times.children_user + times.children_system, ppid)
        with self._cpu_lock:
            last, alive = self._cpu_last, {pid for pid, _ in seen}
            owed: dict[int, float] = {}          # by a live parent: what its vanished children had
            for key, (own, children, ppid) in last.items():
                if key not in seen:
                    if ppid in alive:
                        owed[ppid] = owed.get(ppid, 0.0) + own + children
                    else:
                        self._cpu_gone += own + children
            for key, (_, children, _) in seen.items():
                if key[0] in owed:
                    grew = children - last[key][1] if key in last else children
                    self._cpu_gone += max(0.0, owed[key[0]] - grew)
            self._cpu_last = seen
            return self._cpu_gone + sum(own + children for own, children, _ in seen.values())

    def _run_procs(self) -> dict[int, psutil.Process]:
        """The root (until reaped), its descendants, the extra roots and their descendants."""
        procs: dict[int, psutil.Process] = {}
        roots = [] if self.popen.returncode is not None else [self.popen.pid]
        for pid in [*roots, *self._extra_roots()]:
            if pid in procs:
                continue
            try:
                proc = psutil.Process(pid)
                procs.update((p.pid, p) for p in (proc, *proc.children(recursive=True)))
            except psutil.Error:
                continue
        return procs

    def _signal_group(self, signum: int) -> bool:
        try:
            os.killpg(self.popen.pid, signum)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def freeze(self) -> bool:
        """SIGSTOP the process group, then every process of the run outside it.

        The enumeration is repeated until it finds nothing new (at most 5 passes), so a child
        forked by a process not yet stopped in one pass is caught by the next.
        """
        with self._freeze_lock:
            if self._frozen:
                return True
            stopped = self._signal_group(signal.SIGSTOP)
            for _ in range(5):
                new = {pid: p for pid, p in self._run_procs().items() if pid not in self._stopped}
                for pid, proc in new.items():
                    try:
                        proc.send_signal(signal.SIGSTOP)
                        self._stopped[pid] = proc
                    except psutil.Error:
                        continue
                if not new:
                    break
            self._frozen = stopped or bool(self._stopped)
            return self._frozen

    def thaw(self) -> None:
        with self._freeze_lock:
            if not self._frozen:
                return
            self._signal_group(signal.SIGCONT)
            for proc in {**self._stopped, **self._run_procs()}.values():
                try:
                    proc.send_signal(signal.SIGCONT)
                except psutil.Error:
                    continue
            self._stopped.clear()
            self._frozen = False

    def pids(self) -> list[int]:
        return sorted(self._run_procs())

    def _kill_stopped(self) -> None:
        """SIGKILL whatever :meth:`freeze` stopped, so that nothing is left stopped for good."""
        with self._freeze_lock:
            for proc in self._stopped.values():
                try:
                    proc.kill()
                except psutil.Error:
                    continue
            self._stopped.clear()
            self._frozen = False

    def _wait_and_sweep(self, timeout: float) -> tuple[bool, bytes, bool, bytes, bool]:
        """Thaw, wait up to ``timeout``, then kill what is left (the root may have exited while its
        children live on) and drain the pipes: (timed_out, stdout, truncated, stderr, truncated)."""
        self.thaw()
        timed_out = False
        try:
            self.popen.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            timed_out = True
        self.kill()
        self.popen.wait()
        self.out.join(5)
        self.err.join(5)
        stdout, out_trunc = self.out.output.result()
        stderr, err_trunc = self.err.output.result()
        return timed_out, stdout, out_trunc, stderr, err_trunc


class LocalProcess(TreeProcess):
    def __init__(self, popen: subprocess.Popen, token: str, cap: int):
        self.token = token
        super().__init__(popen, cap)

    def _extra_roots(self) -> list[int]:
        return token_pids(self.token)

    def kill(self) -> None:
        """SIGKILL the group and the token carriers (SIGKILL ends stopped processes too), and
        whatever :meth:`freeze` stopped, so that nothing is left stopped for good."""
        self._killed = True
        self._signal_group(signal.SIGKILL)
        for _ in range(3):
            if not kill_by_token(self.token):
                break
            time.sleep(0.05)
        self._kill_stopped()

    def wait(self, timeout: float) -> ExecResult:
        timed_out, stdout, out_trunc, stderr, err_trunc = self._wait_and_sweep(timeout)
        rc = self.popen.returncode
        signum = -rc if rc is not None and rc < 0 else None
        oom = not timed_out and (
            any(m in stderr for m in OOM_MARKERS) or (signum == signal.SIGKILL and not self._killed)
        )
        return ExecResult(
            returncode=rc, stdout=stdout, stderr=stderr, duration=time.monotonic() - self.started,
            timed_out=timed_out, oom=oom, killed_by_signal=signum,
            stdout_truncated=out_trunc, stderr_truncated=err_trunc,
        )


@register("local")
class LocalSandbox(Sandbox):
    isolated = False
    known_differences = (
        "network_isolation",      # the process shares the host network
        "readonly_root",          # the host filesystem is writable where the user can write
        "non_root_uid",           # runs as the grader's own user
        "hidden_host_files",      # GT code and results are readable if the user can read them
        "pids_limit",             # RLIMIT_NPROC counts all the user's processes, so it is not set
        "container_kill",         # there is no daemon-side container to kill
        "no_capabilities",        # keeps the grader's capability sets (all of them as root)
        "no_new_privs",           # not set: setuid binaries work as on the host
        "engine_socket",          # sees the host's /run, so its container engine's socket
        "writable_outside_work",  # writes wherever the grader's user can
        "private_tmp",            # shares the host's /tmp and /dev/shm
        "mountinfo_host_paths",   # its mounts are the host folders themselves, and it is told their paths
    )

    def __init__(self, spec: SandboxSpec):
        super().__init__(spec)
        self.python = sys.executable

    def path(self, mount: str) -> str:
        return str(self.spec.mounts[mount].host_path.resolve())

    def _env(self, token: str) -> dict[str, str]:
        work = self.path("work")
        env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
        env.update({
            "HOME": work, "TMPDIR": str(Path(work) / "tmp"), "PYTHONPATH": os.pathsep.join([str(WORKER_PACKAGE.parent), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]),
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DIFFUSERS_OFFLINE": "1",
            TOKEN_VAR: token,
        })
        if self.spec.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.spec.gpu
        elif "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        env.update(self.spec.env)
        return env

    def start(self, argv: Sequence[str]) -> LocalProcess:
        token = uuid.uuid4().hex
        env = self._env(token)
        Path(env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        limits = self.spec.limits

        def preexec() -> None:
            if limits.memory_bytes:
                resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if limits.cpuset:
                os.sched_setaffinity(0, limits.cpuset)

        argv = [self.python if a == "{python}" else a for a in argv]
        try:
            popen = subprocess.Popen(
                argv, cwd=self.path("work"), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                preexec_fn=preexec, close_fds=True,
            )
        except OSError as exc:
            raise SandboxInfraError(f"cannot start {argv[0]!r}: {exc}") from exc
        return LocalProcess(popen, token, limits.output_bytes)
