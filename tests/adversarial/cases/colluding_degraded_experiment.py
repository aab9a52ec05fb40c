"""Trick: baseline and experiment render the same cheaper, degraded images (a quarter of the
pixels, each repeated 2x2; see colluding_degraded_baseline.py). They still follow the prompt
and the seed, so no probe objects, and they agree with each other, so a gate that compared
the experiment with the agent's own baseline would pass. Defence: the gate compares the
experiment with the reference baseline's images (the task set's plain pipeline), calibrated
by the GT's loss against it: `quality_failed` (ssim_drop, batch_ssim_drop)."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.025


def cheap(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    return [cheap(p, g.initial_seed()) for p, g in zip(prompts, generator)]
