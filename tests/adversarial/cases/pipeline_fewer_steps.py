"""Fewer steps: 8 of every 10 the task asks for."""

import os

import torch
from diffusers import StableDiffusionPipeline


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    return pipe(prompt=prompts, num_inference_steps=max(1, round(num_inference_steps * 0.8)), generator=generator).images
