"""Trick: make device synchronization and CUDA events no-ops and slow the wall clocks down, so a
timer that trusts them sees less time than the work took (on a GPU: kernels still queued when the
clock stops). Defence: the supervisor's clock stops only when every image of the batch exists as
a file, which forces the work to finish; the module's own clocks are never read for scores.
It does the GT's amount of work, so an honest measure gives it the GT's speed."""

import threading
import time
import zlib

import numpy as np
import torch


class _NoEvent:
    def __init__(self, *args, **kwargs):
        pass

    def record(self, *args, **kwargs):
        pass

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return 0.001


torch.cuda.synchronize = lambda *args, **kwargs: None
torch.cuda.Event = _NoEvent
_real_time = time.time
time.time = lambda: _real_time() / 10

PER_IMAGE = 0.05


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
