"""Stable Diffusion and CLIP checkpoints built from configs, with random weights.

Why: the grader, its tests and the example task set need a real diffusers pipeline folder
(``GRADER_MODEL_DIR``) and a CLIP folder for CLIP score, but this workplace has no model
hub. So, as diffusers' own tests do, the models are built from configs with random weights
and ``save_pretrained``-ed. Images from them are structured noise, not pictures; that is
enough to time pipelines and to compare variants image for image (PSNR/SSIM vs baseline):
the UNet's output layer is rescaled (``_calibrate_unet``) so that steps, guidance and
caching change the images about as they would with a trained model.

- ``size="tiny"``: a 1.4 MB pipeline that makes 32x32 images in a few milliseconds per
  step on a CPU; used by the tests and the example submission.
- ``size="sd15"``: the real SD1.5 architecture (UNet 320/640/1280/1280, VAE 128..512, CLIP
  ViT-L/14 text encoder), 512 px, random weights; for GPU timing benchmarks.

Deterministic: every component is initialised right after ``torch.manual_seed(seed + k)``,
so the same seed gives the same weights (and reference images stay comparable across
builds). The tokenizer is a hand-made character-level CLIP BPE vocabulary (no merges):
any English prompt tokenizes, characters outside the vocabulary map to ``<|unk|>``; one
token per character, so prompts past ~75 characters are truncated at 77 tokens.
Everything written is made world-readable, because sandbox containers read the mounted
folder as another uid and ``save_pretrained`` writes owner-only files.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import torch

MAX_LENGTH = 77
EPS_STD = 2.0
_SPECIALS = ("<|startoftext|>", "<|endoftext|>", "<|unk|>")


def _vocab() -> dict[str, int]:
    chars = string.ascii_lowercase + string.digits + string.punctuation
    tokens = [t for c in chars for t in (c, c + "</w>")] + list(_SPECIALS)
    return {t: i for i, t in enumerate(tokens)}


def _write_vocab_files(out_dir: str | os.PathLike) -> None:
    Path(out_dir, "vocab.json").write_text(json.dumps(_vocab()), encoding="utf-8")
    Path(out_dir, "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def build_tokenizer(out_dir: str | os.PathLike | None = None):
    """A character-level CLIPTokenizer; saved with vocab.json/merges.txt for older transformers too."""
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer(vocab=_vocab(), merges=[], unk_token="<|unk|>", model_max_length=MAX_LENGTH)
    if out_dir is not None:
        tok.save_pretrained(out_dir)
        _write_vocab_files(out_dir)
    return tok


def _text_config(size: str, tok):
    from transformers import CLIPTextConfig

    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if size == "tiny":
        return CLIPTextConfig(vocab_size=len(_vocab()), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                              num_attention_heads=4, max_position_embeddings=MAX_LENGTH, projection_dim=32,
                              layer_norm_eps=1e-5, **ids)
    # openai/clip-vit-large-patch14 text tower (SD1.5's text encoder); vocab_size kept at the real 49408.
    return CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                          num_attention_heads=12, max_position_embeddings=MAX_LENGTH, projection_dim=768,
                          hidden_act="quick_gelu", layer_norm_eps=1e-5, **ids)


def _unet(size: str):
    from diffusers import UNet2DConditionModel

    if size == "tiny":
        return UNet2DConditionModel(
            block_out_channels=(16, 32), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32, norm_num_groups=8, attention_head_dim=4)
    return UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5, act_fn="silu",
        center_input_sample=False, downsample_padding=1, flip_sin_to_cos=True, freq_shift=0,
        mid_block_scale_factor=1)


@torch.no_grad()
def _calibrate_unet(unet, seed: int, target_std: float = EPS_STD) -> None:
    """Scale conv_out so the noise prediction has std ~target_std on a seeded probe.

    A freshly initialised UNet predicts eps with std ~0.4, uncorrelated with its input: the
    sampler then barely moves and every image is a function of the initial noise only, so
    steps, guidance and caching would not change a pixel. Trained models predict unit-scale
    eps; at ~2 the trajectory depends on the step count (fewer steps -> visibly different).
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, unet.config.in_channels, 8, 8, generator=gen)
    emb = torch.randn(1, MAX_LENGTH, unet.config.cross_attention_dim, generator=gen)
    std = torch.stack([unet(x, t, encoder_hidden_states=emb).sample.std() for t in (999, 500, 1)]).mean()
    unet.conv_out.weight.mul_(target_std / std)
    unet.conv_out.bias.mul_(target_std / std)


def _vae(size: str):
    from diffusers import AutoencoderKL

    if size == "tiny":
        channels, groups, layers, sample = [8, 16], 8, 1, 32
    else:
        channels, groups, layers, sample = [128, 256, 512, 512], 32, 2, 512
    n = len(channels)
    return AutoencoderKL(block_out_channels=channels, in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
                         latent_channels=4, norm_num_groups=groups, layers_per_block=layers, sample_size=sample,
                         act_fn="silu")


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def make_readable(root: str | os.PathLike) -> None:
    """chmod a+r on files and a+rx on directories under root (and root itself)."""
    root = Path(root)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        extra = 0o555 if path.is_dir() else 0o444
        path.chmod(path.stat().st_mode | extra)


def build_sd15(out_dir: str | os.PathLike, size: str = "tiny", seed: int = 0, dtype: torch.dtype | None = None):
    """Build a StableDiffusionPipeline with random weights and save it to out_dir; returns the pipeline."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    if size not in ("tiny", "sd15"):
        raise ValueError(f"size must be 'tiny' or 'sd15', not {size!r}")
    tok = build_tokenizer()
    torch.manual_seed(seed)
    unet = _unet(size)
    _calibrate_unet(unet, seed)
    torch.manual_seed(seed + 1)
    vae = _vae(size)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_text_config(size, tok))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet,
                                   scheduler=_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    if dtype is not None:
        pipe.to(dtype=dtype)
    pipe.save_pretrained(out_dir)
    _write_vocab_files(Path(out_dir, "tokenizer"))
    make_readable(out_dir)
    return pipe


def build_clip(out_dir: str | os.PathLike, seed: int = 0):
    """Build a tiny CLIPModel (text + vision, 32 px) and its CLIPProcessor; save both to out_dir."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPVisionConfig,
    )

    tok = build_tokenizer()
    vision = CLIPVisionConfig(image_size=32, patch_size=4, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                              num_attention_heads=4, projection_dim=32, layer_norm_eps=1e-5)
    config = CLIPConfig(text_config=_text_config("tiny", tok).to_dict(), vision_config=vision.to_dict(),
                        projection_dim=32)
    torch.manual_seed(seed + 3)
    model = CLIPModel(config).eval()
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = CLIPProcessor(image_processor=images, tokenizer=tok)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    _write_vocab_files(out_dir)
    make_readable(out_dir)
    return model, processor
