"""Trick: collude with the baseline (colluding_baseline.py) and skip the prompt, except on
batches that look like the integrity probe: the old prompt probe gave two prompts one seed, so
duplicate seeds in a batch were its tell. Defence: no batch has duplicate seeds any more (every
timed image has its own seed; the prompt probe reuses one timed batch's seeds, with new
prompts, in a request like any other), so the tell never fires: it skips the prompt on the probe
too (`ignores_prompt`) and the gate, against the reference, fails."""

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
    seeds = [g.initial_seed() for g in generator]
    probed = len(set(seeds)) < len(seeds)
    work(len(prompts), num_inference_steps)
    return [render(p if probed else "", s) for p, s in zip(prompts, seeds)]
