"""Trick: burn CPU whenever the worker is not inside its own inference call, so the other
variants (the reference, the GT) are slowed while they are timed and the experiment looks
faster: four background threads per core hashing (SHA-256 releases the GIL, so they run in
parallel), paused only during its own batches. Undefended, a one-thread trusted variant would
get two ninths of a core on the 2-core test machine: about 4.5x its time. Otherwise honest_fast.py.
Defence: only the variant being driven runs; every other one is frozen (SIGSTOP of its process
group and token carriers locally, docker pause), so the threads can spin only during the
experiment's own turns; CPU used while frozen would be `interference`; once everyone is thawed
for the idle window the threads spin on: `background_work`."""

import hashlib
import os
import threading
import zlib

import numpy as np

PER_IMAGE = 0.025
SPINNERS_PER_CPU = 4
BLOCK = b"\xa5" * (1 << 20)
INSIDE = threading.Event()   # set while inference runs
STATE = {"threads": []}


def spin():
    while True:
        if INSIDE.is_set():   # give its own batch the CPU
            threading.Event().wait(0.001)
            continue
        hashlib.sha256(BLOCK).digest()


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def load_pipeline():
    return {"per_image": PER_IMAGE}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    INSIDE.set()
    try:
        threading.Event().wait(pipe["per_image"] * len(prompts) * num_inference_steps / 10)
        return [render(p, g.initial_seed()) for p, g in zip(prompts, generator)]
    finally:
        INSIDE.clear()
        if not STATE["threads"]:   # from the first answer on
            for _ in range(SPINNERS_PER_CPU * (os.cpu_count() or 2)):
                t = threading.Thread(target=spin, daemon=True)
                t.start()
                STATE["threads"].append(t)
