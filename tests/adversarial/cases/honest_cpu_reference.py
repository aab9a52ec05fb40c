"""Honest, CPU-bound stand-in of the plain pipeline (reference and baseline of the interference
tasks): a fixed amount of computation per image (UNITS x SHA-256 of 1 MiB, about 0.075 s on the
2-core test machine), not a wait, so anything else running on the CPU while it is timed slows
it down. Images as honest_gt.py's."""

import hashlib
import zlib

import numpy as np

UNITS = 85
BLOCK = b"\x5a" * (1 << 20)


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def work(units):
    for _ in range(units):
        hashlib.sha256(BLOCK).digest()


def load_pipeline():
    return {"units": UNITS}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    work(round(pipe["units"] * len(prompts) * num_inference_steps / 10))
    return [render(p, g.initial_seed()) for p, g in zip(prompts, generator)]
