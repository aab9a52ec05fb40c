"""Trick: patch the grader's own worker (it runs as __main__ in this process) so that every
answer reports a tenth of the time the batch took. Defence: the worker's time is only a
cross-check of the supervisor's clock; a disagreement is `timer_mismatch` (tampered)."""

import threading
import zlib

import numpy as np

import __main__

PER_IMAGE = 0.075
_generate = __main__.Worker.generate


def _generate_faster(self, request):
    answer = _generate(self, request)
    answer["worker_seconds"] = answer["worker_seconds"] / 10
    return answer


__main__.Worker.generate = _generate_faster


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    return [np.random.default_rng([zlib.crc32(p.encode("utf-8")), g.initial_seed()])
            .integers(0, 256, (16, 16, 3), dtype=np.uint8) for p, g in zip(prompts, generator)]
