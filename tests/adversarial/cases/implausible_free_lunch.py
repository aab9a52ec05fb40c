"""Trick: the right images at no cost at all (here: an honest-looking module that does no work;
in the wild: images smuggled in from somewhere the checks do not see). Defence: a speedup far
beyond the GT's known one is `implausible_speedup`, flagged for review with its numbers."""

import zlib

import numpy as np


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
