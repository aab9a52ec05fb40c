"""Trick: collude with the baseline (colluding_baseline.py) and skip the prompt, except on
probe batches, recognised by reading the worker's request from the caller's frame (probe
batches were once written to out/repeat..., out/seedprobe..., out/promptprobe...; timed ones to
out/b...). Defence: probe requests are identical in form to timed ones (out/b####, indices
continuing after the timed ones, seeds on every request), so it skips the prompt on the probes
too (`ignores_prompt`); the gate, against the reference, fails."""

import sys
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
    request = sys._getframe(1).f_locals.get("request") or {}
    probed = not str(request.get("out", "out/b")).rsplit("/", 1)[-1].startswith("b")
    work(len(prompts), num_inference_steps)
    return [render(p if probed else "", g.initial_seed()) for p, g in zip(prompts, generator)]
