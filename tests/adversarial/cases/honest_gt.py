"""Honest, pipeline-free stand-in for a diffusion pipeline (the GT of the adversarial tasks).

"Work" is a wait of PER_IMAGE seconds per image at 10 steps (scaled by the step count), as a
GPU kernel is a wait for the CPU. The image is a deterministic function of (prompt, seed), as a
real pipeline's is: same prompt and seed, same image; another prompt or seed, another image.
"""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.05


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
