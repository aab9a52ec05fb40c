"""Trick: freeze the clocks of the process at import, so whoever times the batch inside it
reads zero seconds. Defence: the trusted clock is the supervisor's, in another process; the
worker's own synchronize-bracketed time is only a cross-check, and its disagreement is a flag."""

import threading
import time
import zlib

import numpy as np

PER_IMAGE = 0.075
_FROZEN = time.perf_counter()
time.perf_counter = lambda: _FROZEN
time.perf_counter_ns = lambda: int(_FROZEN * 1e9)
time.monotonic = lambda: _FROZEN


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
