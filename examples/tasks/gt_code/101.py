"""GT for SD1.5_DDIM_50: fewer sampling steps (DDIM 35 instead of 50).

DDIM is a deterministic ODE sampler whose trajectory changes little when its step count is
reduced moderately; 35 steps cut the UNet calls by 30%.
"""

import os

import torch
from diffusers import StableDiffusionPipeline

STEPS = 35


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inference(pipe, prompts, generator=None):
    return pipe(prompt=prompts, num_inference_steps=STEPS, generator=generator).images
