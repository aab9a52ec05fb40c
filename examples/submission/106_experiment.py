"""Experiment for SD1.5_Euler_30 that crashes: it passes hand-made latents with the wrong shape.

The bug is deliberate (3 channels instead of the UNet's 4): the UNet's first convolution
raises a RuntimeError inside inference(), which the grader must report as status 'error'.
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
    size, gen = pipe.unet.config.sample_size, generator[0] if generator else None
    latents = torch.randn(len(prompts), 3, size, size, generator=gen, device=gen.device if gen else "cpu")
    return pipe(prompt=prompts, num_inference_steps=num_inference_steps or STEPS, generator=generator,
                latents=latents.to(pipe.device, pipe.unet.dtype)).images
