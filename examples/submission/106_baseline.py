"""Baseline for SD1.5_Euler_30: the plain pipeline with the Euler sampler, 30 steps.

Its experiment crashes during inference.
"""

import os

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

STEPS = 30


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    return pipe


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    return pipe(prompt=prompts, num_inference_steps=num_inference_steps or STEPS, generator=generator).images
