"""Image quality, computed in the grader process from the images workers wrote.

The worker never scores itself. CLIP score (torchmetrics, from a local CLIP folder:
there is no model hub) measures prompt adherence per variant; PSNR and SSIM measure
how far the experiment's images moved from the baseline's and the GT's for the same
prompts and seeds. The gate is calibrated by the GT: an experiment may lose as much
quality as the known-good reference loses, plus a stated tolerance.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from grader.config import QualityConfig
from grader.errors import ConfigError
from grader.images import psnr


def _tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def ssim(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    from torchmetrics.functional.image import structural_similarity_index_measure

    x, y = _tensor(a), _tensor(b)
    kernel = min(11, (min(x.shape[-2:]) // 2) * 2 - 1)
    return float(structural_similarity_index_measure(x, y, data_range=1.0, kernel_size=kernel))


@lru_cache(maxsize=2)
def _clip_metric(folder: str):
    from torchmetrics.multimodal.clip_score import CLIPScore
    from transformers import CLIPModel, CLIPProcessor

    class Features(torch.nn.Module):
        """transformers 5 returns output objects from get_*_features; torchmetrics expects tensors."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def _tensor(self, out):
            return out if isinstance(out, torch.Tensor) else out.pooler_output

        def get_image_features(self, *args, **kwargs):
            return self._tensor(self.model.get_image_features(*args, **kwargs))

        def get_text_features(self, *args, **kwargs):
            return self._tensor(self.model.get_text_features(*args, **kwargs))

        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.model, name)

    def load():
        try:
            return Features(CLIPModel.from_pretrained(folder).eval()), CLIPProcessor.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--clip-model {folder}: not a loadable CLIP folder: {exc}") from exc

    return CLIPScore(model_name_or_path=load)


# The metric object is shared and stateful (reset/update/compute): tasks scored at once on
# several GPU threads would sum each other's updates without it.
_CLIP_LOCK = threading.Lock()


def clip_score(folder: Path, images: list[np.ndarray], prompts: list[str]) -> float:
    metric = _clip_metric(str(folder))
    with _CLIP_LOCK, torch.no_grad():
        metric.reset()
        metric.update((_tensor(images) * 255).to(torch.uint8), prompts)
        return float(metric.compute())


@dataclass(frozen=True)
class QualityResult:
    clip_baseline: float | None
    clip_experiment: float | None
    clip_gt: float | None
    ssim_experiment_vs_baseline: float
    ssim_gt_vs_baseline: float
    ssim_experiment_vs_gt: float
    psnr_experiment_vs_baseline: float
    psnr_gt_vs_baseline: float
    psnr_experiment_vs_gt: float
    n_images: int
    passed: bool
    failures: tuple[str, ...]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["failures"] = list(self.failures)
        return out


def gate(values: dict, cfg: QualityConfig) -> tuple[str, ...]:
    """Names of the gate's checks that fail; empty when the experiment passes."""
    failures = []
    if values.get("clip_experiment") is not None:
        gt_drop = max(values["clip_baseline"] - values["clip_gt"], 0.0)
        if values["clip_baseline"] - values["clip_experiment"] > gt_drop + cfg.clip_tolerance:
            failures.append("clip_drop")
    gt_ssim = values["ssim_gt_vs_baseline"]
    if values["ssim_experiment_vs_baseline"] < gt_ssim - cfg.ssim_tolerance:
        failures.append("ssim_drop")
    if cfg.psnr_tolerance_db is not None:
        if values["psnr_experiment_vs_baseline"] < values["psnr_gt_vs_baseline"] - cfg.psnr_tolerance_db:
            failures.append("psnr_drop")
    return tuple(failures)


def assess(baseline: list[np.ndarray], experiment: list[np.ndarray], gt: list[np.ndarray],
           prompts: list[str], cfg: QualityConfig) -> QualityResult:
    if not (len(baseline) == len(experiment) == len(gt) == len(prompts)) or not prompts:
        raise ValueError(f"image counts differ: baseline {len(baseline)}, experiment {len(experiment)}, gt {len(gt)}, prompts {len(prompts)}")
    shapes = {baseline[0].shape, experiment[0].shape, gt[0].shape}
    if len(shapes) > 1:
        raise ValueError(f"image sizes differ between variants: {sorted(shapes)}")
    values: dict = {"clip_baseline": None, "clip_experiment": None, "clip_gt": None}
    if cfg.clip_model is not None:
        values.update(
            clip_baseline=clip_score(cfg.clip_model, baseline, prompts),
            clip_experiment=clip_score(cfg.clip_model, experiment, prompts),
            clip_gt=clip_score(cfg.clip_model, gt, prompts),
        )
    values.update(
        ssim_experiment_vs_baseline=ssim(experiment, baseline), ssim_gt_vs_baseline=ssim(gt, baseline),
        ssim_experiment_vs_gt=ssim(experiment, gt), psnr_experiment_vs_baseline=psnr(experiment, baseline),
        psnr_gt_vs_baseline=psnr(gt, baseline), psnr_experiment_vs_gt=psnr(experiment, gt),
    )
    failures = gate(values, cfg)
    return QualityResult(**values, n_images=len(prompts), passed=not failures, failures=failures)
