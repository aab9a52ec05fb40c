"""Dockerfile.gpu, built and run offline on a machine without a GPU or a registry.

The real base (a public CUDA + PyTorch image) cannot be pulled here, so the test makes a
stand-in with what the GPU base provides and nothing more: the local CPU sandbox image with its
worker, its sandbox user and every package of docker/requirements.txt that torch does not need
removed, run as root with no entrypoint. ``scripts/build_image.sh gpu`` (what ``make image``
runs) then builds Dockerfile.gpu on it with ``--network none`` from the CPU build's wheelhouse,
which must bring those packages back, and the image's own build step runs the self-check. The
built image is then run as the grader runs it (read-only root, ``/tmp`` tmpfs, no network, all
capabilities dropped) for ``--self-check``, and its user, workdir and entrypoint are checked.
Both images carry a tag unique to this test and are removed afterwards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from grader import schemas
from grader.isolation.docker import image

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REMOVED = ("diffusers", "transformers", "accelerate", "DeepCache", "tomesd", "huggingface_hub", "safetensors",
           "tokenizers", "scipy", "Pillow")


def _required() -> bool:
    return os.environ.get("GRADER_REQUIRE_DOCKER") == "1" or os.environ.get("CI", "").lower() in ("1", "true", "yes")


def docker(*args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and out.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])} failed ({out.returncode}): {out.stderr[-3000:]}", pytrace=False)
    return out


def cpu_wheelhouse() -> Path:
    """GRADER_WHEELHOUSE, else the CPU image's wheelhouse (build/docker/wheelhouse-cpu-<key>), made when
    missing (a warm `make image-cpu` finds its image up to date and leaves no wheelhouse in a new checkout)."""
    if os.environ.get("GRADER_WHEELHOUSE"):
        return Path(os.environ["GRADER_WHEELHOUSE"])
    out = subprocess.run(["bash", "scripts/build_image.sh", "cpu-wheelhouse"], cwd=ROOT, capture_output=True,
                         text=True, timeout=900, check=False, env={**os.environ, "PYTHON": sys.executable})
    if out.returncode != 0:
        message = f"no CPU wheelhouse: build_image.sh cpu-wheelhouse failed:\n{out.stderr[-3000:]}"
        if _required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return ROOT / out.stdout.strip().splitlines()[-1]    # relative to the checkout unless GRADER_BUILD_DIR is absolute


@pytest.fixture(scope="module")
def gpu_image(tmp_path_factory):
    wheels = cpu_wheelhouse()
    if not (wheels / ".complete").is_file() and not os.environ.get("GRADER_WHEELHOUSE"):
        message = f"no CPU wheelhouse at {wheels}: run `make image-cpu` first (or set GRADER_WHEELHOUSE)"
        if _required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    owner = f"sd-grader-test-gpuimage-{uuid.uuid4().hex[:10]}"
    base_tag, repo = f"{owner}:base", f"{owner}-img"
    cpu = image.image_info().name
    build_dir = tmp_path_factory.mktemp("gpu-build")
    stand_in = "\n".join([
        f"FROM {cpu}",
        "USER 0:0",
        f"RUN pip uninstall --yes --quiet {' '.join(REMOVED)} && rm -rf /opt/grader "
        "&& userdel sandbox && (groupdel sandbox || true) && python -c 'import torch'",
        "WORKDIR /",
        'ENTRYPOINT []',
        'CMD ["/bin/bash"]',
        "",
    ])
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    try:
        docker("build", "--quiet", "--network", "none", "--tag", base_tag, "--label", f"sd-grader.test={owner}", "-",
               input=stand_in, env=env)
        build = subprocess.run(["bash", "scripts/build_image.sh", "gpu"], cwd=ROOT, capture_output=True, text=True,
                               timeout=900, check=False,
                               env={**env, "BASE_IMAGE": base_tag, "GRADER_WHEELHOUSE": str(wheels),
                                    "GRADER_IMAGE_REPO": repo, "GRADER_BUILD_DIR": str(build_dir),
                                    "PYTHON": sys.executable, "FORCE": "1"})
        assert build.returncode == 0, f"build_image.sh gpu failed:\n{build.stderr[-4000:]}"
        tags = docker("image", "ls", repo, "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        yield {"tag": f"{repo}:gpu", "tags": tags, "base": base_tag, "log": build.stderr}
    finally:
        listed = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
        mine = [t for t in listed if t.startswith(owner)]
        if mine:
            docker("image", "rm", "--force", *mine, check=False)


def test_the_build_was_offline_and_tagged_by_content(gpu_image):
    assert "--network none" in gpu_image["log"]
    tags = sorted(t.rsplit(":", 1)[1] for t in gpu_image["tags"])
    assert len(tags) == 2 and tags[0] == "gpu" and re.fullmatch(r"gpu-[0-9a-f]{16}", tags[1]), tags
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", gpu_image["tag"]).stdout)
    assert labels["sd-grader.variant"] == "gpu" and labels["sd-grader.base"] == gpu_image["base"]
    assert labels["sd-grader.sandbox-hash"] == image.sandbox_hash()  # the provider would not call it stale


def test_user_workdir_and_entrypoint(gpu_image):
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", gpu_image["tag"]).stdout)
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/mnt/work"
    assert config["Entrypoint"] == ["python", "-m", "sandbox.worker"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONPATH"] == "/opt/grader" and env["HF_HUB_OFFLINE"] == "1" and env["HOME"] == "/tmp"
    assert "compute" in env["NVIDIA_DRIVER_CAPABILITIES"]


def run_self_check(tag: str, *args: str, work: Path | None = None) -> tuple[int, dict]:
    mount = ["--volume", f"{work}:/mnt/work"] if work else []
    out = docker("run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,mode=1777", *mount,
                 "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
                 "--label", "sd-grader.test=gpu-image", tag, "--self-check", *args, check=False, timeout=300)
    lines = out.stdout.splitlines()
    assert len(lines) == 1, f"self-check printed {out.stdout!r}; stderr {out.stderr[-2000:]}"
    report = schemas.validate("selfcheck.schema.json", schemas.parse_json(lines[0]), source="self-check")
    return out.returncode, report


def test_self_check_passes_as_the_grader_runs_it(gpu_image, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    os.chmod(work, 0o777)  # the image's uid 10001 writes here, whoever runs the test
    code, report = run_self_check(gpu_image["tag"], "--work", "/mnt/work", work=work)
    assert code == 0 and report["ok"] and report["failed"] == [], report
    checks = report["checks"]
    assert set(checks["imports"]["versions"]) >= {"torch", "diffusers", "transformers", "sandbox.protocol"}
    assert checks["imports"]["versions"]["diffusers"] == _pinned("diffusers")
    assert checks["imports"]["versions"]["transformers"] == _pinned("transformers")
    assert checks["user"]["uid"] == 10001
    assert checks["root_fs"]["read_only"] is True
    assert checks["tmp"]["state"] == checks["work"]["state"] == "writable"
    assert checks["cuda"]["available"] is False  # no GPU here: skipped, not failed


def test_self_check_fails_where_a_gpu_is_required_and_absent(gpu_image):
    code, report = run_self_check(gpu_image["tag"], "--require-cuda")
    assert code == 1 and report["ok"] is False and report["failed"] == ["cuda"]


def _pinned(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(name.lower() + "=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")
