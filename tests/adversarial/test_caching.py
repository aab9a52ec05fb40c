"""Caching across calls (MLPerf's TEST04: a repeated batch must not be much faster than a fresh
one), a store keyed by seed (timed seeds never come back; the probes' do), and precomputing at
load time (load time measured apart and capped against the GT's)."""

from __future__ import annotations

import pytest
from adv_support import (
    SANDBOXES,
    Case,
    assert_caught,
    assert_static_in_report,
    grade_cases,
)

pytestmark = pytest.mark.slow

CASES = [
    Case("control", "honest_fast", status=("ok",), honest=True, claimed=3.0),
    Case("cache_across_calls", "cache_across_calls", flags=("cross_call_cache",),
         static=("static_cross_call_cache",)),
    # Measured: tampered with ignores_prompt (the prompt probe got 98% of the stored pixels back)
    # and cross_call_cache (the repeat answered at once); the timed work, all fresh seeds, is honest.
    Case("seed_store", "seed_store", flags=("ignores_prompt", "cross_call_cache")),
    Case("load_precompute", "load_precompute", status=("timeout",), flags=("load_cap_exceeded",),
         message="capped"),
    Case("jittery", "honest_jittery", status=("ok",), honest=True, claimed=1.5),
    Case("embedding_cache", "honest_embed_cache", status=("ok",), honest=True, claimed=3.0,
         allowed=("static_cross_call_cache",), static=("static_cross_call_cache",)),
]


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, tmp_path_factory):
    return request.param, grade_cases(tmp_path_factory.mktemp(f"caching-{request.param}"), request.param, CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_caching_trick_is_caught(graded, case):
    _, results = graded
    assert_caught(results[case.name], case)


def test_repeat_probe_measures_the_cache(graded):
    _, results = graded
    probes = results["cache_across_calls"]["variants"]["experiment"]["probes"]
    assert probes["repeat_ratio"] < 0.3 and probes["repeat_psnr"] >= 60
    honest = results["embedding_cache"]["variants"]["experiment"]["probes"]
    assert honest["repeat_ratio"] > 0.6


def test_seed_store_gains_nothing_on_timed_batches(graded):
    """Every timed image has a fresh seed: the store never answered one, so the headline is the
    honest control's within noise; the seeds that came back were the probes' (all answered from
    the store, a few bits changed)."""
    _, results = graded
    store, control = results["seed_store"], results["control"]
    assert 0.85 < store["speedup"] / control["speedup"] < 1.18, (store["speedup"], control["speedup"])
    probes = store["variants"]["experiment"]["probes"]
    assert probes["new_prompt_same_pixels"] > 0.9, probes
    assert probes["repeat_psnr"] >= 60 and probes["repeat_ratio"] < 0.3, probes


def test_load_cap_is_the_gts_load_times_the_factor(graded):
    """The capped variant died at about the cap, long before its 120 s of precomputing."""
    _, results = graded
    result = results["load_precompute"]
    gt_load = result["variants"]["gt"]["phases"]["load"]
    waited = result["variants"]["experiment"]["phases"]["total"]
    assert waited < max(3.0 * gt_load, 8.0) + 30, (gt_load, waited)


@pytest.mark.parametrize("case", [c for c in CASES if c.static or c.baseline_static], ids=str)
def test_static_flags_reach_the_report(graded, case):
    _, results = graded
    assert_static_in_report(results[case.name], case)
