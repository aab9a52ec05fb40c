"""Per-process GPU use in the telemetry: NVML's process samples kept by the sampler (a fake
``pynvml`` here) and :func:`telemetry.gpu_users` over a timed window."""

from __future__ import annotations

import sys
import time
import types

import pytest

from grader.runs import telemetry


def test_gpu_users_counts_the_named_pids_inside_the_window_after_the_margin():
    rows = [(10, 99.0, 80),     # before the window
            (10, 100.2, 70),    # inside the margin: may be work from before the window
            (10, 101.0, 30), (10, 102.0, 55), (10, 103.0, 20),
            (11, 101.5, 90),    # not a pid asked about
            (12, 102.5, 5),
            (12, 104.5, 99)]    # after the window
    users = telemetry.gpu_users(rows, (100.0, 104.0), {10, 12, 13}, margin=0.5)
    assert users == [{"pid": 10, "max_sm_util": 55, "samples": 3, "first": 101.0, "last": 103.0},
                     {"pid": 12, "max_sm_util": 5, "samples": 1, "first": 102.5, "last": 102.5}]
    assert telemetry.gpu_users(rows, (100.0, 104.0), set(), margin=0.5) == []
    assert telemetry.gpu_users(rows, (100.0, 100.4), {10}, margin=0.5) == []  # margin past the end
    assert telemetry.gpu_users([], (0.0, 1e12), {10}, margin=0.0) == []


class _Sample:
    def __init__(self, pid, stamp_us, sm):
        self.pid, self.timeStamp, self.smUtil, self.memUtil = pid, stamp_us, sm, 0


def _fake_pynvml(monkeypatch, answers):
    """A pynvml whose nvmlDeviceGetProcessUtilization answers from ``answers``: a list of samples, an
    exception, or the name of an NVML error ("NotFound") to raise; NotFound once they run out."""
    fake = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    fake.NVMLError = NVMLError
    fake.NVMLError_NotFound = type("NVMLError_NotFound", (NVMLError,), {})
    fake.NVMLError_NotSupported = type("NVMLError_NotSupported", (NVMLError,), {})
    fake.NVML_CLOCK_SM, fake.NVML_CLOCK_MEM, fake.NVML_TEMPERATURE_GPU = 1, 2, 0
    fake.calls = []
    fake.nvmlInit = lambda: None
    fake.nvmlDeviceGetHandleByIndex = lambda index: f"gpu{index}"
    fake.nvmlDeviceGetClockInfo = lambda h, which: 1980
    fake.nvmlDeviceGetTemperature = lambda h, which: 50
    fake.nvmlDeviceGetPowerUsage = lambda h: 500000
    fake.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0
    fake.nvmlDeviceGetName = lambda h: "Fake GPU"
    fake.nvmlSystemGetDriverVersion = lambda: "0.0"
    answers = list(answers)

    def process_utilization(handle, last_seen):
        fake.calls.append(last_seen)
        answer = answers.pop(0) if answers else "NotFound"
        if isinstance(answer, str):
            raise getattr(fake, f"NVMLError_{answer}")()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    fake.nvmlDeviceGetProcessUtilization = process_utilization
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_sampler_keeps_busy_process_rows_and_asks_only_for_newer_samples(monkeypatch):
    fake = _fake_pynvml(monkeypatch, [
        [_Sample(10, 100_000_000, 40), _Sample(11, 100_100_000, 0)],   # pid 11 idle: not kept
        "NotFound",                                                    # no sample since then
        [_Sample(10, 101_000_000, 60), _Sample(12, 101_200_000, 90)],
    ])
    sampler = telemetry.GpuSampler()
    assert sampler.available
    for _ in range(3):
        sampler.sample_processes()
    assert fake.calls == [0, 100_100_000, 100_100_000]
    assert sampler.process_rows() == [(10, 100.0, 40), (10, 101.0, 60), (12, 101.2, 90)]
    assert sampler.gpu_users((100.5, 102.0), {10, 12}, margin=0.0) == [
        {"pid": 12, "max_sm_util": 90, "samples": 1, "first": 101.2, "last": 101.2},
        {"pid": 10, "max_sm_util": 60, "samples": 1, "first": 101.0, "last": 101.0}]


def test_not_supported_stops_the_asking_and_nothing_else(monkeypatch):
    fake = _fake_pynvml(monkeypatch, ["NotSupported", [_Sample(10, 5_000_000, 7)]])
    sampler = telemetry.GpuSampler()
    for _ in range(3):
        snap = sampler.snapshot()
    assert fake.calls == [0] and snap["sm_clock_mhz"] == 1980 and snap["utilization"] is None
    assert sampler.process_rows() == [] and sampler.gpu_users((0.0, 1e12), {10}, margin=0.0) == []


def test_any_other_error_or_odd_sample_is_no_rows_this_time(monkeypatch):
    fake = _fake_pynvml(monkeypatch, [RuntimeError("driver hiccup"), [object()], [_Sample(10, 5_000_000, 7)]])
    sampler = telemetry.GpuSampler()
    for _ in range(3):
        sampler.sample_processes()
    assert len(fake.calls) == 3 and sampler.process_rows() == [(10, 5.0, 7)]


def test_rows_are_bounded_dropping_the_oldest(monkeypatch):
    monkeypatch.setattr(telemetry, "MAX_PROCESS_ROWS", 5)
    _fake_pynvml(monkeypatch, [[_Sample(10, (100 + i) * 1_000_000, 50) for i in range(8)]])
    sampler = telemetry.GpuSampler()
    sampler.sample_processes()
    assert [t for _, t, _ in sampler.process_rows()] == [103.0, 104.0, 105.0, 106.0, 107.0]


def test_without_nvml_nothing_is_sampled_or_found(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    sampler = telemetry.GpuSampler()
    assert not sampler.available
    sampler.sample_processes()
    assert sampler.process_rows() == [] and sampler.gpu_users((0.0, 1e12), {1}, margin=0.0) == []


def test_the_sampler_thread_collects_rows_that_can_be_read_while_it_runs(monkeypatch):
    now = time.time()
    answers = [[_Sample(10, int((now + i * 0.01) * 1e6), 30 + i)] for i in range(1, 400)]
    _fake_pynvml(monkeypatch, answers)
    sampler = telemetry.GpuSampler(interval=0.005)
    sampler.start()
    try:
        deadline = time.monotonic() + 5
        while not sampler.gpu_users((now, now + 100), {10}, margin=0.0) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        summary = sampler.stop()
    assert summary is not None and summary["n_samples"] >= 2
    (user,) = sampler.gpu_users((now, now + 100), {10}, margin=0.0)
    assert user["samples"] == len(sampler.process_rows()) >= 2 and user["max_sm_util"] >= 31


@pytest.mark.parametrize("margin", [0.0, 0.25])
def test_gpu_users_includes_the_window_end(margin):
    assert telemetry.gpu_users([(1, 2.0, 10)], (1.0, 2.0), {1}, margin)[0]["samples"] == 1
