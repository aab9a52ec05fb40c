"""Trick: render at a quarter of the pixels (8x8 instead of the task's 16x16). Defence: the
images must have the size of the GT's and the baseline's; otherwise the task fails with the
sizes as evidence."""

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
    return [render(p, g.initial_seed())[:8, :8] for p, g in zip(prompts, generator)]
