"""One running bwrap sandbox: a process tree on this host, watched, killed whole.

The tree is the bwrap process the provider started (in its own session and process group), bwrap's
copy inside the new namespaces, and under it the grader's :data:`LAUNCHER`, PID 1 of the sandbox's
PID namespace, which starts the command. Everything the command starts, daemons that ``setsid``
and double-fork included, stays under that PID 1 (orphans are reparented to it), so the shared
:class:`~grader.isolation.local.TreeProcess` (root and descendants) sees it all: CPU time, freeze
(SIGSTOP to the group and every descendant), ``pids`` and kill. A killed bwrap takes the sandbox
with it: ``--die-with-parent`` kills PID 1, and the kernel kills every process of a PID namespace
whose PID 1 is gone; the kill also signals every descendant itself.

The launcher reports the command's exact wait status through a pipe, so a command that exits 130
reads as exit code 130, and one killed by a signal as that signal (bwrap alone would say 128 + n
for both). It sets ``RLIMIT_NPROC`` inside the sandbox's own user namespace, where the kernel counts
only the sandbox's own tasks, and the monitor thread (:meth:`BwrapProcess._watch`) reports a run
that reaches it, and kills one whose work folder outgrows ``Limits.work_dir_bytes`` (the docker
provider's rule, :func:`~grader.isolation.docker.monitor.work_usage`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

import psutil

from grader.isolation.contract import ExecResult, SandboxSpec
from grader.isolation.docker.monitor import MAX_WORK_ENTRIES, WATCH_INTERVAL, work_usage
from grader.isolation.local import TreeProcess
from grader.isolation.output import OOM_MARKERS, LimitEvents

# PID 1 of the sandbox: argv = [python, -I, -S, -c, LAUNCHER, STATUS_FD, NPROC, command...]
LAUNCHER = r"""
import os, resource, sys
status_fd, nproc, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
os.set_inheritable(status_fd, False)
if nproc > 0:
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
pid = os.fork()
if pid == 0:
    try:
        os.setsid()
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, ("sandbox: cannot run %r: %s\n" % (argv[0], exc)).encode())
    os._exit(127)
while True:
    try:
        child, status = os.waitpid(-1, 0)
    except InterruptedError:
        continue
    except ChildProcessError:
        os._exit(127)
    if child == pid:
        break
os.write(status_fd, b"%d\n" % status)
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""


@dataclass(frozen=True)
class BwrapExecResult(ExecResult):
    """An :class:`ExecResult` plus the limits the run ran into (the docker provider's names):
    ``pids`` (it reached its pids limit), ``work_dir_bytes`` / ``work_dir_entries`` (the work folder
    outgrew its cap: killed), ``killed_externally`` (bwrap was killed by someone else),
    ``sandbox_setup`` (bwrap could not build the sandbox). Each also adds a ``[sandbox] ...`` line
    at the end of ``stderr``."""

    limit_events: tuple[str, ...] = ()


class BwrapProcess(TreeProcess):
    def __init__(self, popen: subprocess.Popen, spec: SandboxSpec, status_fd: int):
        super().__init__(popen, spec.limits.output_bytes)
        self.spec, self.status_fd = spec, status_fd
        self._events = LimitEvents()
        self._done = threading.Event()
        self._result: BwrapExecResult | None = None
        self._monitor = threading.Thread(target=self._watch, name=f"bwrap-watch-{popen.pid}", daemon=True)
        self._monitor.start()

    # -- watching
    def _tasks(self) -> int:
        total = 0
        for proc in self._run_procs().values():
            try:
                total += proc.num_threads()
            except psutil.Error:
                continue
        return total

    def _watch(self) -> None:
        limits = self.spec.limits
        work = self.spec.mounts["work"].host_path
        interval = WATCH_INTERVAL
        while not self._done.wait(interval) and self.popen.poll() is None:
            t0 = time.monotonic()
            if limits.pids and self._tasks() >= limits.pids:
                self._events.add("pids", f"the run reached its pids limit ({limits.pids} tasks): "
                                        "the kernel refuses forks beyond it")
            if limits.work_dir_bytes:
                used, entries = work_usage(work, limits.work_dir_bytes)
                if used >= limits.work_dir_bytes or entries > MAX_WORK_ENTRIES:
                    which = "work_dir_bytes" if used >= limits.work_dir_bytes else "work_dir_entries"
                    self._events.add(which, f"the work folder outgrew its cap ({used} bytes, {entries} entries; "
                                           f"cap {limits.work_dir_bytes} bytes, {MAX_WORK_ENTRIES} entries): killed")
                    self.kill()
                    return
            # a huge tree makes each look expensive: look less often rather than eat a core
            interval = max(WATCH_INTERVAL, 5 * (time.monotonic() - t0))

    # -- RunningProcess
    def kill(self) -> None:
        """SIGKILL bwrap's group and every process under bwrap (stopped ones included), then what
        :meth:`freeze` stopped. Idempotent."""
        self._killed = True
        procs = self._run_procs()
        self._signal_group(signal.SIGKILL)
        for proc in procs.values():
            try:
                proc.kill()
            except psutil.Error:
                continue
        self._kill_stopped()

    def wait(self, timeout: float) -> BwrapExecResult:
        if self._result is not None:
            return self._result
        killed_before = self._killed
        timed_out, stdout, out_trunc, stderr, err_trunc = self._wait_and_sweep(timeout)
        self._done.set()
        self._monitor.join(5)
        self._result = self._build(timed_out, killed_before, self._read_status(), stdout, out_trunc, stderr, err_trunc)
        return self._result

    def _read_status(self) -> int | None:
        """The command's wait status as the launcher wrote it; None when it never got to write."""
        data = b""
        try:
            os.set_blocking(self.status_fd, False)
            while chunk := os.read(self.status_fd, 64):
                data += chunk
        except OSError:
            pass
        finally:
            os.close(self.status_fd)
        try:
            return int(data.split()[0])
        except (ValueError, IndexError):
            return None

    def _build(self, timed_out: bool, killed_before: bool, status: int | None, stdout: bytes, out_trunc: bool,
               stderr: bytes, err_trunc: bool) -> BwrapExecResult:
        limits = self.spec.limits
        if status is not None and not timed_out:
            rc = os.waitstatus_to_exitcode(status)
        else:  # killed (by us, or before the command ended), or bwrap never started it
            rc = self.popen.returncode
            if status is None and rc is not None and rc > 0 and stderr.startswith(b"bwrap:"):
                self._events.add("sandbox_setup", "bwrap could not build the sandbox (see the first line)")
            elif rc == -signal.SIGKILL and not killed_before and not timed_out and "work_dir_bytes" not in self._events:
                self._events.add("killed_externally", f"bwrap (pid {self.popen.pid}) was killed by SIGKILL from "
                                                     "outside the grader")
        signum = -rc if rc is not None and rc < 0 else None
        if limits.work_dir_bytes and "work_dir_bytes" not in self._events:
            used, _ = work_usage(self.spec.mounts["work"].host_path, limits.work_dir_bytes)
            if used >= limits.work_dir_bytes:
                self._events.add("work_dir_bytes", f"the work folder holds {used} bytes, at or over its cap of "
                                                  f"{limits.work_dir_bytes}")
        # as in the local provider: a SIGKILL that nobody in the grader sent is the kernel's OOM killer
        oom = not timed_out and (any(m in stderr for m in OOM_MARKERS)
                                 or (signum == signal.SIGKILL and status is not None and not killed_before))
        stderr += self._events.stderr_suffix()
        return BwrapExecResult(
            returncode=rc, stdout=stdout, stderr=stderr, duration=time.monotonic() - self.started,
            timed_out=timed_out, oom=oom, killed_by_signal=signum, stdout_truncated=out_trunc,
            stderr_truncated=err_trunc, limit_events=self._events.names,
        )
