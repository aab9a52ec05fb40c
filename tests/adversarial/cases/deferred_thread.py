"""Trick: hand the images back early and leave the rest of the work (here: 3 s of number
crunching per batch) to background threads that run after the batch is reported done, on time
that is charged to nobody or to the next variant. Defence: after its last answer the worker must
go idle; CPU time it burns in an idle window is `background_work` (tampered)."""

import threading
import zlib

import numpy as np

PER_IMAGE = 0.025
DEFERRED = 3.0


def _crunch(seconds):
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    a = np.random.default_rng(0).random((192, 192))
    while not stop.is_set():
        a = np.tanh(a @ a)


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    for _ in range(3):
        threading.Thread(target=_crunch, args=(DEFERRED,), daemon=True).start()
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
