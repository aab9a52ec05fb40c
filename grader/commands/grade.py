"""``grader grade`` and ``grader validate`` (a pre-flight on the same code path)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from grader.config import GradeConfig, IntegrityConfig, QualityConfig, TimingConfig, with_settings


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission", type=Path, help="folder with <id>_baseline.py, <id>_experiment.py, <id>_metrics.json")
    parser.add_argument("--tasks", type=Path, required=True, help="task set folder (config_data/, gt_code/)")
    parser.add_argument("--only", default="", help="comma-separated prompt_ids to grade")


def register(sub) -> None:
    grade = sub.add_parser("grade", help="run and score a submission")
    add_common(grade)
    grade.add_argument("--model-dir", type=Path, required=True, help="a diffusers folder, or a folder of them named by model (SD1.5/, SDXL/)")
    grade.add_argument("--out", type=Path, required=True, help="run folder for report.json, report.md and per-task results")
    grade.add_argument("--sandbox", default="auto", choices=["auto", "local", "docker"])
    grade.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    grade.add_argument("--gpus", default="", help="comma-separated GPU indices to pin runs to")
    grade.add_argument("--pin-cpus", dest="pin_cpus", action="store_true", default=None,
                       help="run each task's variants on a fixed share of the cores (default: on with --device cuda)")
    grade.add_argument("--no-pin-cpus", dest="pin_cpus", action="store_false")
    grade.add_argument("--executor", default="local", choices=["local", "ray"],
                       help="where tasks run: this host's GPUs, or a Ray cluster (one GPU per task; docs/ray.md)")
    grade.add_argument("--ray-address", default=None,
                       help="with --executor ray: the cluster to join (e.g. 10.0.0.5:6379, 'auto'); default: start a local Ray")
    grade.add_argument("--clip-model", type=Path, default=None, help="local CLIP folder for CLIP score")
    grade.add_argument("--prompts", type=Path, default=None, help="prompt pool file (one per line); default: the shipped pool")
    grade.add_argument("--run-id", default=None)
    grade.add_argument("--seed", type=int, default=None, help="run seed (default: random, recorded in the report)")
    grade.add_argument("--batch-size", type=int, default=TimingConfig.batch_size)
    grade.add_argument("--warmup-batches", type=int, default=TimingConfig.warmup_batches)
    grade.add_argument("--min-batches", type=int, default=TimingConfig.min_batches)
    grade.add_argument("--max-batches", type=int, default=TimingConfig.max_batches)
    grade.add_argument("--max-images", type=int, default=None)
    grade.add_argument("--quality-batches", type=int, default=TimingConfig.quality_batches)
    grade.add_argument("--target-ci", type=float, default=TimingConfig.target_rel_ci, help="stop when the 95%% CI half-width of the median is within this fraction")
    grade.add_argument("--budget", type=float, default=TimingConfig.budget_seconds, help="timed seconds per variant before stopping anyway")
    grade.add_argument("--variant-timeout", type=float, default=1800.0)
    grade.add_argument("--clip-tolerance", type=float, default=QualityConfig.clip_tolerance)
    grade.add_argument("--ssim-tolerance", type=float, default=QualityConfig.ssim_tolerance)
    grade.add_argument("--psnr-tolerance", type=float, default=None)
    grade.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.NAME=VALUE",
                       help="set any field of the timing, quality or integrity config, e.g. "
                            "integrity.cache_ratio=0.5 or timing.idle_window_seconds=2 (repeatable); "
                            "the report lists every threshold used")
    grade.set_defaults(func=run_grade)

    validate = sub.add_parser("validate", help="pre-flight: check a submission's files and metrics without running them")
    add_common(validate)
    validate.set_defaults(func=run_validate)


def choose_sandbox(requested: str, device: str = "cpu") -> str:
    """``auto``: Docker when the engine answers and the sandbox image is current, else local (said plainly)."""
    if requested != "auto":
        return requested
    from grader.errors import SandboxError

    try:
        from grader.isolation import docker as docker_sandbox

        docker_sandbox.client()
        image = docker_sandbox.image_info(gpu=device == "cuda")
    except (SandboxError, ImportError) as exc:
        reason = str(exc).split(";")[0]
        print(f"grader: Docker is not usable here ({reason}):\n"
              "grader: grading with --sandbox local, which does NOT isolate submissions from this machine")
        return "local"
    if image.stale:
        print(f"grader: sandbox image {image.name} was built from other sandbox/ sources; rebuild it with "
              "`make image-cpu` (or `make image`).\ngrader: grading with --sandbox local, which does NOT isolate submissions")
        return "local"
    print(f"grader: Docker engine and image {image.name} found: every variant runs in an isolated container")
    return "docker"


def config_from_args(args) -> GradeConfig:
    timing = TimingConfig(
        batch_size=args.batch_size, warmup_batches=args.warmup_batches, min_batches=args.min_batches,
        max_batches=args.max_batches, max_images=args.max_images, target_rel_ci=args.target_ci,
        budget_seconds=args.budget, quality_batches=args.quality_batches,
    )
    quality = QualityConfig(clip_model=args.clip_model, clip_tolerance=args.clip_tolerance,
                            ssim_tolerance=args.ssim_tolerance, psnr_tolerance_db=args.psnr_tolerance)
    tuned = with_settings({"timing": timing, "quality": quality, "integrity": IntegrityConfig()}, args.settings)
    return GradeConfig(
        submission=args.submission, tasks=args.tasks, model_dir=args.model_dir, out=args.out,
        sandbox=choose_sandbox(args.sandbox, args.device), device=args.device,
        gpus=tuple(g for g in args.gpus.split(",") if g), only=frozenset(i for i in args.only.split(",") if i),
        run_id=args.run_id, prompts_file=args.prompts, seed=args.seed, variant_timeout=args.variant_timeout,
        script_timeout=args.variant_timeout, timing=tuned["timing"], quality=tuned["quality"],
        integrity=tuned["integrity"],
        executor=args.executor, ray_address=args.ray_address, pin_cpus=args.pin_cpus,
    )


def run_grade(args) -> int:
    from grader.pipeline.run import grade
    from grader.reports.console import table

    cfg = config_from_args(args)
    doc = grade(cfg)
    print()
    print(table(doc))
    out = Path(cfg.out)
    print(f"\nreports: {out / 'report.json'}, report.md, report.html, junit.xml (in {out})")
    return 0


def run_validate(args) -> int:
    from grader.taskset.validate import validate_submission

    problems = validate_submission(args.submission, args.tasks, set(i for i in args.only.split(",") if i) or None)
    width = shutil.get_terminal_size((100, 20)).columns
    for prompt_id, status, message in problems:
        print(f"{prompt_id:>8}  {status:<16} {message}"[:width])
    bad = [p for p in problems if p[1] != "ok"]
    print(f"\n{len(problems) - len(bad)}/{len(problems)} tasks ready")
    return 1 if bad else 0
