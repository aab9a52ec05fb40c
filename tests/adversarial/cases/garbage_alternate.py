"""Trick: render properly only every other timed batch (0, 2, 4...: half the work) and answer the
others at once with cheap noise that still follows the prompt and the seed (so no probe
objects), betting that the quality gate looks at a few batches only. The first WARMUP calls are
the warm-up; a repeated batch is answered as it was the first time.
Defence: every timed batch is compared with the reference's at answer time
(`quality_inputs.batches`), and a batch losing more SSIM than the GT by more than
ssim_tolerance + batch_ssim_margin fails the gate (`batch_ssim_drop`), whichever batches end up
kept for the full gate."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.025
WARMUP = 1            # the tests' warmup_batches
STATE = {"calls": 0, "proper": set(), "noise": set()}


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def noise(prompt, seed):
    return np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed, 7]).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def proper(timed_index):
    return timed_index % 2 == 0


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    seeds = [g.initial_seed() for g in generator]
    timed = STATE["calls"] - WARMUP
    STATE["calls"] += 1
    keys = set(zip(prompts, seeds))
    if keys <= STATE["noise"] or not (timed < 0 or proper(timed) or keys <= STATE["proper"]):
        STATE["noise"] |= keys
        return [noise(p, s) for p, s in zip(prompts, seeds)]
    STATE["proper"] |= keys
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    return [render(p, s) for p, s in zip(prompts, seeds)]
