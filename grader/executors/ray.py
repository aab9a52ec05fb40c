"""The Ray executor: each task's grading in a Ray task that asks for one GPU (``--executor ray``).

An executor only decides *where* a task runs. Every line of task logic is shared: the
pipeline's per-task function (clear the old result, tell the reporter, grade, write
``result.json`` atomically) runs on the driver for both executors. With ``ray``, its one
call to the grading function it was given (the pipeline's ``grade_task``) is sent to a Ray
task that runs the same function on whichever node Ray picks (see docs/ray.md).

What travels (nothing relies on a shared filesystem for inputs or results):

- to the node: the task entry, the config, the run's schedule (same run seed and
  prompt pool), the bytes of the task's submission files, its trusted code (GT and reference
  baseline, as read before anything ran; a few kB), and the
  grading function (by reference: every node has the grader installed). Model folders are
  *not* shipped: ``--model-dir`` (and ``--clip-model``) must exist at the same path on
  every node.
- back to the driver: the task's result and a tar of the regular files of its
  node-local task folder but the variants' ``work/`` scratch (that is, the kept
  quality images, a few MB, and the copied module files), unpacked into the run folder
  before the pipeline writes ``result.json``, so ``report``, ``rescore`` and resume see
  exactly what a local run leaves.

Failures: a Ray task is retried once (``max_retries=1``) when its worker process or
node dies, never on an exception (``retry_exceptions=False``; the grading function turns
those into statuses anyway). A retried task that succeeds carries the flag
``ray_retried`` with the nodes in its evidence; a task whose two attempts both die
ends as ``error`` with the flag ``ray_task_failed``, and the other tasks go on.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import shutil
import tarfile
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from grader.errors import GraderError
from grader.executors.context import GradeTask, TaskContext
from grader.scores.result import TaskResult
from grader.taskset import reference, submission
from grader.taskset.prompts import Schedule

RAY_RETRIES = 1


# --------------------------------------------------------------------------- driver side


def run_on_ray(address: str | None, items: list[tuple], work: Callable, grade_task: GradeTask) -> None:
    """Run ``work(*item, None)`` for every item, its grading done by Ray tasks.

    ``work`` is the pipeline's per-task function; it runs with ``grade=`` a
    :class:`RayGrader` wrapping ``grade_task``, in a driver thread per task in flight (as
    many as the cluster has GPUs), so reporting and result writing stay on the driver.
    """
    if not items:
        return
    grader = RayGrader(address, grade_task)
    remote_work = functools.partial(work, grade=grader)
    width = max(1, min(len(items), grader.gpu_slots()))
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="ray-task") as pool:
        for future in [pool.submit(remote_work, *item, None) for item in items]:
            future.result()


def connect(address: str | None) -> None:
    """``ray.init`` once per process: ``address`` None starts a local instance."""
    import ray

    if ray.is_initialized():
        return
    # Without an address: a private instance on this machine, bound to loopback.
    kwargs = {"address": address} if address else {"include_dashboard": False, "_node_ip_address": "127.0.0.1"}
    ray.init(**kwargs, log_to_driver=False, configure_logging=False)


class RayGrader:
    """``grade_task(task, ctx, gpu)`` done by a Ray task; writes the task's files on the driver."""

    def __init__(self, address: str | None, grade_task: GradeTask):
        try:
            import ray
        except ImportError as exc:
            raise GraderError("--executor ray needs Ray: pip install 'sd-speedup-grader[ray]'") from exc
        connect(address)
        self.ray, self.grade_task = ray, grade_task
        if ray.cluster_resources().get("GPU", 0) < 1:
            raise GraderError("--executor ray: the Ray cluster declares no GPUs; start its nodes with "
                              "`ray start ... --num-gpus N` (docs/ray.md)")
        node = ray.get_runtime_context().get_node_id()
        # Counts attempts per task; pinned to the driver's node so it outlives any worker node.
        self.attempts = ray.remote(num_cpus=0)(_Attempts).options(
            scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(node, soft=False)).remote()
        self.remote = ray.remote(_grade_on_node).options(num_gpus=1, max_retries=RAY_RETRIES, retry_exceptions=False)
        self.lock = threading.Lock()

    def gpu_slots(self) -> int:
        return int(self.ray.cluster_resources().get("GPU", 1))

    def __call__(self, task, ctx: TaskContext, gpu=None) -> TaskResult:
        cfg = ctx.config
        if not submission.find(cfg.submission, task).complete:
            return self.grade_task(task, ctx, gpu=gpu)  # only file checks: same message as a local run
        files = {role: (path.relative_to(Path(cfg.submission).resolve()).as_posix() if role != "gt" else path.name,
                        path.read_bytes())
                 for role, path in submission.task_files(cfg.submission, task).items()}
        schedule = (tuple(ctx.schedule.pool), ctx.schedule.run_seed, ctx.schedule.batch_size, ctx.schedule.max_images,
                    ctx.schedule.predictable)
        # the trusted code as read before anything ran, not re-read on the node (plain data)
        code = ctx.code.get(task.prompt_id) or reference.task_code(cfg.tasks, task)
        ref = self.remote.remote(task, cfg, schedule, files, code, self.attempts, self.grade_task)
        try:
            reply = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            nodes = self.ray.get(self.attempts.nodes.remote(task.prompt_id))
            return self._failed(task, exc, nodes)
        task_dir = Path(ctx.run_dir) / "tasks" / task.prompt_id
        _unpack(reply["files"], task_dir)
        result = TaskResult.from_dict(_relocate(reply["result"], reply["paths"], {
            "submission": str(Path(cfg.submission).resolve()), "gt": str(Path(task.gt_path).parent),
            "run": str(Path(ctx.run_dir))}))
        attempt, nodes = reply["attempt"], reply["nodes"]
        result.ray = {"node": nodes[-1], "attempts": attempt, "nodes": nodes}
        if attempt > 1:
            note = (f"the Ray worker died on node {nodes[0][:12]} (attempt 1 of {RAY_RETRIES + 1}); "
                    f"retried on node {nodes[-1][:12]}" + (" (the same node)" if nodes[0] == nodes[-1] else ""))
            result.add_flags(["ray_retried"], {"ray_retried": note})
            ctx.note(f"task {task.prompt_id}: {note}")
        return result

    @staticmethod
    def _failed(task, exc: BaseException, nodes: list[str]) -> TaskResult:
        try:
            raise exc
        except BaseException as caught:  # noqa: BLE001 - crashed() reads the traceback being handled
            result = TaskResult.crashed(task, caught)
        where = ", ".join(n[:12] for n in nodes) or "no node (it never started)"
        result.message = (f"Ray task failed after {len(nodes)} attempt(s) on node(s) {where}: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")[:2000]
        result.flags = sorted({"ray_task_failed", *(["ray_retried"] if len(nodes) > 1 else [])})
        result.evidence = {"ray_task_failed": result.message}
        result.ray = {"node": nodes[-1] if nodes else None, "attempts": len(nodes), "nodes": nodes}
        return result


class _Attempts:
    """A Ray actor: which nodes each task's attempts started on."""

    def __init__(self):
        self.seen: dict[str, list[str]] = {}

    def begin(self, prompt_id: str, node: str) -> list[str]:
        self.seen.setdefault(prompt_id, []).append(node)
        return list(self.seen[prompt_id])

    def nodes(self, prompt_id: str) -> list[str]:
        return list(self.seen.get(prompt_id, []))


def _unpack(blob: bytes, task_dir: Path) -> None:
    """Put a task's node-local folder into the run folder (replacing what an earlier attempt left)."""
    task_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
        members = tar.getmembers()
        for name in {m.name.split("/")[0] for m in members}:
            if (task_dir / name).is_dir():
                shutil.rmtree(task_dir / name)
        tar.extractall(task_dir, members=members, filter="data")


def _relocate(result: dict, node_paths: dict[str, str], driver_paths: dict[str, str]) -> dict:
    """Replace the node's scratch paths in a result by the driver's paths, so reports match a local run."""
    text = json.dumps(result)
    for key in sorted(node_paths, key=lambda k: -len(node_paths[k])):
        text = text.replace(json.dumps(node_paths[key])[1:-1], json.dumps(driver_paths[key])[1:-1])
    return json.loads(text)


# --------------------------------------------------------------------------- node side


def _node_gpus(node: str, gpu: str | None) -> tuple[str, ...]:
    """The GPU slots of this node: tasks run there concurrently, one per GPU, so each gets
    its own share of the node's cores and threads (grader/runs/placement.py)."""
    import ray

    count = next((int(n.get("Resources", {}).get("GPU", 0)) for n in ray.nodes() if n.get("NodeID") == node), 0)
    slots = tuple(str(k) for k in range(count))
    if gpu is not None and gpu not in slots:
        # Ray handed out an id outside 0..n-1 (CUDA_VISIBLE_DEVICES on the node): this task
        # takes the first slot's share.
        slots = (gpu, *slots[1:])
    return slots


def _grade_on_node(task, cfg, schedule: tuple, files: dict[str, tuple[str, bytes]], code, attempts,
                   grade_task: GradeTask) -> dict:
    """The body of a Ray task: grade one task in a node-local scratch run folder."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    nodes = ray.get(attempts.begin.remote(task.prompt_id, node))
    gpu_ids = ray.get_gpu_ids()
    gpu = str(gpu_ids[0]) if gpu_ids else None
    scratch = Path(tempfile.mkdtemp(prefix=f"sd-grader-{task.prompt_id}-")).resolve()
    paths = {"submission": str(scratch / "submission"), "gt": str(scratch / "tasks" / "gt_code"),
             "run": str(scratch / "run")}
    try:
        for role, (name, data) in files.items():
            path = Path(paths["gt"] if role == "gt" else paths["submission"]) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        local_task = dataclasses.replace(task, gt_path=Path(paths["gt"]) / files["gt"][0])
        try:
            local_cfg = dataclasses.replace(cfg, submission=Path(paths["submission"]), tasks=scratch / "tasks",
                                            out=Path(paths["run"]), executor="local", ray_address=None,
                                            gpus=_node_gpus(node, gpu))
            ctx = TaskContext(local_cfg, Schedule(*schedule), Path(paths["run"]), code={task.prompt_id: code})
            result = grade_task(local_task, ctx, gpu=gpu)
        except Exception as exc:  # noqa: BLE001 - e.g. the model folder is not on this node
            result = TaskResult.crashed(task, exc)
            result.message += f" (on Ray node {node[:12]})"
        document = json.loads(json.dumps(result.to_dict()))  # plain data only
        blob = io.BytesIO()
        task_dir = Path(paths["run"]) / "tasks" / task.prompt_id
        with tarfile.open(fileobj=blob, mode="w:") as tar:
            for path in sorted(task_dir.rglob("*")) if task_dir.is_dir() else []:
                rel = path.relative_to(task_dir)
                if path.is_file() and not path.is_symlink() and rel.parts[1:2] != ("work",):
                    tar.add(path, arcname=rel.as_posix(), recursive=False)
        return {"result": document, "files": blob.getvalue(), "paths": paths, "attempt": len(nodes), "nodes": nodes}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
