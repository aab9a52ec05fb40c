"""``--docker-runtime NAME``: the OCI runtime of the docker sandbox's containers (gVisor's ``runsc``).

A runtime the engine has not registered is refused before anything is graded (exit 3, naming the
registered ones); one that it has reaches every container and the report's provenance;
``grader doctor`` says whether gVisor is there and which runtime will be used; the typed config
refuses a runtime for a sandbox that runs no containers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures import tiny_models  # noqa: F401 - pytest fixture
from support import grade_args

from grader import cli
from grader.commands import doctor
from grader.commands import grade as grade_cmd
from grader.config import GradeConfig
from grader.errors import ConfigError
from grader.isolation import Mount, SandboxSpec, get


def _inputs(tmp_path: Path) -> list[str]:
    """A one-task submission of fast pipeline-free modules and the options that keep its grading short."""
    return grade_args(tmp_path)


# ----------------------------------------------------------------------------- real engine


@pytest.mark.docker
def test_an_unknown_runtime_is_refused_with_exit_3_naming_the_registered_ones(tmp_path, capsys):
    from grader.isolation import docker as docker_sandbox

    code = cli.main(["grade", *_inputs(tmp_path), "--sandbox", "docker", "--docker-runtime", "no-such-runtime"])
    err = capsys.readouterr().err
    assert code == 3, err
    names, default = docker_sandbox.runtimes()
    assert "no-such-runtime" in err and "registered runtimes: " + ", ".join(names) in err and default in names
    assert not (tmp_path / "run" / "tasks").exists()        # refused before any task ran


@pytest.mark.docker
def test_runsc_missing_is_refused_with_exit_3_even_with_sandbox_auto(tmp_path, capsys):
    from grader.isolation import docker as docker_sandbox

    if "runsc" in docker_sandbox.runtimes()[0]:
        pytest.skip("gVisor's runsc is registered here: nothing to refuse")
    code = cli.main(["grade", *_inputs(tmp_path), "--docker-runtime", "runsc"])   # --sandbox auto
    err = capsys.readouterr().err
    assert code == 3, err
    assert "no runtime 'runsc'" in err and "docs/docker.md" in err


@pytest.mark.docker
@pytest.mark.slow
def test_docker_runtime_runc_grades_a_task_and_the_report_records_runc(tmp_path, capsys):
    code = cli.main(["grade", *_inputs(tmp_path), "--sandbox", "docker", "--docker-runtime", "runc"])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    assert "runtime runc" in out.out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    provenance = report["provenance"]
    assert provenance["sandbox"] == "docker" and provenance["isolated"] is True
    assert provenance["sandbox_runtime"] == "runc" and provenance["options"]["docker_runtime"] == "runc"
    assert [t["status"] for t in report["tasks"]] == ["ok"]
    assert "sandbox `docker` (runtime `runc`)" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.docker
def test_provenance_names_the_engine_default_without_the_option_and_none_without_containers():
    from grader.isolation import docker as docker_sandbox
    from grader.record.provenance import sandbox_runtime

    assert sandbox_runtime({"sandbox": "docker", "docker_runtime": None}) == docker_sandbox.runtimes()[1]
    assert sandbox_runtime({"sandbox": "docker", "docker_runtime": "runc"}) == "runc"
    assert sandbox_runtime({"sandbox": "bwrap"}) is None and sandbox_runtime({"sandbox": "local"}) is None


@pytest.mark.docker
def test_the_container_gets_the_runtime_and_an_unknown_one_is_refused_by_the_provider(box):
    from grader.errors import SandboxUnavailable

    sandbox = get("docker", SandboxSpec(mounts={"work": Mount(box.root / "work", read_only=False)}, runtime="runc"))
    assert sandbox.create_kwargs(["python", "-c", "pass"])["runtime"] == "runc"
    assert sandbox.describe()["runtime"] == "runc"
    plain = get("docker", SandboxSpec(mounts={"work": Mount(box.root / "work", read_only=False)}))
    assert "runtime" not in plain.create_kwargs(["python", "-c", "pass"])
    with pytest.raises(SandboxUnavailable, match="no runtime 'nope'"):
        get("docker", SandboxSpec(mounts={"work": Mount(box.root / "work", read_only=False)}, runtime="nope"))


@pytest.mark.docker
def test_doctor_reports_gvisor_and_the_runtime_that_will_be_used(capsys, tiny_models):
    from grader.isolation import docker as docker_sandbox

    names, default = docker_sandbox.runtimes()
    checks = {c.name: c for c in doctor.doctor_checks("cpu")}
    assert checks["gVisor (runsc)"].status == (doctor.OK if "runsc" in names else doctor.SKIP)
    assert checks["docker runtime"].status == doctor.OK
    assert f"containers will run with {default} (the engine's default)" in checks["docker runtime"].detail
    asked = {c.name: c for c in doctor.doctor_checks("cpu", docker_runtime="no-such-runtime")}
    assert asked["docker runtime"].status == doctor.FAIL and "runc" in asked["docker runtime"].detail
    # Folders that pass, so the runtime is the one failure: exit 1 (a folder failure would be 2).
    folders = ["--model-dir", str(tiny_models), "--clip-model", str(tiny_models / "clip")]
    assert cli.main(["doctor", "--device", "cpu", *folders, "--docker-runtime", "no-such-runtime"]) == 1
    printed = capsys.readouterr().out
    assert "gVisor (runsc)" in printed and "'no-such-runtime' is not registered" in printed


# ----------------------------------------------------------------------------- no engine needed


def test_doctor_runtime_checks_from_the_engine_info():
    with_gvisor = {"Runtimes": {"runc": {}, "runsc": {"path": "/usr/local/bin/runsc"}}, "DefaultRuntime": "runc"}
    checks = {c.name: c for c in doctor._runtime_checks(with_gvisor, "runsc")}
    assert checks["gVisor (runsc)"].status == doctor.OK
    assert checks["docker runtime"].status == doctor.OK and "runsc (--docker-runtime)" in checks["docker runtime"].detail
    plain = {"Runtimes": {"runc": {}}, "DefaultRuntime": "runc"}
    checks = {c.name: c for c in doctor._runtime_checks(plain, None)}
    assert checks["gVisor (runsc)"].status == doctor.SKIP and "docs/docker.md" in checks["gVisor (runsc)"].fix
    assert "runc (the engine's default)" in checks["docker runtime"].detail
    checks = {c.name: c for c in doctor._runtime_checks(plain, "runsc")}
    assert checks["gVisor (runsc)"].status == doctor.FAIL and checks["docker runtime"].status == doctor.FAIL


def test_config_takes_a_runtime_for_the_docker_sandbox_only(tmp_path):
    for name in ("sub", "tasks", "models"):
        (tmp_path / name).mkdir()
    base = dict(submission=tmp_path / "sub", tasks=tmp_path / "tasks", model_dir=tmp_path / "models",
                out=tmp_path / "run")
    assert GradeConfig(**base, sandbox="docker", docker_runtime="runsc").as_dict()["docker_runtime"] == "runsc"
    assert GradeConfig(**base, sandbox="docker").docker_runtime is None
    with pytest.raises(ConfigError, match="docker_runtime.*docker sandbox only"):
        GradeConfig(**base, sandbox="bwrap", docker_runtime="runsc")
    for bad in ("", "run sc", "--privileged", "a;b", 3):
        with pytest.raises(ConfigError, match="docker_runtime"):
            GradeConfig(**base, sandbox="docker", docker_runtime=bad)


def test_the_runtime_turns_auto_into_docker_and_other_sandboxes_refuse_it(tmp_path, capsys):
    args = type("Args", (), {"sandbox": "auto", "docker_runtime": "runsc"})()
    assert grade_cmd.requested_sandbox(args) == "docker"
    args.docker_runtime = None
    assert grade_cmd.requested_sandbox(args) == "auto"
    args.sandbox, args.docker_runtime = "local", "runc"
    assert grade_cmd.requested_sandbox(args) == "local"
    code = cli.main(["grade", *_inputs(tmp_path), "--sandbox", "local", "--docker-runtime", "runc"])
    assert code == 2 and "docker sandbox only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="takes no runtime"):
        get("local", SandboxSpec(mounts={"work": Mount(tmp_path, read_only=False)}, runtime="runc"))


def test_help_names_the_option_and_its_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["grade", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--docker-runtime NAME" in text and "(default: the engine's default runtime, usually runc)" in text
