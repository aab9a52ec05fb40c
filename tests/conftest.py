"""Shared test plumbing (kept small on purpose).

- Tests marked ``docker`` need a reachable engine and the sandbox image built from the current
  ``sandbox/`` sources. Without them they are skipped, except where ``CI`` is set (``.ci/run``
  builds the image first) or ``GRADER_REQUIRE_DOCKER=1``: there a missing engine fails them.
- ``fake_sandbox``: the fake provider class, reset before and after the test.
"""

from __future__ import annotations

import functools
import os

import pytest


@functools.lru_cache(maxsize=1)
def docker_unavailable_reason() -> str | None:
    """None when docker tests can run here, else why not."""
    try:
        from grader.isolation import docker as docker_sandbox

        docker_sandbox.client()
        info = docker_sandbox.image_info()
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot run docker tests"
        return f"no usable Docker engine or sandbox image: {exc}"
    if info.stale:
        return f"image {info.name} is stale (sandbox/ changed since it was built): run `make image-cpu`"
    return None


def _docker_required() -> bool:
    return os.environ.get("GRADER_REQUIRE_DOCKER") == "1" or os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    reason = docker_unavailable_reason()
    if reason is None:
        return
    if _docker_required():
        pytest.fail(f"docker tests are required here (CI / GRADER_REQUIRE_DOCKER) but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def fake_sandbox():
    from grader.isolation.fake import FakeSandbox

    FakeSandbox.reset()
    yield FakeSandbox
    FakeSandbox.reset()
