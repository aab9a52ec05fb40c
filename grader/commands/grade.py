"""``grader grade`` and ``grader validate`` (a pre-flight on the same code path).

``grade`` exits 0 when every task is ok, 1 when the run finished and some task is not
(``--exit-zero``: 0), and like every command 2 on usage or input errors, 3 when the sandbox
cannot run (checked before anything is graded), 130 when interrupted (see ``grader.cli``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from grader.config import GradeConfig, IntegrityConfig, QualityConfig, TimingConfig, with_settings

EXAMPLES = """examples:
  grader grade sub/ --tasks tasks/ --model-dir models/ --out runs/nightly --sandbox docker --device cuda
  grader grade examples/submission --tasks examples/tasks --model-dir examples/models --out runs/x --exit-zero
"""


def add_inputs(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    group = parser.add_argument_group("inputs")
    group.add_argument("submission", type=Path, help="folder with <id>_baseline.py, <id>_experiment.py, <id>_metrics.json")
    group.add_argument("--tasks", type=Path, required=True, help="task set folder (config_data/, gt_code/)")
    group.add_argument("--only", default="", metavar="ID,...", help="comma-separated prompt_ids to grade (default: all)")
    return group


def register(sub) -> None:
    grade = sub.add_parser("grade", help="run and score a submission", epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Run every task's baseline, experiment and GT under the trusted timing protocol, "
                                       "score them, and write the run folder. Exit codes: see `grader --help`.")
    d = TimingConfig()
    inputs = add_inputs(grade)
    inputs.add_argument("--model-dir", type=Path, required=True,
                        help="a diffusers folder, or a folder of them named by model (SD1.5/, SDXL/)")
    inputs.add_argument("--clip-model", type=Path, default=None, help="local CLIP folder for CLIP score (default: none)")
    inputs.add_argument("--prompts", type=Path, default=None,
                        help="prompt pool file, one per line (default: the shipped grader/data/prompts.txt)")

    box = grade.add_argument_group("sandbox and placement")
    box.add_argument("--sandbox", default="auto", choices=["auto", "local", "bwrap", "docker"],
                     help="auto: docker when the engine and a current image are there, else bwrap when it runs "
                          "here, else local, which does not isolate (default: auto)")
    box.add_argument("--docker-runtime", default=None, metavar="NAME",
                     help="OCI runtime of the docker sandbox's containers, e.g. runsc (gVisor; docs/docker.md); "
                          "implies --sandbox docker, refused (exit 3) when the engine has not registered it "
                          "(default: the engine's default runtime, usually runc)")
    box.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where pipelines run (default: cpu)")
    box.add_argument("--gpus", default="", metavar="I,...", help="GPU indices; one task per GPU at a time (default: one GPU)")
    box.add_argument("--pin-cpus", dest="pin_cpus", action="store_true", default=None,
                     help="run each task's variants on a fixed share of the cores (default: on with --device cuda)")
    box.add_argument("--no-pin-cpus", dest="pin_cpus", action="store_false", help="never pin variants to cores")
    box.add_argument("--executor", default="local", choices=["local", "ray"],
                     help="where tasks run: this host's GPUs, or a Ray cluster, one GPU per task (docs/ray.md) "
                          "(default: local)")
    box.add_argument("--ray-address", default=None,
                     help="with --executor ray: the cluster to join (e.g. 10.0.0.5:6379, 'auto') "
                          "(default: start a local Ray)")
    box.add_argument("--variant-timeout", type=float, default=1800.0, metavar="S",
                     help="wall-clock seconds a variant (or a script) may take in all (default: 1800)")

    timing = grade.add_argument_group("timing")
    timing.add_argument("--seed", type=int, default=None, help="run seed (default: random, recorded in the report)")
    timing.add_argument("--batch-size", type=int, default=d.batch_size, help=f"prompts per batch (default: {d.batch_size})")
    timing.add_argument("--warmup-batches", type=int, default=d.warmup_batches,
                        help=f"untimed batches per variant before timing (default: {d.warmup_batches})")
    timing.add_argument("--min-batches", type=int, default=d.min_batches,
                        help=f"timed batches per variant at least (default: {d.min_batches})")
    timing.add_argument("--max-batches", type=int, default=d.max_batches,
                        help=f"timed batches per variant at most (default: {d.max_batches})")
    timing.add_argument("--max-images", type=int, default=None, help="timed images per variant at most (default: no cap)")
    timing.add_argument("--quality-batches", type=int, default=d.quality_batches,
                        help=f"timed batches whose images the quality gate keeps (default: {d.quality_batches})")
    timing.add_argument("--target-ci", type=float, default=d.target_rel_ci,
                        help="stop when the 95%% CI half-width of the median per-image time is within this fraction "
                             f"(default: {d.target_rel_ci})")
    timing.add_argument("--budget", type=float, default=d.budget_seconds, metavar="S",
                        help=f"timed seconds per variant before stopping anyway (default: {d.budget_seconds:g})")

    q = QualityConfig()
    quality = grade.add_argument_group("quality gate (on top of the GT's own loss)")
    quality.add_argument("--clip-tolerance", type=float, default=q.clip_tolerance,
                         help=f"CLIP score points (default: {q.clip_tolerance})")
    quality.add_argument("--ssim-tolerance", type=float, default=q.ssim_tolerance,
                         help=f"SSIM against the reference baseline's images (default: {q.ssim_tolerance})")
    quality.add_argument("--psnr-tolerance", type=float, default=None, metavar="DB",
                         help="PSNR in dB against the reference baseline's images (default: no PSNR check)")

    output = grade.add_argument_group("output and tuning")
    output.add_argument("--out", type=Path, required=True,
                        help="run folder for report.json, report.md, report.html, junit.xml and per-task results; "
                             "re-running the same command resumes it")
    output.add_argument("--run-id", default=None, help="the run's name (default: the --out folder's name)")
    output.add_argument("--exit-zero", action="store_true",
                        help="exit 0 when the run finished even if some task is not ok (default: exit 1 then)")
    output.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.NAME=VALUE",
                        help="set any field of the timing, quality or integrity config, e.g. "
                             "integrity.cache_ratio=0.5 or timing.idle_window_seconds=2 (repeatable); "
                             "the report lists every threshold used (default: none)")
    grade.set_defaults(func=run_grade)

    validate = sub.add_parser("validate", help="pre-flight: check a submission's files and metrics without running them")
    add_inputs(validate)
    validate.add_argument("--json", action="store_true", help="print the verdicts as JSON (default: a table)")
    validate.add_argument("--model-dir", type=Path, default=None,
                          help="also check the model folder the tasks use, as grade does (default: not checked)")
    validate.add_argument("--clip-model", type=Path, default=None, help="also check this CLIP folder (default: not checked)")
    validate.add_argument("--sandbox", default="auto", choices=["auto", "local", "bwrap", "docker"],
                          help="the sandbox grading will use: with docker or bwrap (and auto) the folders must be "
                               "readable by the sandbox's uid (default: auto)")
    validate.set_defaults(func=run_validate)


def _docker_unusable(device: str) -> str | None:
    """None when the Docker engine answers and the sandbox image is current (said), else why not."""
    from grader.errors import SandboxError

    try:
        from grader.isolation import docker as docker_sandbox

        docker_sandbox.client()
        image = docker_sandbox.image_info(gpu=device == "cuda")
    except (SandboxError, ImportError) as exc:
        return f"Docker is not usable here ({str(exc).split(';')[0]})"
    if image.stale:
        return (f"sandbox image {image.name} was built from other sandbox/ sources; rebuild it with "
                "`make image-cpu` (or `make image`)")
    print(f"grader: Docker engine and image {image.name} found: every variant runs in an isolated container")
    return None


def _bwrap_unusable() -> str | None:
    """None when a trivial command runs under bwrap here (tried once), else why not."""
    from grader.isolation.bwrap import unavailable_reason

    return unavailable_reason()


def choose_sandbox(requested: str, device: str = "cpu") -> str:
    """``auto``: Docker when the engine answers and the sandbox image is current, else bwrap when a
    trivial command runs under it, else local (said plainly)."""
    if requested != "auto":
        return requested
    docker_reason = _docker_unusable(device)
    if docker_reason is None:
        return "docker"
    bwrap_reason = _bwrap_unusable()
    if bwrap_reason is None:
        print(f"grader: {docker_reason}:\ngrader: grading with --sandbox bwrap: every variant runs in a "
              "bubblewrap sandbox (own namespaces, no network, non-root uid)")
        return "bwrap"
    print(f"grader: {docker_reason}; bwrap does not work here either ({bwrap_reason.split(';')[0]}):\n"
          "grader: grading with --sandbox local, which does NOT isolate submissions from this machine")
    return "local"


def requested_sandbox(args) -> str:
    """``--sandbox``, where ``--docker-runtime`` turns ``auto`` into ``docker``: a runtime asked for
    is never silently dropped by a fallback to a sandbox that has none."""
    if args.sandbox == "auto" and getattr(args, "docker_runtime", None) is not None:
        return "docker"
    return args.sandbox


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
        sandbox=choose_sandbox(requested_sandbox(args), args.device), device=args.device,
        gpus=tuple(g for g in args.gpus.split(",") if g), only=frozenset(i for i in args.only.split(",") if i),
        run_id=args.run_id, prompts_file=args.prompts, seed=args.seed, variant_timeout=args.variant_timeout,
        script_timeout=args.variant_timeout, timing=tuned["timing"], quality=tuned["quality"],
        integrity=tuned["integrity"],
        executor=args.executor, ray_address=args.ray_address, pin_cpus=args.pin_cpus,
        docker_runtime=args.docker_runtime,
    )


def check_sandbox(name: str, device: str, docker_runtime: str | None = None) -> None:
    """Fail up front (SandboxUnavailable, exit 3) when the chosen sandbox cannot run anything here,
    or the engine has not registered the Docker runtime asked for."""
    if name == "bwrap":
        reason = _bwrap_unusable()
        if reason is not None:
            from grader.errors import SandboxUnavailable

            raise SandboxUnavailable(f"--sandbox bwrap does not work here: {reason}; run `grader doctor`")
        return
    if name != "docker":
        return
    from grader.isolation import docker as docker_sandbox

    docker_sandbox.client()
    docker_sandbox.usable_image(gpu=device == "cuda")
    runtime = docker_sandbox.resolve_runtime(docker_runtime)
    print(f"grader: Docker containers run with runtime {runtime}"
          + ("" if docker_runtime else " (the engine's default)"))


def sandbox_reader(sandbox: str) -> tuple[int, int] | None:
    """The uid and gid a sandboxed worker reads the model folder as; None under local (the grader's own)."""
    if sandbox not in ("docker", "bwrap", "auto"):
        return None
    from grader.isolation.bwrap import SANDBOX_GID, SANDBOX_UID

    return (SANDBOX_UID, SANDBOX_GID) if os.geteuid() == 0 else (os.getuid(), os.getgid())


def check_models(model_dir: Path | None, clip_model: Path | None, tasks: Path, only: set[str] | None,
                 sandbox: str) -> None:
    """Refuse (ConfigError, exit 2) model or CLIP folders the sandboxed worker could not read or load."""
    from grader.taskset.manifest import TaskSet
    from grader.taskset.models import require_inputs

    names = {t.task_key.model for t in TaskSet.from_dir(tasks).select(only).tasks}
    require_inputs(model_dir, names, clip_model, sandbox_reader(sandbox))


def run_grade(args) -> int:
    from grader.pipeline.run import grade
    from grader.record.folder import open_run_dir
    from grader.reports.console import table

    open_run_dir(args.out)   # --out a file or read-only: a ConfigError naming it (exit 2) before anything runs
    cfg = config_from_args(args)
    check_sandbox(cfg.sandbox, cfg.device, cfg.docker_runtime)
    check_models(cfg.model_dir, cfg.quality.clip_model, cfg.tasks, set(cfg.only) or None, cfg.sandbox)
    doc = grade(cfg)
    print()
    print(table(doc))
    out = Path(cfg.out)
    print(f"\nreports: {out / 'report.json'}, report.md, report.html, junit.xml (in {out})")
    not_ok = [t["prompt_id"] for t in doc["tasks"] if t["status"] != "ok"]
    if not_ok and not args.exit_zero:
        print(f"grader: {len(not_ok)} of {len(doc['tasks'])} task(s) not ok: exit 1 (--exit-zero to exit 0)")
        return 1
    return 0


def run_validate(args) -> int:
    from grader.taskset.validate import validate_submission

    only = set(i for i in args.only.split(",") if i) or None
    if args.model_dir is not None or args.clip_model is not None:
        check_models(args.model_dir, args.clip_model, args.tasks, only, args.sandbox)
    problems = validate_submission(args.submission, args.tasks, only)
    bad = [p for p in problems if p[1] != "ok"]
    if args.json:
        print(json.dumps({"ready": len(problems) - len(bad), "tasks": len(problems),
                          "verdicts": [{"prompt_id": i, "status": s, "message": m} for i, s, m in problems]},
                         indent=2, ensure_ascii=False))
        return 1 if bad else 0
    width = shutil.get_terminal_size((100, 20)).columns
    for prompt_id, status, message in problems:
        print(f"{prompt_id:>8}  {status:<16} {message}"[:width])
    print(f"\n{len(problems) - len(bad)}/{len(problems)} tasks ready")
    return 1 if bad else 0
