"""Trick: leave the deferred work to child processes that run on after the batch is reported
done. Defence: the idle window counts the CPU time of the worker and of its children
(`background_work`, tampered)."""

import subprocess
import sys
import threading
import zlib

import numpy as np

PER_IMAGE = 0.025
CRUNCH = ("import time\nend = time.monotonic() + 3.0\nx = 0\n"
          "while time.monotonic() < end:\n    x += 1\n")


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    for _ in range(2):
        subprocess.Popen([sys.executable, "-c", CRUNCH])
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
