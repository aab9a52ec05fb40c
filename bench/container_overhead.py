"""Measure what a container costs per run, against the local provider.

    .venv/bin/python bench/container_overhead.py [--repeats 10] [--json OUT]

1. trivial: ``python -c pass`` through each provider's ``exec`` (create + attach + start + exit +
   inspect + remove for docker; fork/exec + process-group sweep for local);
2. variant: one supervised variant (worker start, ``hello``, module import + ``load_pipeline``,
   1 warm-up + 3 timed batches of a pipeline-free module, ``stop``) through ``run_variant``, so the
   per-phase numbers show where a container adds time (process start, torch import) and that
   the timed batches themselves are unaffected.

Numbers go to stdout (and to --json). docs/docker.md quotes a run of this script.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.isolation import Mount, SandboxSpec, get  # noqa: E402

MODULE = textwrap.dedent('''
    import time
    import numpy as np

    class Pipe:
        def __call__(self, prompt, num_inference_steps, generator):
            time.sleep(0.05 * len(prompt))
            class Out:
                images = [np.zeros((16, 16, 3), dtype=np.uint8) for _ in generator]
            return Out()

    def load_pipeline():
        return Pipe()
''')


def trivial(provider: str, repeats: int, root: Path) -> list[float]:
    work = root / provider / "work"
    work.mkdir(parents=True)
    spec = SandboxSpec(mounts={"work": Mount(work, read_only=False)})
    times = []
    with get(provider, spec) as sandbox:
        sandbox.exec(["{python}", "-c", "pass"], timeout=120)  # warm caches once
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = sandbox.exec(["{python}", "-c", "pass"], timeout=120)
            times.append(time.perf_counter() - t0)
            assert result.ok, result.stderr_tail()
    return times


def variant(provider: str, root: Path) -> dict:
    from grader.config import TimingConfig
    from grader.runs.interleave import run_variant
    from grader.runs.variant import VariantSpec
    from grader.taskset.prompts import Schedule

    module = root / "src" / "experiment.py"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(MODULE)
    model = root / "model"
    model.mkdir(exist_ok=True)
    timing = TimingConfig(batch_size=2, warmup_batches=1, min_batches=3, max_batches=3, quality_batches=1,
                          budget_seconds=60, target_rel_ci=0.5)
    spec = VariantSpec(name="experiment", module_path=module, model_dir=model, steps=2, device="cpu",
                       sandbox=provider, timeout=300)
    pool = tuple(f"prompt {i}" for i in range(64))
    t0 = time.perf_counter()
    run = run_variant(spec, Schedule(pool, run_seed=1, batch_size=2), timing, root / "runs" / provider)
    wall = time.perf_counter() - t0
    assert run.status == "ok", (run.status, run.message, run.stderr_tail)
    return {"wall": wall, **{k: round(v, 4) for k, v in run.phases.items()},
            "per_image_seconds": run.timing.per_image_seconds if run.timing else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out: dict = {"trivial": {}, "variant": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for provider in ("local", "docker"):
            times = trivial(provider, args.repeats, root / "trivial")
            out["trivial"][provider] = {"median": statistics.median(times), "min": min(times), "max": max(times),
                                        "n": len(times)}
        for provider in ("local", "docker"):
            variant(provider, root / "warm" / provider)  # page cache warm for both
            out["variant"][provider] = variant(provider, root / "variant" / provider)
    t = out["trivial"]
    print(f"trivial run (python -c pass), median of {args.repeats}:")
    for provider, row in t.items():
        print(f"  {provider:<7} {row['median'] * 1000:7.0f} ms  (min {row['min'] * 1000:.0f}, max {row['max'] * 1000:.0f})")
    print(f"  docker overhead per run: {(t['docker']['median'] - t['local']['median']) * 1000:.0f} ms")
    print("supervised variant (1 warm-up + 3 timed batches of 2 images, 0.05 s per image):")
    keys = ("process_start", "load", "warmup", "timed", "teardown", "total", "per_image_seconds")
    print("  " + " ".join(f"{k:>17}" for k in ("provider", *keys)))
    for provider, row in out["variant"].items():
        print("  " + f"{provider:>17} " + " ".join(f"{row.get(k, float('nan')):17.3f}" for k in keys))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
