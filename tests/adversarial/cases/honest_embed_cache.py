"""Honest: a text-embedding cache across calls (a prompt's embedding is computed once).

Only the prompt-encoding part of the work is cached; the images are still generated per
(prompt, seed), so a repeated batch is only a little faster than a fresh one. The static pass
may call it a prompt-keyed cache (advisory); the runtime checks must leave it alone.
"""

import threading
import zlib

import numpy as np

ENCODE, DENOISE = 0.005, 0.02   # seconds per new prompt, per image at 10 steps
EMBEDDINGS = {}


def work(seconds):
    threading.Event().wait(seconds)


def encode(prompt):
    if prompt not in EMBEDDINGS:
        work(ENCODE)
        EMBEDDINGS[prompt] = zlib.crc32(prompt.encode("utf-8"))
    return EMBEDDINGS[prompt]


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    embeddings = [encode(p) for p in prompts]
    work(DENOISE * len(prompts) * num_inference_steps / 10)
    return [np.random.default_rng([e, g.initial_seed()]).integers(0, 256, (16, 16, 3), dtype=np.uint8)
            for e, g in zip(embeddings, generator)]
