"""The prompt pool and the schedule of batches each task walks.

Prompts for each timed batch are drawn from a permutation of the pool chosen by a
secret the submission never sees, so a module cannot precompute answers; every
variant of a task walks the same schedule, so images compare one to one. Warm-up
batches take prompts from the far end of the permutation, away from the timed ones.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from grader.errors import ConfigError

MIN_POOL = 16
MAX_PROMPT_CHARS = 1000


@dataclass(frozen=True)
class Batch:
    index: int
    prompts: tuple[str, ...]
    seed: int
    kind: str = "timed"
    seeds: tuple[int, ...] | None = None

    @property
    def warmup(self) -> bool:
        return self.kind == "warmup"

    @property
    def label(self) -> str:
        # Probes look like timed batches on the wire, so a module cannot single them out.
        return f"w{self.index:03d}" if self.warmup else f"b{self.index:04d}"


def load_pool(path: Path | None = None) -> tuple[str, ...]:
    """Read one prompt per line (blank lines and ``#`` comments skipped), de-duplicated."""
    if path is None:
        source = "built-in prompt pool (grader/data/prompts.txt)"
        try:
            text = resources.files("grader").joinpath("data/prompts.txt").read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc}") from exc
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--prompts {path}: cannot read: {exc}") from exc
        source = str(path)
    seen: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), 1):
        prompt = line.strip()
        if not prompt or prompt.startswith("#"):
            continue
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ConfigError(f"{source}: line {number}: prompt longer than {MAX_PROMPT_CHARS} characters")
        seen.setdefault(prompt)
    if len(seen) < MIN_POOL:
        raise ConfigError(f"{source}: {len(seen)} distinct prompts; expected at least {MIN_POOL}")
    return tuple(seen)


class Schedule:
    """The batches of one task: prompts from a permutation of the pool, a fresh seed per image.

    A run holds one template (``Schedule(pool, run_seed, ...)``); :meth:`for_task` gives each
    task its own. By default a task's schedule comes from a secret drawn when the task starts
    (:mod:`secrets`), kept only in the grader's memory and never written where a worker could
    read it, so no submission can know the prompts or seeds to come, nor tell one task's from
    another's. With ``predictable`` (an explicit ``--seed``) it derives from the run seed and
    the task id instead: reproducible, and therefore known to anyone who knows the seed.

    Every image of every timed batch gets its own seed, so a seed never comes back in timed
    work: a store keyed by seed has nothing to return. The probes that reuse seeds or prompts
    (:meth:`probe`) are built from a batch chosen after the timed ones were answered.
    """

    def __init__(self, pool: tuple[str, ...], run_seed: int, batch_size: int, max_images: int | None = None,
                 predictable: bool = True, task_id: str | None = None):
        self.pool, self.run_seed, self.batch_size, self.max_images = pool, run_seed, batch_size, max_images
        self.predictable, self.task_id = predictable, task_id
        self._secret = f"{run_seed}:{task_id}" if predictable else secrets.token_hex(16)
        self.order = random.Random(f"{self._secret}:order").sample(range(len(pool)), len(pool))

    def for_task(self, task_id: str) -> "Schedule":
        """This run's schedule for one task (a fresh secret unless ``predictable``)."""
        return Schedule(self.pool, self.run_seed, self.batch_size, self.max_images, self.predictable, task_id)

    def _seeds(self, kind: str, index: int, n: int) -> tuple[int, ...]:
        rng = random.Random(f"{self._secret}:{kind}:{index}")
        return tuple(rng.randrange(1, 2**31 - 1) for _ in range(n))

    def timed_size(self, index: int) -> int:
        if self.max_images is None:
            return self.batch_size
        return max(0, min(self.batch_size, self.max_images - index * self.batch_size))

    def _prompts(self, index: int, size: int) -> tuple[str, ...]:
        start = index * self.batch_size
        return tuple(self.pool[self.order[(start + k) % len(self.pool)]] for k in range(size))

    def timed(self, index: int) -> Batch:
        size = self.timed_size(index)
        seeds = self._seeds("timed", index, size)
        return Batch(index, self._prompts(index, size), seeds[0] if seeds else 1, seeds=seeds)

    def warmup(self, index: int) -> Batch:
        start = (index + 1) * self.batch_size
        prompts = tuple(self.pool[self.order[-((start - k) % len(self.pool)) - 1]] for k in range(self.batch_size))
        seeds = self._seeds("warmup", index, self.batch_size)
        return Batch(index, prompts, seeds[0], kind="warmup", seeds=seeds)

    def probe(self, kind: str, of: Batch, index: int) -> Batch:
        """A probe batch built on the timed batch ``of``, sent as batch ``index`` (after the timed ones).

        ``repeat``: its prompts and seeds again (a cache across calls answers it fast; an
        honest pipeline gives the same images); ``seedprobe``: its prompts with new seeds (the
        images must change); ``promptprobe``: its seeds with prompts no timed batch used (the
        images must change). On the wire each is a batch like any other.
        """
        n = len(of.prompts)
        if kind == "repeat":
            prompts, seeds = of.prompts, of.seeds
        elif kind == "seedprobe":
            prompts, seeds = of.prompts, self._seeds("seedprobe", index, n)
        elif kind == "promptprobe":
            prompts, seeds = self._prompts(index, n), of.seeds
            if set(prompts) & set(of.prompts):   # a pool smaller than the run: shift past them
                others = [p for p in self.pool if p not in of.prompts]
                prompts = tuple(others[(index + k) % len(others)] for k in range(n)) if others else prompts
        else:
            raise ValueError(f"unknown probe kind {kind!r}")
        return Batch(index, prompts, seeds[0], kind=kind, seeds=seeds)
