"""The false-positive check: honest optimizations of a real (tiny, random-weight) diffusers
pipeline must score `ok` with no integrity flag: caching inside one generation (DeepCache),
fewer steps, CFG truncation, and a text-embedding cache across calls (the last may carry the
static pass's advisory `static_cross_call_cache`, which only points at it). The GT is DeepCache
with interval 2, the baseline the plain pipeline, the reference the grader's template (the plain
pipeline too), 10 DDIM steps; and the bundled example
submission, when its task set is there, gets no integrity flag either.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adv_support import SANDBOXES, Case, assert_caught, grade_cases, integrity_flags
from fixtures import tiny_models  # noqa: F401 - pytest fixture

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

# The GT's speedup over the plain pipeline on the tiny model, measured on a CPU (about 1.7x);
# the implausibility check trusts this number, as it trusts the real manifest's.
GT_SPEEDUP = 1.7
# No reference_code in the task set: the grader renders its template (the plain diffusers
# pipeline, DDIM, the task's steps) as the reference baseline, as for a real task set.
HONEST = {"status": ("ok",), "honest": True, "baseline": "pipeline_baseline", "gt": "pipeline_gt_deepcache",
          "reference": None, "manifest_speedup": GT_SPEEDUP}
CASES = [
    Case("deepcache", "pipeline_deepcache3", claimed=2.5, **HONEST),
    Case("fewer_steps", "pipeline_fewer_steps", claimed=1.25, **HONEST),
    Case("cfg_truncation", "pipeline_cfg_truncation", claimed=1.4, **HONEST),
    Case("embedding_cache", "pipeline_embed_cache", claimed=1.0, allowed=("static_cross_call_cache",), **HONEST),
]


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, tmp_path_factory, tiny_models):  # noqa: F811 - the fixture
    root = tmp_path_factory.mktemp(f"honest-{request.param}")
    # Five timed batches: real pipelines on a busy CPU are noisy, and the sandbagging and
    # implausibility checks compare medians.
    return request.param, grade_cases(root, request.param, CASES, models=tiny_models, min_batches=5, max_batches=5)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_honest_technique_passes_untouched(graded, case):
    _, results = graded
    assert_caught(results[case.name], case)


def test_example_submission_gets_no_integrity_flags(tmp_path, tiny_models):  # noqa: F811
    """`make grade`'s example, its honest tasks (DeepCache; a batched wrapper of the baseline):
    `ok`, no integrity flag. Two tasks at 50 steps, two timed batches each: minutes on a CPU."""
    tasks, submission = ROOT / "examples" / "tasks", ROOT / "examples" / "submission"
    if not (tasks / "config_data" / "dataset_manifest.json").is_file():
        pytest.skip("the bundled example task set (examples/tasks) is not there")
    from support import small_timing

    from grader.config import GradeConfig, QualityConfig
    from grader.pipeline.run import grade

    honest = {"101", "102"}
    cfg = GradeConfig(submission=submission, tasks=tasks, model_dir=tiny_models, out=tmp_path / "run", sandbox="local",
                      seed=3, only=frozenset(honest), timing=small_timing(min_batches=2, max_batches=2),
                      quality=QualityConfig(clip_model=tiny_models / "clip"))
    doc = grade(cfg, progress=lambda _: None)
    by_id = {t["prompt_id"]: t for t in doc["tasks"]}
    report = {p: {k: by_id[p].get(k) for k in ("status", "message", "flags", "evidence", "speedup")} for p in by_id}
    assert set(by_id) == honest, report
    assert all(t["status"] == "ok" for t in by_id.values()), json.dumps(report, default=str)
    assert not any(integrity_flags(t["flags"]) for t in by_id.values()), json.dumps(report, default=str)
