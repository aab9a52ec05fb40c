"""The docker provider: its lock-down, limits, error handling, cleanup, doctor and images.

Tests marked ``docker`` run real containers from the CPU image (``make image-cpu``); the others
check the provider's logic without an engine. Nothing here sends network traffic.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
from support import sleepy

import grader.isolation.docker as dsb
from grader.errors import SandboxInfraError, SandboxUnavailable
from grader.isolation import Limits, Mount, SandboxSpec, get
from grader.isolation.docker import engine, image, process, provider, reaper
from grader.isolation.output import CappedOutput

# A monkeypatch must reach the module that looks the name up (engine, image, provider), not the
# re-export in grader.isolation.docker.
ROOT = Path(__file__).resolve().parents[2]


def py(code: str) -> list[str]:
    return ["{python}", "-c", textwrap.dedent(code)]


@pytest.fixture
def dirs(tmp_path):
    root = tmp_path / "run"
    for name in ("work", "code", "model"):
        (root / name).mkdir(parents=True)
        os.chmod(root / name, 0o755)
    (root / "code" / "module.py").write_text("VALUE = 1\n")
    return root


def spec_for(root: Path, **kw) -> SandboxSpec:
    return SandboxSpec(mounts={"work": Mount(root / "work", read_only=False), "code": Mount(root / "code"),
                               "model": Mount(root / "model")}, labels={"run": "docker-tests", **kw.pop("labels", {})}, **kw)


@pytest.fixture
def fake_image(monkeypatch):
    info = dsb.ImageInfo(name="sd-grader-sandbox:cpu", id="sha256:" + "ab" * 32, digest="sha256:" + "ab" * 32)
    monkeypatch.setattr(image, "image_info", lambda name=None, gpu=False: info)  # looked up by usable_image
    return info


# ---------------------------------------------------------------------------- no engine needed


def test_inputs_hash_script_agrees_with_the_provider():
    out = subprocess.run([sys.executable, str(ROOT / "docker" / "inputs_hash.py"), "sandbox"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == dsb.sandbox_hash()


def test_reaper_entry_point_runs_from_the_folder_holding_grader():
    """The reaper child is ``python -m`` this module, run in the folder that holds ``grader/``."""
    assert reaper.IMPORT_ROOT == ROOT  # from a checkout; an installed grader: its site-packages
    out = subprocess.run([sys.executable, "-m", reaper.REAPER_MODULE], capture_output=True, text=True, check=False,
                         cwd=reaper.IMPORT_ROOT, timeout=60)
    assert out.returncode == 1 and "--reap PID START" in out.stderr


def test_create_arguments_lock_the_container_down(dirs, fake_image):
    limits = Limits(memory_bytes=3 << 30, pids=128, cpus=2.5, work_dir_bytes=1 << 30)
    sandbox = dsb.DockerSandbox(spec_for(dirs, limits=limits, gpu="1", env={"GRADER_DEVICE": "cuda"},
                                         labels={"task": "141"}))
    kw = sandbox.create_kwargs(["python", "-m", "sandbox.worker", "--work", "/mnt/work"])
    assert kw["image"] == fake_image.id
    assert kw["entrypoint"] == ["python"] and kw["command"] == ["-m", "sandbox.worker", "--work", "/mnt/work"]
    assert kw["network_mode"] == "none" and kw["read_only"] is True
    assert kw["cap_drop"] == ["ALL"] and kw["security_opt"] == ["no-new-privileges:true"]
    uid = int(kw["user"].split(":")[0])
    assert uid != 0 and uid == (dsb.SANDBOX_UID if os.geteuid() == 0 else os.getuid())
    assert kw["mem_limit"] == kw["memswap_limit"] == 3 << 30
    assert kw["pids_limit"] == 128 and kw["nano_cpus"] == int(2.5e9)
    assert kw["tmpfs"]["/tmp"].startswith("rw,nosuid,nodev,size=")
    assert kw["log_config"]["Type"] == "none" and kw["init"] is True
    assert any(u["Name"] == "fsize" and u["Hard"] == 1 << 30 for u in kw["ulimits"])
    mounts = {m["Target"]: m for m in kw["mounts"]}
    assert set(mounts) == {"/mnt/work", "/mnt/code", "/mnt/model"}
    assert mounts["/mnt/work"]["ReadOnly"] is False
    assert mounts["/mnt/code"]["ReadOnly"] is True and mounts["/mnt/model"]["ReadOnly"] is True
    assert all(m["Type"] == "bind" for m in mounts.values())
    (request,) = kw["device_requests"]
    assert request["DeviceIDs"] == ["1"] and request["Capabilities"] == [["gpu"]]
    assert kw["environment"]["GRADER_DEVICE"] == "cuda" and kw["environment"]["HF_HUB_OFFLINE"] == "1"
    labels = kw["labels"]
    assert labels["sd-grader.managed"] == "1" and labels["sd-grader.run"] == "docker-tests"
    assert labels["sd-grader.task"] == "141" and labels["sd-grader.owner-pid"] == str(os.getpid())
    assert sandbox.path("work") == "/mnt/work"
    assert "device_requests" not in dsb.DockerSandbox(spec_for(dirs)).create_kwargs(["true"])
    # cuda without a pinned GPU still gets exactly one
    (any_one,) = dsb.DockerSandbox(spec_for(dirs, env={"GRADER_DEVICE": "cuda"})).create_kwargs(["true"])["device_requests"]
    assert any_one["Count"] == 1 and any_one["Capabilities"] == [["gpu"]]


def test_default_memory_cap_is_a_share_of_the_host(dirs, fake_image):
    sandbox = dsb.DockerSandbox(spec_for(dirs, limits=Limits(memory_bytes=None)))
    assert 0 < sandbox.memory_limit <= psutil.virtual_memory().total


def test_mount_names_and_sources_are_checked(dirs, fake_image):
    with pytest.raises(ValueError):
        dsb.DockerSandbox(SandboxSpec(mounts={"work": Mount(dirs / "work", read_only=False), "../x": Mount(dirs)}))
    with pytest.raises(SandboxInfraError):
        dsb.DockerSandbox(SandboxSpec(mounts={"work": Mount(dirs / "work", read_only=False),
                                              "model": Mount(dirs / "missing")}))


def test_unreachable_engine_is_unavailable(dirs, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dirs}/no-such-docker.sock")
    dsb.reset_client()
    try:
        with pytest.raises(SandboxUnavailable, match="grader doctor"):
            get("docker", spec_for(dirs))
    finally:
        monkeypatch.delenv("DOCKER_HOST")
        dsb.reset_client()


def _api_error(status: int):
    import requests

    import docker

    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(f"simulated {status}", response=response)


def test_only_transient_errors_are_retried(monkeypatch):
    import requests

    monkeypatch.setattr(engine, "INFRA_WAIT_MAX", 0.01)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise requests.ConnectionError("daemon restarting")
        return "created"

    assert engine.infra_call("create", flaky) == ("created", 2)

    calls.clear()

    def bad_request():
        calls.append(1)
        raise _api_error(400)

    with pytest.raises(SandboxInfraError, match="400"):
        engine.infra_call("create", bad_request)
    assert len(calls) == 1

    calls.clear()

    def always_500():
        calls.append(1)
        raise _api_error(500)

    with pytest.raises(SandboxInfraError):
        engine.infra_call("start", always_500)
    assert len(calls) == engine.INFRA_ATTEMPTS


def test_exit_codes_and_output_capping_helpers():
    assert process.normalize(0) == (0, None)
    assert process.normalize(3) == (3, None)
    assert process.normalize(137) == (-9, 9)
    assert process.normalize(None) == (None, None)
    capped = CappedOutput(10)
    for chunk in (b"abc", b"defgh", b"ij" * 50, b"XYZ"):
        capped.add(chunk)
    data, truncated = capped.result()
    assert truncated and data.startswith(b"abcde") and data.endswith(b"ijXYZ")


# ---------------------------------------------------------------------------- real containers


@pytest.mark.docker
def test_inside_the_container(dirs):
    with get("docker", spec_for(dirs, limits=Limits(pids=100, memory_bytes=512 << 20))) as sandbox:
        result = sandbox.exec(py("""
            import json, os
            status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
            tmp = os.statvfs("/tmp")
            print(json.dumps({
                "uid": os.getuid(), "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
                "mnt": sorted(os.listdir("/mnt")), "net": sorted(os.listdir("/sys/class/net")),
                "tmp_bytes": tmp.f_blocks * tmp.f_frsize, "tmp_writable": os.access("/tmp", os.W_OK),
                "root_ro": bool(os.statvfs("/").f_flag & os.ST_RDONLY), "pid1": open("/proc/1/cmdline").read(),
            }))
        """), timeout=60)
    assert result.ok, result.stderr_tail()
    seen = json.loads(result.stdout)
    assert seen["uid"] != 0
    assert seen["cap_eff"] == "0000000000000000" and seen["no_new_privs"] == "1"
    assert seen["mnt"] == ["code", "model", "work"]
    assert seen["net"] == ["lo"]
    assert seen["root_ro"] and seen["tmp_writable"] and seen["tmp_bytes"] <= provider.TMPFS_BYTES
    assert "docker-init" in seen["pid1"] or "tini" in seen["pid1"]


@pytest.mark.docker
def test_running_container_has_labels_and_limits(dirs):
    cl = dsb.client()
    with get("docker", spec_for(dirs, limits=Limits(pids=100, memory_bytes=512 << 20), labels={"task": "7"})) as sandbox:
        proc = sandbox.start(py("import time; time.sleep(30)"))
        attrs = cl.api.inspect_container(proc.id)
        proc.kill()
        proc.wait(20)
    host, labels = attrs["HostConfig"], attrs["Config"]["Labels"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"] == 100 and host["Memory"] == 512 << 20 and host["MemorySwap"] == 512 << 20
    assert host["LogConfig"]["Type"] == "none"
    assert labels["sd-grader.managed"] == "1" and labels["sd-grader.run"] == "docker-tests"
    assert labels["sd-grader.task"] == "7"
    assert attrs["Config"]["Image"] == sandbox.image.id


@pytest.mark.docker
def test_concurrent_runs_from_threads(tmp_path):
    """Tasks run concurrently (one per GPU): sandboxes are used from several threads at once."""
    results, errors = {}, []

    def one(i: int) -> None:
        work = tmp_path / f"w{i}"
        work.mkdir()
        try:
            with get("docker", SandboxSpec(mounts={"work": Mount(work, read_only=False)},
                                           labels={"run": "concurrent"})) as sandbox:
                results[i] = sandbox.exec(py(f"import time; time.sleep(1); print({i})"), timeout=120)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    assert {i: r.stdout for i, r in results.items()} == {i: f"{i}\n".encode() for i in range(6)}
    assert all(r.ok and r.retries == 0 for r in results.values())
    assert dsb.client().api.containers(all=True, filters={"label": "sd-grader.run=concurrent"}) == []


@pytest.mark.docker
def test_endless_loop_times_out_and_its_container_is_gone(dirs):
    import docker

    cl = dsb.client()
    with get("docker", spec_for(dirs)) as sandbox:
        proc = sandbox.start(py("while True:\n    pass"))
        t0 = time.monotonic()
        result = proc.wait(2)
        elapsed = time.monotonic() - t0
    assert result.timed_out and not result.ok and result.killed_by_signal == 9
    assert elapsed < 2 + process.KILL_GRACE, elapsed
    with pytest.raises(docker.errors.NotFound):
        cl.api.inspect_container(proc.id)


@pytest.mark.docker
def test_work_folder_cap_stops_the_run(dirs):
    cap = 20 << 20
    with get("docker", spec_for(dirs, limits=Limits(work_dir_bytes=cap))) as sandbox:
        result = sandbox.exec(py("""
            import time
            with open("/mnt/work/fill", "wb") as fh:
                for _ in range(100):
                    fh.write(b"x" * (1 << 20))
                    fh.flush()
                    time.sleep(0.02)
        """), timeout=60)
    assert not result.ok
    assert "work_dir_bytes" in result.limit_events
    assert b"work folder" in result.stderr
    assert (dirs / "work" / "fill").stat().st_size <= cap  # RLIMIT_FSIZE holds between two looks


@pytest.mark.docker
def test_transient_create_failure_is_retried_and_reported(dirs, monkeypatch):
    from docker.models.containers import ContainerCollection

    monkeypatch.setattr(engine, "INFRA_WAIT_MAX", 0.01)
    real_create = ContainerCollection.create
    failures = []

    def create_failing_once(self, *args, **kwargs):
        if not failures:
            failures.append(1)
            raise _api_error(503)
        return real_create(self, *args, **kwargs)

    monkeypatch.setattr(ContainerCollection, "create", create_failing_once)
    with get("docker", spec_for(dirs)) as sandbox:
        result = sandbox.exec(py("print('after a retry')"), timeout=60)
    assert result.ok and result.stdout == b"after a retry\n"
    assert result.retries == 1


@pytest.mark.docker
def test_failed_start_leaves_no_container(dirs, monkeypatch):
    if shutil.which("nvidia-smi"):
        pytest.skip("this host has GPUs: a device request would not fail")
    cl = dsb.client()
    monkeypatch.setenv(dsb.IMAGE_ENV, dsb.image_info().name)  # the CPU image, with a GPU request
    with get("docker", spec_for(dirs, gpu="0", labels={"run": "bad-start"})) as sandbox:
        with pytest.raises(SandboxUnavailable, match="nvidia-container-toolkit"):
            sandbox.start(["{python}", "-c", "pass"])
    assert cl.api.containers(all=True, filters={"label": "sd-grader.run=bad-start"}) == []


@pytest.mark.docker
def test_a_missing_program_is_an_exit_code_not_an_infra_error(dirs):
    with get("docker", spec_for(dirs)) as sandbox:
        result = sandbox.exec(["/no/such/binary"], timeout=60)
    assert not result.ok and result.returncode not in (0, None) and not result.timed_out


@pytest.mark.docker
def test_missing_or_stale_image_is_refused(dirs, monkeypatch):
    monkeypatch.setenv(dsb.IMAGE_ENV, "sd-grader-sandbox:no-such-tag")
    with pytest.raises(SandboxUnavailable, match="make image"):
        get("docker", spec_for(dirs))
    monkeypatch.delenv(dsb.IMAGE_ENV)
    monkeypatch.setattr(image, "sandbox_hash", lambda: "0" * 64)
    with pytest.raises(SandboxUnavailable, match="rebuild"):
        get("docker", spec_for(dirs))
    monkeypatch.setenv(dsb.ALLOW_STALE_ENV, "1")
    get("docker", spec_for(dirs)).close()


@pytest.mark.docker
def test_containers_do_not_outlive_a_killed_grader(dirs):
    grader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from grader.isolation import Mount, SandboxSpec, get
        sandbox = get("docker", SandboxSpec(mounts={{"work": Mount(Path({str(dirs / 'work')!r}), read_only=False)}},
                                            labels={{"run": "orphan-test"}}))
        proc = sandbox.start(["{{python}}", "-c", "while True: pass"])
        print(proc.id, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    cl = dsb.client()
    try:
        container_id = grader.stdout.readline().strip()
        assert cl.api.inspect_container(container_id)["State"]["Running"]
    finally:
        grader.kill()  # SIGKILL: no atexit, no finally
        grader.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and cl.api.containers(all=True, filters={"label": "sd-grader.run=orphan-test"}):
        time.sleep(0.2)
    assert cl.api.containers(all=True, filters={"label": "sd-grader.run=orphan-test"}) == []


@pytest.mark.docker
def test_cleanup_removes_what_dead_graders_left(dirs):
    cl = dsb.client()
    image = dsb.image_info().id
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = psutil.Process()

    def leftover(pid: int, start: float) -> str:
        return cl.api.create_container(image, command=["-c", "pass"], labels={
            "sd-grader.managed": "1", "sd-grader.run": "cleanup-test", "sd-grader.owner-host": socket.gethostname(),
            "sd-grader.owner-pid": str(pid), "sd-grader.owner-start": f"{start:.3f}"})["Id"]

    orphan = leftover(dead.pid, 1.0)
    mine = leftover(me.pid, me.create_time())
    try:
        dry = subprocess.run([sys.executable, "-m", "grader.cli", "cleanup", "--dry-run"], capture_output=True,
                             text=True, cwd=ROOT)
        assert dry.returncode == 0 and orphan[:12] in dry.stdout and mine[:12] not in dry.stdout
        removed = {item.id for item in dsb.cleanup(run="cleanup-test")}
        assert orphan in removed and mine not in removed
        assert {c["Id"] for c in cl.api.containers(all=True, filters={"label": "sd-grader.run=cleanup-test"})} == {mine}
        # --all scoped to this test's run: other gradings on this engine (a concurrent CI) are left alone
        assert {item.id for item in dsb.cleanup(all_owners=True, run="cleanup-test")} == {mine}
    finally:
        for cid in (orphan, mine):
            try:
                cl.api.remove_container(cid, force=True)
            except Exception:  # noqa: BLE001
                pass


def _variant(tmp_path: Path, name: str, task: str, **timing_kw):
    from grader.config import TimingConfig
    from grader.runs.interleave import run_variant
    from grader.runs.variant import VariantSpec
    from grader.taskset.prompts import Schedule

    module = tmp_path / "src" / f"{name}.py"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(sleepy(0.1))
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    timing = TimingConfig(**{**dict(batch_size=2, warmup_batches=1, min_batches=3, max_batches=3, quality_batches=1,
                                    budget_seconds=60, target_rel_ci=0.5, load_timeout=120), **timing_kw})
    spec = VariantSpec(name=name, module_path=module, model_dir=model, steps=2, device="cpu", sandbox="docker",
                       timeout=300, labels=(("task", task),))
    pool = tuple(f"prompt {i}" for i in range(400))
    return run_variant(spec, Schedule(pool, run_seed=5, batch_size=timing.batch_size), timing, tmp_path / "runs" / name)


@pytest.mark.docker
@pytest.mark.slow
def test_worker_runs_in_docker_and_a_killed_container_does_not_stop_the_others(tmp_path):
    cl = dsb.client()
    outcome = {}
    task = f"kill-{os.getpid()}"

    def killed_run():
        outcome["run"] = _variant(tmp_path, "killed", task, min_batches=50, max_batches=50)

    thread = threading.Thread(target=killed_run)
    thread.start()
    deadline = time.monotonic() + 120
    killed = False
    first_seen = None
    while time.monotonic() < deadline and thread.is_alive():
        running = cl.api.containers(filters={"label": f"sd-grader.task={task}", "status": "running"})
        if running and first_seen is None:
            first_seen = time.monotonic()
        # ~3 s to import torch and load, then 50 batches of 0.2 s: 6 s in, it is mid-run
        if running and time.monotonic() - first_seen > 6:
            cl.api.kill(running[0]["Id"])  # the daemon-side container dies mid-run
            killed = True
            break
        time.sleep(0.2)
    thread.join(120)
    assert killed, "the worker container never ran long enough"
    run = outcome["run"]
    assert run.status == "error", (run.status, run.message)
    assert "killed by SIGKILL from outside" in run.stderr_tail
    # the next task goes on as if nothing happened
    ok = _variant(tmp_path, "next", f"next-{os.getpid()}")
    assert ok.status == "ok", (ok.message, ok.stderr_tail)
    assert len(ok.batches) == 3 and ok.versions.get("torch")
    assert cl.api.containers(all=True, filters={"label": f"sd-grader.task={task}"}) == []


@pytest.mark.docker
def test_doctor_sees_engine_image_and_models(tmp_path):
    from grader.commands.doctor import doctor_checks

    model = tmp_path / "models" / "SD1.5"
    model.mkdir(parents=True)
    (model / "model_index.json").write_text("{}")
    clip = tmp_path / "models" / "clip"
    clip.mkdir()
    (clip / "config.json").write_text("{}")
    for path in (tmp_path / "models", model, clip):
        os.chmod(path, 0o755)
    for path in (model / "model_index.json", clip / "config.json"):
        os.chmod(path, 0o644)
    checks = {c.name: c for c in doctor_checks(device="cpu", model_dir=tmp_path / "models")}
    assert checks["daemon"].status == "ok"
    assert checks["image"].status == "ok" and "digest sha256:" in checks["image"].detail
    assert checks["model folder"].status == "ok" and checks["CLIP folder"].status == "ok"
    os.chmod(model / "model_index.json", 0o600)
    again = {c.name: c for c in doctor_checks(device="cpu", model_dir=tmp_path / "models")}
    assert again["model folder"].status in ("FAIL", "warn") and "chmod -R a+rX" in again["model folder"].fix


def test_doctor_says_how_to_fix_a_missing_engine(tmp_path, monkeypatch):
    from grader.commands.doctor import doctor_checks

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    dsb.reset_client()
    try:
        checks = {c.name: c for c in doctor_checks(device="cpu", model_dir=tmp_path / "nothing")}
    finally:
        monkeypatch.delenv("DOCKER_HOST")
        dsb.reset_client()
    assert checks["daemon"].status == "FAIL" and "dockerd" in checks["daemon"].fix
    assert checks["model folder"].status == "FAIL" and "make models" in checks["model folder"].fix


@pytest.mark.docker
def test_image_build_is_a_no_op_when_inputs_are_unchanged():
    env = dict(os.environ)
    if env.get("GRADER_IMAGE") and not env.get("GRADER_IMAGE_REPO"):  # never re-point another checkout's alias
        env["GRADER_IMAGE_REPO"] = env["GRADER_IMAGE"].rsplit(":", 1)[0]
    t0 = time.monotonic()
    out = subprocess.run(["bash", str(ROOT / "scripts" / "build_image.sh"), "cpu"], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stderr
    assert time.monotonic() - t0 < 30


@pytest.mark.docker
def test_container_start_overhead_is_bounded(dirs):
    with get("docker", spec_for(dirs)) as sandbox:
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            assert sandbox.exec(["{python}", "-c", "pass"], timeout=60).ok
            times.append(time.monotonic() - t0)
    assert min(times) < 5.0, times


@pytest.mark.docker
@pytest.mark.gpu
def test_one_gpu_per_run_through_a_device_request(dirs):
    if not shutil.which("nvidia-smi"):
        pytest.skip("no NVIDIA GPU on this host")
    with get("docker", spec_for(dirs, gpu="0")) as sandbox:
        result = sandbox.exec(py("import torch; print(torch.cuda.device_count())"), timeout=300)
    assert result.ok and result.stdout.strip() == b"1", result.stderr_tail()


def test_container_cpu_time_is_read_from_cgroup_v1_v2_and_hybrid_hosts(tmp_path):
    """The idle check reads a container's CPU time twice per variant: from the host's cgroup
    files, not the stats API (about a second per call)."""
    cid = "docker/0c91014080bc"
    v2 = tmp_path / "v2"
    (v2 / cid).mkdir(parents=True)
    (v2 / cid / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    assert dsb.cgroup_cpu_seconds(f"0::/{cid}\n", root=v2) == 2.5

    hybrid = tmp_path / "hybrid"
    (hybrid / "cpuacct" / cid).mkdir(parents=True)
    (hybrid / "cpuacct" / cid / "cpuacct.usage").write_text("1250000000\n")
    (hybrid / "unified" / cid).mkdir(parents=True)
    (hybrid / "unified" / cid / "cpu.stat").write_text("usage_usec 1250000\n")
    text = f"4:memory:/{cid}\n2:cpuacct:/{cid}\n1:cpu:/{cid}\n0::/{cid}\n"
    assert dsb.cgroup_cpu_seconds(text, root=hybrid) == 1.25
    (hybrid / "cpuacct" / cid / "cpuacct.usage").unlink()
    assert dsb.cgroup_cpu_seconds(text, root=hybrid) == 1.25   # the unified hierarchy then

    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / cid).mkdir(parents=True)
    (v1 / "cpu,cpuacct" / cid / "cpuacct.usage").write_text("500000000\n")
    assert dsb.cgroup_cpu_seconds(f"3:cpu,cpuacct:/{cid}\n", root=v1) == 0.5
    assert dsb.cgroup_cpu_seconds(f"0::/{cid}\n", root=tmp_path / "nothing") is None


def test_container_pids_are_read_from_cgroup_procs_on_v1_v2_and_hybrid_hosts(tmp_path):
    """``pids()`` attributes NVML per-process samples: the container's cgroup, never a root one."""
    from grader.isolation.docker.monitor import cgroup_pids

    cid = "docker/0c91014080bc"
    v2 = tmp_path / "v2"
    (v2 / cid).mkdir(parents=True)
    (v2 / cid / "cgroup.procs").write_text("41\n57\n")
    assert cgroup_pids(f"0::/{cid}\n", 41, root=v2) == [41, 57]
    assert cgroup_pids(f"0::/{cid}\n", 99, root=v2) is None          # not the member's cgroup
    (v2 / "cgroup.procs").write_text("1\n41\n57\n300\n")
    assert cgroup_pids("0::/\n", 41, root=v2) is None                  # a root cgroup: every process

    hybrid = tmp_path / "hybrid"
    (hybrid / "unified" / cid).mkdir(parents=True)
    (hybrid / "unified" / cid / "cgroup.procs").write_text("41\n")
    (hybrid / "pids" / cid).mkdir(parents=True)
    (hybrid / "pids" / cid / "cgroup.procs").write_text("41\n57\n")
    assert cgroup_pids(f"0::/{cid}\n", 41, root=hybrid) == [41]
    assert cgroup_pids(f"8:pids:/{cid}\n0::/{cid}\n", 41, root=hybrid) == [41, 57]
    assert cgroup_pids(f"9:name=systemd:/{cid}\n", 41, root=tmp_path / "nothing") is None
