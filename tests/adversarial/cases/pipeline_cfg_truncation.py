"""CFG truncation: classifier-free guidance for the first 40% of the steps only (halves the
UNet batch for the rest), through diffusers' step-end callback."""

import os

import torch
from diffusers import StableDiffusionPipeline


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def truncate_cfg(pipe, step, timestep, callback_kwargs):
    if step == int(pipe.num_timesteps * 0.4):
        callback_kwargs["prompt_embeds"] = callback_kwargs["prompt_embeds"].chunk(2)[-1]
        pipe._guidance_scale = 0.0
    return callback_kwargs


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    return pipe(prompt=prompts, num_inference_steps=num_inference_steps, generator=generator,
                callback_on_step_end=truncate_cfg, callback_on_step_end_tensor_inputs=["prompt_embeds"]).images
