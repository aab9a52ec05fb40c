"""GPU-only tricks: work left queued on another CUDA stream after the batch is reported done,
with torch.cuda.synchronize patched away; and GPU work queued from a background thread after
each answer, to drain while the other variants are timed. Runs where a CUDA GPU is (the `gpu`
marker; skipped elsewhere), under the local sandbox. Each fixture is one grading run:
``pytest -m gpu tests/adversarial/test_gpu.py -k queued`` runs the second alone (about a minute
on an H100/H200)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from adv_support import Case, assert_caught, describe, grade_cases

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
CASES = [
    Case("cuda_stream", "deferred_cuda_stream", status=("ok", "tampered"), static=("static_patches_timer",),
         claimed=3.0),
    Case("control", "honest_fast", status=("ok",), honest=True, claimed=3.0),
]


# GPU-bound reference, baseline and GT (fixed matmuls per image), so GPU work left by another
# variant while they are timed would slow them.
GPU = {"baseline": "gpu_reference", "reference": "gpu_reference", "gt": "gpu_gt"}
QUEUED = [
    Case("gpu_control", "gpu_fast", status=("ok",), honest=True, claimed=3.0, sandboxes=("local",), **GPU),
    Case("gpu_queued", "gpu_queued", status=("ok", "tampered"), claimed=3.0, sandboxes=("local",),
         allowed=("static_spawns_work",), **GPU),
]


def _cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    _cuda()
    return grade_cases(tmp_path_factory.mktemp("gpu"), "local", CASES, device="cuda")


@pytest.fixture(scope="module")
def graded_queued(tmp_path_factory):
    _cuda()
    return grade_cases(tmp_path_factory.mktemp("gpu-queued"), "local", QUEUED, device="cuda")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gpu_case_outcome(graded, case):
    assert_caught(graded[case.name], case)


def test_deferred_kernels_are_charged_to_their_batch(graded):
    """The queued kernels' time (measured by the module with CUDA events) must show up in the
    experiment's per-image time: it does the control's work plus the deferred kernels."""
    cheat, control = graded["cuda_stream"], graded["control"]
    deferred_ms = json.loads((Path(cheat["_run_dir"]) / "experiment" / "work" / "deferred.json").read_text())
    assert len(deferred_ms) >= 3
    deferred_per_image = statistics.median(deferred_ms) / 1000 / 2   # batches of two
    t_cheat = cheat["variants"]["experiment"]["timing"]["per_image_median"]
    t_control = control["variants"]["experiment"]["timing"]["per_image_median"]
    assert t_cheat >= t_control + 0.7 * deferred_per_image, (
        f"experiment {t_cheat:.4f} s/image, honest control {t_control:.4f}, "
        f"deferred kernels {deferred_per_image:.4f} s/image not charged")


@pytest.mark.parametrize("case", QUEUED, ids=str)
def test_queued_gpu_case_outcome(graded_queued, case):
    assert_caught(graded_queued[case.name], case)


def test_queued_gpu_work_does_not_slow_the_reference(graded_queued):
    """The trick ran (its deferred work was launched after answers and took GPU time), and either
    the task is `tampered` with `interference`, or the reference's (and the GT's) per-image time
    is the control task's within 10%: the queued work drained in their untimed quiet wait."""
    cheat, control = graded_queued["gpu_queued"], graded_queued["gpu_control"]
    queued = json.loads((Path(cheat["_run_dir"]) / "experiment" / "work" / "queued.json").read_text())
    times = {name: {v: r["variants"][v]["timing"]["per_image_median"] for v in ("reference", "gt")}
             for name, r in (("cheat", cheat), ("control", control))}
    waits = {name: {v: r["variants"][v]["probes"].get("quiet_wait_max") for v in ("reference", "gt")}
             for name, r in (("cheat", cheat), ("control", control))}
    print(json.dumps({"status": cheat["status"], "flags": cheat["flags"], "per_image": times, "quiet_wait_max": waits,
                      "deferred_ms": queued["ms"], "speedup": [cheat["speedup"], control["speedup"]]}))
    assert queued["launched"] >= 3 and len(queued["ms"]) >= 3 and statistics.median(queued["ms"]) > 50, queued
    if cheat["status"] == "tampered":
        assert "interference" in cheat["flags"], describe(cheat)
        return
    for variant in ("reference", "gt"):
        ratio = times["cheat"][variant] / times["control"][variant]
        assert 0.9 < ratio < 1.1, f"{variant}: {ratio:.3f}x the control's per-image time\n{describe(cheat)}"
