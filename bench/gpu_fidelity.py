"""Measurement fidelity on a real GPU: does the grader reproduce known speedups?

    python bench/gpu_fidelity.py --out OUT [--batch-sizes 8,1] [--tasks self,cache,steps] [--regrade 1] [--gpus 0,1]

Builds an SD1.5-architecture pipeline from configs with random weights (fp16, 512 px,
DDIM 50 steps; no model hub), writes a task set and a submission, and grades them with
the real grader (local sandbox, CUDA). Each task pairs a GT with an experiment so one
grading answers two questions:

    self   GT = the baseline itself         experiment = the same pipeline behind a batched inference()
    cache  GT = DeepCache, interval 3       experiment = ToMe, ratio 0.5
    steps  GT = 25 steps                    experiment = DeepCache, interval 3

It also hand-times baseline and DeepCache in one process (synchronize-bracketed,
median of 5) as the reference the grader should land near. Prints one table and
writes it as JSON to OUT/fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.config import GradeConfig, QualityConfig, TimingConfig  # noqa: E402
from grader.pipeline.run import grade  # noqa: E402

HEADER = textwrap.dedent('''
    import os
    import torch
    from diffusers import StableDiffusionPipeline, DDIMScheduler

    def _load():
        pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], torch_dtype=torch.float16)
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(os.environ.get("GRADER_DEVICE", "cuda"))
''')

MODULES = {
    "baseline": HEADER + "\ndef load_pipeline():\n    return _load()\n",
    "wrapper": HEADER + textwrap.dedent('''
        def load_pipeline():
            return _load()

        def inference(pipe, prompts, generator=None, num_inference_steps=None):
            return pipe(prompt=prompts, generator=generator, num_inference_steps=num_inference_steps).images
    '''),
    "deepcache": HEADER + textwrap.dedent('''
        from DeepCache import DeepCacheSDHelper

        def load_pipeline():
            pipe = _load()
            helper = DeepCacheSDHelper(pipe=pipe)
            helper.set_params(cache_interval=3, cache_branch_id=0)
            helper.enable()
            return pipe
    '''),
    "tome": HEADER + textwrap.dedent('''
        import tomesd

        def load_pipeline():
            pipe = _load()
            tomesd.apply_patch(pipe, ratio=0.5)
            return pipe
    '''),
    "steps25": HEADER + textwrap.dedent('''
        def load_pipeline():
            return _load()

        def inference(pipe, prompts, generator=None):
            return pipe(prompt=prompts, generator=generator, num_inference_steps=25).images
    '''),
}
TASKS = {"self": ("baseline", "wrapper", 1.0), "cache": ("deepcache", "tome", 2.2), "steps": ("steps25", "deepcache", 2.0)}


def build_model(root: Path, size: str) -> Path:
    from grader.tinymodels import build_sd15

    folder = root / f"sd15-{size}"
    if not (folder / "model_index.json").is_file():
        import torch

        build_sd15(folder, size=size, dtype=torch.float16)
    return folder


def write_task_set(root: Path, tasks: list[str], steps: int) -> tuple[Path, Path]:
    tasks_dir, sub = root / "tasks", root / "submission"
    (tasks_dir / "gt_code").mkdir(parents=True, exist_ok=True)
    (tasks_dir / "config_data").mkdir(parents=True, exist_ok=True)
    sub.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, name in enumerate(tasks, 1):
        gt, exp, known = TASKS[name]
        pid = str(i)
        (tasks_dir / "gt_code" / f"{pid}.py").write_text(MODULES[gt])
        (sub / f"{pid}_baseline.py").write_text(MODULES["baseline"])
        (sub / f"{pid}_experiment.py").write_text(MODULES[exp])
        (sub / f"{pid}_metrics.json").write_text(json.dumps({
            "schema_version": 1, "device": "cuda", "batch_size": 8, "num_inference_steps": steps,
            "optimizations": [exp], "baseline": {"per_image_seconds": 1.0}, "experiment": {"per_image_seconds": 1.0},
            "speedup": 1.0}))
        manifest.append({
            "original_filename": f"SD1.5_DDIM_{steps}_{gt}_{known}x.py", "prompt_id": pid,
            "task_key": f"SD1.5_DDIM_{steps}", "speedup": known, "category": "fidelity", "difficulty": "easy",
            "prompt_context": name, "path_to_gt_code": f"{pid}.py", "path_to_gen_code": f"{pid}_experiment.py",
            "path_to_gen_code_baseline": f"{pid}_baseline.py", "path_to_metrics": f"{pid}_metrics.json"})
    (tasks_dir / "config_data" / "dataset_manifest.json").write_text(json.dumps(manifest, indent=2))
    return tasks_dir, sub


def hand_timed(model: Path, batch: int, steps: int, repeats: int = 5) -> dict:
    """Reference numbers: baseline and DeepCache timed by hand in one process."""
    import os

    import torch

    os.environ["GRADER_MODEL_DIR"] = str(model)
    os.environ["GRADER_DEVICE"] = "cuda"
    out = {}
    for name in ("baseline", "deepcache"):
        scope: dict = {}
        exec(MODULES[name], scope)  # noqa: S102 - our own benchmark modules
        pipe = scope["load_pipeline"]()
        prompts = [f"a photo of a mountain lake, view {k}" for k in range(batch)]
        pipe(prompt=prompts, num_inference_steps=steps)
        times = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            pipe(prompt=prompts, num_inference_steps=steps)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) / batch)
        out[name] = statistics.median(times)
        del pipe
        torch.cuda.empty_cache()
    out["deepcache_speedup"] = out["baseline"] / out["deepcache"]
    return out


def run(args) -> dict:
    model = args.model or build_model(args.work, args.size)
    rows, results = [], {"batches": {}}
    for batch in args.batch_sizes:
        root = args.work / f"b{batch}"
        tasks_dir, sub = write_task_set(root, args.tasks, args.steps)
        for attempt in range(1 + args.regrade):
            for loading in args.loading:
                timing = TimingConfig(batch_size=batch, warmup_batches=args.warmup, min_batches=8,
                                      max_batches=args.max_batches, target_rel_ci=args.target_ci,
                                      budget_seconds=args.budget, quality_batches=1, load_together=loading == "together")
                label = f"{attempt}" if len(args.loading) == 1 else f"{attempt}{loading[0]}"
                cfg = GradeConfig(submission=sub, tasks=tasks_dir, model_dir=model, out=root / f"run{label}",
                                  sandbox="local", device="cuda", seed=args.seed + attempt, timing=timing,
                                  quality=QualityConfig(), pin_cpus=args.pin_cpus, gpus=args.gpus)
                t0 = time.time()
                doc = grade(cfg, progress=lambda m: print(m, flush=True))
                wall = time.time() - t0
                results["batches"].setdefault(str(batch), []).append({"wall": wall, "gpus": list(args.gpus), "loading": loading,
                                                                      "tasks": doc["tasks"]})
                print(f"batch {batch} run {label} (loading {loading}): {len(doc['tasks'])} tasks graded in {wall:.1f}s "
                      f"on GPUs {list(args.gpus) or ['default']}", flush=True)
                for t in doc["tasks"]:
                    name = args.tasks[int(t["prompt_id"]) - 1]
                    gt, exp, _ = TASKS[name]
                    v = t.get("variants", {})
                    n = {k: (v.get(k, {}).get("timing") or {}).get("n_batches") for k in ("baseline", "experiment", "gt")}
                    ci = t.get("speedup_ci") or [None, None]
                    base = "reference" if "reference" in v else "baseline"
                    rows.append((batch, label, name, f"{gt} vs {base}", t.get("gt_speedup"), None, n["gt"], t["status"]))
                    rows.append((batch, label, name, f"{exp} vs {base}", t.get("speedup"), ci, n["experiment"], t["status"]))
                    if base == "reference":
                        rows.append((batch, label, name, f"{exp} vs agent baseline", t.get("agent_baseline_speedup"), None,
                                     n["baseline"], t["status"]))
                        bvr = t.get("baseline_vs_reference") or {}
                        rows.append((batch, label, name, "agent baseline time / reference time", bvr.get("ratio"),
                                     bvr.get("ci"), n["baseline"], ",".join(t.get("flags") or []) or "no flags"))
                    phases = {k: sum((x.get("phases") or {}).get(k, 0.0) for x in v.values())
                              for k in ("process_start", "load", "warmup", "timed", "probes", "teardown")}
                    timed = phases["timed"]
                    rows.append((batch, label, name, "task wall seconds", t.get("grade_seconds"), None, None,
                                 "summed over variants: " + ", ".join(f"{k} {x:.1f}" for k, x in phases.items())))
                    rows.append((batch, label, name, "wall / timed", (t.get("grade_seconds") or 0.0) / timed if timed else None,
                                 None, None, f"timed rounds {timed:.1f} s"))
        if args.hand_timed:
            results["batches"][f"hand{batch}"] = hand_timed(model, batch, args.steps)
            h = results["batches"][f"hand{batch}"]
            rows.append((batch, "-", "hand", "deepcache vs baseline (hand-timed)", h["deepcache_speedup"], None, 5, "-"))
    results["rows"] = rows
    return results


def print_table(rows) -> None:
    print(f"\n{'batch':>5} {'run':>3}  {'task':<6} {'comparison':<38} {'speedup':>8}  {'95% CI':<13} {'n':>3}  status")
    for batch, attempt, task, what, value, ci, n, status in rows:
        ci_text = f"{ci[0]:.3f}-{ci[1]:.3f}" if ci and ci[0] is not None else "-"
        print(f"{batch:>5} {attempt!s:>3}  {task:<6} {what:<38} {value if value is None else f'{value:.3f}':>8}  {ci_text:<13} {n!s:>3}  {status}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu_fidelity"))
    parser.add_argument("--size", default="sd15", choices=["sd15", "tiny"])
    parser.add_argument("--model", type=Path, default=None, help="an already built model folder (default: build one under --work)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-sizes", default="8,1")
    parser.add_argument("--tasks", default="self,cache,steps")
    parser.add_argument("--regrade", type=int, default=0, help="grade the whole task set this many more times (reproducibility)")
    parser.add_argument("--gpus", default="", help="GPU indices for concurrent tasks, e.g. 0,1 (default: one GPU)")
    parser.add_argument("--target-ci", type=float, default=0.01)
    parser.add_argument("--budget", type=float, default=45.0)
    parser.add_argument("--max-batches", type=int, default=40)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--hand-timed", action="store_true")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up batches per variant")
    parser.add_argument("--loading", default="together",
                        help="how variants load: together, apart (the GT alone, then each capped variant alone), "
                             "or apart,together to grade both ways back to back")
    parser.add_argument("--pin-cpus", default="auto", choices=["auto", "on", "off"],
                        help="fixed share of the cores per task (auto: the grader's default, on for CUDA)")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    args.gpus = tuple(g for g in args.gpus.split(",") if g)
    args.tasks = [t for t in args.tasks.split(",") if t]
    args.loading = [m for m in args.loading.split(",") if m]
    if not args.loading or any(m not in ("together", "apart") for m in args.loading):
        parser.error(f"--loading: expected together, apart or both, got {','.join(args.loading)!r}")
    args.pin_cpus = {"auto": None, "on": True, "off": False}[args.pin_cpus]
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    print_table(results["rows"])
    (args.out / "fidelity.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
