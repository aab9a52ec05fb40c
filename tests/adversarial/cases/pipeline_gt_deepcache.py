"""DeepCache, interval 2: caching inside one generation (deep blocks reused between steps)."""

import os

import torch
from diffusers import StableDiffusionPipeline


def load_pipeline():
    device = os.environ.get("GRADER_DEVICE", "cpu")
    kwargs = {"torch_dtype": torch.float16} if device.startswith("cuda") else {}
    pipe = StableDiffusionPipeline.from_pretrained(os.environ["GRADER_MODEL_DIR"], **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.deepcache_state = add_deepcache(pipe.unet, 2)
    return pipe


def add_deepcache(unet, interval):
    """Run the deep UNet blocks on every interval-th call only; reuse their outputs in between."""
    state = {"calls": 0, "reuse": False, "cache": {}}
    for block in [*unet.down_blocks[1:], unet.mid_block, *unet.up_blocks[:-1]]:
        def cached(*args, _block=block, _forward=block.forward, **kwargs):
            if not state["reuse"]:
                state["cache"][_block] = _forward(*args, **kwargs)
            return state["cache"][_block]
        block.forward = cached
    unet_forward = unet.forward

    def forward(*args, **kwargs):
        state["reuse"] = state["calls"] % interval != 0
        state["calls"] += 1
        return unet_forward(*args, **kwargs)

    unet.forward = forward
    return state


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    pipe.deepcache_state["calls"] = 0
    pipe.deepcache_state["cache"].clear()
    return pipe(prompt=prompts, num_inference_steps=num_inference_steps, generator=generator).images
