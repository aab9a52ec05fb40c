"""report.html: self-contained, complete, and rendering in a real headless chromium.

The run here is synthetic (results and images written directly), so these tests take
no grading time; test_resume/test_rescore cover pages of real graded runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from grader import __version__
from grader.config import GradeConfig, QualityConfig
from grader.reports import outputs
from grader.reports.document import build
from grader.runs.timing import BatchTime, summarize

NASTY = 'a "quoted" </script><script>window.pwned=1</script> & <b>bold</b> \x01\x1b prompt'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _variant(name: str, per_image: float, flags=(), status="ok", message="", n_batches=4, batch_size=2) -> dict:
    batches = [BatchTime(i, batch_size, per_image * batch_size * (1 + 0.05 * (i % 3)), per_image * batch_size)
               for i in range(n_batches)]
    return {"name": name, "status": status, "message": message, "stderr_tail": "", "flags": list(flags),
            "timing": summarize(batches, batch_size).to_dict() if status == "ok" else None,
            "batches": [b.__dict__ for b in batches] if status == "ok" else [], "phases": {"load": 0.1},
            "image_shape": [16, 16], "has_inference": False, "passes": [], "versions": {}, "retries": 0}


def _task(pid: str, status: str, **over) -> dict:
    base = {"prompt_id": pid, "task_key": "SD1.5_DDIM_10", "difficulty": "easy", "category": "test",
            "status": status, "message": "", "flags": [], "mode": "module", "self_reported": False,
            "speedup": None, "speedup_ci": None, "gt_speedup": None, "relative_to_gt": None,
            "manifest_speedup": 1.5, "self_reported_speedup": 2.0, "self_report_discrepancy": None,
            "quality": None, "variants": {}, "grade_seconds": 1.25, "resume": {"key": "k", "quality_key": "q"}}
    base.update(over)
    return base


def _quality(passed: bool, ssim: float) -> dict:
    return {"clip_reference": None, "clip_experiment": None, "clip_gt": None, "ssim_experiment_vs_reference": ssim,
            "ssim_gt_vs_reference": 0.97, "ssim_experiment_vs_gt": ssim, "psnr_experiment_vs_reference": 30.0,
            "psnr_gt_vs_reference": 32.0, "psnr_experiment_vs_gt": 29.0, "n_images": 4, "passed": passed,
            "failures": [] if passed else ["ssim_drop"]}


def _measured(pid: str, status: str, exp: float, ssim: float, prompts: list[str], **over) -> dict:
    variants = {"baseline": _variant("baseline", 0.04), "experiment": _variant("experiment", exp),
                "gt": _variant("gt", 0.02)}
    return _task(pid, status, speedup=0.04 / exp, speedup_ci=[0.04 / exp * 0.9, 0.04 / exp * 1.1], gt_speedup=2.0,
                 relative_to_gt=0.02 / exp, self_report_discrepancy=abs(2.0 - 0.04 / exp) / (0.04 / exp),
                 quality=_quality(status == "ok", ssim), variants=variants,
                 quality_inputs={"labels": ["b0000", "b0001"], "prompts": prompts}, **over)


def synthetic_run(tmp_path: Path) -> tuple[Path, dict]:
    """A run folder with stored images and a report covering every status and several flags."""
    for name in ("sub", "tasks", "models"):
        (tmp_path / name).mkdir(exist_ok=True)
    run_dir = tmp_path / "run"
    cfg = GradeConfig(submission=tmp_path / "sub", tasks=tmp_path / "tasks", model_dir=tmp_path / "models",
                      out=run_dir, sandbox="local", seed=11, quality=QualityConfig(ssim_tolerance=0.05))
    prompts = ["a fox", NASTY, "a teapot", "a castle"]
    tasks = [
        _measured("1", "ok", 0.01, 0.99, prompts),
        _measured("2", "quality_failed", 0.005, 0.4, prompts, message="quality gate failed: ssim_drop",
                  difficulty="medium", flags=["self_report_mismatch"]),
        _measured("10", "tampered", 0.002, 0.98, prompts, message="integrity check failed: timer_mismatch",
                  difficulty="hard", flags=["timer_mismatch"]),
        _task("3", "missing", message="metrics file 3_metrics.json is missing"),
        _task("4", "invalid_metrics", message="4_metrics.json: does not match metrics.schema.json at $.speedup"),
        _task("5", "error", message="experiment: runtime_error while loading: agent bug " + NASTY,
              variants={"experiment": _variant("experiment", 0.0, status="error", message="agent bug")}),
        _task("6", "ok", mode="script", self_reported=True, speedup=1.7, relative_to_gt=1.1, flags=["self_reported"],
              message="script mode: scores are self-reported, not measured"),
        _task("7", "timeout", message="experiment: no answer within 60s", difficulty="medium"),
        _task("8", "oom", message="experiment: out of memory", difficulty="hard"),
        _task("9", "error", message="gt: crashed", flags=["gt_failed"], task_key="SDXL_Euler_30"),
        _measured("11", "ok", 0.01, 0.99, prompts, flags=["baseline_sandbagged", "baseline_timer_mismatch"],
                  evidence={"baseline_sandbagged": "baseline 0.0400 s/image vs 0.0300 implied by the GT"}),
    ]
    tasks[-1]["variants"]["baseline"]["evidence"] = {"timer_mismatch": "batch 2: supervisor 0.0800s, worker says 0.0100s"}
    tasks[2]["variants"]["experiment"]["batches"][1]["worker_seconds"] = 0.001
    rng = np.random.default_rng(0)
    for t in tasks:
        if t.get("quality_inputs"):
            t["quality_inputs"]["seeds"] = [100, 101, 200, 201]
            for variant in ("reference", "experiment", "gt"):
                for label in ("b0000", "b0001"):
                    folder = run_dir / "tasks" / t["prompt_id"] / variant / "images" / label
                    folder.mkdir(parents=True)
                    for k in range(2):
                        np.save(folder / f"{k:03d}.npy", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    environment = {"git_commit": None, "libraries": {"python": "3"}, "machine": {"device": "cpu", "gpu": None},
                   "image": None}
    now = time.time()
    doc = build(cfg.as_dict(), tasks, run_seed=11, started=now - 60, finished=now, version=__version__,
                       environment=environment)
    outputs.write(run_dir, doc)
    return run_dir, doc


@pytest.fixture()
def run(tmp_path):
    return synthetic_run(tmp_path)


def test_outputs_are_written_and_the_page_is_self_contained(run):
    run_dir, doc = run
    for name in ("report.json", "report.md", "report.html", "junit.xml"):
        assert (run_dir / name).is_file(), name
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith(("data:image/png;base64,", "#task-")), attr
    assert "<link" not in page and "@import" not in page
    # the nasty prompt and message are text, never markup
    assert "window.pwned" in page and "<script>window.pwned" not in page
    assert "\x01" not in page and "\x1b" not in page


def test_page_has_every_section(run):
    run_dir, doc = run
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    for needle in ("Summary", "By difficulty", "Speedup vs GT", 'id="tasks"', "Thresholds", "Provenance",
                   'alt="speedup vs GT"', "ssim_tolerance", doc["provenance"]["started_at"]):
        assert needle in page, needle
    for t in doc["tasks"]:
        assert f'id="task-{t["prompt_id"]}"' in page
    # one image grid per task with stored images: 4 rows (prompt, seed) x 3 variants
    for pid in ("1", "2", "10", "11"):
        section = page.split(f'id="task-{pid}"')[1].split('<section class="task"')[0]
        assert section.count('<img alt="reference ') == 4 and section.count('<img alt="gt ') == 4
        assert "per-image time distribution" in section
        assert ">100<br>" in section and ">201<br>" in section      # seed of each image: batch seed + index
    # flags with their evidence
    section = page.split('id="task-10"')[1].split('<section class="task"')[0]
    assert "timer_mismatch" in section and "worker 0.0010s vs supervisor" in section
    section = page.split('id="task-11"')[1].split('<section class="task"')[0]
    assert "baseline_sandbagged</code>: baseline 0.0400 s/image vs 0.0300 implied by the GT" in section
    assert "baseline_timer_mismatch</code>: baseline: batch 2: supervisor 0.0800s, worker says 0.0100s" in section
    section = page.split('id="task-2"')[1].split('<section class="task"')[0]
    assert "self-reported speedup 2.00x vs measured 8.00x" in section
    assert "ssim_drop" in section


def test_table_data_lists_every_task(run):
    run_dir, doc = run
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json" id="task-data">(.*?)</script>', page, re.S).group(1))
    assert [row["prompt_id"] for row in data] == [t["prompt_id"] for t in doc["tasks"]]
    assert {row["status"] for row in data} == {"ok", "quality_failed", "tampered", "missing", "invalid_metrics",
                                               "error", "timeout", "oom"}


def test_a_failing_rendering_leaves_the_other_reports(run, monkeypatch, capsys):
    run_dir, doc = run
    from grader.reports import html as html_report

    monkeypatch.setattr(html_report, "render", lambda *_: 1 / 0)
    outputs.write(run_dir, doc)
    assert "could not be rendered" in (run_dir / "report.html").read_text()
    assert json.loads((run_dir / "report.json").read_text())["run_id"] == doc["run_id"]
    assert "report.html could not be rendered" in capsys.readouterr().err


# --------------------------------------------------------------------------- headless chromium


def _need_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is required in CI (scripts/ci_browser.sh installs it)", pytrace=False)
        pytest.skip("chromium is not installed (bash scripts/ci_browser.sh installs it)")
    return CHROMIUM


def dump_dom(url: str, profile: Path) -> tuple[str, list[str]]:
    """Load ``url`` in headless chromium; return the DOM after scripts ran and the console lines."""
    argv = [_need_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
            "--disable-extensions", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            "--dump-dom", url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def _rows(dom: str) -> list[str]:
    return re.findall(r'<tr class="task-row" data-id="([^"]+)"', dom)


def test_chromium_renders_the_table_without_console_errors(run, tmp_path):
    run_dir, doc = run
    dom, console = dump_dom((run_dir / "report.html").as_uri(), tmp_path / "profile")
    assert console == [], console
    assert not re.search(r"<html[^>]*data-js-errors", dom)
    assert _rows(dom) == [t["prompt_id"] for t in doc["tasks"]]           # rows exist only if the script ran
    assert f'data-rendered="{len(doc["tasks"])}"' in dom
    assert "window.pwned" in dom and "<script>window.pwned" not in dom


def test_chromium_sorts_the_table(run, tmp_path):
    run_dir, doc = run
    dom, console = dump_dom((run_dir / "report.html").as_uri() + "#sort=speedup:desc", tmp_path / "profile")
    assert console == []
    with_speedup = sorted((t for t in doc["tasks"] if t["speedup"] is not None), key=lambda t: -t["speedup"])
    rows = _rows(dom)
    assert rows[:len(with_speedup)] == [t["prompt_id"] for t in with_speedup]
    assert len(rows) == len(doc["tasks"])                                    # tasks without a speedup go last
    assert 'class="sorted-desc"' in dom


def test_the_console_check_sees_script_errors(tmp_path):
    """Negative control: a page with an uncaught error must show up in the console lines."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    _, console = dump_dom(page.as_uri(), tmp_path / "profile")
    assert any("Uncaught" in line for line in console), console
