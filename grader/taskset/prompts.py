"""The prompt pool and the per-run schedule of batches.

Prompts for each timed batch are drawn from a permutation of the pool chosen by a
run seed the submission never sees, so a module cannot precompute answers; every
variant of a task walks the same schedule, so images compare one to one. Warm-up
batches take prompts from the far end of the permutation, away from the timed ones.
"""

from __future__ import annotations

import random
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


SEED_POOL = 8


class Schedule:
    """Deterministic batches for one run: same ``run_seed``, same batches.

    Timed images take their seeds from a small per-run pool, so a seed comes back
    with other (always fresh) prompts as a matter of course. That lets the grader
    check prompt sensitivity passively, on timed batches a module cannot tell apart:
    two images with one seed and different prompts must differ.
    """

    def __init__(self, pool: tuple[str, ...], run_seed: int, batch_size: int, max_images: int | None = None):
        self.pool, self.run_seed, self.batch_size, self.max_images = pool, run_seed, batch_size, max_images
        self.order = random.Random(f"{run_seed}:order").sample(range(len(pool)), len(pool))
        self.seed_pool = tuple(random.Random(f"{run_seed}:seedpool").sample(range(1, 2**31 - 1), SEED_POOL))

    def _seed(self, kind: str, index: int) -> int:
        return random.Random(f"{self.run_seed}:{kind}:{index}").randrange(1, 2**31 - 1)

    def timed_size(self, index: int) -> int:
        if self.max_images is None:
            return self.batch_size
        return max(0, min(self.batch_size, self.max_images - index * self.batch_size))

    def timed(self, index: int) -> Batch:
        size = self.timed_size(index)
        start = index * self.batch_size
        prompts = tuple(self.pool[self.order[(start + k) % len(self.pool)]] for k in range(size))
        # Rotate through the pool so consecutive batches share no seed at the same position.
        seeds = tuple(self.seed_pool[(start + k + index) % SEED_POOL] for k in range(size))
        return Batch(index, prompts, seeds[0] if seeds else self._seed("timed", index), seeds=seeds)

    def warmup(self, index: int) -> Batch:
        start = (index + 1) * self.batch_size
        prompts = tuple(self.pool[self.order[-((start - k) % len(self.pool)) - 1]] for k in range(self.batch_size))
        return Batch(index, prompts, self._seed("warmup", index), kind="warmup")
