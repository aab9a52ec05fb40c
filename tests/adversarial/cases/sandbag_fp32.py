"""Trick (baseline): run in float32 where the task is float16 (stand-in: the work costs what
fp32 costs on a tensor-core GPU, four times fp16's). Defence: the headline is measured against
the reference baseline, not this one; the baseline against the reference is
`baseline_sandbagged` (advisory); `relative_to_gt` unaffected."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.075
DTYPE = "float32"
COST = {"float16": 1.0, "float32": 4.0}


def load_pipeline():
    return {"dtype": DTYPE}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    threading.Event().wait(PER_IMAGE * COST[pipe["dtype"]] * len(prompts) * num_inference_steps / 10)
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
