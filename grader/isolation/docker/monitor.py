"""What the host can read about a running container without asking the daemon.

The limits Docker enforces do not all report themselves: a bind mount has no quota, so the
work folder's size is measured here (:func:`work_usage`) and the provider's watchdog kills a
run that outgrows ``Limits.work_dir_bytes``; a fork refused by the pids limit leaves no trace
in the run's output, so the container's pids cgroup is read (:func:`pids_events_path`,
:func:`read_pids_max`) and the refusal reported. :func:`cgroup_cpu_seconds` reads a container's
CPU time from the host's cgroup files, since the stats API takes about a second per call, and
:func:`cgroup_pids` the host pids of its processes.
Standard library only, no daemon calls: every function here is cheap and cannot fail a run.
"""

from __future__ import annotations

import os
from pathlib import Path

WATCH_INTERVAL = 0.2        # seconds between two looks of the monitor
MAX_WORK_ENTRIES = 200_000  # files and folders in the work mount


def work_usage(root: Path, stop_after: int) -> tuple[int, int]:
    """(bytes on disk, entries) under ``root``, not following links; stops early past the cap."""
    total, entries, stack = 0, 0, [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
        if total > stop_after:
            break
    return total, entries


def pids_events_path(pid: int) -> Path | None:
    """The host file counting forks refused by the container's pids limit, if readable."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            candidate = Path("/sys/fs/cgroup/pids") / path.lstrip("/") / "pids.events"
        elif controllers == "":
            candidate = Path("/sys/fs/cgroup") / path.lstrip("/") / "pids.events"
        else:
            continue
        if candidate.exists():
            return candidate
    return None


def read_pids_max(path: Path | None) -> int:
    """How many forks the pids limit has refused so far (the ``max`` count in ``pids.events``)."""
    if path is None:
        return 0
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "max":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def cgroup_cpu_seconds(proc_cgroup: str, root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPU seconds of the cgroup named in a ``/proc/PID/cgroup`` text, read from the host's
    cgroup files: v2 (``cpu.stat``, at the root or under ``unified/`` on a hybrid host) or
    v1 (``cpuacct.usage``); None when neither is readable."""
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        path = path.lstrip("/")
        if hierarchy == "0" and not controllers:
            for base in (root, root / "unified"):
                try:
                    for row in (base / path / "cpu.stat").read_text().splitlines():
                        if row.startswith("usage_usec "):
                            return int(row.split()[1]) / 1e6
                except (OSError, ValueError):
                    continue
        elif "cpuacct" in controllers.split(","):
            for mount in dict.fromkeys((controllers, "cpuacct", "cpu,cpuacct")):
                try:
                    return int((root / mount / path / "cpuacct.usage").read_text()) / 1e9
                except (OSError, ValueError):
                    continue
    return None


def cgroup_pids(proc_cgroup: str, member: int, root: Path = Path("/sys/fs/cgroup")) -> list[int] | None:
    """Host pids in the cgroup named in a ``/proc/PID/cgroup`` text (``cgroup.procs``): v2 (at the
    root or under ``unified/``) or any v1 hierarchy. A file is trusted only if it lists ``member``
    (the PID whose text it is) and is not a root cgroup (all the host's processes); None otherwise."""
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        path = path.strip("/")
        if not path:
            continue
        if hierarchy == "0" and not controllers:
            bases = (root, root / "unified")
        else:
            bases = (root / controllers.removeprefix("name="),)
        for base in bases:
            try:
                pids = [int(row) for row in (base / path / "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                continue
            if member in pids:
                return pids
    return None
