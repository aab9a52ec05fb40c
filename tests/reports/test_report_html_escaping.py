"""report.html with hostile text in every field an agent can shape: nothing injected runs.

Each poisoned field (prompt, messages, stderr tail, evidence, quality failures, prompt
id, task key, run id, provenance strings) carries payloads that, if they ever ran, would
set ``data-xss-<field>-<vector>`` on the page's ``<html>`` element; headless chromium
loads the page and the DOM it dumps is checked for such attributes. Two controls keep
the check honest: the same payloads written raw into a page are seen to run (the
harness detects execution, per vector), and the same report rendered with autoescape
off is seen to run them from every field (the fields reach the page where markup would
execute, so the escaped page passing means something).
"""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser

import jinja2
import numpy as np
import pytest
from test_report_html import _measured, _task, _variant, dump_dom

from grader import __version__
from grader.config import GradeConfig
from grader.reports import html as html_report
from grader.reports import outputs
from grader.reports.document import build

MARK = "document.documentElement.setAttribute('data-xss-{name}','ran')"


def vectors(field: str) -> dict[str, str]:
    """Each way out of text or an attribute into script, marked with ``field`` and its name."""
    def run(vector: str) -> str:
        return MARK.format(name=f"{field}-{vector}")

    return {
        "script": f"<script>{run('script')}</script>",
        "img": f'<img src=x onerror="{run("img")}">',
        "close": f"</script><script>{run('close')}</script>",
        "attr": f"\"'><img src=x onerror=\"{run('attr')}\">",
        "svg": f"<svg onload=\"{run('svg')}\"></svg>",
        "rcdata": f"</title></textarea></style></pre><script>{run('rcdata')}</script>",
        "comment": f"<!--<script>{run('comment')}</script>-->",
    }


def payload(field: str) -> str:
    return f"{field}: " + " ".join(vectors(field).values()) + " \x01end"


FIELDS = ("prompt", "failure", "evidence", "variant_evidence", "id", "key", "message", "variant_message", "stderr",
          "run_id", "commit", "device", "gpu")


def hostile_run(tmp_path):
    """A run folder whose report puts a payload in every field of FIELDS."""
    for name in ("sub", "tasks", "models"):
        (tmp_path / name).mkdir(exist_ok=True)
    run_dir = tmp_path / "run"
    options = GradeConfig(submission=tmp_path / "sub", tasks=tmp_path / "tasks", model_dir=tmp_path / "models",
                          out=run_dir, sandbox="local", seed=3).as_dict()
    options["run_id"] = payload("run_id")
    prompts = [payload("prompt"), "a fox", "a teapot", "a castle"]
    shown = _measured("1", "quality_failed", 0.01, 0.4, prompts, message="quality gate failed",
                      flags=["implausible_speedup", "baseline_timer_mismatch"],
                      evidence={"implausible_speedup": payload("evidence")})
    shown["quality"]["failures"] = [payload("failure")]
    shown["variants"]["baseline"]["evidence"] = {"timer_mismatch": payload("variant_evidence")}
    shown["quality_inputs"]["seeds"] = [1, 2, 3, 4]
    broken = _task(payload("id"), "error", task_key=payload("key"), message=payload("message"),
                   variants={"experiment": _variant("experiment", 0.0, status="error",
                                                    message=payload("variant_message"))})
    broken["variants"]["experiment"]["stderr_tail"] = "Traceback (most recent call last):\n" + payload("stderr")
    rng = np.random.default_rng(1)
    for variant in ("reference", "experiment", "gt"):
        for label in ("b0000", "b0001"):
            folder = run_dir / "tasks" / "1" / variant / "images" / label
            folder.mkdir(parents=True)
            for k in range(2):
                np.save(folder / f"{k:03d}.npy", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    environment = {"git_commit": payload("commit"), "libraries": {"python": "3"},
                   "machine": {"device": payload("device"), "gpu": payload("gpu")}, "image": None}
    now = time.time()
    doc = build(options, [shown, broken], run_seed=3, started=now - 5, finished=now, version=__version__,
                environment=environment)
    outputs.write(run_dir, doc)
    return run_dir, doc


@pytest.fixture()
def hostile(tmp_path):
    return hostile_run(tmp_path)


def ran(dom: str) -> set[str]:
    """The markers set on the page's <html> element: payloads that executed."""
    tag = re.search(r"<html\b[^>]*>", dom)
    assert tag, dom[:500]
    return set(re.findall(r'data-xss-([a-z_]+-[a-z]+)="ran"', tag.group(0)))


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text.append(data)


def test_the_page_has_only_the_templates_elements(hostile):
    run_dir, doc = hostile
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert [s.get("type") for s in scripts] == ["application/json", "application/json", None]
    assert not [(t, a) for t, a in parser.tags if t in ("svg", "iframe", "textarea", "object", "embed")]
    handlers = [(t, k) for t, a in parser.tags for k in a if k.startswith("on")]
    assert handlers == []
    for tag, attrs in parser.tags:
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,"), attrs
    assert "<!--" not in page and "\x01" not in page
    # every field reached the page, as text
    for field in FIELDS:
        assert f"{field}: &lt;script&gt;" in page, field
    assert "Traceback (most recent call last):" in page.split('<pre class="stderr">')[1]


def test_the_table_json_cannot_close_its_script(hostile):
    run_dir, doc = hostile
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    body = re.search(r'<script type="application/json" id="task-data">(.*?)</script>', page, re.S).group(1)
    assert "</" not in body and "<!--" not in body and "<" not in body
    rows = json.loads(body)
    assert [row["prompt_id"] for row in rows] == [t["prompt_id"] for t in doc["tasks"]]
    assert rows[1]["task_key"] == doc["tasks"][1]["task_key"] and "</script>" in rows[1]["task_key"]


def test_nothing_injected_runs_in_chromium(hostile, tmp_path):
    run_dir, doc = hostile
    dom, console = dump_dom((run_dir / "report.html").as_uri(), tmp_path / "profile")
    assert ran(dom) == set()
    assert console == [], console
    assert not re.search(r"<html[^>]*data-js-errors", dom)
    # the page's own script still ran over the hostile JSON, and every section is still there
    assert f'data-rendered="{len(doc["tasks"])}"' in dom
    assert len(re.findall(r'<tr class="task-row"', dom)) == len(doc["tasks"])
    assert dom.count('<section class="task"') == len(doc["tasks"]) and "<h2>Provenance</h2>" in dom
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title.startswith("Grading report: run_id: &lt;script&gt;")
    for field in FIELDS:                                     # as visible text, never as markup
        assert f"{field}: &lt;script&gt;" in dom, field


def test_control_the_harness_sees_each_vector_run_when_unescaped(tmp_path):
    """Negative control: the same payloads written raw into a page are detected, vector by vector."""
    page = tmp_path / "control.html"
    raw = vectors("control")
    page.write_text("<!DOCTYPE html><html><head><title>control</title></head><body>"
                    + "".join(f"<div>{v}</div>" for v in raw.values())
                    + '<script type="application/json" id="j">["' + raw["close"] + '"]</script>'
                    + "</body></html>", encoding="utf-8")
    dom, _ = dump_dom(page.as_uri(), tmp_path / "profile")
    expected = {f"control-{v}" for v in raw if v != "comment"}      # a comment in body text is inert
    assert ran(dom) >= expected, expected - ran(dom)


def test_control_the_report_without_autoescape_runs_payloads_from_every_field(hostile, tmp_path, monkeypatch):
    """Negative control: the same report rendered with autoescape off runs a payload from each field."""
    run_dir, doc = hostile
    unsafe = jinja2.Environment(loader=jinja2.PackageLoader("grader.reports", "templates"), autoescape=False,
                                undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    monkeypatch.setattr(html_report, "_environment", lambda: unsafe)
    page = tmp_path / "unsafe.html"
    page.write_text(html_report.render(doc, run_dir), encoding="utf-8")
    dom, _ = dump_dom(page.as_uri(), tmp_path / "profile")
    fields = {marker.split("-")[0] for marker in ran(dom)}
    assert fields == set(FIELDS), set(FIELDS) - fields


def test_the_error_page_escapes_the_run_id_and_the_trace():
    page = html_report.error_page({"run_id": payload("run_id")}, "Traceback\n" + payload("stderr"))
    parser = _Tags()
    parser.feed(page)
    assert [t for t, _ in parser.tags] == ["html", "head", "meta", "title", "body", "h1", "p", "code", "pre"]
    assert "run_id: &lt;script&gt;" in page and "stderr: &lt;script&gt;" in page and "\x01" not in page


def test_assets_that_would_end_their_element_early_are_refused(monkeypatch):
    from grader.errors import GraderError

    monkeypatch.setattr(html_report.resources, "files", lambda _: _FakeFolder("a{b:c} </STYLE><script>x()</script>"))
    html_report._assets.cache_clear()
    try:
        with pytest.raises(GraderError, match="report.css contains .*would end its element early"):
            html_report._assets()
    finally:
        html_report._assets.cache_clear()


class _FakeFolder:
    def __init__(self, text: str):
        self.text = text

    def __truediv__(self, _name):
        return self

    def read_text(self, encoding="utf-8"):
        return self.text
