"""Trick (GPU): do the honest work (gpu_fast.py), and from a background thread, once each answer
is out, queue DEFERRED fp16 matmuls (about 0.25 s on an H100/H200, one CUDA-graph launch) on a
side stream of its own: sized to drain while the other variants take their turns, before its
own next batch. Its process is frozen then, but the GPU runs what was queued, so the reference
and the GT would be timed on a shared GPU and look slower. The thread notices the answer by the
answered files appearing in out/ (they are written after the worker's synchronize, so the work
is not charged to its own batch). It times the deferred work with CUDA events and writes the
milliseconds to queued.json in its work folder.
Defence: before each batch on a GPU the worker waits (untimed) until the device is quiet, i.e.
no other context's work is left (a tiny probe kernel runs fast again); a device that never went
quiet before a trusted variant's batch, or NVML samples of the experiment's process during one,
is `interference`. So the reference's time is unchanged, or the task is tampered."""

import json
import os
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import torch

MATMULS = 12
DEFERRED = 128   # ~0.25 s at ~2 ms per 8192x8192 fp16 matmul
STATE = {"events": [], "ms": [], "answers": 0, "launched": 0}
ANSWER = threading.Event()


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def _capture(pipe):
    """The deferred work as one CUDA graph on a side stream (one launch: no time to lose)."""
    stream, a = pipe["stream"], pipe["a"]
    out = torch.empty_like(a)
    with torch.cuda.stream(stream):
        for _ in range(2):
            torch.mm(a, a, out=out)
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for _ in range(DEFERRED):
            torch.mm(a, a, out=out)
    torch.cuda.current_stream().synchronize()
    return graph


def _answered(n):
    """Wait until an out/<label>/ folder holds the n answered files (written after the sync)."""
    out = Path("out")
    while True:
        try:
            for entry in os.scandir(out):
                if entry.is_dir() and len(os.listdir(entry.path)) >= n:
                    return
        except OSError:
            pass
        time.sleep(0.0002)


def _defer(pipe):
    stream = pipe["stream"]
    while True:
        ANSWER.wait()
        ANSWER.clear()
        _answered(pipe["n"])
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):   # a replay runs on the current stream: make it the side one
            start.record(stream)
            pipe["graph"].replay()
            end.record(stream)
        STATE["events"].append((start, end))
        STATE["launched"] += 1


def _account():
    done = [(a, b) for a, b in STATE["events"] if b.query()]
    STATE["ms"] += [a.elapsed_time(b) for a, b in done]
    STATE["events"] = [e for e in STATE["events"] if e not in done]
    Path("queued.json").write_text(json.dumps({"ms": STATE["ms"], "launched": STATE["launched"],
                                               "answers": STATE["answers"]}))


def load_pipeline():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16) / 100
    pipe = {"a": a, "out": torch.empty_like(a), "matmuls": MATMULS, "stream": torch.cuda.Stream(), "n": 0}
    pipe["graph"] = _capture(pipe)
    threading.Thread(target=_defer, args=(pipe,), daemon=True).start()
    return pipe


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    _account()
    for _ in range(round(pipe["matmuls"] * len(prompts) * num_inference_steps / 10)):
        torch.mm(pipe["a"], pipe["a"], out=pipe["out"])
    images = [render(p, g.initial_seed()) for p, g in zip(prompts, generator)]
    pipe["n"] = len(images)
    STATE["answers"] += 1
    ANSWER.set()
    return images
