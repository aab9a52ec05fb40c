"""Experiment for SD1.5_Euler_30: 20 Euler steps instead of 30."""

import os

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

STEPS = 20


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    return pipe


def inference(pipe, prompts, generator=None):
    return pipe(prompt=prompts, num_inference_steps=STEPS, generator=generator).images
