"""Colluding pair, the baseline half: it skips the prompt too, so an experiment that skips it
matches the agent's baseline image for image (a gate comparing the two, as the old one did,
passes)."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.075


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
