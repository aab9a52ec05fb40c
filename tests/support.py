"""Shared builders for tests: tiny task sets, module files, small timing configs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from grader.config import TimingConfig

PLAIN_MODULE = textwrap.dedent('''
    import os
    from diffusers import StableDiffusionPipeline

    def load_pipeline():
        pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"])
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(os.environ.get("GRADER_DEVICE", "cpu"))
''')

BATCHED_WRAPPER = PLAIN_MODULE + textwrap.dedent('''
    def inference(pipe, prompts, generator=None, num_inference_steps=None):
        return pipe(prompt=prompts, generator=generator, num_inference_steps=num_inference_steps).images
''')

HALF_STEPS = PLAIN_MODULE + textwrap.dedent('''
    def inference(pipe, prompts, generator=None, num_inference_steps=None):
        return pipe(prompt=prompts, generator=generator, num_inference_steps=num_inference_steps // 2).images
''')

# A pipeline-free module: sleeps per image and returns seeded noise images. Fast to
# import, so protocol tests spend their time on the protocol.
SLEEPY_MODULE = textwrap.dedent('''
    import time
    import numpy as np

    PER_IMAGE = {per_image}

    class Pipe:
        def __call__(self, prompt, num_inference_steps, generator):
            time.sleep(PER_IMAGE * len(prompt))
            class Out:
                images = [np.random.default_rng(g.initial_seed()).integers(0, 255, (16, 16, 3), dtype=np.uint8)
                          for g in generator]
            return Out()

    def load_pipeline():
        return Pipe()
''')


def sleepy(per_image: float = 0.01) -> str:
    return SLEEPY_MODULE.format(per_image=per_image)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def small_timing(**overrides) -> TimingConfig:
    base = dict(batch_size=2, warmup_batches=1, min_batches=6, max_batches=8, quality_batches=1,
                budget_seconds=60, target_rel_ci=0.5)
    base.update(overrides)
    return TimingConfig(**base)


def metrics(speedup: float = 1.0) -> str:
    return json.dumps({
        "schema_version": 1, "device": "cpu", "batch_size": 2, "num_inference_steps": 10,
        "optimizations": ["none"], "baseline": {"per_image_seconds": 1.0},
        "experiment": {"per_image_seconds": 1.0 / speedup}, "speedup": speedup,
    })


def task_set(root: Path, entries: list[dict]) -> Path:
    """Write a task set; each entry needs prompt_id and gt (module text); the rest defaults.

    ``reference`` (module text) is the task's reference baseline, written to
    ``reference_code/<id>.py``; without it a pipeline-free GT doubles as the reference (the
    grader's default reference is a real diffusers pipeline) and a diffusers GT gets the
    grader's default."""
    manifest = []
    for e in entries:
        pid = e["prompt_id"]
        write(root / "gt_code" / f"{pid}.py", e["gt"])
        reference = e.get("reference", None if "diffusers" in e["gt"] else e["gt"])
        extra = {}
        if reference is not None:
            write(root / "reference_code" / f"{pid}.py", reference)
            extra["path_to_reference_code"] = f"{pid}.py"
        manifest.append({**extra,
            "original_filename": e.get("original_filename", f"SD1.5_DDIM_10_x_{e.get('speedup', 1.5)}x.py"),
            "prompt_id": pid, "task_key": e.get("task_key", "SD1.5_DDIM_10"), "speedup": e.get("speedup", 1.5),
            "category": "test", "difficulty": e.get("difficulty", "easy"), "prompt_context": "test task",
            "path_to_gt_code": f"{pid}.py", "path_to_gen_code": f"{pid}_experiment.py",
            "path_to_gen_code_baseline": f"{pid}_baseline.py", "path_to_metrics": f"{pid}_metrics.json",
        })
    write(root / "config_data" / "dataset_manifest.json", json.dumps(manifest, indent=2))
    return root


def prompt_file(path: Path, n: int = 40) -> Path:
    subjects = ["lighthouse", "fox", "teapot", "castle", "robot", "orchard", "violin", "glacier"]
    styles = ["oil painting", "photo", "pencil sketch", "watercolor", "pixel art"]
    lines = [f"a {styles[i % len(styles)]} of a {subjects[i % len(subjects)]}, variation {i}" for i in range(n)]
    return write(path, "\n".join(lines) + "\n")


def grade_args(tmp_path: Path, ids: str | tuple[str, ...] = ("1",), per_image: float = 0.005,
               missing_experiment: tuple[str, ...] = ()) -> list[str]:
    """``grader grade`` arguments for a submission of pipeline-free modules (one task per id) and the
    timing options that keep its grading to seconds; ``missing_experiment`` ids have no experiment file."""
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": pid, "gt": sleepy(per_image)} for pid in ids])
    sub = tmp_path / "sub"
    for pid in ids:
        write(sub / f"{pid}_baseline.py", sleepy(per_image))
        if pid not in missing_experiment:
            write(sub / f"{pid}_experiment.py", sleepy(per_image))
        write(sub / f"{pid}_metrics.json", metrics(1.0))
    write(tmp_path / "models" / "model_index.json", "{}")
    return [str(sub), "--tasks", str(tasks), "--model-dir", str(tmp_path / "models"), "--out", str(tmp_path / "run"),
            "--prompts", str(prompt_file(tmp_path / "prompts.txt")), "--batch-size", "2", "--warmup-batches", "1",
            "--min-batches", "2", "--max-batches", "2", "--quality-batches", "1", "--target-ci", "0.5"]
