"""GPU telemetry around timed work, through NVML (nvidia-ml-py).

A speedup read to one decimal is only as good as the clocks it was measured at: a
GPU that hit a power or thermal limit while one variant ran makes that variant look
slow. A sampler thread reads clocks, temperature, power and throttle reasons while
batches are timed; any throttling (other than idle or application clocks) raises the
``gpu_throttled`` flag with the reasons as evidence. Without NVML (CPU runs, no
driver) it records nothing and flags nothing.

The same thread also times a fixed pure-Python loop at each sample. On a shared host
(a VM whose cores are hyperthreads that neighbours also use) that loop runs up to ~1.6x
slower from moment to moment with no steal time reported, and a launch-bound pipeline
(batch 1) slows with it. Its spread is reported as ``host_cpu`` (``contended`` above
:data:`HOST_CPU_CONTENDED`). It is evidence for reading wide intervals, not a flag:
on the lent H200 machines every run showed 1.6-1.8x, and GPU-bound batch-8 speedups
were right regardless (docs/benchmarks.md).

Each sample also reads NVML's per-process utilization, kept as ``(pid, wall-clock
seconds, SM %)`` rows: which process used the GPU when. :func:`gpu_users` answers, for a
timed window, whether processes that should have been idle (frozen variants) ran on the
GPU inside it. NVML's sample period is 1/6 s to 1 s by product (~0.2 s on the H200) and
each call returns one sample per process, its latest: at a 0.25 s interval some periods
are never seen, so work shorter than a period can be missed. On the H200 the first
sample of a new process twice carried a time from before the process existed: pids are
only to be asked about after their start.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

# nvmlClocksEventReason* bits that mean "slowed down", not "idle" or "set by the user".
_REASONS = {
    0x0000000000000004: "sw_power_cap",
    0x0000000000000008: "hw_slowdown",
    0x0000000000000020: "sw_thermal",
    0x0000000000000040: "hw_thermal",
    0x0000000000000080: "hw_power_brake",
}


HOST_CPU_CONTENDED = 1.3  # p90 / p10 of the host probe above which ``host_cpu.contended``

MAX_PROCESS_ROWS = 20000  # per-process rows kept, the oldest dropped first: ~20 min of 4 busy processes
# NVML errors that mean "this driver or GPU never answers per-process utilization": stop asking.
_PROCESS_UNSUPPORTED = ("NVMLError_NotSupported", "NVMLError_FunctionNotFound", "NVMLError_NoPermission")


def host_probe_ms(n: int = 5000) -> float:
    """CPU milliseconds this thread spends on a fixed pure-Python loop: how fast its core runs now.

    Thread CPU time, not wall time: waiting for the GIL (the grader's main thread is
    busy checking images) or being preempted is not the core running slowly, but
    sharing the core's execution units with a neighbour's hyperthread is. Kept short
    (~0.25 ms): the sampler holds the GIL while it runs, and the supervisor's clock
    stop must not wait on it.
    """
    t0 = time.thread_time()
    total = 0
    for i in range(n):
        total += i * i
    return (time.thread_time() - t0) * 1000.0


def _nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - no library, no driver, no GPU: telemetry is optional
        return None


class GpuSampler:
    """Samples one GPU every ``interval`` seconds between ``start()`` and ``stop()``."""

    def __init__(self, index: int = 0, interval: float = 0.25):
        self.index, self.interval = index, interval
        self.nvml = _nvml()
        self.samples: list[dict] = []
        self._rows: deque[tuple[int, float, int]] = deque(maxlen=MAX_PROCESS_ROWS)
        self._rows_lock = threading.Lock()
        self._last_seen_us = 0        # NVML's lastSeenTimeStamp: only newer samples are returned
        self._per_process = True      # False once the driver says it cannot
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.handle = None
        if self.nvml is not None:
            try:
                self.handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
            except Exception:  # noqa: BLE001
                self.nvml = None

    @property
    def available(self) -> bool:
        return self.nvml is not None

    def snapshot(self) -> dict:
        n, h = self.nvml, self.handle
        read = {
            "sm_clock_mhz": lambda: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
            "mem_clock_mhz": lambda: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
            "temperature_c": lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
            "power_w": lambda: n.nvmlDeviceGetPowerUsage(h) / 1000.0,
            "utilization": lambda: n.nvmlDeviceGetUtilizationRates(h).gpu,
            "throttle_mask": lambda: n.nvmlDeviceGetCurrentClocksThrottleReasons(h),
        }
        out = {"t": time.monotonic(), "host_probe_ms": host_probe_ms()}
        for key, fn in read.items():
            try:
                out[key] = fn()
            except Exception:  # noqa: BLE001 - a field a driver does not report
                out[key] = None
        self.sample_processes()
        return out

    def sample_processes(self) -> None:
        """Keep the per-process SM samples NVML took since the last call; nothing where unsupported."""
        if self.nvml is None or not self._per_process:
            return
        try:
            found = self.nvml.nvmlDeviceGetProcessUtilization(self.handle, self._last_seen_us)
        except Exception as exc:  # noqa: BLE001 - NotFound: no sample since then; anything else: none now
            if type(exc).__name__ in _PROCESS_UNSUPPORTED:
                self._per_process = False
            return
        rows = []
        try:
            for sample in found:
                stamp = int(sample.timeStamp)
                self._last_seen_us = max(self._last_seen_us, stamp)
                if int(sample.smUtil) > 0:
                    rows.append((int(sample.pid), stamp / 1e6, int(sample.smUtil)))
        except (AttributeError, TypeError, ValueError):  # a sample not shaped as documented
            pass
        with self._rows_lock:
            self._rows.extend(rows)

    def process_rows(self) -> list[tuple[int, float, int]]:
        """The kept ``(pid, time.time() seconds, SM %)`` rows, oldest first (a copy)."""
        with self._rows_lock:
            return list(self._rows)

    def gpu_users(self, window: tuple[float, float], pids: set[int], margin: float) -> list[dict]:
        """:func:`gpu_users` over the rows kept so far; safe to call while the sampler runs."""
        return gpu_users(self.process_rows(), window, pids, margin)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.snapshot())

    def start(self) -> None:
        if not self.available:
            return
        self.samples = [self.snapshot()]
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> dict | None:
        """Summary of the samples since ``start()``; None without NVML."""
        if not self.available or self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        self.samples.append(self.snapshot())
        return summarize(self.samples, self.device_info())

    def device_info(self) -> dict:
        n, h = self.nvml, self.handle
        info = {}
        for key, fn in (("name", lambda: n.nvmlDeviceGetName(h)), ("driver", n.nvmlSystemGetDriverVersion)):
            try:
                value = fn()
                info[key] = value.decode() if isinstance(value, bytes) else value
            except Exception:  # noqa: BLE001
                info[key] = None
        return info


def gpu_users(samples: Iterable[tuple[int, float, int]], window: tuple[float, float], pids: set[int],
              margin: float) -> list[dict]:
    """Which of ``pids`` used the GPU's SMs in ``window`` (``time.time()`` seconds), busiest first.

    ``samples`` are ``(pid, seconds, sm_util)`` rows. A row counts when its time lies in
    ``[start + margin, end]``: NVML stamps a sample at the end of the period it covers, so a
    row just after ``start`` can hold work done before it; ``margin`` leaves those out. Each
    user is ``{"pid", "max_sm_util", "samples", "first", "last"}`` (first and last: the
    times of its first and last counted row).
    """
    start, end = window
    low = start + margin
    users: dict[int, dict] = {}
    for pid, stamp, sm in samples:
        if pid not in pids or not low <= stamp <= end or sm <= 0:
            continue
        user = users.get(pid)
        if user is None:
            users[pid] = {"pid": pid, "max_sm_util": sm, "samples": 1, "first": stamp, "last": stamp}
            continue
        user["max_sm_util"] = max(user["max_sm_util"], sm)
        user["samples"] += 1
        user["first"], user["last"] = min(user["first"], stamp), max(user["last"], stamp)
    return sorted(users.values(), key=lambda u: (-u["max_sm_util"], u["pid"]))


def summarize(samples: list[dict], device: dict | None = None) -> dict:
    def values(key):
        return [s[key] for s in samples if s.get(key) is not None]

    mask = 0
    for m in values("throttle_mask"):
        mask |= int(m)
    reasons = sorted(name for bit, name in _REASONS.items() if mask & bit)
    # A software power cap is routine under full load and falls on interleaved variants
    # alike; it is reported, but only thermal and hardware slowdowns raise the flag.
    throttled = any(r != "sw_power_cap" for r in reasons)
    out = {"n_samples": len(samples), "throttle_reasons": reasons, "throttled": throttled, "device": device or {}}
    probe = sorted(values("host_probe_ms"))
    if len(probe) >= 5:
        p10, p50, p90 = (probe[round(q * (len(probe) - 1))] for q in (0.1, 0.5, 0.9))
        out["host_cpu"] = {"probe_ms_p10": p10, "probe_ms_p50": p50, "probe_ms_p90": p90, "slowdown": p90 / p10,
                           "contended": p90 / p10 > HOST_CPU_CONTENDED}
    for key in ("sm_clock_mhz", "temperature_c", "power_w", "utilization"):
        vs = values(key)
        out[key] = {"min": min(vs), "max": max(vs), "first": vs[0], "last": vs[-1]} if vs else None
    return out
