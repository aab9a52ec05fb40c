"""Which timed images the grader keeps: decided after every variant answered, uniform over all
batches, written from the arrays read at answer time; and the schedules nobody can predict."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from grader.images import load_images
from grader.runs.keeper import ImageKeeper
from grader.taskset.prompts import Schedule

VARIANTS = ("reference", "experiment", "gt")


def _arrays(index: int, variant: str) -> list[np.ndarray]:
    return [np.full((4, 4, 3), (index * 7 + k + len(variant)) % 256, dtype=np.uint8) for k in range(2)]


def _keeper(tmp_path, k=2, rng=None, compare=None):
    return ImageKeeper(VARIANTS, {v: tmp_path / v / "images" for v in VARIANTS}, k, compare, rng)


def test_nothing_is_kept_or_compared_until_every_variant_answered(tmp_path):
    seen = []
    keeper = _keeper(tmp_path, compare=lambda i, arrays: seen.append((i, sorted(arrays))) or {"n": len(arrays)})
    keeper.answered("reference", 0, "b0000", _arrays(0, "reference"))
    keeper.answered("experiment", 0, "b0000", _arrays(0, "experiment"))
    assert seen == [] and not (tmp_path / "reference" / "images").exists()
    keeper.answered("baseline", 0, "b0000", _arrays(0, "baseline"))          # not an image variant: ignored
    assert seen == []
    keeper.answered("gt", 0, "b0000", _arrays(0, "gt"))
    assert seen == [(0, sorted(VARIANTS))] and keeper.comparisons == [{"index": 0, "n": 3}]
    for v in VARIANTS:
        stored = load_images(tmp_path / v / "images", ["b0000"])
        assert [a.tolist() for a in stored] == [a.tolist() for a in _arrays(0, v)]


def test_reservoir_keeps_k_and_evicts_the_files_of_what_it_drops(tmp_path):
    keeper = _keeper(tmp_path, k=2, rng=random.Random(3))
    for i in range(12):
        for v in VARIANTS:
            keeper.answered(v, i, f"b{i:04d}", _arrays(i, v))
    assert len(keeper.labels) == 2 and keeper.comparisons == []
    for v in VARIANTS:
        assert sorted(p.name for p in (tmp_path / v / "images").iterdir()) == keeper.labels
    picked = keeper.pick()
    assert picked is not None and picked[1] in keeper.labels


def test_every_batch_is_equally_likely_to_be_kept(tmp_path):
    """Uniform over all n batches whatever n turns out to be: the first batches are not special."""
    counts: Counter = Counter()
    n, k, trials = 8, 2, 3000
    for t in range(trials):
        keeper = ImageKeeper(("x",), {"x": tmp_path / "x"}, k, rng=random.Random(t))
        for i in range(n):
            keeper.answered("x", i, f"b{i:04d}", [])
        counts.update(index for index, _ in keeper.kept)
    expected = trials * k / n
    assert all(abs(counts[i] - expected) < 0.15 * expected for i in range(n)), counts


def test_a_batch_some_variant_never_answered_is_dropped(tmp_path):
    keeper = _keeper(tmp_path)
    keeper.answered("reference", 0, "b0000", _arrays(0, "reference"))
    keeper.drop_incomplete()
    keeper.answered("experiment", 0, "b0000", _arrays(0, "experiment"))
    keeper.answered("gt", 0, "b0000", _arrays(0, "gt"))
    assert keeper.labels == [] and keeper.comparisons == []


POOL = tuple(f"prompt {i}" for i in range(40))


def test_without_an_explicit_seed_every_task_gets_a_secret_schedule():
    run = Schedule(POOL, 11, 4, predictable=False)
    a, b = run.for_task("1"), run.for_task("1")
    assert a.timed(0) != b.timed(0)                                   # drawn afresh each time
    seeded = Schedule(POOL, 11, 4, predictable=True).for_task("1")
    assert a.timed(0) != seeded.timed(0)                              # not derived from the run seed
    assert a._secret != b._secret and not a._secret.startswith("11:")


def test_an_explicit_seed_reproduces_the_schedule_per_task():
    run = Schedule(POOL, 11, 4, predictable=True)
    assert run.for_task("1").timed(3) == run.for_task("1").timed(3)
    assert run.for_task("1").timed(0) != run.for_task("2").timed(0)


def test_every_image_of_every_timed_batch_has_its_own_seed():
    schedule = Schedule(POOL, 5, 8, predictable=False).for_task("t")
    seeds = [s for i in range(30) for s in schedule.timed(i).seeds]
    assert len(set(seeds)) == len(seeds)


@pytest.mark.parametrize("kind", ["repeat", "seedprobe", "promptprobe"])
def test_probes_are_built_on_the_batch_they_are_given(kind):
    schedule = Schedule(POOL, 5, 4, predictable=False).for_task("t")
    base = schedule.timed(3)
    probe = schedule.probe(kind, base, 12)
    assert probe.index == 12 and probe.label == "b0012" and len(probe.prompts) == 4
    assert (probe.prompts == base.prompts) == (kind != "promptprobe")
    assert (probe.seeds == base.seeds) == (kind != "seedprobe")
    if kind == "promptprobe":
        assert not set(probe.prompts) & set(base.prompts)
