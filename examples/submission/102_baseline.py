"""Baseline for SD1.5_DDIM_50 with no inference(): the grader calls the pipeline itself, batched."""

import os

import torch
from diffusers import StableDiffusionPipeline


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe
