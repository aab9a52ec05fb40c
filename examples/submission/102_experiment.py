"""Experiment for SD1.5_DDIM_50: the same pipeline, only wrapped in a batched inference().

No optimization: under the grader's batched protocol this must score a speedup of about 1.0
(the old runner looped the baseline per prompt and credited batching as an optimization).
"""

import os

import torch
from diffusers import StableDiffusionPipeline

STEPS = 50


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    return pipe(prompt=list(prompts), num_inference_steps=num_inference_steps or STEPS, generator=generator).images
