"""``--executor ray`` on a real local Ray instance (CPU, with declared GPU resources).

No mocks: Ray starts in the test on 127.0.0.1, tasks are graded by Ray workers, and a
submission module kills its own Ray worker process (its parent) mid-task.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from fixtures import tiny_models  # noqa: F401 - pytest fixture
from support import metrics, prompt_file, sleepy, small_timing, task_set, write

from grader.config import GradeConfig
from grader.errors import ConfigError
from grader.evidence.flags import split_flag
from grader.pipeline.run import grade

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def killer(marker: Path | None, per_image: float = 0.01) -> str:
    """A sleepy module that SIGKILLs its parent (the Ray worker running the task) on its
    first batch; with ``marker``, only while the marker file does not exist yet."""
    condition = "True" if marker is None else f"not os.path.exists({str(marker)!r})"
    return sleepy(per_image) + textwrap.dedent(f'''
        import os, signal
        _call = Pipe.__call__

        def _killing_call(self, prompt, num_inference_steps, generator):
            if {condition}:
                {"open(" + repr(str(marker)) + ", 'w').close()" if marker is not None else "pass"}
                os.kill(os.getppid(), signal.SIGKILL)
                os._exit(3)
            return _call(self, prompt, num_inference_steps, generator)

        Pipe.__call__ = _killing_call
    ''')


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}},
             log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def _setup(tmp_path: Path, experiments: dict[str, str], missing: tuple[str, ...] = ()) -> dict:
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": pid, "gt": sleepy(0.01)} for pid in experiments])
    sub = tmp_path / "sub"
    for pid, experiment in experiments.items():
        write(sub / f"{pid}_baseline.py", sleepy(0.01))
        write(sub / f"{pid}_experiment.py", experiment)
        if pid not in missing:
            write(sub / f"{pid}_metrics.json", metrics(2.0))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model_index.json").write_text("{}")
    return dict(submission=sub, tasks=tasks, model_dir=tmp_path / "models", seed=3,
                prompts_file=prompt_file(tmp_path / "p.txt"),
                timing=small_timing(min_batches=3, max_batches=3, probes=False))


# Flags read off timings depend on the machine's load, not on where a task ran (with two
# timed batches an interval is no interval, so the sandbag and implausible checks are noise).
TIMING_FLAGS = {"self_report_mismatch", "timer_mismatch", "ray_retried", "baseline_sandbagged", "implausible_speedup"}


def _summary(doc: dict) -> dict:
    """Status and flags by task, less the timing flags of any variant (``baseline_timer_mismatch`` too)."""
    return {t["prompt_id"]: (t["status"], tuple(f for f in t["flags"] if f not in TIMING_FLAGS
                                                and split_flag(f, t.get("variants") or {})[1] not in TIMING_FLAGS))
            for t in doc["tasks"]}


def test_ray_grades_like_the_local_executor(tmp_path, local_ray):
    common = _setup(tmp_path, {"1": sleepy(0.005), "2": sleepy(0.02), "3": sleepy(0.005)}, missing=("3",))
    local = grade(GradeConfig(out=tmp_path / "local", gpus=("0", "1"), **common), progress=lambda _: None)
    remote = grade(GradeConfig(out=tmp_path / "ray", executor="ray", **common), progress=lambda _: None)

    assert _summary(remote) == _summary(local)
    assert {pid: status for pid, (status, _) in _summary(remote).items()} == {"1": "ok", "2": "ok", "3": "missing"}
    by_id = {t["prompt_id"]: t for t in remote["tasks"]}
    local_by_id = {t["prompt_id"]: t for t in local["tasks"]}
    for pid in ("1", "2"):
        task = by_id[pid]
        assert task["ray"]["attempts"] == 1 and "ray_retried" not in task["flags"]
        assert task["gpu"] in ("0", "1")  # ray.get_gpu_ids() of the Ray task
        # Same run seed, same schedule: every timed batch compares alike. Which batches are kept is
        # drawn from a secret source after they were answered, so it may differ between the runs.
        inputs, local_inputs = task["quality_inputs"], local_by_id[pid]["quality_inputs"]
        assert inputs["batches"] == local_inputs["batches"] and inputs["batches"]
        for variant in ("reference", "experiment", "gt"):
            folder = tmp_path / "ray" / "tasks" / pid / variant / "images"
            assert sorted(p.name for p in folder.iterdir()) == inputs["labels"]
            assert all(sorted(p.name for p in (folder / label).glob("*.npy")) == ["000.npy", "001.npy"]
                       for label in inputs["labels"])
        # No path of the node's scratch folder leaks into a result.
        assert "sd-grader-" not in (tmp_path / "ray" / "tasks" / pid / "result.json").read_text()
    assert (tmp_path / "ray" / "report.json").is_file()

    # The run folder resumes like a local one: nothing is graded again ...
    again = grade(GradeConfig(out=tmp_path / "ray", executor="ray", **common), progress=lambda _: None)
    assert _summary(again) == _summary(remote)
    assert again["provenance"]["reused_tasks"] == ["1", "2", "3"]
    # ... and rescore re-gates from the images the Ray tasks sent back.
    from grader.commands.report import rescore_run

    rescored, _ = rescore_run(tmp_path / "ray", {"ssim_tolerance": 0.5})
    assert {t["prompt_id"]: t["status"] for t in rescored["tasks"]} == {"1": "ok", "2": "ok", "3": "missing"}
    assert rescored["thresholds"]["ssim_tolerance"] == 0.5

def test_ray_grades_the_example_submission_like_the_local_executor(tmp_path, local_ray, tiny_models):  # noqa: F811
    """The bundled example (real tiny pipelines, six outcomes) through Ray and locally:
    same statuses, same flags, and, since a tiny pipeline on CPU is deterministic, the
    very same images and quality numbers."""
    from grader.config import QualityConfig

    examples = REPO / "examples"
    if not (examples / "tasks" / "config_data" / "dataset_manifest.json").is_file():
        pytest.skip("the bundled example task set (examples/tasks) is not there")
    common = dict(submission=examples / "submission", tasks=examples / "tasks", model_dir=tiny_models, seed=11,
                  quality=QualityConfig(clip_model=tiny_models / "clip"),
                  timing=small_timing(batch_size=1, warmup_batches=1, min_batches=2, max_batches=2, quality_batches=2,
                                      probes=False))
    local = grade(GradeConfig(out=tmp_path / "local", gpus=("0", "1"), **common), progress=lambda _: None)
    remote = grade(GradeConfig(out=tmp_path / "ray", executor="ray", **common), progress=lambda _: None)

    expected = {"101": "ok", "102": "ok", "103": "quality_failed", "104": "missing", "105": "invalid_metrics", "106": "error"}
    assert {t["prompt_id"]: t["status"] for t in local["tasks"]} == expected
    assert _summary(remote) == _summary(local)
    local_by_id = {t["prompt_id"]: t for t in local["tasks"]}
    for task in remote["tasks"]:
        mine = local_by_id[task["prompt_id"]]
        if task["status"] in ("ok", "quality_failed"):
            assert task["ray"]["attempts"] == 1
            # every timed batch compares alike; the kept ones (drawn in secret after answering)
            # are compared where both runs kept the same batch
            inputs, local_inputs = task["quality_inputs"], mine["quality_inputs"]
            assert inputs["batches"] == local_inputs["batches"], task["prompt_id"]
            if inputs["labels"] == local_inputs["labels"]:
                assert task["quality"] == mine["quality"], task["prompt_id"]
            for label in set(inputs["labels"]) & set(local_inputs["labels"]):
                for variant in ("reference", "experiment", "gt"):
                    ray_images = sorted((tmp_path / "ray" / "tasks" / task["prompt_id"] / variant / "images" / label).glob("*.npy"))
                    local_images = sorted((tmp_path / "local" / "tasks" / task["prompt_id"] / variant / "images" / label).glob("*.npy"))
                    assert ray_images and [p.read_bytes() for p in ray_images] == [p.read_bytes() for p in local_images]
        else:
            assert task["quality"] == mine["quality"], task["prompt_id"]
    assert remote["summary"]["by_status"] == local["summary"]["by_status"]


def test_a_killed_worker_is_retried_once_and_a_task_dying_twice_is_an_error(tmp_path, local_ray):
    marker = tmp_path / "killed-once"
    common = _setup(tmp_path, {"1": killer(marker), "2": killer(None), "3": sleepy(0.005)})
    doc = grade(GradeConfig(out=tmp_path / "run", executor="ray", **common), progress=lambda _: None)
    by_id = {t["prompt_id"]: t for t in doc["tasks"]}

    assert marker.exists()
    assert by_id["1"]["status"] == "ok", by_id["1"]["message"]
    assert "ray_retried" in by_id["1"]["flags"] and by_id["1"]["ray"]["attempts"] == 2
    assert "retried on node" in by_id["1"]["evidence"]["ray_retried"]

    assert by_id["2"]["status"] == "error"
    assert {"ray_task_failed", "ray_retried"} <= set(by_id["2"]["flags"])
    assert "after 2 attempt(s)" in by_id["2"]["message"]

    assert by_id["3"]["status"] == "ok" and by_id["3"]["ray"]["attempts"] == 1


def test_config_checks_executor_options(tmp_path):
    common = _setup(tmp_path, {"1": sleepy()})
    with pytest.raises(ConfigError):
        GradeConfig(out=tmp_path / "run", executor="dask", **common)
    with pytest.raises(ConfigError):
        GradeConfig(out=tmp_path / "run", ray_address="10.0.0.1:6379", **common)  # needs executor="ray"
    assert GradeConfig(out=tmp_path / "run", executor="ray", ray_address="auto", **common).ray_address == "auto"
