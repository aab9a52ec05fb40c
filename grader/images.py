"""Images as the grader keeps them: HxWx3 uint8 ``.npy`` arrays, one file per image.

Shared by the supervisor's probes (does a repeated batch give the same images?) and the
quality scores (how far did the experiment's images move?), so both read and compare
images the same way. ``.npy`` rather than PNG: loading it needs no decoder and
``allow_pickle=False`` makes it plain data whatever the worker wrote.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

PSNR_CAP = 100.0


def load_images(folder: Path, labels: list[str]) -> list[np.ndarray]:
    """The images of the batches ``labels`` under ``folder``, batch by batch, in file order."""
    images = []
    for label in labels:
        for path in sorted((Path(folder) / label).glob("*.npy")):
            images.append(np.load(path, allow_pickle=False))
    return images


def psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean per-image PSNR in dB (identical images count as PSNR_CAP)."""
    values = []
    for x, y in zip(a, b, strict=True):
        mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
        values.append(PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(255.0**2 / mse)))
    return float(np.mean(values))


def same_fraction(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean share of pixels that are exactly equal in every channel, image by image.

    Unlike PSNR it does not fall when a few pixels are changed on purpose: a store that
    answers a new prompt with an old image plus a handful of altered pixels still scores
    near 1, while two honest renders from different prompts share almost no exact pixel.
    """
    values = [float(np.mean(np.all(x == y, axis=-1))) for x, y in zip(a, b, strict=True) if x.shape == y.shape]
    return float(np.mean(values)) if values else 0.0
