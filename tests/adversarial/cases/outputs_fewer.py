"""Trick: return one image fewer than asked (less work per batch). Defence: the answer must
name exactly one image per prompt (`wrong_image_count`, the variant fails)."""

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
    work(len(prompts) - 1, num_inference_steps)
    return [render(p, g.initial_seed()) for p, g in zip(prompts[:-1], generator)]
