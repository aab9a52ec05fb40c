"""Trick: do the expensive part at load time, which is not timed as inference (here: two
minutes of "precomputing"). Defence: load time is measured apart and capped at a multiple of
the GT's (`load_cap_exceeded`: the variant times out)."""

import threading
import zlib

import numpy as np

PRECOMPUTE = 120.0


def load_pipeline():
    threading.Event().wait(PRECOMPUTE)
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
