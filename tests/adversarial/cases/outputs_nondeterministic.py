"""Trick (or bug): ignore the generators and draw fresh randomness, so the images cannot be
compared one to one and a repeated batch gives other images. Defence: the same prompt and seed
twice must give the same images (probe: `nondeterministic`); quality fails against the baseline."""

import random
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
    return [render(p, random.randrange(2**31)) for p in prompts]
