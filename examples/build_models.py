"""Build the example models: DIR/SD1.5/ (tiny random-weight SD1.5 pipeline) and DIR/clip/.

There is no model hub here, so `make models` builds them from configs (grader.tinymodels).
A stamp file records what was built (tinymodels source hash, seed, size, library versions);
a re-run with the same stamp does nothing, so this is cheap to call before every grade.
"""

import argparse
import hashlib
import json
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stamp(size: str, seed: int) -> dict:
    source = (ROOT / "grader" / "tinymodels.py").read_bytes()
    return {"tinymodels_sha256": hashlib.sha256(source).hexdigest(), "size": size, "seed": seed,
            **{lib: version(lib) for lib in ("torch", "diffusers", "transformers")}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="models folder to create or update")
    parser.add_argument("--size", choices=("tiny", "sd15"), default="tiny", help="SD1.5 pipeline size (default tiny)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = parser.parse_args(argv)

    stamp_path = args.out / "build_stamp.json"
    want = stamp(args.size, args.seed)
    if not args.force and stamp_path.is_file() and json.loads(stamp_path.read_text()) == want \
            and (args.out / "SD1.5" / "model_index.json").is_file() and (args.out / "clip" / "config.json").is_file():
        print(f"models in {args.out} are up to date")
        return 0
    sys.path.insert(0, str(ROOT))
    import torch

    from grader import tinymodels

    args.out.mkdir(parents=True, exist_ok=True)
    stamp_path.unlink(missing_ok=True)
    for name in ("SD1.5", "clip"):
        shutil.rmtree(args.out / name, ignore_errors=True)
    dtype = torch.float16 if args.size == "sd15" else None
    tinymodels.build_sd15(args.out / "SD1.5", size=args.size, seed=args.seed, dtype=dtype)
    tinymodels.build_clip(args.out / "clip", seed=args.seed)
    stamp_path.write_text(json.dumps(want, indent=2) + "\n")
    tinymodels.make_readable(args.out)
    print(f"built SD1.5 ({args.size}) and clip in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
