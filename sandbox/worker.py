"""The worker: imports one untrusted module and generates batches on request.

It is the only process that executes agent (or GT) code. It knows nothing of
timing decisions, other variants, reference images or scores: the supervisor sends
``batch`` requests (prompts, seed, steps), the worker writes each image as a
``.npy`` array into the folder it is told and answers. The supervisor's clock is the
trusted one; the worker's own synchronize-bracketed time is only a cross-check.

Before a batch is timed the supervisor may ask ``quiet``: wait (untimed) until no other
process's work is left on the GPU, so that work another variant queued before it was
frozen does not slow this one (:func:`wait_quiet`). The answer is this process's word,
so it is a way to wait, not evidence; the grader's own NVML telemetry is the check.

Before the module is imported the worker installs its own seccomp filter
(:mod:`sandbox.confine`: no ptrace, no cross-process memory access, no foreign syscall ABI)
and says in its hello whether that worked.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from sandbox import confine
from sandbox.protocol import Channel, ChannelClosed

CONFIG_FILE = "worker_config.json"

# The quiet probe: a 1-element add on a side stream, timed from launch to that stream's
# synchronize, probes back to back. On an idle H200 one takes ~15 us (max 0.08 ms, and
# ~0.25 ms for the first after a long idle). When another process's CUDA context has work
# queued, the GPU time-slices between contexts and each probe waits out the other's slice:
# ~2.4 ms, measured. Hence QUIET_LATENCY_MS between the two. Back to back matters: with a
# 2 ms pause between probes the contended ones took only ~0.3 ms (the other context had
# used up its slice), too close to idle. Quiet is QUIET_PROBES in a row under the threshold
# that together span QUIET_SPAN_SECONDS: a process that syncs between short bursts leaves
# gaps of tens of microseconds where a few probes run fast (up to 3 in a row were seen),
# never 10 ms of them.
QUIET_LATENCY_MS = 0.5
QUIET_PROBES = 3
QUIET_SPAN_SECONDS = 0.01
MAX_QUIET_SECONDS = 3600.0    # the most a quiet request may ask for


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("torch", "diffusers", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


_DEVICE_SYNC = None


def _capture_sync() -> None:
    """Keep torch's own synchronize before any untrusted code can replace it."""
    global _DEVICE_SYNC
    import torch

    _DEVICE_SYNC = torch.cuda.synchronize


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        _DEVICE_SYNC()


_PROBE: dict = {}


def _probe_latency_ms() -> float:
    """Launch-to-completion milliseconds of a tiny kernel on a side stream of this process.

    Wall clock around launch and the stream's synchronize, not CUDA events: events are
    stamped on the GPU when reached, so a context switched out before the first one would
    time the kernel alone and miss the wait. The stream and tensor are made on first use,
    so the CUDA context is not created before the module's own import and load.
    """
    import torch

    if not _PROBE:
        _PROBE["stream"] = torch.cuda.Stream()
        with torch.cuda.stream(_PROBE["stream"]):
            _PROBE["x"] = torch.zeros(1, device="cuda")
        _PROBE["stream"].synchronize()
    stream, x = _PROBE["stream"], _PROBE["x"]
    with torch.cuda.stream(stream):
        t0 = time.perf_counter()
        x.add_(1.0)
        stream.synchronize()
        return (time.perf_counter() - t0) * 1000.0


def wait_quiet(max_seconds: float) -> dict:
    """Probe until the GPU is quiet (see :data:`QUIET_LATENCY_MS`) or ``max_seconds`` pass.

    At least one probe is made. The answer is the ``quiet`` message; its ``waited_seconds``
    leave out the synchronize before (the caller adds it).
    """
    t0 = time.monotonic()
    probes = streak = 0
    latency, streak_began = None, t0
    quiet = False
    while not quiet:
        began = time.monotonic()
        latency = _probe_latency_ms()
        probes += 1
        if latency < QUIET_LATENCY_MS:
            streak_began = began if streak == 0 else streak_began
            streak += 1
        else:
            streak = 0
        now = time.monotonic()
        quiet = streak >= QUIET_PROBES and now - streak_began >= QUIET_SPAN_SECONDS
        if now - t0 >= max_seconds:
            break
    return {"type": "quiet", "waited_seconds": time.monotonic() - t0, "probes": probes, "quiet": quiet,
            "last_latency_ms": latency}


def quiet_seconds(request: dict) -> float | None:
    """``max_seconds`` of a well-formed quiet request, else None."""
    value = request.get("max_seconds")
    if set(request) != {"op", "max_seconds"} or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or not 0 <= value <= MAX_QUIET_SECONDS:
        return None
    return float(value)


def _error(kind: str, exc: BaseException) -> dict:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"type": "error", "kind": kind, "message": f"{type(exc).__name__}: {exc}"[:4000], "traceback": tb[-8000:]}


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _to_array(image, index: int):
    import numpy as np

    if hasattr(image, "convert") and hasattr(image, "size"):
        array = np.asarray(image.convert("RGB"))
    elif isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        array = image
    else:
        raise TypeError(f"image {index} is {type(image).__name__}; expected a PIL image or a HxWx3 uint8 array")
    return np.ascontiguousarray(array)


class Worker:
    def __init__(self, work: Path, channel: Channel):
        self.work, self.channel = work, channel
        self.config = json.loads((work / CONFIG_FILE).read_text())
        self.device = self.config["device"]
        os.environ["GRADER_MODEL_DIR"] = self.config["model_dir"]
        os.environ["GRADER_DEVICE"] = self.device
        self.pipe = None
        self.inference = None
        self.accepts: set[str] = set()

    def load(self) -> bool:
        _capture_sync()  # imports torch before the module, so its import time is not charged to it

        t0 = time.perf_counter()
        try:
            spec = importlib.util.spec_from_file_location("submission_module", self.config["module_path"])
            module = importlib.util.module_from_spec(spec)
            sys.modules["submission_module"] = module
            spec.loader.exec_module(module)
        except BaseException as exc:  # noqa: BLE001 - untrusted import may raise anything
            self.channel.send(_error("oom" if _is_oom(exc) else "import_error", exc))
            return False
        t1 = time.perf_counter()
        if not callable(getattr(module, "load_pipeline", None)):
            self.channel.send({"type": "error", "kind": "contract", "message": "module has no callable load_pipeline()", "traceback": ""})
            return False
        try:
            self.pipe = module.load_pipeline()
            _sync(self.device)
        except BaseException as exc:  # noqa: BLE001
            self.channel.send(_error("oom" if _is_oom(exc) else "load_error", exc))
            return False
        t2 = time.perf_counter()
        self.inference = getattr(module, "inference", None)
        if self.inference is not None and not callable(self.inference):
            self.inference = None
        if self.inference is not None:
            try:
                params = inspect.signature(self.inference).parameters
                has_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
                self.accepts = {n for n in ("generator", "num_inference_steps") if n in params or has_kwargs}
            except (TypeError, ValueError):
                self.accepts = set()
        elif not callable(self.pipe):
            self.channel.send({"type": "error", "kind": "contract", "message": "load_pipeline() returned a non-callable and the module has no inference()", "traceback": ""})
            return False
        self.channel.send({
            "type": "ready", "import_seconds": t1 - t0, "load_seconds": t2 - t1,
            "has_inference": self.inference is not None, "passes": sorted(self.accepts),
        })
        return True

    def generate(self, request: dict) -> dict:
        import numpy as np
        import torch

        prompts, seed, steps = request["prompts"], request["seed"], request["steps"]
        gen_device = self.device if self.device.startswith("cuda") else "cpu"
        seeds = request.get("seeds") or [seed + k for k in range(len(prompts))]
        generators = [torch.Generator(device=gen_device).manual_seed(s) for s in seeds]
        _sync(self.device)
        t0 = time.perf_counter()
        if self.inference is not None:
            kwargs = {}
            if "generator" in self.accepts:
                kwargs["generator"] = generators
            if "num_inference_steps" in self.accepts:
                kwargs["num_inference_steps"] = steps
            images = self.inference(self.pipe, list(prompts), **kwargs)
        else:
            images = self.pipe(prompt=list(prompts), num_inference_steps=steps, generator=generators).images
        _sync(self.device)
        worker_seconds = time.perf_counter() - t0
        images = list(images)
        out_dir = self.work / request["out"]
        out_dir.mkdir(parents=True, exist_ok=True)
        files = []
        for k, image in enumerate(images):
            name = f"{k:03d}.npy"
            np.save(out_dir / name, _to_array(image, k), allow_pickle=False)
            files.append(name)
        return {"type": "batch_done", "index": request["index"], "n_images": len(images),
                "worker_seconds": worker_seconds, "files": files}

    def quiet(self, max_seconds: float) -> dict:
        """Wait for the GPU to have no other process's work; on a CPU device, answer at once."""
        if not self.device.startswith("cuda"):
            return {"type": "quiet", "waited_seconds": 0.0, "probes": 0, "quiet": True, "last_latency_ms": None}
        t0 = time.monotonic()
        _sync(self.device)  # this worker's own leftovers finish first: they are not another's work
        synced = time.monotonic() - t0
        answer = wait_quiet(max(max_seconds - synced, 0.0))
        answer["waited_seconds"] += synced
        return answer

    def serve(self) -> int:
        while True:
            request = self.channel.recv()
            if request is None or request.get("op") == "stop":
                self.channel.send({"type": "bye"})
                return 0
            if request.get("op") == "quiet":
                max_seconds = quiet_seconds(request)
                if max_seconds is None:
                    self.channel.send({"type": "error", "kind": "protocol", "traceback": "",
                                       "message": f"malformed quiet request {json.dumps(request)[:200]}"})
                    return 4
                try:
                    self.channel.send(self.quiet(max_seconds))
                except BaseException as exc:  # noqa: BLE001 - a broken CUDA context, say
                    self.channel.send(_error("runtime_error", exc))
                    return 3
                continue
            if request.get("op") != "batch":
                self.channel.send({"type": "error", "kind": "protocol", "message": f"unknown op {request.get('op')!r}", "traceback": ""})
                return 4
            try:
                self.channel.send(self.generate(request))
            except BaseException as exc:  # noqa: BLE001
                self.channel.send(_error("oom" if _is_oom(exc) else "runtime_error", exc))
                return 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="grader worker (runs inside the sandbox)")
    parser.add_argument("--work", type=Path, help="the run's work folder (the FIFOs and worker_config.json)")
    parser.add_argument("--self-check", action="store_true",
                        help="check this image instead of serving (sandbox/selfcheck.py): one JSON line, exit 0/1")
    parser.add_argument("--require-cuda", action="store_true", help="with --self-check: no usable GPU is a failure")
    args = parser.parse_args(argv)
    if args.self_check:
        from sandbox import selfcheck

        return selfcheck.main(args.work, args.require_cuda)
    if args.work is None:
        parser.error("--work is required (or --self-check)")
    # Whatever the module prints goes to stderr; stdout is not part of the protocol.
    os.dup2(2, 1)
    seccomp = confine.install()  # before anything untrusted: the hello says how it went
    if seccomp["status"] != "installed":
        print(f"worker: seccomp filter {seccomp['status']}: {seccomp['detail']}", file=sys.stderr)
    channel = Channel.connect(args.work / "proto")
    channel.send({"type": "hello", "pid": os.getpid(), "versions": _versions(), "seccomp": seccomp})
    worker = Worker(args.work, channel)
    try:
        if not worker.load():
            return 3
        return worker.serve()
    except ChannelClosed:
        return 5
    finally:
        channel.close()


def exit_now(code: int) -> None:
    """End the process at once with ``code``, once stdout and stderr are flushed.

    The grader has every answer by now. A normal interpreter exit would tear torch and the
    module down (seconds on a GPU: the grader then kills the worker after waiting) and run
    whatever exit handlers the module registered; neither is wanted."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
