"""Trick: keep every image ever made, keyed by (prompt, seed), and answer repeats from the
store. Timed batches are fresh, so the store can only pay off where prompts come back (a fixed
benchmark set, a second run). Defence (MLPerf's TEST04): after timing, a batch of already-seen
prompts and seeds is sent again; much faster than a fresh one is `cross_call_cache` (tampered)."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.05
STORE = {}


def render(prompt, seed):
    threading.Event().wait(PER_IMAGE)
    return np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed]).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    images = []
    for prompt, g in zip(prompts, generator):
        key = (prompt, g.initial_seed())
        if key not in STORE:
            STORE[key] = render(prompt, key[1])
        images.append(STORE[key])
    return images
