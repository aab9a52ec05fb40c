"""Trick (baseline): run four times the task's steps, so the experiment's speedup over it grows.
Defence: the headline is measured against the reference baseline, not this one; the baseline
against the reference is `baseline_sandbagged` (advisory); `relative_to_gt` unaffected."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.075


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    steps = num_inference_steps * 4
    threading.Event().wait(PER_IMAGE * len(prompts) * steps / 10)
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
