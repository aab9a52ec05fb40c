"""Image quality, computed in the grader process from the images workers wrote.

The worker never scores itself. CLIP score (torchmetrics, from a local CLIP folder:
there is no model hub) measures prompt adherence per variant; PSNR and SSIM measure
how far the experiment's images moved from the reference baseline's (grader-side code,
never the agent's baseline) and the GT's for the same prompts and seeds. The gate is
calibrated by the GT: an experiment may lose as much quality as the known-good GT loses,
plus a stated tolerance.

Two levels: :func:`compare_batch` sees every timed batch as it is answered (a box-window
SSIM, :func:`box_ssim`, and PSNR on images averaged down to at most :data:`COMPARE_SIDE`
pixels a side: milliseconds a batch, and far apart for a render and cheap noise), so no
batch escapes the check; :func:`assess` scores the kept batches, chosen at random after they
were answered, in full (CLIP too).
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
    clip_reference: float | None
    clip_experiment: float | None
    clip_gt: float | None
    ssim_experiment_vs_reference: float
    ssim_gt_vs_reference: float
    ssim_experiment_vs_gt: float
    psnr_experiment_vs_reference: float
    psnr_gt_vs_reference: float
    psnr_experiment_vs_gt: float
    n_images: int
    passed: bool
    failures: tuple[str, ...]
    n_batches_compared: int = 0
    batches_failed: tuple[int, ...] = ()
    batch_ssim_loss_mean: float | None = None
    batch_ssim_loss_max: float | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["failures"] = list(self.failures)
        out["batches_failed"] = list(self.batches_failed)
        return out


COMPARE_SIDE = 64


def reduced(images: list[np.ndarray], side: int = COMPARE_SIDE) -> np.ndarray:
    """Images averaged down by a whole factor to at most ``side`` pixels a side, as (n, h, w, 3) floats."""
    out = []
    for image in images:
        h, w = image.shape[:2]
        f = max(1, -(-max(h, w) // side))
        x = image[: h - h % f, : w - w % f].astype(np.float32)
        x = x.reshape(x.shape[0] // f, f, x.shape[1], 3).mean(axis=1)       # rows, then columns: two
        out.append(x.reshape(x.shape[0], x.shape[1] // f, f, 3).mean(axis=2))  # cheap passes, not one 4-d one
    return np.stack(out)


def _box(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over every k x k window of (n, h, w, c) arrays, by integral images ('valid' windows)."""
    c = np.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0))).cumsum(axis=1).cumsum(axis=2)
    return (c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]) / (k * k)


def box_ssim(a: np.ndarray, b: np.ndarray, k: int = 7) -> float:
    """SSIM with a uniform k x k window (Wang et al.'s constants, data range 255), all channels.

    Milliseconds for a batch at :data:`COMPARE_SIDE`, so every timed batch can be compared;
    its values differ a little from the gate's Gaussian-window SSIM, which is why per-batch
    losses are only ever compared with the GT's under the same measure."""
    k = max(1, min(k, a.shape[1], a.shape[2]))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box(a, k), _box(b, k)
    sxx, syy, sxy = _box(a * a, k) - mx * mx, _box(b * b, k) - my * my, _box(a * b, k) - mx * my
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(value.mean())


def compare_batch(index: int, arrays: dict[str, list[np.ndarray]]) -> dict:
    """One timed batch's figures: the experiment's and the GT's SSIM and PSNR against the reference (reduced)."""
    shapes = {v: arrays[v][0].shape for v in ("reference", "experiment", "gt") if arrays[v]}
    if len(set(shapes.values())) > 1:
        return {"incomparable": f"image sizes differ between variants: {shapes}"}
    ref, exp, gt = (reduced(arrays[v]) for v in ("reference", "experiment", "gt"))
    return {"ssim_experiment": box_ssim(exp, ref), "ssim_gt": box_ssim(gt, ref),
            "psnr_experiment": psnr(exp, ref), "psnr_gt": psnr(gt, ref)}


def batch_losses(comparisons: list[dict]) -> list[tuple[int, float]]:
    """Per batch: how much more SSIM the experiment lost to the reference than the GT did."""
    return [(c["index"], c["ssim_gt"] - c["ssim_experiment"]) for c in comparisons if "incomparable" not in c]


def gate(values: dict, cfg: QualityConfig, comparisons: list[dict] | None = None) -> tuple[str, ...]:
    """Names of the gate's checks that fail; empty when the experiment passes."""
    failures = []
    if values.get("clip_experiment") is not None:
        gt_drop = max(values["clip_reference"] - values["clip_gt"], 0.0)
        if values["clip_reference"] - values["clip_experiment"] > gt_drop + cfg.clip_tolerance:
            failures.append("clip_drop")
    gt_ssim = values["ssim_gt_vs_reference"]
    if values["ssim_experiment_vs_reference"] < gt_ssim - cfg.ssim_tolerance:
        failures.append("ssim_drop")
    if cfg.psnr_tolerance_db is not None:
        if values["psnr_experiment_vs_reference"] < values["psnr_gt_vs_reference"] - cfg.psnr_tolerance_db:
            failures.append("psnr_drop")
    losses = batch_losses(comparisons or [])
    if losses:
        if any(loss > cfg.ssim_tolerance + cfg.batch_ssim_margin for _, loss in losses):
            failures.append("batch_ssim_drop")
        if sum(loss for _, loss in losses) / len(losses) > cfg.ssim_tolerance:
            failures.append("ssim_drop_all_batches")
    return tuple(failures)


def assess(reference: list[np.ndarray], experiment: list[np.ndarray], gt: list[np.ndarray],
           prompts: list[str], cfg: QualityConfig, comparisons: list[dict] | None = None) -> QualityResult:
    bad = next((c["incomparable"] for c in comparisons or () if "incomparable" in c), None)
    if bad is not None:
        raise ValueError(bad)
    if not (len(reference) == len(experiment) == len(gt) == len(prompts)) or not prompts:
        raise ValueError(f"image counts differ: reference {len(reference)}, experiment {len(experiment)}, gt {len(gt)}, prompts {len(prompts)}")
    shapes = {reference[0].shape, experiment[0].shape, gt[0].shape}
    if len(shapes) > 1:
        raise ValueError(f"image sizes differ between variants: {sorted(shapes)}")
    values: dict = {"clip_reference": None, "clip_experiment": None, "clip_gt": None}
    if cfg.clip_model is not None:
        values.update(
            clip_reference=clip_score(cfg.clip_model, reference, prompts),
            clip_experiment=clip_score(cfg.clip_model, experiment, prompts),
            clip_gt=clip_score(cfg.clip_model, gt, prompts),
        )
    values.update(
        ssim_experiment_vs_reference=ssim(experiment, reference), ssim_gt_vs_reference=ssim(gt, reference),
        ssim_experiment_vs_gt=ssim(experiment, gt), psnr_experiment_vs_reference=psnr(experiment, reference),
        psnr_gt_vs_reference=psnr(gt, reference), psnr_experiment_vs_gt=psnr(experiment, gt),
    )
    failures = gate(values, cfg, comparisons)
    losses = batch_losses(comparisons or [])
    return QualityResult(
        **values, n_images=len(prompts), passed=not failures, failures=failures, n_batches_compared=len(losses),
        batches_failed=tuple(i for i, loss in losses if loss > cfg.ssim_tolerance + cfg.batch_ssim_margin),
        batch_ssim_loss_mean=sum(loss for _, loss in losses) / len(losses) if losses else None,
        batch_ssim_loss_max=max(loss for _, loss in losses) if losses else None)
