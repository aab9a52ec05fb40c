"""``--gpus``: independent tasks run concurrently, one task per GPU at a time (CPU-tested)."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from support import metrics, prompt_file, sleepy, small_timing, task_set, write

from grader.config import GradeConfig
from grader.executors.local import for_each_gpu
from grader.pipeline.run import grade


def test_one_item_per_gpu_at_a_time_and_all_gpus_used():
    spans: list[tuple[str, float, float]] = []
    lock = threading.Lock()

    def work(name, gpu):
        t0 = time.monotonic()
        time.sleep(0.05)
        with lock:
            spans.append((gpu, t0, time.monotonic()))

    t0 = time.monotonic()
    for_each_gpu(("0", "1", "2"), [(f"t{i}",) for i in range(9)], work)
    elapsed = time.monotonic() - t0
    assert len(spans) == 9 and {g for g, _, _ in spans} == {"0", "1", "2"}
    for gpu in "012":
        mine = sorted((a, b) for g, a, b in spans if g == gpu)
        assert all(prev_end <= start for (_, prev_end), (start, _) in zip(mine, mine[1:]))
    assert elapsed < 9 * 0.05 * 0.7  # ran concurrently


def test_without_gpus_items_run_in_order_in_this_thread():
    seen = []
    for_each_gpu((), [("a",), ("b",)], lambda name, gpu: seen.append((name, gpu, threading.current_thread().name)))
    assert [s[:2] for s in seen] == [("a", None), ("b", None)]
    assert {s[2] for s in seen} == {threading.current_thread().name}


@pytest.mark.slow
def test_grade_spreads_tasks_over_gpus(tmp_path):
    tasks = task_set(tmp_path / "tasks", [{"prompt_id": str(i), "gt": sleepy(0.01)} for i in (1, 2)])
    sub = tmp_path / "sub"
    # The experiment notes the thread budget its torch got (in its work folder).
    threads_probe = ("import json, os, torch\n"
                     "json.dump({'omp': os.environ.get('OMP_NUM_THREADS'), 'torch': torch.get_num_threads()},"
                     " open('threads.json', 'w'))\n")
    for pid in "12":
        write(sub / f"{pid}_baseline.py", sleepy(0.01))
        write(sub / f"{pid}_experiment.py", threads_probe + sleepy(0.005))
        write(sub / f"{pid}_metrics.json", metrics(2.0))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model_index.json").write_text("{}")
    cfg = GradeConfig(submission=sub, tasks=tasks, model_dir=tmp_path / "models", out=tmp_path / "run",
                      gpus=("0", "1"), seed=3, prompts_file=prompt_file(tmp_path / "p.txt"),
                      timing=small_timing(min_batches=3, max_batches=3, probes=False))
    doc = grade(cfg, progress=lambda _: None)
    assert {t["status"] for t in doc["tasks"]} == {"ok"}, [(t["status"], t["message"]) for t in doc["tasks"]]
    assert sorted(t["gpu"] for t in doc["tasks"]) == ["0", "1"]
    # Two tasks compute at once: each worker gets half the cores' worth of threads.
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    for task in doc["tasks"]:
        assert task["threads"] == share
        seen = json.loads((tmp_path / "run" / "tasks" / task["prompt_id"] / "experiment" / "work" / "threads.json").read_text())
        assert seen == {"omp": str(share), "torch": share}


def test_thread_share_splits_the_cores_between_concurrent_slots():
    from grader.runs.placement import thread_share

    assert thread_share((), None, cores=range(16)) is None        # alone: the libraries' default
    assert thread_share(("0",), None, cores=range(16)) is None
    assert thread_share(("0", "1"), None, cores=range(16)) == 8
    assert thread_share(("0", "1", "2"), None, cores=range(2)) == 1  # never zero
    assert thread_share(("0", "1"), (1, 2, 3), cores=range(16)) == 3  # pinned: one per pinned core


def test_cpu_share_gives_each_gpu_slot_its_own_cores_and_keeps_one_for_the_grader():
    from grader.runs.placement import cpu_share

    assert cpu_share(None, (), cores=range(16)) == tuple(range(1, 16))
    left, right = cpu_share("0", ("0", "1"), cores=range(16)), cpu_share("1", ("0", "1"), cores=range(16))
    assert left == tuple(range(1, 8)) and right == tuple(range(8, 15))
    assert not set(left) & set(right) and 0 not in left + right
    assert cpu_share("3", ("2", "3"), cores=[4, 5, 6, 7, 8]) == (7, 8)  # slots by position, not by GPU index
    assert cpu_share(None, (), cores=range(3)) is None  # too few to split: no pinning
    assert cpu_share("5", tuple(str(g) for g in range(8)), cores=range(6)) is None


def test_pinning_defaults_to_cuda_only(tmp_path):
    from grader.config import GradeConfig

    base = dict(submission=tmp_path, tasks=tmp_path, model_dir=tmp_path, out=tmp_path / "out")
    assert GradeConfig(**base, device="cuda").pins_cpus
    assert not GradeConfig(**base, device="cpu").pins_cpus
    assert GradeConfig(**base, device="cpu", pin_cpus=True).pins_cpus
