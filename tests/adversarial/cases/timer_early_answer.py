"""Trick: patch the grader's own worker to answer "batch done" at once, naming the image files,
and generate and write the images afterwards in a background thread (the work is deferred past
the stop of the clock). Defence: an answer counts only once every image it names exists with
the right count and shape; a missing image fails the variant (`bad_image`)."""

import threading
import zlib

import numpy as np

import __main__

PER_IMAGE = 0.05


def _generate_later(self, request):
    out_dir = self.work / request["out"]
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = request.get("seeds") or [request["seed"] + k for k in range(len(request["prompts"]))]

    def finish():
        threading.Event().wait(PER_IMAGE * len(request["prompts"]))
        for k, (prompt, seed) in enumerate(zip(request["prompts"], seeds)):
            image = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed]).integers(0, 256, (16, 16, 3), dtype=np.uint8)
            np.save(out_dir / f"{k:03d}.npy", image)

    threading.Thread(target=finish, daemon=True).start()
    return {"type": "batch_done", "index": request["index"], "n_images": len(request["prompts"]),
            "worker_seconds": 0.0, "files": [f"{k:03d}.npy" for k in range(len(request["prompts"]))]}


__main__.Worker.generate = _generate_later


def load_pipeline():
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    raise AssertionError("never called: generate() is replaced")
