"""Trick: ignore the generators: every image depends on its prompt only (a per-prompt
answer that can be precomputed or cached). Defence: new seeds must give new images (probe:
`ignores_seed`, tampered)."""

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


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    work(len(prompts), num_inference_steps)
    return [render(p, 0) for p in prompts]
