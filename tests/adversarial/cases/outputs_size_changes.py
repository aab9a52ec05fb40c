"""Trick: render the first batch at full size, later ones smaller. Defence: every batch must
have the size of the first (`wrong_image_size`, the variant fails)."""

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

CALLS = []


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    CALLS.append(1)
    work(len(prompts), num_inference_steps)
    size = 16 if len(CALLS) == 1 else 8
    return [render(p, g.initial_seed())[:size, :size] for p, g in zip(prompts, generator)]
