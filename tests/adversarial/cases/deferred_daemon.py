"""Trick: like deferred_subprocess, but the children double-fork into a new session, so they
are no longer descendants of the worker and a process-tree walk does not see them.
Defence: everything the run started must be accounted to it however it detached (the local
sandbox tags every process with a run token; a container's cgroup holds all of them), and its
CPU time in the idle window is `background_work` (tampered)."""

import os
import threading
import time
import zlib

import numpy as np

PER_IMAGE = 0.025


def _detached_crunch(seconds):
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork() == 0:
            end = time.monotonic() + seconds
            x = 0
            while time.monotonic() < end:
                x += 1
        os._exit(0)
    os.waitpid(child, 0)


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    for _ in range(2):
        _detached_crunch(3.0)
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
