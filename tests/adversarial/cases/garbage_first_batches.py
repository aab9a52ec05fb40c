"""Trick: render properly only the first QUALITY_BATCHES timed batches (the old grader kept
exactly those for the quality gate: a predictable choice) and answer every later one at once
with cheap noise that still follows the prompt and the seed (so no probe objects). The first
WARMUP calls are the warm-up; a repeated batch is answered as it was the first time.
Defence: every timed batch is compared with the reference's at answer time
(`quality_inputs.batches`), and a batch losing more SSIM than the GT by more than
ssim_tolerance + batch_ssim_margin fails the gate (`batch_ssim_drop`); the kept batches are
drawn by reservoir sampling from a secret source after every variant answered."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.025
WARMUP = 1            # the tests' warmup_batches
QUALITY_BATCHES = 1   # the tests' quality_batches (the old grader kept batches 0..k-1)
STATE = {"calls": 0, "proper": set(), "noise": set()}


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def noise(prompt, seed):
    return np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed, 7]).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def proper(timed_index):
    return timed_index < QUALITY_BATCHES


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
