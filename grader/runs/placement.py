"""Which CPU cores a task's variants run on.

A diffusion pipeline at small batch sizes is partly launch-bound: the host thread that
queues kernels sets the pace, so *where* that thread runs shows up in the timings.
Giving every variant of a task the same fixed set of cores removes one difference
between the processes being compared, and giving concurrent tasks (one per GPU)
disjoint sets keeps one task's host threads from slowing another's. The grader keeps
the first core for itself (its NVML sampler, the FIFO reads, scoring).

Concurrent tasks also get a thread budget. Left alone, every worker's OpenMP pool is as
wide as the machine; two tasks computing at once then have more busy threads than cores,
and OpenMP threads spinning at a barrier while the thread they wait for is descheduled
turned a 0.5 s CPU batch into 35-70 s (measured: the bundled example on two slots of a
2-core machine). A worker gets as many threads as its share of the cores.
"""

from __future__ import annotations

import os
from typing import Iterable


def cpu_share(gpu: str | None, gpus: tuple[str, ...], cores: Iterable[int] | None = None) -> tuple[int, ...] | None:
    """The cores for the GPU slot ``gpu`` of ``gpus``; None when there are too few to split.

    Cores are the ones this process may use, minus the first (the grader's), divided
    evenly, in order, between the slots.
    """
    available = sorted(os.sched_getaffinity(0) if cores is None else cores)
    if len(available) < 4:
        return None
    rest = available[1:]
    share = len(rest) // max(1, len(gpus))
    if share < 1:
        return None
    slot = gpus.index(gpu) if gpu in gpus else 0
    return tuple(rest[slot * share:(slot + 1) * share])


def thread_share(gpus: tuple[str, ...], cpuset: tuple[int, ...] | None, cores: Iterable[int] | None = None) -> int | None:
    """Threads for one worker: its pinned cores, or the cores split between concurrent slots.

    None (the libraries' own default) when the task runs alone on unpinned cores.
    """
    if cpuset:
        return len(cpuset)
    if len(gpus) <= 1:
        return None
    available = len(os.sched_getaffinity(0) if cores is None else set(cores))
    return max(1, available // len(gpus))
