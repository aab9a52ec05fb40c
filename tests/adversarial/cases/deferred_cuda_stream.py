"""Trick (GPU): hand the images back, then leave ~0.1 s of kernels queued on a side CUDA stream,
and make torch.cuda.synchronize a no-op so that the worker's device-wide synchronize does not
wait for them. The answer goes out while the GPU is still busy; the queued work drains while the
other variants run, paid for by nobody (or by them). The module times its deferred kernels with
CUDA events and writes them to deferred.json in its work folder, so the test knows the cost.
Defence needed: the worker synchronizes through a function it captured before importing the
module (e.g. torch._C._cuda_synchronize), so the deferred kernels are charged to their batch."""

import json
import threading
import zlib
from pathlib import Path

import numpy as np
import torch

PER_IMAGE = 0.025
torch.cuda.synchronize = lambda *args, **kwargs: None
_state = {"events": [], "ms": []}


def load_pipeline():
    _state["stream"] = torch.cuda.Stream()
    _state["w"] = torch.randn(8192, 8192, device="cuda", dtype=torch.float16) / 100
    return {}


def _account():
    done = [(a, b) for a, b in _state["events"] if b.query()]
    _state["ms"] += [a.elapsed_time(b) for a, b in done]
    _state["events"] = [e for e in _state["events"] if e not in done]
    Path("deferred.json").write_text(json.dumps(_state["ms"]))


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    _account()
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    stream = _state["stream"]
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.cuda.stream(stream):
        start.record(stream)
        a = _state["w"]
        for _ in range(50):   # ~0.1 s of fp16 matmuls on an H100/H200, queued without waiting
            a = a @ _state["w"]
        end.record(stream)
    _state["events"].append((start, end))
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
