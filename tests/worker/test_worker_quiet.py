"""The worker's ``quiet`` request: on the wire (a real worker on CPU), the probing loop
(latencies scripted), and on a CUDA machine against a second process that keeps the GPU busy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from sandbox import worker


def _validate(message: dict) -> None:
    from grader import schemas

    schemas.validate("run_result.schema.json", message, source="test")


def test_quiet_on_cpu_answers_at_once_and_the_worker_serves_on(cpu_worker):
    channel, proc = cpu_worker
    for _ in range(2):
        channel.send({"op": "quiet", "max_seconds": 5})
        answer = channel.recv(30)
        _validate(answer)
        assert answer == {"type": "quiet", "waited_seconds": 0.0, "probes": 0, "quiet": True, "last_latency_ms": None}
    channel.send({"op": "stop"})
    assert channel.recv(30) == {"type": "bye"}
    assert proc.wait(30) == 0


@pytest.mark.parametrize("request_", [{"op": "quiet"}, {"op": "quiet", "max_seconds": "5"},
                                      {"op": "quiet", "max_seconds": True}, {"op": "quiet", "max_seconds": -1},
                                      {"op": "quiet", "max_seconds": 1e9},
                                      {"op": "quiet", "max_seconds": 1, "extra": 1}])
def test_malformed_quiet_requests_are_refused(request_):
    assert worker.quiet_seconds(request_) is None


def test_a_malformed_quiet_request_is_a_protocol_error(cpu_worker):
    channel, proc = cpu_worker
    channel.send({"op": "quiet", "max_seconds": float("nan")})
    answer = channel.recv(30)
    _validate(answer)
    assert answer["type"] == "error" and answer["kind"] == "protocol" and "quiet" in answer["message"]
    assert proc.wait(30) == 4


def _scripted(monkeypatch, latencies):
    calls = iter(latencies)
    monkeypatch.setattr(worker, "_probe_latency_ms", lambda: next(calls))


def _timed(latency_ms):
    """A probe that takes a millisecond of wall time and reports ``latency_ms()``."""
    def probe():
        time.sleep(0.001)
        return latency_ms()
    return probe


def test_the_loop_waits_for_consecutive_quiet_probes(monkeypatch):
    monkeypatch.setattr(worker, "QUIET_SPAN_SECONDS", 0.0)
    # busy, busy, one quiet probe between two busy ones (a gap between another's kernels), then quiet
    _scripted(monkeypatch, [4.0, 6.0, 0.05, 3.0, 0.05, 0.04, 0.06, 9.0])
    answer = worker.wait_quiet(10)
    _validate(answer)
    assert answer["quiet"] is True and answer["probes"] == 7 and answer["last_latency_ms"] == 0.06
    assert answer["waited_seconds"] < 5


def test_quiet_probes_must_span_the_quiet_span(monkeypatch):
    # bursts of fast probes shorter than the span (gaps in another process's work) are not quiet
    pattern = iter(([0.01] * 4 + [2.4]) * 10_000)
    monkeypatch.setattr(worker, "_probe_latency_ms", _timed(lambda: next(pattern)))
    answer = worker.wait_quiet(0.2)
    assert answer["quiet"] is False and answer["probes"] >= 20
    # the same fast probes, uninterrupted: quiet once they cover the span
    monkeypatch.setattr(worker, "_probe_latency_ms", _timed(lambda: 0.01))
    answer = worker.wait_quiet(10)
    assert answer["quiet"] is True and answer["waited_seconds"] >= worker.QUIET_SPAN_SECONDS
    assert worker.QUIET_PROBES <= answer["probes"] <= 1 + worker.QUIET_SPAN_SECONDS / 0.001


def test_the_loop_gives_up_after_max_seconds(monkeypatch):
    monkeypatch.setattr(worker, "_probe_latency_ms", _timed(lambda: 5.0))
    t0 = time.monotonic()
    answer = worker.wait_quiet(0.3)
    _validate(answer)
    assert answer["quiet"] is False and answer["last_latency_ms"] == 5.0 and answer["probes"] >= 2
    assert 0.3 <= answer["waited_seconds"] <= time.monotonic() - t0 < 3


def test_a_cuda_worker_synchronizes_its_own_work_before_probing(monkeypatch):
    order = []
    monkeypatch.setattr(worker, "QUIET_SPAN_SECONDS", 0.0)
    monkeypatch.setattr(worker, "_sync", lambda device: (order.append("sync"), time.sleep(0.1)))
    monkeypatch.setattr(worker, "_probe_latency_ms", lambda: order.append("probe") or 0.01)
    w = worker.Worker.__new__(worker.Worker)
    w.device = "cuda"
    answer = w.quiet(5.0)
    _validate(answer)
    assert order == ["sync", "probe", "probe", "probe"]
    assert answer["quiet"] is True and answer["probes"] == 3 and answer["waited_seconds"] >= 0.1


BUSY = textwrap.dedent('''
    import sys, time, torch
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    (a @ b).sum().item()
    print("busy", flush=True)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        for _ in range(4):
            c = a @ b
        torch.cuda.synchronize()
    print("done", time.time(), flush=True)
''')


# Queues matmuls and sleeps: the test freezes it (as the supervisor freezes a variant not
# being timed) with that work still queued; once thawed it says whether the queue had drained.
QUEUED = textwrap.dedent('''
    import sys, time, torch
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    (a @ a).sum().item()
    for _ in range(int(sys.argv[1])):
        c = a @ a
    end = torch.cuda.Event()
    end.record()
    print("queued", flush=True)
    time.sleep(0.2)
    print("drained" if end.query() else "pending", flush=True)
''')


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_on_a_gpu_quiet_waits_for_another_process_to_finish(tmp_path):
    idle = worker.wait_quiet(10)
    assert idle["quiet"] is True and idle["waited_seconds"] < 2, idle
    script = tmp_path / "busy.py"
    script.write_text(BUSY)
    proc = subprocess.Popen([sys.executable, str(script), "2.0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "busy"
        t0 = time.time()
        answer = worker.wait_quiet(30)
        answered = time.time()
        done = proc.stdout.readline().split()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert set(answer) == {"type", "waited_seconds", "probes", "quiet", "last_latency_ms"}  # (no jsonschema there)
    assert answer["quiet"] is True, answer
    assert answer["waited_seconds"] > 1.0 and answer["probes"] > worker.QUIET_PROBES, answer
    # quiet came after the other process's last matmul, not long after
    assert done[0] == "done" and float(done[1]) - 0.1 <= answered <= float(done[1]) + 1.0, (t0, answered, done)


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_on_a_gpu_quiet_waits_for_the_queue_of_a_frozen_process(tmp_path):
    import signal

    worker.wait_quiet(10)  # the probe's stream and tensor, made before the clock matters
    script = tmp_path / "queued.py"
    script.write_text(QUEUED)
    proc = subprocess.Popen([sys.executable, str(script), "800"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "queued"
        proc.send_signal(signal.SIGSTOP)
        answer = worker.wait_quiet(30)
        proc.send_signal(signal.SIGCONT)
        verdict = proc.stdout.readline().strip()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
    assert answer["quiet"] is True and answer["waited_seconds"] > 0.3, answer
    assert verdict == "drained", (verdict, answer)
