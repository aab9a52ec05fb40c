"""The static pass over the suite's own case files: each trick's tell is found, and the honest
stand-ins get nothing beyond what their case allows. Fast: no grading."""

from __future__ import annotations

import pytest
import test_caching
import test_claims
import test_deferred
import test_gate
import test_interference
import test_outputs
import test_schedule
import test_timer
from adv_support import CASES_DIR

from grader.evidence.static_check import scan

ALL = [c for m in (test_caching, test_claims, test_deferred, test_gate, test_interference, test_outputs, test_schedule,
                    test_timer) for c in m.CASES]


@pytest.mark.parametrize("case", [c for c in ALL if c.static or c.baseline_static], ids=str)
def test_scan_finds_the_tell(case):
    found = scan(CASES_DIR / f"{case.experiment}.py")
    assert set(case.static) <= set(found), found
    for flag in case.static:
        assert found[flag].startswith("line "), found[flag]
    assert set(case.baseline_static) <= set(scan(CASES_DIR / f"{case.baseline}.py"))


@pytest.mark.parametrize("stem", sorted(p.stem for p in CASES_DIR.glob("honest_*.py")))
def test_honest_stand_ins_are_clean(stem):
    allowed = {f for c in ALL if c.experiment == stem for f in c.allowed}
    assert set(scan(CASES_DIR / f"{stem}.py")) <= allowed
