"""``junit.xml``: the report as JUnit XML, for CI systems.

One ``<testsuite>`` for the run and one ``<testcase>`` per task (``classname`` is the
task key, ``name`` the prompt id). A task that is not ``ok`` is a ``<failure>`` whose
``type`` is its status and whose text gives the message, the flags and their evidence;
a task the grader itself could not judge (a grader bug, a broken GT, no model, an
invalid manifest entry) is an ``<error>`` instead. Advisory flags on a passing task go
to ``<system-out>``. Written with ElementTree, so everything is escaped; characters XML
1.0 forbids are dropped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from grader.evidence.flags import GRADER_SIDE_FLAGS, flag_evidence

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: object) -> str:
    return _INVALID_XML.sub("", "" if text is None else str(text))


def _num(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def failure_text(task: dict) -> str:
    lines = [f"status: {task['status']}"]
    if task.get("message"):
        lines.append(f"message: {task['message']}")
    lines.append(f"speedup: {_num(task.get('speedup'))}x (GT {_num(task.get('gt_speedup'))}x, "
                 f"relative to GT {_num(task.get('relative_to_gt'))})")
    q = task.get("quality")
    if q:
        lines.append(f"quality: passed={q.get('passed')} failures={','.join(q.get('failures') or []) or '-'} "
                     f"ssim exp/ref {_num(q.get('ssim_experiment_vs_reference'))} "
                     f"(GT {_num(q.get('ssim_gt_vs_reference'))})")
    flags = task.get("flags") or []
    lines.append(f"flags: {', '.join(flags) if flags else '-'}")
    for flag in flags:
        lines.append(f"  {flag}: {flag_evidence(task, flag)}")
    return "\n".join(lines)


def render(doc: dict) -> str:
    tasks = doc["tasks"]
    failures = errors = 0
    total_time = 0.0
    suite = ET.Element("testsuite", name=f"sd-speedup-grader.{doc['run_id']}")
    props = ET.SubElement(suite, "properties")
    p = doc["provenance"]
    s = doc["summary"]
    for name, value in (("grader_version", p.get("grader_version")), ("git_commit", p.get("git_commit")),
                        ("run_seed", p.get("run_seed")), ("sandbox", p.get("sandbox")),
                        ("geomean_speedup", s.get("geomean_speedup")), ("n_passing", s.get("n_passing")),
                        *((f"threshold.{k}", v) for k, v in doc.get("thresholds", {}).items())):
        ET.SubElement(props, "property", name=name, value=_clean("" if value is None else value))
    for task in tasks:
        seconds = float(task.get("grade_seconds") or 0.0)
        total_time += seconds
        case = ET.SubElement(suite, "testcase", classname=_clean(f"grader.{task.get('task_key') or 'unknown'}"),
                             name=_clean(task["prompt_id"]), time=f"{seconds:.3f}")
        flags = task.get("flags") or []
        if task["status"] != "ok":
            grader_side = bool(set(flags) & GRADER_SIDE_FLAGS)
            kind = "error" if grader_side else "failure"
            errors += grader_side
            failures += not grader_side
            message = f"{task['status']}: {task.get('message') or ''}".strip().rstrip(":")
            element = ET.SubElement(case, kind, message=_clean(message[:500]), type=task["status"])
            element.text = _clean(failure_text(task))
        elif flags:
            out = ET.SubElement(case, "system-out")
            out.text = _clean("\n".join(f"{f}: {flag_evidence(task, f)}" for f in flags))
    suite.set("tests", str(len(tasks)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    suite.set("time", f"{total_time:.3f}")
    suite.set("timestamp", p.get("started_at", ""))
    root = ET.Element("testsuites", name="sd-speedup-grader", tests=str(len(tasks)), failures=str(failures),
                      errors=str(errors), time=f"{total_time:.3f}")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
