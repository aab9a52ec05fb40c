"""The headline speedup comes from the reference baseline: the agent's baseline can only ever
lower its own figure, and is flagged, interval-aware, when it is slower than the reference."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from grader.config import IntegrityConfig
from grader.evidence import integrity
from grader.runs.timing import BatchTime, summarize
from grader.runs.variant import VariantRun
from grader.scores.result import TaskResult
from grader.scores.task import altered_images, score_speedups
from grader.taskset import reference
from grader.taskset.manifest import TaskEntry, TaskKey


def _run(name: str, per_image: float, n: int = 8, jitter: float = 0.01) -> VariantRun:
    batches = [BatchTime(i, 2, 2 * per_image * (1 + jitter * ((i * 7) % 5 - 2)), 2 * per_image) for i in range(n)]
    run = VariantRun(name, batches=batches)
    run.timing = summarize(batches, 2)
    return run


def _scored(base_factor: float, base_batches: int = 6) -> TaskResult:
    runs = {"reference": _run("reference", 0.10), "baseline": _run("baseline", 0.10 * base_factor, base_batches),
            "experiment": _run("experiment", 0.05), "gt": _run("gt", 0.07)}
    result = TaskResult(prompt_id="1")
    score_speedups(result, runs, IntegrityConfig())
    return result


@pytest.mark.parametrize("factor", [1.0, 1.5, 3.0, 10.0])
def test_the_headline_ignores_the_agents_baseline(factor):
    result = _scored(factor)
    assert result.speedup == pytest.approx(2.0, rel=0.03)
    assert result.agent_baseline_speedup == pytest.approx(2.0 * factor, rel=0.05)
    assert result.gt_speedup == pytest.approx(0.10 / 0.07, rel=0.03)
    assert result.relative_to_gt == pytest.approx(1.4, rel=0.03)


@pytest.mark.parametrize(("factor", "flagged"), [(1.0, False), (1.05, False), (1.3, True), (2.0, True)])
def test_a_baseline_slower_than_the_reference_is_flagged_beyond_the_tolerance(factor, flagged):
    result = _scored(factor)
    assert ("baseline_sandbagged" in result.flags) is flagged, result.baseline_vs_reference
    assert result.baseline_vs_reference["ratio"] == pytest.approx(factor, rel=0.03)
    if flagged:
        assert "cannot raise it" in result.evidence["baseline_sandbagged"]


def test_the_flag_needs_the_whole_interval_above_the_tolerance():
    """Noise cannot raise it: a baseline 12% slower on a jittery machine with only a few batches
    has an interval reaching below 1.10, so it stays unflagged."""
    result = _scored(1.12, base_batches=4)
    assert result.baseline_vs_reference["ci"][0] < 1.10
    assert "baseline_sandbagged" not in result.flags


def _probe_runs(**probes) -> dict[str, VariantRun]:
    runs = {name: _run(name, 0.1) for name in ("reference", "baseline", "experiment", "gt")}
    for name, values in probes.items():
        runs[name].probes.update(values)
    return runs


def test_cpu_used_while_frozen_is_interference_beyond_the_clock_grain():
    cfg = IntegrityConfig()
    quiet = _probe_runs(experiment={"frozen_cpu_max": cfg.frozen_cpu * 0.9})
    assert "interference" not in integrity.check(quiet, 1.5, cfg)
    busy = _probe_runs(experiment={"frozen_cpu_max": 0.4, "frozen_cpu_seconds": 3.0})
    assert "experiment used 0.40 CPU-s" in integrity.check(busy, 1.5, cfg)["interference"]


def test_a_reprioritized_or_crowded_trusted_variant_is_interference():
    cfg = IntegrityConfig()
    found = integrity.check(_probe_runs(reference={"sched_changes": ["pid 9: nice 0 -> 19, cpus [0, 1] -> [0]"]}),
                            1.5, cfg)
    assert "reference's worker was reprioritized" in found["interference"]
    found = integrity.check(_probe_runs(gt={"quiet_timeouts": 2, "quiet_wait_max": 10.0}), 1.5, cfg)
    assert "still busy" in found["interference"]
    found = integrity.check(_probe_runs(reference={"gpu_shared_with": [
        {"batch": 3, "variant": "experiment", "samples": 4, "max_sm": 80}]}), 1.5, cfg)
    assert "experiment's process used the GPU" in found["interference"]
    # the agent's own variants may change their own priority: that only slows themselves
    assert "interference" not in integrity.check(_probe_runs(experiment={"sched_changes": ["pid 9: nice 0 -> 5"]}),
                                                 1.5, cfg)


def test_the_prompt_probe_catches_an_image_touched_up_for_a_new_prompt():
    cfg = IntegrityConfig()
    honest = {"repeat_ratio": 1.0, "repeat_psnr": 100.0, "new_seed_psnr": 10.0, "new_prompt_psnr": 10.0,
              "new_prompt_same_pixels": 0.01}
    store = dict(honest, new_prompt_psnr=30.0, new_prompt_same_pixels=0.97)
    assert "ignores_prompt" not in integrity.check(_probe_runs(experiment=honest, gt=honest), 1.5, cfg)
    found = integrity.check(_probe_runs(experiment=store, gt=honest), 1.5, cfg)
    assert "97% of pixels identical" in found["ignores_prompt"]


def test_stored_images_must_be_the_ones_answered():
    arrays = [np.zeros((2, 2, 3), dtype=np.uint8), np.ones((2, 2, 3), dtype=np.uint8)]
    digests = {"reference": [hashlib.sha1(a.tobytes()).hexdigest() for a in arrays]}
    assert altered_images({"reference": arrays}, ["b0001"], digests) is None
    poisoned = [arrays[0], arrays[0]]
    assert "reference's stored images" in altered_images({"reference": poisoned}, ["b0001"], digests)


def _entry(tmp_path: Path, reference_name: str | None = None) -> TaskEntry:
    return TaskEntry(prompt_id="7", task_key=TaskKey("SD1.5", "DDIM", 10), original_filename="x.py", speedup=1.5,
                     category="t", difficulty="easy", prompt_context="", gt_path=tmp_path / "gt_code" / "7.py",
                     experiment_name="7_experiment.py", baseline_name="7_baseline.py", metrics_name="7_metrics.json",
                     reference_name=reference_name)


def test_reference_from_the_task_set_or_the_grader_default(tmp_path):
    default = reference.for_task(tmp_path, _entry(tmp_path))
    assert default.origin == reference.GRADER_DEFAULT and 'SAMPLER = "DDIM"' in default.text
    assert default.describe()["sha256"] == hashlib.sha256(default.text.encode()).hexdigest()
    (tmp_path / "reference_code").mkdir()
    (tmp_path / "reference_code" / "SD1.5_DDIM_10.py").write_text("X = 1\n")
    assert reference.for_task(tmp_path, _entry(tmp_path)).origin == reference.TASK_SET


def test_a_named_reference_that_is_a_link_or_missing_is_an_error(tmp_path):
    from grader.errors import ConfigError

    (tmp_path / "reference_code").mkdir()
    (tmp_path / "elsewhere.py").write_text("X = 1\n")
    (tmp_path / "reference_code" / "r.py").symlink_to(tmp_path / "elsewhere.py")
    with pytest.raises(ConfigError, match="regular file"):
        reference.for_task(tmp_path, _entry(tmp_path, "r.py"))
    with pytest.raises(ConfigError, match="regular file"):
        reference.for_task(tmp_path, _entry(tmp_path, "missing.py"))
