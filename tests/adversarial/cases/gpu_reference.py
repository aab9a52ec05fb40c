"""Honest, GPU-bound stand-in of the plain pipeline (reference and baseline of the GPU
interference tasks): a fixed number of fp16 8192x8192 matmuls per image (MATMULS, about 2 ms
each on an H100/H200: ~0.07 s per image), so other work on the GPU while it is timed slows it
down. Images as honest_gt.py's."""

import zlib

import numpy as np
import torch

MATMULS = 36


def render(prompt, seed):
    rng = np.random.default_rng([zlib.crc32(prompt.encode("utf-8")), seed])
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def load_pipeline():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16) / 100
    return {"a": a, "out": torch.empty_like(a), "matmuls": MATMULS}


def inference(pipe, prompts, generator=None, num_inference_steps=None):
    for _ in range(round(pipe["matmuls"] * len(prompts) * num_inference_steps / 10)):
        torch.mm(pipe["a"], pipe["a"], out=pipe["out"])
    return [render(p, g.initial_seed()) for p, g in zip(prompts, generator)]
