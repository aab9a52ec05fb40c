"""Docker sandbox provider: takes a :class:`SandboxSpec` and an argv, runs it in one locked-down
container per run (docker-py), and gives back a :class:`DockerExecResult` with the limits it hit.
"""

from grader.isolation.docker.engine import IMPORT_ERROR, client, reset_client, resolve_runtime, runtimes
from grader.isolation.docker.image import (
    ALLOW_STALE_ENV,
    CPU_IMAGE,
    GPU_IMAGE,
    IMAGE_ENV,
    ImageInfo,
    default_image_name,
    image_info,
    sandbox_hash,
    usable_image,
)
from grader.isolation.docker.leftovers import Leftover, cleanup
from grader.isolation.docker.monitor import cgroup_cpu_seconds
from grader.isolation.docker.process import DockerExecResult, DockerProcess
from grader.isolation.docker.provider import SANDBOX_UID, DockerSandbox

__all__ = [
    "ALLOW_STALE_ENV", "CPU_IMAGE", "GPU_IMAGE", "IMAGE_ENV", "IMPORT_ERROR", "SANDBOX_UID", "DockerExecResult",
    "DockerProcess", "DockerSandbox", "ImageInfo", "Leftover", "cgroup_cpu_seconds", "cleanup", "client",
    "default_image_name", "image_info", "reset_client", "resolve_runtime", "runtimes", "sandbox_hash", "usable_image",
]
