"""Provenance: what machine, libraries, GPU, sandbox image and container runtime graded a run.

Collected once when a run starts and kept in ``run.json``, so a report rendered later (or
on another machine) still says where its numbers came from.
"""

from __future__ import annotations

import os
import time
from importlib import metadata
from pathlib import Path


def collect_environment(options: dict) -> dict:
    """Provenance of the machine grading now: libraries, host, GPU and driver, image digest."""
    import platform
    import subprocess

    def git_commit() -> str | None:
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                 text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return (out.stdout.strip() or None) if out.returncode == 0 else None

    libraries = {"python": platform.python_version()}
    for name in ("torch", "diffusers", "transformers", "torchmetrics", "numpy"):
        try:  # the installed distribution's version: no need to import torch to say which it is
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    machine = {"device": options.get("device"), "host": platform.node(),
               "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
               "os": platform.platform()}
    gpus = []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            for line in out.stdout.strip().splitlines():
                index, name, driver, memory = (p.strip() for p in line.split(",", 3))
                gpus.append({"index": index, "name": name, "driver": driver, "memory": memory})
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    machine["gpus"] = gpus
    machine["gpu"] = gpus[0]["name"] if gpus else None
    machine["driver"] = gpus[0]["driver"] if gpus else None
    if options.get("device") == "cuda":
        try:
            import torch

            machine["cuda"] = torch.version.cuda
            machine["gpu"] = machine["gpu"] or torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001
            pass
    image = None
    if options.get("sandbox") == "docker":
        try:
            from grader.isolation import docker as docker_sandbox

            info = docker_sandbox.image_info(gpu=options.get("device") == "cuda")
            image = {"name": info.name, "id": info.id, "digest": info.digest}
        except Exception as exc:  # noqa: BLE001
            image = {"error": str(exc)[:300]}
    return {"git_commit": git_commit(), "libraries": libraries, "machine": machine, "image": image,
            "sandbox_runtime": sandbox_runtime(options), "collected_at": time.time()}


def sandbox_runtime(options: dict) -> str | None:
    """The OCI runtime the docker sandbox's containers run with (``docker_runtime``, else the engine's
    default, e.g. ``runc``); None for a sandbox without containers, or an engine that does not answer."""
    if options.get("sandbox") != "docker":
        return None
    try:
        from grader.isolation import docker as docker_sandbox

        return docker_sandbox.resolve_runtime(options.get("docker_runtime"))
    except Exception:  # noqa: BLE001 - provenance never stops a run; grading itself refuses an unknown runtime
        return options.get("docker_runtime")

