"""The docker provider: one locked-down container per run, through docker-py.

What every container gets (see docs/docker.md for the reasons):

- ``network_mode="none"``: only the loopback interface exists inside;
- a read-only root filesystem, a size-capped tmpfs on ``/tmp`` (also ``HOME``) and a private
  ``/dev/shm``;
- memory (swap included, so the cap is real), pids and CPU limits from :class:`Limits`; when
  ``memory_bytes`` is None a safety cap of :data:`DEFAULT_MEMORY_FRACTION` of the host's memory;
- all capabilities dropped, ``no-new-privileges``, a non-root uid (:data:`SANDBOX_UID` when the
  grader runs as root, else the grader's own uid so it owns what the run writes);
- ``docker-init`` as PID 1, so orphans are reaped and a kill reaches everything;
- exactly the spec's mounts at ``/mnt/<name>`` (``code`` and ``model`` read-only, ``work``
  writable, a bind mount of the host folder the supervisor's FIFOs live in) and nothing else of
  the host: no GT code, no reference images, no results, no other task;
- ``RLIMIT_FSIZE`` at the work folder's cap, so no single file outgrows it between two looks of
  the watchdog (:mod:`.process`);
- one GPU through a device request when ``spec.gpu`` is set (``"0"``, a UUID, ...);
- the OCI runtime ``spec.runtime`` when set (gVisor's ``runsc``), refused up front when the engine
  has not registered it; else the engine's default;
- labels ``sd-grader.managed=1``, ``sd-grader.run=<id>`` and the owner's host/pid (:mod:`.reaper`),
  so that ``grader cleanup`` finds what a killed grader left behind.

This module only decides those arguments and starts the container; running it is
:class:`DockerProcess`'s job.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, ClassVar, Sequence

import psutil

from grader.errors import SandboxInfraError
from grader.isolation.contract import Sandbox, SandboxSpec, register
from grader.isolation.docker.engine import client, docker_py, infra_call, resolve_runtime
from grader.isolation.docker.image import usable_image
from grader.isolation.docker.process import DockerProcess
from grader.isolation.docker.reaper import LABEL_PREFIX, MANAGED_LABEL, RUN_LABEL, ensure_reaper, owner_labels
from grader.isolation.output import hand_over

SANDBOX_UID = 10001
MOUNT_ROOT = "/mnt"
PYTHON_IN_IMAGE = "python"
TMPFS_BYTES = 1 << 30
SHM_BYTES = 1 << 30
DEFAULT_MEMORY_FRACTION = 0.75
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_RUN_ID = uuid.uuid4().hex[:12]  # one per grader process unless the spec names the run


def _host_memory() -> int:
    return psutil.virtual_memory().total


def device_requests(gpu: str | None, wants_gpu: bool) -> list:
    """The ``device_requests`` of a container: the GPUs ``gpu`` names (``"1"``, ``"0,1"``, a UUID),
    else any one GPU when the run wants CUDA, else none. Inside, the devices are renumbered from 0,
    so no ``CUDA_VISIBLE_DEVICES`` is passed along."""
    if gpu is not None:
        ids = [g.strip() for g in str(gpu).split(",") if g.strip()]
        if not ids:
            raise ValueError(f"GPU selection {gpu!r} names no GPU")
        return [docker_py.types.DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]
    if wants_gpu:
        return [docker_py.types.DeviceRequest(count=1, capabilities=[["gpu"]])]
    return []


@register("docker")
class DockerSandbox(Sandbox):
    isolated = True
    takes_runtime = True
    known_differences: ClassVar[tuple[str, ...]] = (
        "exit_code_above_128",  # docker reports death by signal n as exit 128+n: exit(137) reads as SIGKILL
        "mountinfo_host_paths",  # /proc/self/mountinfo shows each bind's source: the host path of its folder
    )

    def __init__(self, spec: SandboxSpec, image: str | None = None):
        super().__init__(spec)
        for name, mount in spec.mounts.items():
            if not name or not set(name) <= _NAME_OK or name in (".", ".."):
                raise ValueError(f"mount name {name!r} must be a plain name")
            if not mount.host_path.exists():
                raise SandboxInfraError(f"mount {name!r}: {mount.host_path} does not exist")
        # A run on cuda without a pinned GPU still needs one: it gets "any one GPU" (count=1).
        self.wants_gpu = spec.gpu is not None or str(spec.env.get("GRADER_DEVICE", "")).startswith("cuda")
        self.image = usable_image(image, gpu=self.wants_gpu)
        self.runtime = resolve_runtime(spec.runtime)
        if os.geteuid() == 0:
            self.uid = self.gid = SANDBOX_UID
        else:  # run as the grader's own (non-root) uid: it then owns, reads and deletes what runs write
            self.uid, self.gid = os.getuid(), os.getgid()
        limits = spec.limits
        self.memory_limit = limits.memory_bytes or int(_host_memory() * DEFAULT_MEMORY_FRACTION)
        self._procs: list[DockerProcess] = []

    # -- contract
    def path(self, mount: str) -> str:
        if mount not in self.spec.mounts:
            raise KeyError(mount)
        return f"{MOUNT_ROOT}/{mount}"

    def describe(self) -> dict:
        """What a report should record about this sandbox."""
        return {"provider": "docker", "image": self.image.name, "image_id": self.image.id,
                "image_digest": self.image.digest, "uid": self.uid, "memory_limit": self.memory_limit,
                "pids_limit": self.spec.limits.pids, "cpus": self.spec.limits.cpus, "gpu": self.spec.gpu,
                "runtime": self.runtime}

    def start(self, argv: Sequence[str]) -> DockerProcess:
        if not argv:
            raise ValueError("empty argv")
        argv = [PYTHON_IN_IMAGE if a == "{python}" else str(a) for a in argv]
        self._prepare_work()
        cl = client()
        ensure_reaper()
        kwargs = self.create_kwargs(argv)
        container = None
        retries = 0
        try:
            container, r = infra_call("create", lambda: cl.containers.create(**kwargs))
            retries += r
            sock, _ = infra_call("attach", lambda: cl.api.attach_socket(
                container.id, params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 0}))
            _, r = infra_call("start", container.start)
            retries += r
        except BaseException:
            if container is not None:
                try:
                    cl.api.remove_container(container.id, force=True, v=True)
                except Exception:  # noqa: BLE001 - labelled; `grader cleanup` finds it
                    pass
            raise
        proc = DockerProcess(self.spec, container, sock, retries, image_id=self.image.id,
                             memory_limit=self.memory_limit)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._procs:
            proc.discard()
        self._procs.clear()

    # -- details
    def create_kwargs(self, argv: Sequence[str]) -> dict:
        """The ``containers.create`` arguments for ``argv`` (public so tests can check them)."""
        spec, limits = self.spec, self.spec.limits
        env = {
            "HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DIFFUSERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        env.update(spec.env)
        mounts = [
            docker_py.types.Mount(target=self.path(name), source=str(mount.host_path.resolve()), type="bind",
                                  read_only=mount.read_only)
            for name, mount in sorted(spec.mounts.items())
        ]
        labels = {
            MANAGED_LABEL: "1",
            RUN_LABEL: str(spec.labels.get("run") or spec.labels.get("run_id") or _RUN_ID),
            **owner_labels(),
            "sd-grader.image": self.image.name,
        }
        for key, value in spec.labels.items():
            labels[key if key.startswith(LABEL_PREFIX) else LABEL_PREFIX + key] = str(value)
        ulimits = [docker_py.types.Ulimit(name="core", soft=0, hard=0)]
        if limits.work_dir_bytes:
            ulimits.append(docker_py.types.Ulimit(name="fsize", soft=limits.work_dir_bytes, hard=limits.work_dir_bytes))
        kwargs: dict[str, Any] = dict(
            image=self.image.id, entrypoint=[argv[0]], command=list(argv[1:]),
            user=f"{self.uid}:{self.gid}", working_dir=self.path("work"), environment=env,
            labels=labels, name=f"sd-grader-{uuid.uuid4().hex[:16]}", hostname="sandbox",
            network_mode="none", read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMPFS_BYTES},mode=1777"},
            shm_size=SHM_BYTES, ipc_mode="private",
            mem_limit=self.memory_limit, memswap_limit=self.memory_limit,
            pids_limit=limits.pids or -1,
            cap_drop=["ALL"], security_opt=["no-new-privileges:true"], ulimits=ulimits,
            log_config=docker_py.types.LogConfig(type="none"), mounts=mounts, init=True,
            stdin_open=False, tty=False, detach=True,
        )
        if spec.runtime is not None:
            kwargs["runtime"] = spec.runtime
        if limits.cpus:
            kwargs["nano_cpus"] = int(limits.cpus * 1e9)
        if limits.cpuset:
            kwargs["cpuset_cpus"] = ",".join(str(c) for c in limits.cpuset)
        requests = device_requests(spec.gpu, self.wants_gpu)
        if requests:
            kwargs["device_requests"] = requests
        return kwargs

    def _prepare_work(self) -> None:
        work = self.spec.mounts["work"].host_path
        if os.geteuid() == 0:
            hand_over(work, self.uid, self.gid)
        else:
            work.mkdir(parents=True, exist_ok=True)
