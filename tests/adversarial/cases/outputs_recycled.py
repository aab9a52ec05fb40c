"""Trick: generate honestly once (the warm-up), then hand the same images back for every later
batch. Defence: digests of every timed image; one seen twice is `recycled_images` (tampered)."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.025


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def work(n, steps):
    threading.Event().wait(PER_IMAGE * n * steps / 10)


def load_pipeline():
    return {}

STORE = []


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    if not STORE:
        work(len(prompts), num_inference_steps)
        STORE.extend(render(p, g.initial_seed()) for p, g in zip(prompts, generator))
    return [STORE[k % len(STORE)] for k in range(len(prompts))]
