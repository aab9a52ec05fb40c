"""GT for SD1.5_DDIM_50: a higher-order solver, DPM-Solver++(2M) with 20 steps instead of DDIM 50.

DPM-Solver++ (Lu et al., 2022) solves the same diffusion ODE as DDIM with a second-order
multistep method, so it reaches a comparable sample in far fewer UNet evaluations.
"""

import os

import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

STEPS = 20


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    return pipe


def inference(pipe, prompts, generator=None):
    return pipe(prompt=prompts, num_inference_steps=STEPS, generator=generator).images
