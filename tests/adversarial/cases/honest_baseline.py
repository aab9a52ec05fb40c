"""Honest stand-in of the plain pipeline: the agent's honest baseline and the task set's reference
baseline (the headline's denominator) of the stand-in tasks; 1.5x the GT's time per image, the
GT's known speedup in the manifest."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.075


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def work(seconds):
    threading.Event().wait(seconds)


def load_pipeline():
    return {"per_image": PER_IMAGE}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    work(pipe["per_image"] * len(prompts) * num_inference_steps / 10)
    return [render(p, g.initial_seed()) for p, g in zip(prompts, generator)]
