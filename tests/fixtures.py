"""Session-scoped tiny models, built once from configs (no hub)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from grader.tinymodels import build_clip, build_sd15

    root = tmp_path_factory.mktemp("models")
    build_sd15(root / "SD1.5")
    build_clip(root / "clip")
    return root
