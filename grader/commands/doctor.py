"""``grader doctor`` (is this machine ready to grade under Docker?) and ``grader cleanup``.

doctor checks, in order: the docker SDK, the daemon, its OCI runtimes (gVisor's ``runsc`` registered
or not, and the one the sandbox containers will run with), the NVIDIA runtime, the host's GPUs, the
sandbox image (present, its digest, built from this grader's ``sandbox/``), a GPU seen from inside
a container, bwrap (installed, and whether a trivial command runs under it: ``--sandbox auto``'s
fallback when Docker is not usable; a warning, never a failure), and the model and CLIP folders
(:mod:`grader.taskset.models`: present, complete, the model folder readable by the container's uid). Every
failure says how to fix it. Exit code 0 when nothing failed (warnings allowed), 2 when a model or
CLIP folder failed (an input error, as in ``grade``), 1 otherwise.

cleanup removes containers and volumes labelled ``sd-grader.managed=1`` that a killed grader left
behind (those whose owning process is gone; ``--all`` takes every one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
FOLDER_CHECKS = ("model folder", "CLIP folder")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def register(sub) -> None:
    doctor = sub.add_parser("doctor", help="check that this machine can grade in the docker sandbox")
    doctor.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="what grading will use (auto: cuda when nvidia-smi is present)")
    doctor.add_argument("--docker-runtime", default=None, metavar="NAME",
                        help="the OCI runtime grading will ask for, e.g. runsc (default: the engine's default)")
    doctor.add_argument("--image", default=None, help="sandbox image (default: GRADER_IMAGE, else sd-grader-sandbox:cpu|gpu)")
    doctor.add_argument("--model-dir", type=Path, default=Path(os.environ.get("GRADER_MODEL_DIR", "examples/models")))
    doctor.add_argument("--clip-model", type=Path, default=None, help="CLIP folder (default: MODEL_DIR/clip)")
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.set_defaults(func=run_doctor)

    cleanup = sub.add_parser("cleanup", help="remove containers and volumes left behind by killed runs")
    cleanup.add_argument("--all", action="store_true", help="also those of graders still running")
    cleanup.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    cleanup.add_argument("--run", default=None, help="only the containers and volumes of this run id (default: every run)")
    cleanup.set_defaults(func=run_cleanup)


# ---------------------------------------------------------------------------- doctor


def _runtime_checks(info: dict, asked: str | None) -> list[Check]:
    """Whether gVisor is registered, and which runtime the sandbox containers will run with."""
    names = sorted((info.get("Runtimes") or {}).keys())
    default = str(info.get("DefaultRuntime") or "runc")
    gvisor_fix = "install gVisor and register runsc with dockerd (docs/docker.md, \"gVisor\")"
    if "runsc" in names:
        checks = [Check("gVisor (runsc)", OK, "registered: grade with --docker-runtime runsc for a user-space kernel")]
    else:
        checks = [Check("gVisor (runsc)", FAIL if asked == "runsc" else SKIP,
                        "not registered: the sandbox containers share the host's kernel", gvisor_fix)]
    if asked is not None and asked not in names:
        checks.append(Check("docker runtime", FAIL, f"{asked!r} is not registered; registered runtimes: "
                                                    f"{', '.join(names) or 'none'} (default {default})",
                            gvisor_fix if asked == "runsc" else f"register {asked} in /etc/docker/daemon.json "
                                                                 "(\"runtimes\") and restart the daemon"))
    else:
        which = f"{asked} (--docker-runtime)" if asked else f"{default} (the engine's default)"
        checks.append(Check("docker runtime", OK, f"containers will run with {which}; registered: {', '.join(names)}"))
    return checks


def _docker_checks(device: str, image: str | None, runtime: str | None = None) -> list[Check]:
    checks: list[Check] = []
    try:
        from grader.isolation import docker as dsb
    except Exception as exc:  # noqa: BLE001
        return [Check("docker SDK", FAIL, f"grader.isolation.docker does not import: {exc}",
                      "pip install 'docker>=7' into the grader's environment")]
    if dsb.IMPORT_ERROR is not None:
        return [Check("docker SDK", FAIL, str(dsb.IMPORT_ERROR), "pip install 'docker>=7' into the grader's environment")]
    try:
        cl = dsb.client()
        info = cl.info()
        version = cl.version()
    except Exception as exc:  # noqa: BLE001
        return [Check("daemon", FAIL, str(exc),
                      "install the engine (Debian: apt-get install docker.io) and start it (`sudo systemctl start "
                      "docker`, or `dockerd --bridge=none --iptables=false --ip-masq=false &`); a non-root user "
                      "needs to be in the docker group")]
    checks.append(Check("daemon", OK, f"Docker {version.get('Version')} (API {version.get('ApiVersion')}), "
                                      f"cgroup v{info.get('CgroupVersion', '?')}, {info.get('NCPU')} CPUs, "
                                      f"{info.get('MemTotal', 0) / 2**30:.1f} GiB"))
    checks += _runtime_checks(info, runtime)
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    hook = next((h for h in ("nvidia-container-runtime-hook", "nvidia-container-cli", "nvidia-ctk") if shutil.which(h)), None)
    want_gpu = device == "cuda"
    if "nvidia" in runtimes or hook:
        checks.append(Check("nvidia runtime", OK, f"runtimes {runtimes}" + (f", {hook} on PATH" if hook else "")))
    else:
        checks.append(Check("nvidia runtime", FAIL if want_gpu else SKIP,
                            f"no nvidia runtime (runtimes: {runtimes}) and no nvidia-container-toolkit on PATH",
                            "install nvidia-container-toolkit, run `sudo nvidia-ctk runtime configure --runtime=docker` "
                            "and restart the daemon" if want_gpu else ""))
    gpus = _host_gpus()
    if gpus:
        checks.append(Check("GPUs", OK, "; ".join(gpus)))
    else:
        checks.append(Check("GPUs", FAIL if want_gpu else SKIP, "nvidia-smi lists no GPU (or is absent)",
                            "install the NVIDIA driver (nvidia-smi must list the cards)" if want_gpu else ""))
    try:
        img = dsb.image_info(image, gpu=want_gpu)
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("image", FAIL, str(exc), "make image" if want_gpu else "make image-cpu (or make image on GPU hosts)"))
        return checks
    detail = f"{img.name} id {img.id[:19]} digest {img.digest}"
    if img.stale:
        checks.append(Check("image", FAIL, detail + "; built from other sandbox/ sources than this grader's",
                            "rebuild: make image" if want_gpu else "rebuild: make image-cpu"))
    else:
        checks.append(Check("image", OK, detail))
    if want_gpu and gpus and checks[-1].status == OK:
        checks.append(_gpu_in_container(cl, img.id))
    return checks


def _bwrap_checks() -> list[Check]:
    from grader.isolation import bwrap

    fix = "apt-get install bubblewrap (Debian/Ubuntu; `make grade` does it as root)"
    path = bwrap.bwrap_path()
    if not path:
        return [Check("bwrap", WARN, "not installed: without Docker, `--sandbox auto` falls back to local, which "
                                     "does not isolate", fix)]
    try:
        version, _ = bwrap.bwrap_features(path)
    except Exception as exc:  # noqa: BLE001
        return [Check("bwrap", WARN, f"{path} does not run: {exc}", fix)]
    checks = [Check("bwrap", OK, f"{path} ({version})")]
    reason = bwrap.unavailable_reason()
    if reason is None:
        checks.append(Check("bwrap sandbox", OK, f"a command ran in its own namespaces as uid {bwrap.SANDBOX_UID}, "
                                                 "without network or capabilities"))
    else:
        checks.append(Check("bwrap sandbox", WARN, reason[-500:],
                            "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or "
                            "user.max_user_namespaces > 0; Ubuntu 24.04: an AppArmor profile for bwrap), or run as root"))
    return checks


def _host_gpus() -> list[str]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.startswith("GPU ")]


def _gpu_in_container(cl, image_id: str) -> Check:
    import docker

    try:
        out = cl.containers.run(
            image_id, entrypoint=["python", "-c", "import torch; print(torch.cuda.device_count(), torch.cuda.get_device_name(0))"],
            device_requests=[docker.types.DeviceRequest(device_ids=["0"], capabilities=[["gpu"]])],
            network_mode="none", remove=True, stdout=True, stderr=True,
            labels={"sd-grader.managed": "1", "sd-grader.run": "doctor"},
        )
    except Exception as exc:  # noqa: BLE001
        return Check("GPU in container", FAIL, str(exc)[-500:],
                     "check nvidia-container-toolkit (`nvidia-ctk runtime configure --runtime=docker`, restart docker) "
                     "and that the image's CUDA fits the driver")
    return Check("GPU in container", OK, out.decode(errors="replace").strip())


def _folder_check(name: str, folder: Path, kind: str, fix: str) -> Check:
    """Present (itself or one level down), and readable and loadable by the container's uid."""
    from grader.commands.grade import sandbox_reader
    from grader.taskset.models import problems

    marker = "model_index.json" if kind == "pipeline" else "config.json"
    if not folder.is_dir():
        return Check(name, FAIL, f"{folder} is not a folder", fix)
    found = sorted({p.parent for p in [folder / marker, *folder.glob(f"*/{marker}")] if p.is_file()})
    if kind == "clip":
        found = [folder] if (folder / marker).is_file() else found[:1]
    if not found:
        return Check(name, FAIL, f"{folder} holds no {marker} (itself or one level down)", fix)
    reader = sandbox_reader("docker") if kind == "pipeline" else None   # CLIP: read by the grader itself
    bad = [p for f in found for p in problems(f, kind, reader)]
    if bad:
        fixes = sorted({p.fix for p in bad}, key=[p.fix for p in bad].index)
        return Check(name, FAIL, f"{len(bad)} problem(s), e.g. {bad[0].path}: {bad[0].message}", "; ".join(fixes))
    return Check(name, OK, ", ".join(str(p) for p in found[:4]))


def doctor_checks(device: str = "auto", image: str | None = None, model_dir: Path | None = None,
                  clip_model: Path | None = None, docker_runtime: str | None = None) -> list[Check]:
    if device == "auto":
        device = "cuda" if shutil.which("nvidia-smi") else "cpu"
    checks = _docker_checks(device, image, docker_runtime)
    checks += _bwrap_checks()
    model_dir = model_dir or Path("examples/models")
    checks.append(_folder_check("model folder", model_dir, "pipeline",
                                "make models (builds the example pipelines), or pass --model-dir DIR"))
    clip = clip_model or model_dir / "clip"
    checks.append(_folder_check("CLIP folder", clip, "clip",
                                "make models (builds a CLIP folder in MODELS/clip), or pass --clip-model DIR"))
    return checks


def run_doctor(args: argparse.Namespace) -> int:
    checks = doctor_checks(args.device, args.image, args.model_dir, args.clip_model, args.docker_runtime)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{c.status:>4}  {c.name:<{width}}  {c.detail}")
            if c.fix and c.status in (FAIL, WARN):
                print(f"{'':>4}  {'':<{width}}  fix: {c.fix}")
    if any(c.status == FAIL for c in checks if c.name in FOLDER_CHECKS):
        return 2
    return 1 if any(c.status == FAIL for c in checks) else 0


# ---------------------------------------------------------------------------- cleanup


def run_cleanup(args: argparse.Namespace) -> int:
    from grader.isolation.docker import cleanup

    removed = cleanup(all_owners=args.all, dry_run=args.dry_run, run=args.run)
    verb = "would remove" if args.dry_run else "removed"
    for item in removed:
        print(f"{verb} {item.kind} {item.name} ({item.id[:12]}): {item.reason}")
    print(f"{verb} {len(removed)} leftover(s)")
    return 0
