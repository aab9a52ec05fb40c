"""GPU telemetry summaries (NVML itself is exercised on the GPU bench, not here)."""

from __future__ import annotations

from grader.runs import telemetry


def _samples(probe_ms, mask=0):
    return [{"t": float(i), "sm_clock_mhz": 1980, "temperature_c": 50, "power_w": 500.0, "utilization": 99,
             "throttle_mask": mask, "host_probe_ms": ms} for i, ms in enumerate(probe_ms)]


def test_power_cap_is_reported_but_thermal_slowdown_is_a_throttle():
    capped = telemetry.summarize(_samples([1.0] * 6, mask=0x4))
    assert capped["throttle_reasons"] == ["sw_power_cap"] and not capped["throttled"]
    hot = telemetry.summarize(_samples([1.0] * 6, mask=0x4 | 0x40))
    assert hot["throttled"] and "hw_thermal" in hot["throttle_reasons"]


def test_host_probe_spread_marks_a_contended_host():
    steady = telemetry.summarize(_samples([1.0, 1.02, 0.99, 1.01, 1.0, 1.03, 0.98, 1.0, 1.01, 1.0]))
    assert steady["host_cpu"]["slowdown"] < 1.1 and not steady["host_cpu"]["contended"]
    noisy = telemetry.summarize(_samples([1.0, 1.6, 1.0, 1.7, 1.0, 1.65, 1.0, 1.0, 1.6, 1.0]))
    assert noisy["host_cpu"]["contended"] and noisy["host_cpu"]["slowdown"] > telemetry.HOST_CPU_CONTENDED
    assert "host_cpu" not in telemetry.summarize(_samples([1.0, 1.0]))  # too few samples to say


def test_host_probe_measures_something():
    assert 0 < telemetry.host_probe_ms(2000) < 1000
