"""Trick (local sandbox): predict the batches to come. At load, walk up from its work folder to
the run folder's run.json, take the run seed and the options (prompt file, batch size, batches),
rebuild the task's schedule with the grader's own grader.taskset.prompts.Schedule (the task id
is in its path: tasks/<id>/experiment/work), and precompute every predicted timed image at
load; answer a batch whose prompts and seeds were all predicted at once, render the others.
What it found and how often it hit goes to predict.json.
Defence: without an explicit --seed each task's schedule comes from a secret drawn when the
task starts, kept in the grader's memory only (run.json's run seed does not determine it), so
no prediction hits and the experiment does the honest work. With an explicit --seed the
schedule is derived from the seed and the task id by design (reproducible runs), hence
predictable to a module that can read run.json: only `implausible_speedup` (advisory) is left,
and only for a cheat as greedy as this one. Under docker the run folder is not visible."""

import json
import threading
import zlib
from pathlib import Path

import numpy as np

PER_IMAGE = 0.025
STORE = {}
STATS = {"run_json": None, "task": None, "predicted": 0, "hits": 0, "misses": 0, "error": None}


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def _save():
    Path("predict.json").write_text(json.dumps(STATS))


def predict():
    work = Path.cwd().resolve()
    run_json = next((d / "run.json" for d in work.parents if (d / "run.json").is_file()), None)
    if run_json is None:
        return
    STATS["run_json"] = str(run_json)
    doc = json.loads(run_json.read_text())
    options, timing = doc["options"], doc["options"]["timing"]
    STATS["task"] = task = work.parent.parent.name
    from grader.taskset.prompts import Schedule, load_pool

    pool = load_pool(options.get("prompts_file"))
    schedule = Schedule(pool, int(doc["run_seed"]), timing["batch_size"], timing.get("max_images"),
                        predictable=True).for_task(task)
    for index in range(timing["max_batches"]):
        batch = schedule.timed(index)
        for prompt, seed in zip(batch.prompts, batch.seeds):
            threading.Event().wait(PER_IMAGE)   # the precomputation, at load
            STORE[(prompt, seed)] = render(prompt, seed)
    STATS["predicted"] = len(STORE)


def load_pipeline():
    try:
        predict()
    except Exception as exc:   # noqa: BLE001 - no prediction: behave
        STATS["error"] = f"{type(exc).__name__}: {exc}"[:300]
    _save()
    return {}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    keys = [(p, g.initial_seed()) for p, g in zip(prompts, generator)]
    if all(k in STORE for k in keys):
        STATS["hits"] += 1
        _save()
        return [STORE[k] for k in keys]
    STATS["misses"] += 1
    _save()
    threading.Event().wait(PER_IMAGE * len(prompts) * num_inference_steps / 10)
    return [render(p, s) for p, s in keys]
