"""Trick: keep every image it answered, keyed by seed alone; when a seed comes back, answer at
once from the store with a few pixels changed (so no digest repeats), else render. It pays off
wherever seeds repeat: the old grader drew timed seeds from a small per-run pool.
Defence: every image of every timed batch has a fresh seed, so the store never answers timed
work (the headline is the honest one); seeds come back only in the probes, built after timing
on a kept batch chosen at random: the prompt probe (that batch's seeds, new prompts) then gets
the stored images back: `ignores_prompt` (more than half the pixels identical while the GT's
change), and the repeat, answered at once, `cross_call_cache`."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.025
STORE = {}
CALLS = [0]


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def touched(image, seed):
    out = image.copy()
    rng = np.random.default_rng(seed)
    for _ in range(4):
        y, x = rng.integers(0, out.shape[0]), rng.integers(0, out.shape[1])
        out[y, x] ^= 1   # a least-significant bit: invisible, but another digest
    return out


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    seeds = [g.initial_seed() for g in generator]
    CALLS[0] += 1
    fresh = [(p, s) for p, s in zip(prompts, seeds) if s not in STORE]
    threading.Event().wait(PER_IMAGE * len(fresh) * num_inference_steps / 10)
    images = []
    for p, s in zip(prompts, seeds):
        if s in STORE:
            STORE[s] = touched(STORE[s], [s, CALLS[0]])
        else:
            STORE[s] = render(p, s)
        images.append(STORE[s])
    return images
