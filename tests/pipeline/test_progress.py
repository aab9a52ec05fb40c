"""Progress of a run: the console (plain and rich), the JSON log, and phases told by explicit callbacks."""

from __future__ import annotations

import io
import json
import threading
import time

from support import sleepy, small_timing

from grader.pipeline.progress import Reporter
from grader.runs.interleave import run_variant
from grader.runs.variant import VariantSpec
from grader.taskset.prompts import Schedule


def test_progress_reports_task_variant_phase_and_logs_json(tmp_path):
    for console in ("plain", "rich"):
        run_dir = tmp_path / console
        stream = io.StringIO()
        reporter = Reporter(run_dir, console, stream=stream)
        reporter.run_started(run_id="r", run_dir=run_dir, n_tasks=2, reused=1)
        reporter.task_reused("1", "ok")
        reporter.task_started("2", run_dir / "tasks" / "2")
        on_phase = reporter.phases("2")
        on_phase("gt", "loading", "")
        on_phase("baseline", "warm-up", "1/1")
        on_phase("baseline", "timed", "batch 1")
        on_phase("", "scoring", "")
        assert reporter.variant_phase == {"gt": "loading", "baseline": "timed", "": "scoring"}
        reporter.task_finished("2", "quality_failed", "quality gate failed: ssim_drop", 3.0, ["x"])
        reporter.run_finished({"n_tasks": 2, "n_passing": 1, "geomean_speedup": 2.0}, ["report.json"])
        reporter.close()
        out = stream.getvalue()
        for needle in ("task_reused", "task=2", "variant=baseline", "phase=warm-up", "phase=timed", "phase=scoring",
                       "variant=gt", "phase=loading", "status=quality_failed", "run_finished"):
            assert needle in out, (console, needle)
        events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        assert {"run_started", "task_reused", "task_started", "phase", "task_finished", "run_finished"} <= {
            e["event"] for e in events}
        assert all("timestamp" in e and "level" in e for e in events)
        assert reporter.eta() == 0.0


def test_the_json_log_closes_a_line_a_kill_cut(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"event": "run_started"}\n{"event": "pha')
    reporter = Reporter(tmp_path, lambda _: None)
    reporter("hello")
    reporter.close()
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert lines[1] == '{"event": "pha' and json.loads(lines[2])["text"] == "hello"


def test_phases_of_concurrent_tasks_go_to_their_own_task(tmp_path):
    lines: list[str] = []
    reporter = Reporter(tmp_path, lines.append)
    reporter.run_started(run_id="r", run_dir=tmp_path, n_tasks=2, reused=0, workers=2)
    both_started = threading.Barrier(2)

    def grade_one(task_id: str, variant: str) -> None:
        reporter.task_started(task_id, tmp_path / "tasks" / task_id)
        both_started.wait()
        reporter.phases(task_id)(variant, "timed", "batch 1")
        both_started.wait()
        reporter.task_finished(task_id, "ok", "", 2.0, [])

    threads = [threading.Thread(target=grade_one, args=(t, v)) for t, v in (("7", "gt"), ("8", "experiment"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reporter.close()
    phases = [line for line in lines if "phase=timed" in line]
    assert any("task=7" in line and "variant=gt" in line for line in phases)
    assert any("task=8" in line and "variant=experiment" in line for line in phases)
    assert not any("task=7" in line and "variant=experiment" in line for line in phases)


def test_the_supervisor_tells_every_phase_of_a_real_run(tmp_path):
    """A real worker (local sandbox): loading, each warm-up, each timed batch and the probes
    arrive through the callback, in order, named by the variant."""
    module = tmp_path / "m.py"
    module.write_text(sleepy(0.001))
    (tmp_path / "model").mkdir()
    told: list[tuple[str, str, str]] = []
    timing = small_timing(warmup_batches=2, min_batches=3, max_batches=3, idle_window_seconds=0.1,
                          idle_grace_seconds=0.0)
    spec = VariantSpec(name="experiment", module_path=module, model_dir=tmp_path / "model", steps=2, device="cpu",
                       sandbox="local")
    started = time.monotonic()
    run = run_variant(spec, Schedule(tuple(f"p{i}" for i in range(20)), 1, 2), timing, tmp_path / "run",
                      on_phase=lambda v, p, d="": told.append((v, p, d)))
    assert run.status == "ok", run.message
    assert time.monotonic() - started < 60
    assert {v for v, _, _ in told} == {"experiment"}
    assert [(p, d) for _, p, d in told] == [
        ("loading", ""), ("warm-up", "1/2"), ("warm-up", "2/2"),
        ("timed", "batch 1"), ("timed", "batch 2"), ("timed", "batch 3"), ("probes", ""), ("probes", ""), ("probes", "")]
