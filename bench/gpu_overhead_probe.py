"""Where does per-batch overhead come from at batch 1 on a GPU?

    python bench/gpu_overhead_probe.py --model DIR

Times the same fp16 SD1.5 pipeline at batch 1 four ways and prints one table:
in-process by hand; in-process with an NVML sampler thread polling every 0.25 s and
every 2 s; and through the grader's worker protocol (one variant, no sampler).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def hand(pipe, n: int) -> list[float]:
    import torch

    out = []
    for k in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        pipe(prompt=[f"a photo of a lake at dawn, take {k}"], num_inference_steps=50)
        torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("-n", type=int, default=8)
    args = parser.parse_args()
    import torch
    from diffusers import StableDiffusionPipeline

    from grader.runs.telemetry import GpuSampler

    pipe = StableDiffusionPipeline.from_pretrained(args.model, torch_dtype=torch.float16).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    hand(pipe, 2)
    rows = [("in-process", hand(pipe, args.n))]
    for interval in (0.25, 2.0):
        sampler = GpuSampler(0, interval)
        sampler.start()
        rows.append((f"in-process + NVML every {interval}s", hand(pipe, args.n)))
        sampler.stop()
    del pipe
    torch.cuda.empty_cache()

    from bench.gpu_fidelity import MODULES
    from grader.config import TimingConfig
    from grader.runs.interleave import run_variant
    from grader.runs.variant import VariantSpec
    from grader.taskset.prompts import Schedule, load_pool

    module = Path("/tmp/probe_baseline.py")
    module.write_text(MODULES["baseline"])
    timing = TimingConfig(batch_size=1, warmup_batches=2, min_batches=args.n, max_batches=args.n, probes=False)
    run = run_variant(VariantSpec("baseline", module, args.model, 50, "cuda", "local"),
                      Schedule(load_pool(), 1, 1), timing, Path("/tmp/probe_run"))
    rows.append(("grader worker protocol", [b.seconds for b in run.batches]))
    rows.append(("  worker's own clock", [b.worker_seconds for b in run.batches]))
    print(f"{'how':<36}{'median s':>10}{'min':>8}{'max':>8}")
    for name, xs in rows:
        print(f"{name:<36}{statistics.median(xs):>10.3f}{min(xs):>8.3f}{max(xs):>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
