"""Honest, without inference(): the grader calls pipe(prompt=..., num_inference_steps=..., generator=...)."""

import threading
import zlib

import numpy as np


class Output:
    def __init__(self, images):
        self.images = images


class Pipe:
    per_image = 0.025

    def __call__(self, prompt, num_inference_steps, generator):
        threading.Event().wait(self.per_image * len(prompt) * num_inference_steps / 10)
        return Output([np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
                       .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompt, generator)])


def load_pipeline():
    return Pipe()
