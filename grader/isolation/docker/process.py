"""One running container: its output, its exit, its watchdog, and its removal whatever happens.

Output is read through an attach socket opened before the container starts and kept in memory
head + tail capped (:class:`CappedOutput`, the local provider's rule); the daemon keeps no log
(log driver ``none``), so a flood fills neither memory nor the daemon's disk. A monitor thread
enforces the work folder's size cap and reads the pids cgroup (see :mod:`.monitor`). The
wall-clock timeout kills the container, and it is removed (``force=True``) in ``finally``
whatever happened. Every live container is also in a registry that ``atexit`` empties, for a
grader that exits without calling ``wait``; the reaper covers one that is killed. ``freeze`` is
``docker pause`` (the cgroup freezer: every process of the container, daemons included); ``wait``
unpauses first, ``kill`` after its SIGKILL (before it on an engine that refuses to kill a paused
container), and removal copes with an engine that refuses to remove one.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grader.isolation.contract import ExecResult, RunningProcess, SandboxSpec
from grader.isolation.docker.engine import INFRA_ATTEMPTS, client, docker_py, frames_iter, infra_call, requests
from grader.isolation.docker.monitor import (
    MAX_WORK_ENTRIES,
    WATCH_INTERVAL,
    cgroup_cpu_seconds,
    cgroup_pids,
    pids_events_path,
    read_pids_max,
    work_usage,
)
from grader.isolation.output import OOM_MARKERS, CappedOutput, LimitEvents

KILL_GRACE = 10.0           # seconds a killed container gets to report its exit


@dataclass(frozen=True)
class DockerExecResult(ExecResult):
    """An :class:`ExecResult` that also says which limits the run ran into.

    ``limit_events`` holds short names: ``pids`` (forks refused by the pids limit),
    ``work_dir_bytes`` / ``work_dir_entries`` (the work folder outgrew its cap and the run was
    killed), ``killed_externally`` (someone else killed or removed the container). Each also
    adds a ``[sandbox] ...`` line at the end of ``stderr`` so that reports, which carry the
    stderr tail, show it.
    """

    limit_events: tuple[str, ...] = ()
    container_id: str = ""
    image_id: str = ""


_live_lock = threading.Lock()
_live: dict[str, "DockerProcess"] = {}


def _remove_live_at_exit() -> None:
    with _live_lock:
        procs = list(_live.values())
    for proc in procs:
        try:
            proc._remove()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


atexit.register(_remove_live_at_exit)


def normalize(code: int | None) -> tuple[int | None, int | None]:
    """Docker reports death by signal n as 128 + n; report it as Popen does (-n) plus the signal."""
    if code is None:
        return None, None
    if 128 < code <= 128 + 64:
        return -(code - 128), code - 128
    return code, None


class DockerProcess(RunningProcess):
    """A started container of a sandbox with ``spec``, run from image ``image_id``."""

    def __init__(self, spec: SandboxSpec, container, sock, retries: int, *, image_id: str, memory_limit: int):
        self.spec, self.container, self.sock = spec, container, sock
        self.image_id, self.memory_limit = image_id, memory_limit
        self.id = container.id
        self.started = time.monotonic()
        self.retries = retries
        limits = spec.limits
        self.out, self.err = CappedOutput(limits.output_bytes), CappedOutput(limits.output_bytes)
        self._exit_event = threading.Event()
        self._exit_code: int | None = None
        self._gone = False            # the container vanished under us (removed from outside)
        self._killed_by_us = False
        self._events = LimitEvents()
        self._pids_refused = 0
        self._removed = False
        self._result: DockerExecResult | None = None
        self._lock = threading.Lock()
        self._freeze_lock = threading.RLock()
        with _live_lock:
            _live[self.id] = self
        self._reader = threading.Thread(target=self._read_output, name=f"docker-out-{self.id[:12]}", daemon=True)
        self._waiter = threading.Thread(target=self._wait_exit, name=f"docker-wait-{self.id[:12]}", daemon=True)
        self._monitor = threading.Thread(target=self._watch, name=f"docker-watch-{self.id[:12]}", daemon=True)
        self._reader.start()
        self._waiter.start()
        self._monitor.start()

    # -- threads
    def _read_output(self) -> None:
        try:
            for stream, data in frames_iter(self.sock, tty=False):
                (self.err if stream == 2 else self.out).add(data)
        except (OSError, ValueError, AttributeError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def _wait_exit(self) -> None:
        cl = client()
        while True:
            try:
                status = cl.api.wait(self.id, timeout=None)
                self._exit_code = int(status.get("StatusCode", -1))
                break
            except docker_py.errors.NotFound:
                self._gone = True
                break
            except (docker_py.errors.APIError, requests.RequestException, OSError):
                if self._removed:
                    break
                time.sleep(0.5)  # the daemon hiccuped; the container may still run
        self._exit_event.set()

    def _host_pid(self) -> int:
        """The host pid of the container's init (0 before it has one); reloads the attributes once."""
        pid = int(self.container.attrs.get("State", {}).get("Pid") or 0)
        if not pid:
            self.container.reload()
            pid = int(self.container.attrs["State"].get("Pid") or 0)
        return pid

    def cpu_seconds(self) -> float | None:
        """CPU time of every process in the container (its cgroup), daemons included."""
        try:
            seconds = cgroup_cpu_seconds(Path(f"/proc/{self._host_pid()}/cgroup").read_text())
            if seconds is not None:
                return seconds
        except (OSError, ValueError, KeyError):
            pass
        try:  # about a second per call: the daemon samples the container
            stats = client().api.stats(self.container.id, stream=False, one_shot=True)
            return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
        except Exception:  # noqa: BLE001 - no CPU accounting available
            return None

    def pids(self) -> list[int]:
        """Host pids in the container's cgroup (``cgroup.procs``); ``[init pid]`` if unreadable."""
        if self._exit_event.is_set() or self._removed:
            return []
        try:
            pid = self._host_pid()
        except Exception:  # noqa: BLE001 - gone, or the daemon does not answer: nothing to attribute
            return []
        if not pid:
            return []
        try:
            found = cgroup_pids(Path(f"/proc/{pid}/cgroup").read_text(), pid)
        except OSError:
            found = None
        return sorted(found) if found else [pid]

    def _pause_call(self, unpause: bool) -> bool:
        """``docker pause`` / ``unpause``; True when the container is (un)paused afterwards, False
        when it is gone or not running (or, for unpause, not paused). Other errors: translated."""
        cl = client()

        def call() -> bool:
            try:
                (cl.api.unpause if unpause else cl.api.pause)(self.id)
                return True
            except docker_py.errors.NotFound:
                return False
            except docker_py.errors.APIError as exc:
                if exc.status_code != 409:  # 409: not running, already paused, not paused
                    raise
                return not unpause and "already paused" in str(exc)

        done, retries = infra_call("unpause" if unpause else "pause", call)
        self.retries += retries
        return done

    def freeze(self) -> bool:
        """``docker pause``: the cgroup freezer stops every process of the container, daemons too."""
        with self._freeze_lock:
            if self._frozen:
                return True
            if self._exit_event.is_set() or self._removed:
                return False
            self._frozen = self._pause_call(unpause=False)
            return self._frozen

    def thaw(self) -> None:
        with self._freeze_lock:
            if not self._frozen:
                return
            if not self._removed:
                self._pause_call(unpause=True)
            self._frozen = False

    def _thaw_quietly(self) -> None:
        with contextlib.suppress(Exception):  # on the way to kill or remove, which end it anyway
            self.thaw()

    def _watch(self) -> None:
        limits = self.spec.limits
        work = self.spec.mounts["work"].host_path
        pids_file = None
        try:
            pid = self._host_pid()
            pids_file = pids_events_path(pid) if pid else None
        except Exception:  # noqa: BLE001 - monitoring is best effort
            pids_file = None
        interval = WATCH_INTERVAL
        while not self._exit_event.wait(interval):
            self._pids_refused = max(self._pids_refused, read_pids_max(pids_file))
            if limits.work_dir_bytes:
                t0 = time.monotonic()
                used, entries = work_usage(work, limits.work_dir_bytes)
                # a huge tree makes each look expensive: look less often rather than eat a core
                interval = max(WATCH_INTERVAL, 5 * (time.monotonic() - t0))
                if used >= limits.work_dir_bytes or entries > MAX_WORK_ENTRIES:
                    which = "work_dir_bytes" if used >= limits.work_dir_bytes else "work_dir_entries"
                    self._events.add(which, f"the work folder outgrew its cap ({used} bytes, {entries} entries; "
                                           f"cap {limits.work_dir_bytes} bytes, {MAX_WORK_ENTRIES} entries): killed")
                    self.kill()
                    return

    # -- helpers
    def _remove(self) -> int:
        """Remove the container (force); returns retries. Idempotent."""
        if self._frozen and not self._removed:
            self.kill()  # kill, then unpause: some engines refuse to remove a paused container
        with self._lock:
            if self._removed:
                return 0
            self._removed = True
        cl = client()

        def remove(unpaused: bool = False) -> None:
            try:
                cl.api.remove_container(self.id, force=True, v=True)
            except docker_py.errors.NotFound:
                pass
            except docker_py.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in str(exc):
                    return
                if exc.status_code == 409 and "paused" in str(exc).lower() and not unpaused:
                    with contextlib.suppress(Exception):  # an engine that will not remove a paused container
                        cl.api.unpause(self.id)
                    return remove(unpaused=True)
                raise

        try:
            _, retries = infra_call("remove", remove)
        except Exception as exc:  # noqa: BLE001 - the run's result stays valid; cleanup finds it
            self._events.add("remove_failed", f"container {self.id[:12]} was not removed ({exc}); run `grader cleanup`")
            retries = INFRA_ATTEMPTS - 1
        with _live_lock:
            _live.pop(self.id, None)
        return retries

    def discard(self) -> None:
        """Kill and remove the container unless :meth:`wait` already did (the sandbox is closing)."""
        if self._result is None:
            self.kill()
            self._remove()

    # -- RunningProcess
    def poll(self) -> int | None:
        if not self._exit_event.is_set():
            return None
        return normalize(self._exit_code if not self._gone else 137)[0]

    def kill(self) -> None:
        """SIGKILL the container. A paused one is unpaused after the signal, so that it runs none
        of its own code again; an engine that refuses to kill a paused container gets the unpause
        first."""
        self._killed_by_us = True
        if self._exit_event.is_set() or self._removed:
            self._frozen = False
            return
        cl = client()

        def kill() -> None:
            try:
                cl.api.kill(self.id)
            except docker_py.errors.NotFound:
                pass
            except docker_py.errors.APIError as exc:
                if exc.status_code != 409:  # 409: not running any more (or, on some engines, paused)
                    raise
                if "paused" in str(exc).lower() and self._frozen:
                    self._thaw_quietly()
                    kill()

        try:
            _, retries = infra_call("kill", kill)
            self.retries += retries
        except Exception:  # noqa: BLE001 - remove(force=True) follows and kills as well
            pass
        self._thaw_quietly()

    def wait(self, timeout: float) -> DockerExecResult:
        if self._result is not None:
            return self._result
        self._thaw_quietly()  # a paused container would sit paused until the timeout
        timed_out = False
        state: dict = {}
        try:
            if not self._exit_event.wait(max(timeout, 0)):
                timed_out = True
                self.kill()
                self._exit_event.wait(KILL_GRACE)
            try:
                state = client().api.inspect_container(self.id).get("State", {})
            except Exception:  # noqa: BLE001 - gone or daemon trouble: judged from what we have
                state = {}
        finally:
            self.retries += self._remove()
            self._exit_event.set()  # a removed container cannot exit later
        self._reader.join(5)
        self._monitor.join(5)
        self._result = self._build_result(timed_out, state)
        return self._result

    def _build_result(self, timed_out: bool, state: dict) -> DockerExecResult:
        limits = self.spec.limits
        raw = self._exit_code
        if raw is None:
            raw = state.get("ExitCode") if state else None
        gone = self._gone or (raw is None and not state)
        if gone and not self._killed_by_us:
            self._events.add("killed_externally", f"container {self.id[:12]} disappeared during the run "
                                                 "(removed from outside the grader)")
        returncode, signum = normalize(137 if gone and raw is None else raw)
        oom_killed = bool(state.get("OOMKilled"))
        stdout, out_trunc = self.out.result()
        stderr, err_trunc = self.err.result()
        if (signum == 9 and not self._killed_by_us and not oom_killed and not timed_out
                and "killed_externally" not in self._events):
            self._events.add("killed_externally", f"container {self.id[:12]} was killed by SIGKILL from outside "
                                                 "the grader (docker kill?)")
        if self._pids_refused:
            self._events.add("pids", f"the pids limit ({limits.pids}) refused {self._pids_refused} forks")
        if limits.work_dir_bytes and "work_dir_bytes" not in self._events:
            used, _ = work_usage(self.spec.mounts["work"].host_path, limits.work_dir_bytes)
            if used >= limits.work_dir_bytes:
                self._events.add("work_dir_bytes", f"the work folder holds {used} bytes, at or over its cap of "
                                                  f"{limits.work_dir_bytes}")
        oom = oom_killed or (not timed_out and any(m in stderr for m in OOM_MARKERS))
        if oom_killed:
            self._events.note(f"the kernel killed the run for memory (limit {self.memory_limit} bytes)")
        stderr += self._events.stderr_suffix()
        return DockerExecResult(
            returncode=returncode, stdout=stdout, stderr=stderr, duration=time.monotonic() - self.started,
            timed_out=timed_out, oom=oom, killed_by_signal=signum, stdout_truncated=out_trunc,
            stderr_truncated=err_trunc, retries=self.retries, limit_events=self._events.names,
            container_id=self.id, image_id=self.image_id,
        )
