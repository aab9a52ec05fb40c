"""Experiment for SD1.5_DDIM_50: 2 DDIM steps. Very fast, and the images are wrecked (quality failure)."""

import os

import torch
from diffusers import StableDiffusionPipeline

STEPS = 2


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inference(pipe, prompts, generator=None):
    return pipe(prompt=prompts, num_inference_steps=STEPS, generator=generator).images
