"""Text-embedding cache across calls: each prompt is encoded once; the images are still
generated per (prompt, seed), so a repeated batch is barely faster (not an output cache)."""

import os

import torch
from diffusers import StableDiffusionPipeline


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.embeddings = {}
    return pipe


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    missing = [p for p in dict.fromkeys(prompts) if p not in pipe.embeddings]
    if missing:
        positive, negative = pipe.encode_prompt(missing, pipe.device, 1, True)
        for k, prompt in enumerate(missing):
            pipe.embeddings[prompt] = (positive[k], negative[k])
    positive = torch.stack([pipe.embeddings[p][0] for p in prompts])
    negative = torch.stack([pipe.embeddings[p][1] for p in prompts])
    return pipe(prompt_embeds=positive, negative_prompt_embeds=negative, num_inference_steps=num_inference_steps,
                generator=generator).images
