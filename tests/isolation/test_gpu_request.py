"""The shape of the GPU device request a docker run gets (no engine or GPU needed).

``docker run --gpus`` and docker-py's ``DeviceRequest`` must agree with what the grader's
options mean: ``--gpus 0,1`` spreads tasks over two GPUs and each task's containers get exactly
the one GPU of their slot; a task pinned to GPU 1 gets GPU 1 only, never "all"; a CUDA run with
no GPU named gets any one GPU (``count=1``, not ``-1``, which is every GPU of the host); a CPU
run gets none, so it cannot see a GPU at all.
"""

from __future__ import annotations

import os
import threading

import pytest

import grader.isolation.docker as dsb
from grader.executors.local import for_each_gpu
from grader.isolation import Mount, SandboxSpec
from grader.isolation.docker import image, provider


@pytest.fixture
def make(tmp_path, monkeypatch):
    info = dsb.ImageInfo(name="sd-grader-sandbox:gpu", id="sha256:" + "cd" * 32, digest="sha256:" + "cd" * 32)
    monkeypatch.setattr(image, "image_info", lambda name=None, gpu=False: info)
    for name in ("work", "code", "model"):
        (tmp_path / name).mkdir()
        os.chmod(tmp_path / name, 0o755)

    def create_kwargs(gpu=None, device="cuda") -> dict:
        spec = SandboxSpec(mounts={"work": Mount(tmp_path / "work", read_only=False), "code": Mount(tmp_path / "code"),
                                   "model": Mount(tmp_path / "model")},
                           env={"GRADER_DEVICE": device}, gpu=gpu, labels={"run": "gpu-request"})
        return dsb.DockerSandbox(spec).create_kwargs(["python", "-m", "sandbox.worker", "--work", "/mnt/work"])

    return create_kwargs


def only_request(kwargs: dict) -> dict:
    (request,) = kwargs["device_requests"]
    assert request["Driver"] == "" and request["Options"] == {}
    assert request["Capabilities"] == [["gpu"]]
    return request


def test_a_task_pinned_to_gpu_1_gets_gpu_1_only(make):
    kwargs = make(gpu="1")
    request = only_request(kwargs)
    assert request["DeviceIDs"] == ["1"] and request["Count"] == 0
    # inside, that GPU is cuda:0: the host's index must not be passed on as CUDA_VISIBLE_DEVICES
    assert "CUDA_VISIBLE_DEVICES" not in kwargs["environment"]


def test_gpus_0_1_give_each_task_the_one_gpu_of_its_slot(make):
    """What `grade --gpus 0,1` does: one thread per GPU, each task's sandbox on its slot's GPU."""
    seen: dict[str, list[str]] = {"0": [], "1": []}
    guard = threading.Lock()

    def grade(task: str, gpu: str) -> None:
        request = only_request(make(gpu=gpu))
        with guard:
            seen[gpu].append(task)
        assert request["DeviceIDs"] == [gpu] and request["Count"] == 0

    for_each_gpu(("0", "1"), [(f"task{i}",) for i in range(6)], grade)
    assert sorted(seen["0"] + seen["1"]) == [f"task{i}" for i in range(6)]


def test_cuda_without_a_named_gpu_gets_exactly_one(make):
    request = only_request(make(gpu=None, device="cuda"))
    assert request["Count"] == 1 and not request["DeviceIDs"]


def test_a_cpu_run_gets_no_gpu(make):
    assert "device_requests" not in make(gpu=None, device="cpu")


def test_uuids_and_lists_pass_through_trimmed(make):
    uuid = "GPU-5b0e8f3c-1d2a-4e5f-9a7b-0c1d2e3f4a5b"
    assert only_request(make(gpu=uuid))["DeviceIDs"] == [uuid]
    assert only_request(make(gpu=" 0 , 1 "))["DeviceIDs"] == ["0", "1"]


def test_an_empty_selection_is_refused_not_all_gpus():
    with pytest.raises(ValueError, match="names no GPU"):
        provider.device_requests(" , ", wants_gpu=True)
    assert provider.device_requests(None, wants_gpu=False) == []
