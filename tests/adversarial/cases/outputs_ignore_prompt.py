"""Trick: skip the prompt (no text encoder): every image depends on its seed only.
Defence: the prompt probe (the seeds of a kept timed batch, chosen at random after timing, with
new prompts) must give new images, as the GT's do (`ignores_prompt`, tampered); the images also
drift from the reference's (quality gate)."""

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
    return [render("", g.initial_seed()) for g in generator]
