"""Which sandbox image a run uses, and whether its worker matches this grader's ``sandbox/``.

The worker (``sandbox/``) is baked into the image, so an image built from other sources could
speak another protocol over the FIFOs. ``scripts/build_image.sh`` labels each image with
:func:`sandbox_hash` of the sources it was built from (via ``docker/inputs_hash.py``, which
calls the same :func:`grader.files.sources_digest`); :func:`image_info` recomputes it here and
marks a mismatch ``stale``, which the provider refuses unless :data:`ALLOW_STALE_ENV` says not to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import SandboxUnavailable
from grader.files import sources_digest
from grader.isolation.docker.engine import client, infra_call

IMAGE_REPO = "sd-grader-sandbox"
CPU_IMAGE = f"{IMAGE_REPO}:cpu"
GPU_IMAGE = f"{IMAGE_REPO}:gpu"
IMAGE_ENV = "GRADER_IMAGE"                   # overrides the image choice
ALLOW_STALE_ENV = "GRADER_ALLOW_STALE_IMAGE"  # "1": run an image whose worker differs from sandbox/
SANDBOX_HASH_LABEL = "sd-grader.sandbox-hash"


def sandbox_hash() -> str:
    """Hash of the ``sandbox`` package's sources, as docker/inputs_hash.py computes it at build."""
    import sandbox as _sandbox_pkg

    return sources_digest(Path(_sandbox_pkg.__file__).resolve().parent, "sandbox")


@dataclass(frozen=True)
class ImageInfo:
    name: str
    id: str
    digest: str            # a registry digest when the image has one, else its content id
    labels: dict = field(default_factory=dict)
    stale: bool = False    # built from other sandbox/ sources than the ones here


def default_image_name(gpu: bool) -> str:
    return os.environ.get(IMAGE_ENV) or (GPU_IMAGE if gpu else CPU_IMAGE)


def image_info(name: str | None = None, gpu: bool = False) -> ImageInfo:
    """Inspect the image runs would use (without GPU: the CPU image, else the GPU one)."""
    cl = client()
    candidates = [name] if name else [default_image_name(gpu)]
    if not name and not gpu and not os.environ.get(IMAGE_ENV):
        candidates.append(GPU_IMAGE)
    last: Exception | None = None
    for candidate in candidates:
        try:
            image, _ = infra_call("image inspect", lambda c=candidate: cl.images.get(c))
        except SandboxUnavailable as exc:
            last = exc
            continue
        labels = dict(image.labels or {})
        digests = image.attrs.get("RepoDigests") or []
        built_from = labels.get(SANDBOX_HASH_LABEL)
        return ImageInfo(name=candidate, id=image.id, digest=digests[0] if digests else image.id,
                         labels=labels, stale=bool(built_from) and built_from != sandbox_hash())
    raise SandboxUnavailable(
        f"no sandbox image {' or '.join(candidates)}: build it with `make image-cpu` (CPU) or "
        "`make image` (GPU), or name one with GRADER_IMAGE"
    ) from last


def usable_image(name: str | None = None, gpu: bool = False) -> ImageInfo:
    """:func:`image_info`, refusing a stale image (its worker may speak another protocol)
    unless :data:`ALLOW_STALE_ENV` is ``1``."""
    image = image_info(name, gpu=gpu)
    if image.stale and os.environ.get(ALLOW_STALE_ENV) != "1":
        raise SandboxUnavailable(
            f"image {image.name} was built from other sandbox/ sources than this grader's, so its "
            "worker may speak another protocol: rebuild it (`make image-cpu` or `make image`), or set "
            f"{ALLOW_STALE_ENV}=1 to use it anyway"
        )
    return image
