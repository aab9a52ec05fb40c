"""Reading files the worker must not see (GT code, other tasks' files, the run folder, the
grader's sources), writing where it must not, the network, the Docker socket, and the other
variants' workers; and who the worker runs as (uid, capabilities, no_new_privs).

Only a real sandbox can stop these: the local provider does not isolate and says so in its
``known_differences``, so the graded cases here run under docker and bwrap (each skipped where it
cannot run; bwrap checks run anyway under CI or ``GRADER_REQUIRE_BWRAP=1``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from adv_support import Case, assert_caught, grade_cases

from grader.isolation.local import LocalSandbox

ROOT = Path(__file__).resolve().parents[2]
ISOLATING = ("docker", "bwrap")
CASES = [
    Case("spy", "isolation_spy", status=("ok",), sandboxes=ISOLATING),
    Case("copy_gt", "isolation_copy_gt", status=("error",), message="No such file", sandboxes=ISOLATING),
]
ALLOWED_WRITES = ()   # nothing the spy tries to write may be writable
# Mounts a worker may write to: its work folder and its sandbox's own tmpfs, /dev/shm, POSIX
# message queues (private IPC namespace) and /proc (its own processes' files).
PRIVATE_WRITABLE = {"/mnt/work", "/tmp", "/dev/shm", "/dev/mqueue", "/proc"}
WATCHED = ("sandbox/worker.py", "sandbox/protocol.py", "grader/integrity.py", "grader/supervisor.py")


def _digests(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths if Path(p).is_file()}


def _host_paths(root: Path) -> list[str]:
    spy, other = "100", "101"
    run = root / "run" / "tasks" / spy
    return [str(p) for p in (
        root / "tasks" / "gt_code" / f"{spy}.py", root / "tasks" / "gt_code" / f"{other}.py",
        root / "tasks" / "config_data" / "dataset_manifest.json", root / "tasks",
        root / "sub" / f"{other}_experiment.py", root / "sub" / f"{spy}_baseline.py", root / "sub" / f"{spy}_metrics.json",
        root / "sub", root / "run", root / "run" / "run.json", run / "gt" / "images" / "b0000", run / "gt" / "work",
        run / "baseline" / "images", ROOT / "grader" / "integrity.py", ROOT / "grader", ROOT / "sandbox" / "worker.py",
    )]


def _bwrap_marks() -> list:
    from grader.isolation.bwrap import unavailable_reason

    reason = unavailable_reason()
    required = os.environ.get("GRADER_REQUIRE_BWRAP") == "1" or os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return [pytest.mark.slow] + ([pytest.mark.skip(reason=f"bwrap does not work here: {reason}")]
                                 if reason and not required else [])


SANDBOXES = [pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow], id="docker"),
             pytest.param("bwrap", marks=_bwrap_marks(), id="bwrap")]


@pytest.fixture(scope="module", params=SANDBOXES)
def graded(tmp_path_factory, request):
    sandbox = request.param
    root = tmp_path_factory.mktemp(f"isolation-{sandbox}")
    substitutions = {
        "HOST_PATHS = []": f"HOST_PATHS = {json.dumps(_host_paths(root))}",
        'GT_PATH = ""': f'GT_PATH = "{root / "tasks" / "gt_code" / "101.py"}"',
    }
    before = _digests(ROOT / w for w in WATCHED)
    results = grade_cases(root, sandbox, CASES, substitutions)
    return root, results, before


@pytest.mark.parametrize("case", CASES, ids=str)
def test_isolation_case(graded, case):
    _, results, _ = graded
    assert_caught(results[case.name], case)


def _spy_report(results, stage: str) -> dict:
    work = Path(results["spy"]["_run_dir"]) / "experiment" / "work"
    return json.loads((work / f"spy-{stage}.json").read_text())


@pytest.mark.parametrize("stage", ["load", "inference"])
def test_worker_sees_only_its_own_mounts(graded, stage):
    _, results, _ = graded
    report = _spy_report(results, stage)
    readable = [p for p, r in report["reads"].items() if r["ok"]]
    assert not readable, f"host paths readable from inside the sandbox: {readable}"
    writable = [p for p, r in report["writes"].items() if r["ok"] and p not in ALLOWED_WRITES]
    assert not writable, f"written from inside the sandbox: {writable}"
    reached = [a for a, r in report["network"].items() if r["ok"]]
    assert not reached, f"network reachable from inside the sandbox: {reached}"
    assert report["mnt"]["ok"] and set(report["mnt"]["detail"].strip("[]").replace("'", "").split(", ")) <= {"code", "model", "work"}
    assert report["code"]["detail"] == str(sorted(["100_experiment.py"]))
    assert report["siblings"] == [], f"other workers visible: {report['siblings']}"


def test_worker_runs_unprivileged_without_network_or_docker(graded):
    """The escape probe: non-root uid, no capabilities (none effective, none to gain: an empty
    bounding set), no_new_privs, only loopback, no Docker socket, and nothing writable outside the
    work folder but the sandbox's own private tmpfs."""
    root, results, _ = graded
    report = _spy_report(results, "load")
    status = report["status"]
    assert report["uid"] != 0 and report["euid"] != 0 and report["gid"] != 0, report
    assert all(int(status[k], 16) == 0 for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")), status
    assert status["NoNewPrivs"] == "1", status
    assert report["interfaces"] == ["lo"], report["interfaces"]
    reached = [p for p, r in report["docker_socket"].items() if r["ok"]]
    assert not reached, f"Docker socket reachable from inside the sandbox: {reached}"
    writable = set(report["writable_mounts"]) - PRIVATE_WRITABLE
    assert not writable, f"writable mounts besides the work folder and private tmpfs: {sorted(writable)}"
    shown = [str(root / d) for d in ("tasks", "sub") if str(root / d) in report["mountinfo"]]
    assert not shown, f"/proc/self/mountinfo names host folders not mounted: {shown}"


def test_nothing_outside_was_changed(graded):
    """The spy's writes changed neither its mounted code nor the grader's sources (the latter
    only as a sanity check: under docker and bwrap they are not even visible)."""
    root, _, before = graded
    assert _digests(before) == before
    mounted = root / "run" / "tasks" / "100" / "experiment" / "code" / "100_experiment.py"
    assert mounted.read_bytes() == (root / "sub" / "100_experiment.py").read_bytes()


def test_local_sandbox_says_it_does_not_isolate():
    """Why the cases above skip local: the local provider lists what it cannot stop."""
    assert LocalSandbox.isolated is False
    assert {"hidden_host_files", "readonly_root", "network_isolation"} <= set(LocalSandbox.known_differences)
