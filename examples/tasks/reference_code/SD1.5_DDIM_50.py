"""Reference baseline for SD1.5_DDIM_50: the plain diffusers pipeline of model SD1.5 with the
DDIM sampler and 50 steps, nothing optimized.

Written by the grader from its template (grader/data/reference_template.py.tmpl). The
grader times every experiment of this task key against this file, so it is frozen in the
task set: edit it only to make it a fairer plain pipeline for your models, never faster.
"""

import os

import diffusers
import torch

SAMPLER = "DDIM"
STEPS = 50

# Sampler names as task keys spell them -> the diffusers scheduler class. A name that is
# not here keeps the model folder's own scheduler.
SCHEDULERS = {
    "DDIM": "DDIMScheduler", "DDPM": "DDPMScheduler", "PNDM": "PNDMScheduler", "PLMS": "PNDMScheduler",
    "EULER": "EulerDiscreteScheduler", "EULERA": "EulerAncestralDiscreteScheduler",
    "EULERANCESTRAL": "EulerAncestralDiscreteScheduler", "LMS": "LMSDiscreteScheduler",
    "HEUN": "HeunDiscreteScheduler", "DPM": "DPMSolverMultistepScheduler",
    "DPMSOLVER": "DPMSolverMultistepScheduler", "DPM++": "DPMSolverMultistepScheduler",
    "UNIPC": "UniPCMultistepScheduler",
}


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = diffusers.DiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs)
    wanted = SCHEDULERS.get(SAMPLER.upper().replace("-", "").replace("_", ""))
    if wanted is not None and type(pipe.scheduler).__name__ != wanted:
        pipe.scheduler = getattr(diffusers, wanted).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    return pipe(prompt=list(prompts), num_inference_steps=num_inference_steps or STEPS, generator=generator).images
