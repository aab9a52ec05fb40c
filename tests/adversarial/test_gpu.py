"""GPU-only tricks: work left queued on another CUDA stream after the batch is reported done,
with torch.cuda.synchronize patched away. Runs where a CUDA GPU is (the `gpu` marker; skipped
elsewhere), under the local sandbox."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from adv_support import Case, assert_caught, grade_cases

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
CASES = [
    Case("cuda_stream", "deferred_cuda_stream", status=("ok", "tampered"), static=("static_patches_timer",),
         claimed=3.0),
    Case("control", "honest_fast", status=("ok",), honest=True, claimed=3.0),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return grade_cases(tmp_path_factory.mktemp("gpu"), "local", CASES, device="cuda")


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
