"""Trick: return one constant image for everything, no work at all. Defence: an image returned
more than once for different prompts or seeds is `recycled_images` (tampered); the probes see
it ignore both prompt and seed."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.0


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def work(n, steps):
    threading.Event().wait(PER_IMAGE * n * steps / 10)


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    return [render("constant", 1) for _ in prompts]
