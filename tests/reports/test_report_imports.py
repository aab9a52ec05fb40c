"""``grader report`` and ``grader rescore`` work on a run folder without importing torch until
images have to be scored: re-rendering reads JSON and draws PNGs, nothing more."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import metrics, prompt_file, sleepy, small_timing, task_set, write

from grader.config import GradeConfig
from grader.pipeline.run import grade

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import sys; from grader.cli import main; rc = main(sys.argv[1:]); "
         "print(); print('torch-imported' if 'torch' in sys.modules else 'no-torch', rc)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    tasks = task_set(root / "tasks", [{"prompt_id": pid, "gt": sleepy(0.01)} for pid in "12"])
    sub = root / "sub"
    for pid in "12":
        write(sub / f"{pid}_baseline.py", sleepy(0.01))
        write(sub / f"{pid}_metrics.json", metrics(1.0))
    write(sub / "1_experiment.py", sleepy(0.01))          # task 2 has no experiment: missing
    write(root / "models" / "model_index.json", "{}")
    cfg = GradeConfig(submission=sub, tasks=tasks, model_dir=root / "models", out=root / "run",
                      prompts_file=prompt_file(root / "prompts.txt"), timing=small_timing(min_batches=2, max_batches=2))
    doc = grade(cfg, progress=lambda _: None)
    assert {t["prompt_id"]: t["status"] for t in doc["tasks"]} == {"1": "ok", "2": "missing"}
    return root / "run"


def _run(*argv: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1].split()


@pytest.mark.slow
def test_report_renders_every_output_without_torch(run_dir):
    assert _run("report", str(run_dir)) == ["no-torch", "0"]
    assert json.loads((run_dir / "report.json").read_text())["provenance"]["rendered_at"]


@pytest.mark.slow
def test_rescore_imports_torch_only_when_it_scores_images(run_dir):
    # Task 1's verdict came from the gate: rescoring it reads images, and that needs torch.
    assert _run("rescore", str(run_dir), "--ssim-tolerance", "0.5") == ["torch-imported", "0"]
    # With nothing the gate decided, rescore renders only.
    (run_dir / "tasks" / "1" / "result.json").unlink()
    assert _run("rescore", str(run_dir), "--ssim-tolerance", "0.4") == ["no-torch", "0"]
