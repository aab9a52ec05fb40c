"""Which timed images the grader keeps, decided only after every variant answered the batch.

Every answered image is read, checked and digested the moment its answer arrives
(:func:`grader.runs.session.exchange_batch`); the arrays, not the worker's files, are
what the grader keeps, so nothing a worker does to its folder afterwards changes what is
scored. Once each image-keeping variant has answered batch *i*, :class:`ImageKeeper`
hands the arrays to a comparison callback (every batch is compared, so there is no
batch outside the check) and then decides by reservoir sampling, from a secret random
source, whether batch *i* is one of the ``k`` whose images feed the full gate. A
submission cannot predict that choice: it is made after its answer, it is uniform over
all timed batches however many there turn out to be, and it is written only to the
grader's own folders.
"""

from __future__ import annotations

import random
import secrets
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

# (batch index, arrays by variant) -> that batch's comparison figures (JSON-able).
CompareBatch = Callable[[int, dict[str, list[np.ndarray]]], dict]


def save_arrays(folder: Path, arrays: list[np.ndarray]) -> None:
    """Write arrays the grader holds as ``000.npy``... in a folder of its own (not a worker's)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for k, array in enumerate(arrays):
        np.save(tmp / f"{k:03d}.npy", array, allow_pickle=False)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


class ImageKeeper:
    """Collects a round's answered images per variant; compares each batch; keeps ``k`` at random."""

    def __init__(self, variants: tuple[str, ...], image_dirs: dict[str, Path], k: int,
                 compare: CompareBatch | None = None, rng: random.Random | None = None):
        self.variants, self.image_dirs, self.k, self.compare = variants, image_dirs, k, compare
        self.rng = rng or secrets.SystemRandom()
        self.pending: dict[int, dict[str, tuple[str, list[np.ndarray]]]] = {}
        self.kept: list[tuple[int, str]] = []          # (index, label), the reservoir
        self.seen = 0                                  # batches completed so far
        self.comparisons: list[dict] = []
        self.kept_arrays: dict[str, dict[str, list[np.ndarray]]] = {}   # label -> variant -> arrays

    def answered(self, variant: str, index: int, label: str, arrays: list[np.ndarray]) -> None:
        """One variant's checked arrays for timed batch ``index``; completes the batch when all are in."""
        if variant not in self.variants:
            return
        entry = self.pending.setdefault(index, {})
        entry[variant] = (label, arrays)
        if set(entry) == set(self.variants):
            self._complete(index)

    def _complete(self, index: int) -> None:
        entry = self.pending.pop(index)
        label = next(iter(entry.values()))[0]
        arrays = {variant: a for variant, (_, a) in entry.items()}
        if self.compare is not None:
            self.comparisons.append({"index": index, **self.compare(index, arrays)})
        slot = len(self.kept) if self.seen < self.k else self.rng.randrange(self.seen + 1)
        self.seen += 1
        if slot >= self.k:
            return
        if slot < len(self.kept):
            _, evicted = self.kept[slot]
            for variant in self.variants:
                shutil.rmtree(self.image_dirs[variant] / evicted, ignore_errors=True)
            self.kept_arrays.pop(evicted, None)
            self.kept[slot] = (index, label)
        else:
            self.kept.append((index, label))
        self.kept_arrays[label] = arrays
        for variant, a in arrays.items():
            save_arrays(self.image_dirs[variant] / label, a)

    def drop_incomplete(self) -> None:
        """Forget batches some variant never answered (it failed, or the run stopped)."""
        self.pending.clear()

    @property
    def labels(self) -> list[str]:
        return sorted(label for _, label in self.kept)

    def images(self, variant: str, label: str) -> list[np.ndarray] | None:
        """A kept batch's arrays as answered (the probes compare with these, never with files)."""
        return (self.kept_arrays.get(label) or {}).get(variant)

    def pick(self) -> tuple[int, str] | None:
        """One kept batch, chosen at random: what the probes are built on."""
        return self.rng.choice(self.kept) if self.kept else None
