"""The CLIP shim in grader/scores/quality.py, on the transformers that constraints.txt pins.

transformers 5 returns an output object from ``get_image_features`` / ``get_text_features``;
torchmetrics' CLIPScore expects the projected feature tensor and fails on the object. These
tests show both (so the shim is still needed on the pinned release: when one of them fails
after a version bump, the shim can go) and that the shimmed score is CLIP's own: 100 times
the cosine of the model's projected image and text embeddings, averaged over the pairs.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from grader.scores import quality

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["a watercolor of a fox", "a photo of a teapot", "pixel art of a castle"]


def _pinned(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.split("==")[1].strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from grader.tinymodels import build_clip

    folder = tmp_path_factory.mktemp("clip")
    model, processor = build_clip(folder)
    images = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(len(PROMPTS))]
    return folder, model, processor, images


def test_runs_on_the_pinned_transformers():
    assert metadata.version("transformers") == _pinned("transformers")
    assert metadata.version("torchmetrics") == _pinned("torchmetrics")


def test_the_shim_is_needed_on_the_pinned_transformers(clip):
    from torchmetrics.multimodal.clip_score import CLIPScore

    _, model, processor, images = clip
    with torch.no_grad():
        out = model.get_image_features(pixel_values=torch.zeros(1, 3, 32, 32))
    assert not isinstance(out, torch.Tensor)
    bare = CLIPScore(model_name_or_path=lambda: (model, processor))
    with pytest.raises(AttributeError):
        bare.update(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), PROMPTS)


def test_the_shimmed_score_is_clips_cosine(clip):
    folder, model, processor, images = clip
    score = quality.clip_score(folder, images, PROMPTS)
    inputs = processor(text=PROMPTS, images=[torch.from_numpy(i).permute(2, 0, 1) for i in images],
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    cosine = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds, dim=-1)
    expected = float((100 * cosine).clamp(min=0).mean())
    assert np.isfinite(score) and score == pytest.approx(expected, abs=1e-3)
    assert quality.clip_score(folder, images[::-1], PROMPTS) != pytest.approx(score, abs=1e-3)
