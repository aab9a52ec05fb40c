"""The random-weight models the tests and the example run on: loadable, deterministic, readable."""

from __future__ import annotations

import stat

import numpy as np
import pytest
import torch

from grader import tinymodels


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    tinymodels.build_sd15(root / "SD1.5", seed=0)
    tinymodels.build_clip(root / "clip", seed=0)
    return root


class TensorFeatures(torch.nn.Module):
    """transformers 5 returns output objects from get_*_features; torchmetrics 1.9 wants tensors."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def get_image_features(self, *args, **kwargs):
        out = self.model.get_image_features(*args, **kwargs)
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def get_text_features(self, *args, **kwargs):
        out = self.model.get_text_features(*args, **kwargs)
        return out if isinstance(out, torch.Tensor) else out.pooler_output


def _generate(folder, prompts, steps=2):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    generator = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
    return pipe(prompt=prompts, num_inference_steps=steps, generator=generator).images


def test_pipeline_loads_and_generates(built):
    images = _generate(built / "SD1.5", ["a red fox in the snow", "a city at night, neon lights"])
    assert len(images) == 2
    assert all(image.size == (32, 32) and image.mode == "RGB" for image in images)
    assert np.asarray(images[0]).std() > 5  # not a blank image


def test_clip_score_through_torchmetrics(built):
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(built / "clip").eval()
    processor = CLIPProcessor.from_pretrained(built / "clip")
    metric = CLIPScore(model_name_or_path=lambda: (TensorFeatures(model), processor))
    images = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        score = float(metric(images, ["a photo of a cat", "a bowl of ramen"]))
    assert 0.0 <= score <= 100.0 and np.isfinite(score)


def test_tokenizer_takes_any_text(built):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(built / "SD1.5" / "tokenizer")
    assert tok.model_max_length == 77
    ids = tok("Café au lait, 100% naïve — ☕!", padding="max_length", truncation=True, max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == tok.bos_token_id
    assert tok.unk_token_id in ids  # accented letters and symbols outside the vocabulary
    assert tok.decode(tok("hello world").input_ids, skip_special_tokens=True) == "hello world"
    assert (built / "SD1.5" / "tokenizer" / "vocab.json").is_file()
    assert (built / "SD1.5" / "tokenizer" / "merges.txt").is_file()


def test_same_seed_same_weights(built, tmp_path):
    from safetensors.torch import load_file

    tinymodels.build_sd15(tmp_path / "again", seed=0)
    tinymodels.build_sd15(tmp_path / "other", seed=1)
    for part in ("unet", "vae", "text_encoder"):
        name = "model.safetensors" if part == "text_encoder" else "diffusion_pytorch_model.safetensors"
        a, b, c = (load_file(root / part / name) for root in (built / "SD1.5", tmp_path / "again", tmp_path / "other"))
        assert all(torch.equal(a[k], b[k]) for k in a), part
        assert not all(torch.equal(a[k], c[k]) for k in a), part


def test_everything_world_readable(built):
    for path in [built / "SD1.5", *(built / "SD1.5").rglob("*"), built / "clip", *(built / "clip").rglob("*")]:
        mode = path.stat().st_mode
        assert mode & stat.S_IROTH, path
        if path.is_dir():
            assert mode & stat.S_IXOTH, path


def test_clip_score_is_right_when_tasks_score_at_once(built):
    """Tasks on several GPU threads score concurrently through one shared metric object
    (it once summed two tasks' updates: CLIP 32.9 for a 16.4 image)."""
    import threading

    from grader.scores.quality import clip_score

    rng = np.random.default_rng(0)
    sets = [[rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)] for _ in range(4)]
    prompts = ["a red cube", "a blue sphere"]
    alone = [clip_score(built / "clip", images, prompts) for images in sets]
    together: dict[int, list[float]] = {k: [] for k in range(len(sets))}
    barrier = threading.Barrier(len(sets))

    def score(k):
        barrier.wait()
        for _ in range(5):
            together[k].append(clip_score(built / "clip", sets[k], prompts))

    threads = [threading.Thread(target=score, args=(k,)) for k in range(len(sets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == {k: [alone[k]] * 5 for k in range(len(sets))}
