"""junit.xml: one test case per task, parsed by standard parsers (ElementTree, junitparser)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from test_report_html import synthetic_run

from grader.reports import junit


@pytest.fixture()
def run(tmp_path):
    return synthetic_run(tmp_path)


def test_junit_parses_with_elementtree(run):
    run_dir, doc = run
    root = ET.parse(run_dir / "junit.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [t["prompt_id"] for t in doc["tasks"]]
    assert int(suite.get("tests")) == len(doc["tasks"])
    by_name = {c.get("name"): c for c in cases}
    statuses = {t["prompt_id"]: t["status"] for t in doc["tasks"]}
    for pid, case in by_name.items():
        outcome = case.find("failure") if case.find("failure") is not None else case.find("error")
        if statuses[pid] == "ok":
            assert outcome is None, pid
        else:
            assert outcome is not None and outcome.get("type") == statuses[pid], pid
            assert f"status: {statuses[pid]}" in outcome.text
    # the grader's or the benchmark's own failure is an error, the submission's a failure
    assert by_name["9"].find("error") is not None and by_name["9"].find("failure") is None
    assert by_name["5"].find("failure") is not None
    n_fail = sum(1 for c in cases if c.find("failure") is not None)
    n_err = sum(1 for c in cases if c.find("error") is not None)
    assert (int(suite.get("failures")), int(suite.get("errors"))) == (n_fail, n_err) == (7, 1)
    assert by_name["1"].get("classname") == "grader.SD1.5_DDIM_10" and float(by_name["1"].get("time")) == 1.25


def test_failure_text_carries_status_flags_and_evidence(run):
    run_dir, _ = run
    root = ET.parse(run_dir / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    text = cases["10"].find("failure").text
    assert "status: tampered" in text and "flags: timer_mismatch" in text and "worker 0.0010s vs supervisor" in text
    text = cases["2"].find("failure").text
    assert "quality gate failed: ssim_drop" in text and "self_report_mismatch: self-reported speedup 2.00x" in text
    # an advisory flag on a passing task is reported, not failed
    assert "self_reported" in cases["6"].find("system-out").text
    # control characters of the message are dropped, markup is escaped by the writer
    message = cases["5"].find("failure").get("message")
    assert "\x01" not in message and "</script>" in message
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["threshold.ssim_tolerance"] == "0.05" and props["run_seed"] == "11"


def test_junit_parses_with_junitparser(run):
    junitparser = pytest.importorskip("junitparser")
    run_dir, doc = run
    xml = junitparser.JUnitXml.fromfile(str(run_dir / "junit.xml"))
    suites = list(xml)
    assert len(suites) == 1
    cases = list(suites[0])
    assert len(cases) == len(doc["tasks"])
    passed = {c.name for c in cases if c.is_passed}
    assert passed == {t["prompt_id"] for t in doc["tasks"] if t["status"] == "ok"}
    failed = {c.name: c.result[0].type for c in cases if not c.is_passed}
    assert failed["2"] == "quality_failed" and failed["9"] == "error"


def test_empty_run_is_valid_junit():
    doc = {"run_id": "empty", "tasks": [], "thresholds": {}, "summary": {}, "provenance": {"started_at": "x"}}
    root = ET.fromstring(junit.render(doc).encode())
    assert root.find("testsuite").get("tests") == "0"
