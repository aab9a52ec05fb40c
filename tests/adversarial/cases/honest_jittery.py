"""Honest, with uneven batch times: every other call is slow (as with a periodic garbage
collection, a recompile, a clock that boosts and throttles). Images are right and nothing is
cached, so no integrity check may fire; a repeat probe that lands on a fast call must not be
mistaken for a cache hit."""

import threading
import zlib

import numpy as np

FAST, SLOW = 0.01, 0.09   # seconds per image at 10 steps, alternating


def load_pipeline():
    return {"calls": 0}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    pipe["calls"] += 1
    per_image = SLOW if pipe["calls"] % 2 else FAST
    threading.Event().wait(per_image * len(prompts) * num_inference_steps / 10)
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
