"""Variants load side by side, warm up one at a time, and the GT's load still caps the others'.

Modules here sleep in ``load_pipeline`` (no pipeline), so the test measures the protocol:
loads that overlap in time, a cap that reaches a variant still loading when the GT becomes
ready, and warm-ups that never overlap anything (everyone else frozen).
"""

from __future__ import annotations

import time

import pytest
from support import sleepy, small_timing, write

from grader.runs.interleave import load_groups, run_variants
from grader.runs.supervisor import VariantWorker
from grader.runs.variant import VariantSpec
from grader.taskset.prompts import Schedule

POOL = tuple(f"a small watercolor of object number {i}" for i in range(64))


def slow_load(seconds: float, per_image: float = 0.01) -> str:
    return sleepy(per_image).replace("def load_pipeline():\n", f"def load_pipeline():\n    time.sleep({seconds})\n")


def _specs(tmp_path, loads: dict[str, float], **extra):
    return [VariantSpec(name=n, module_path=write(tmp_path / "src" / f"{n}.py", slow_load(s)), model_dir=tmp_path,
                        steps=10, device="cpu", sandbox="local", **extra.get(n, {}))
            for n, s in loads.items()]


def _run(tmp_path, specs, timing, monkeypatch):
    """Run the variants, noting when each one's load and warm-up began and ended (host clock)."""
    spans: dict[str, dict[str, tuple[float, float]]] = {}
    for phase in ("load", "warm_up"):
        real = getattr(VariantWorker, phase)

        def wrapped(self, real=real, phase=phase):
            t0 = time.monotonic()
            real(self)
            spans.setdefault(self.spec.name, {})[phase] = (t0, time.monotonic())
        monkeypatch.setattr(VariantWorker, phase, wrapped)
    schedule = Schedule(POOL, run_seed=1234, batch_size=timing.batch_size, max_images=timing.max_images)
    return run_variants(specs, schedule, timing, tmp_path / "runs"), spans


def test_loads_overlap_and_warm_ups_do_not(tmp_path, monkeypatch):
    timing = small_timing(min_batches=2, max_batches=2, warmup_batches=1, probes=False)
    loads = {"gt": 3.0, "reference": 3.0, "baseline": 3.0, "experiment": 3.0}
    extra = {n: dict(loads_alongside=True) for n in ("reference", "baseline")}
    runs, spans = _run(tmp_path, _specs(tmp_path, loads, **extra), timing, monkeypatch)
    assert all(r.status == "ok" for r in runs.values()), {n: r.message for n, r in runs.items()}
    for name, run in runs.items():
        assert run.phases["load"] >= 3.0, (name, run.phases)   # each measured in full, from hello to ready
    ends = [spans[n]["load"][1] for n in loads]
    windows = [(spans[n]["load"][1] - runs[n].phases["load"], spans[n]["load"][1]) for n in loads]  # hello -> ready
    assert max(w[0] for w in windows) < min(w[1] for w in windows) - 1.0, f"not all loading at once: {windows}"
    warm = sorted(spans[n]["warm_up"] for n in loads)
    assert warm[0][0] >= max(ends), "warm-ups begin once every variant has loaded"
    assert all(a[1] <= b[0] for a, b in zip(warm, warm[1:])), f"warm-ups overlapped: {warm}"


def test_loading_one_at_a_time_is_still_there(tmp_path, monkeypatch):
    timing = small_timing(min_batches=2, max_batches=2, warmup_batches=0, probes=False, load_together=False)
    loads = {"gt": 1.0, "reference": 1.0, "baseline": 1.0, "experiment": 1.0}
    extra = {n: dict(loads_alongside=True) for n in ("reference", "baseline")}
    runs, spans = _run(tmp_path, _specs(tmp_path, loads, **extra), timing, monkeypatch)
    assert all(r.status == "ok" for r in runs.values()), {n: r.message for n, r in runs.items()}
    gt, ref, base, exp = (spans[n]["load"] for n in loads)
    assert gt[1] <= min(ref[0], base[0]) and max(ref[1], base[1]) <= exp[0], spans   # GT, then the pair, then exp
    assert max(ref[0], base[0]) < min(ref[1], base[1]), "the reference and the baseline load side by side"


def test_load_groups_keep_the_order_and_the_pair():
    class W:
        def __init__(self, name, alongside=False):
            self.spec = VariantSpec(name=name, module_path=None, model_dir=None, steps=1, device="cpu",
                                    sandbox="local", loads_alongside=alongside)
    gt, ref, base, exp = W("gt"), W("reference", True), W("baseline", True), W("experiment")
    assert load_groups([gt, ref, base, exp], together=True) == [[gt, ref, base, exp]]
    assert load_groups([gt, ref, base, exp], together=False) == [[gt], [ref, base], [exp]]


@pytest.mark.parametrize("exp_sleep", [4.0, 60.0], ids=["under", "over"])
def test_the_gts_load_caps_a_variant_still_loading_beside_it(tmp_path, monkeypatch, exp_sleep):
    """The GT becomes ready while the experiment is still loading: the cap (3x the GT's load,
    its imports included: at least 6 s) reaches the experiment then. At twice the GT's sleep it
    loads; far over, it times out at the cap, not at its load_timeout, with ``load_cap_exceeded``."""
    timing = small_timing(min_batches=2, max_batches=2, warmup_batches=0, probes=False,
                          load_cap_factor=3.0, load_cap_floor=1.0)
    runs, _ = _run(tmp_path, _specs(tmp_path, {"gt": 2.0, "experiment": exp_sleep}), timing, monkeypatch)
    gt, exp = runs["gt"], runs["experiment"]
    assert gt.status == "ok", gt.message
    cap = 3.0 * gt.phases["load"]
    if exp_sleep < 10:
        assert exp.status == "ok", exp.message
        assert "load_cap_exceeded" not in exp.flags
    else:
        assert exp.status == "timeout" and "load_cap_exceeded" in exp.flags, (exp.status, exp.flags, exp.message)
        assert f"capped at {cap:.0f}s" in exp.message, (cap, exp.message)
        assert exp.phases["total"] < cap + 10.0 < 60.0, (cap, exp.phases)     # killed near the cap


def test_a_failed_gt_load_abandons_the_others_at_once(tmp_path, monkeypatch):
    timing = small_timing(min_batches=2, max_batches=2, warmup_batches=0, probes=False)
    specs = _specs(tmp_path, {"gt": 0.0, "experiment": 30.0})
    write(specs[0].module_path, "raise ImportError('no such thing')\n")
    t0 = time.monotonic()
    runs, _ = _run(tmp_path, specs, timing, monkeypatch)
    assert runs["gt"].status == "error", runs["gt"].message
    assert "experiment" not in runs, "an abandoned load is not reported"
    assert time.monotonic() - t0 < 15, "the experiment's 30 s load was not waited for"
