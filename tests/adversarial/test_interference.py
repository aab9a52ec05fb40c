"""A variant working against the others while they are timed: CPU burnt by background threads
whenever the worker is not inside its own inference call, and (local sandbox: under docker a
worker sees no other) the other variants' workers stopped with SIGSTOP, or reniced and pinned
to one CPU.

The reference baseline and the GT of these tasks are CPU-bound (``honest_cpu_reference.py``,
``honest_cpu_gt.py``: a fixed amount of hashing per image, not a wait), so anything else running on the
CPU while they are timed would show in their per-image times. The defence: only the variant
being driven runs, every other one is frozen (SIGSTOP of its process group and token carriers
locally, docker pause), CPU used while frozen and a trusted variant's changed nice value or CPU
set are `interference`, and everyone is thawed for the idle window (`background_work`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adv_support import SANDBOXES, Case, applies, assert_caught, assert_static_in_report, describe, grade_cases

pytestmark = pytest.mark.slow

CPU = {"baseline": "honest_cpu_reference", "reference": "honest_cpu_reference", "gt": "honest_cpu_gt"}
CASES = [
    Case("control", "honest_fast", status=("ok",), honest=True, claimed=3.0, **CPU),
    Case("spin_threads", "spin_threads", flags=("background_work",), **CPU),
    # Measured: no runtime flag at all (its SIGSTOPs hit workers already frozen, and the
    # supervisor's SIGCONT at their turn undid them); the static pass points at the calls.
    Case("stop_siblings", "signal_siblings", status=("ok",), honest=True, claimed=3.0, sandboxes=("local",),
         allowed=("static_signals_processes", "static_suspicious_path"), static=("static_signals_processes",),
         subs=(('MODE = "stop"', 'MODE = "stop"'),), **CPU),
    Case("renice_siblings", "signal_siblings", flags=("interference",), sandboxes=("local",),
         static=("static_signals_processes",),
         subs=(('MODE = "stop"', 'MODE = "renice"'),), **CPU),
]
TRUSTED = ("reference", "gt")


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(request, tmp_path_factory):
    return request.param, grade_cases(tmp_path_factory.mktemp(f"interference-{request.param}"), request.param, CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_interference_trick_is_caught(graded, case):
    assert_caught(applies(graded, case.name), case)


def _slowdowns(result: dict, control: dict) -> dict[str, float]:
    """Each trusted variant's per-image time over the control task's."""
    return {v: result["variants"][v]["timing"]["per_image_median"] / control["variants"][v]["timing"]["per_image_median"]
            for v in TRUSTED}


# How much slower than the control task's a trusted variant may be timed. The control task ran
# minutes earlier on a machine that is shared (CI: 2 cores, a Docker engine, the test process),
# and there a CPU-bound variant's median per-image time was measured up to 1.49x the control's
# with nothing working against it (within one task, the GT's repeat probe up to 1.58x its
# batches). Undefended, the tricks here would cost far more: the spinning threads about 4.5x
# (spin_threads.py), a SIGSTOP until the batch timeout. The proof that the experiment did
# nothing during the others' batches is test_frozen_variants_use_no_cpu; this bound shows that
# nothing else it did reached their times either.
SLOWDOWN_BOUND = 2.0


@pytest.mark.parametrize("name", ["spin_threads", "stop_siblings"])
def test_trusted_variants_are_not_slowed(graded, name):
    """The reference's and the GT's per-image times are not inflated beyond the machine's noise,
    nor is the headline of a task not `tampered`: whatever the experiment did, it did while they
    were frozen or idle. (The headline is t_reference / t_experiment, with a CPU-bound reference
    and a waiting experiment, so the machine's noise reaches it one for one.)"""
    _, results = graded
    result, control = applies(graded, name), results["control"]
    for variant, ratio in _slowdowns(result, control).items():
        assert ratio < SLOWDOWN_BOUND, f"{variant}: {ratio:.2f}x the control's per-image time\n{describe(result)}"
    if result["status"] != "tampered":   # the trick must then have gained nothing
        assert result["speedup"] / control["speedup"] < SLOWDOWN_BOUND, describe(result)


def test_reniced_siblings_are_flagged_or_unharmed(graded):
    """Renicing and pinning the trusted variants can slow them where anything else shares their
    CPU (measured once on the shared 2-core machine: 1.26x), so it must be `interference`, or
    leave their times alone."""
    _, results = graded
    result, control = applies(graded, "renice_siblings"), results["control"]
    if result["status"] == "tampered" and "interference" in result["flags"]:
        return
    for variant, ratio in _slowdowns(result, control).items():
        assert ratio < SLOWDOWN_BOUND, f"{variant}: {ratio:.2f}x the control's per-image time\n{describe(result)}"


@pytest.mark.parametrize("name", ["spin_threads", "stop_siblings", "renice_siblings"])
def test_frozen_variants_use_no_cpu(graded, name):
    """Every variant was frozen outside its turns and used (next to) no CPU then."""
    result = applies(graded, name)
    for variant, run in result["variants"].items():
        probes = run["probes"]
        assert probes.get("freeze_supported") is True, (variant, probes)
        assert probes.get("frozen_cpu_max", 0.0) <= 0.05, (variant, probes)


def test_spinning_threads_show_in_the_idle_window(graded):
    result = applies(graded, "spin_threads")
    assert result["variants"]["experiment"]["probes"]["idle_cpu_fraction"] > 1.0, describe(result)


@pytest.mark.parametrize("name", ["stop_siblings", "renice_siblings"])
def test_the_module_did_reach_its_siblings(graded, name):
    """The trick ran: it found the task's three other workers and signalled or reniced them."""
    result = applies(graded, name)
    done = json.loads((Path(result["_run_dir"]) / "experiment" / "work" / "siblings.json").read_text())
    assert len(done["touched"]) >= 3 and all(not v.startswith(("PermissionError", "ProcessLookup")) for v in done["touched"].values()), done


def test_renicing_is_recorded_for_the_trusted_variants(graded):
    result = applies(graded, "renice_siblings")
    for variant in TRUSTED:
        changes = result["variants"][variant]["probes"].get("sched_changes")
        assert changes and "nice 0 -> 19" in changes[0], (variant, changes)


@pytest.mark.parametrize("case", [c for c in CASES if c.static or c.baseline_static], ids=str)
def test_static_flags_reach_the_report(graded, case):
    assert_static_in_report(applies(graded, case.name), case)
