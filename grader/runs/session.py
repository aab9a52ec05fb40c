"""One worker process on the wire: requests out, validated answers in, batches timed.

A :class:`WorkerSession` owns the channel to one sandboxed worker and a budget of
wall-clock seconds (only time spent waiting on this worker counts, so a variant
interleaved with others gets the same allowance as one run alone). Every message the
worker sends is checked against ``schemas/run_result.schema.json`` before anything reads
it. :func:`exchange_batch` times one batch on the supervisor's clock, from the moment the
request is written to the moment the answer is read, and the answer only counts once every
image it names exists with the right count and shape: work cannot be deferred past the
clock without losing the images.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np

from grader import schemas
from grader.errors import ProtocolViolation, SchemaViolation, WorkerCrashed, WorkerOOM, WorkerTimeout
from grader.isolation import RunningProcess
from grader.runs.timing import BatchTime
from grader.runs.variant import VariantRun
from grader.taskset.prompts import Batch
from sandbox.protocol import Channel, ChannelClosed

MAX_IMAGE_FILE = 64 << 20
_POLL = 0.2
_ERROR_KINDS = {"oom": WorkerOOM}


class WorkerSession:
    """One worker process and its channel, with a budget of wall-clock seconds."""

    def __init__(self, proc: RunningProcess, channel: Channel, budget: float):
        self.proc, self.channel, self.budget = proc, channel, budget
        self.used = 0.0

    def request(self, message: dict) -> None:
        self.channel.send(message)

    def expect(self, kinds: set[str], timeout: float, what: str) -> dict:
        began = time.monotonic()
        try:
            return self._expect(kinds, timeout, what, began)
        finally:
            self.used += time.monotonic() - began

    def _expect(self, kinds: set[str], timeout: float, what: str, began: float) -> dict:
        limit = min(timeout, self.budget - self.used)
        end = began + limit
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout(f"no answer within {limit:.0f}s while {what}")
            try:
                message = self.channel.recv(min(remaining, _POLL))
                if message is None and self.proc.poll() is not None:
                    message = self.channel.recv(0.05)
                    if message is None:
                        raise WorkerCrashed(f"worker exited with code {self.proc.poll()} while {what}")
            except ChannelClosed as exc:
                raise ProtocolViolation(f"worker broke the protocol while {what}: {exc}",
                                        flags=("protocol_violation",)) from exc
            if message is None:
                continue
            try:
                schemas.validate("run_result.schema.json", message, source=f"worker message while {what}")
            except SchemaViolation as exc:
                raise ProtocolViolation(str(exc), flags=("protocol_violation",)) from exc
            if message["type"] == "error":
                cls = _ERROR_KINDS.get(message["kind"], WorkerCrashed)
                detail = message["traceback"] or message["message"]
                raise cls(f"{message['kind']} while {what}: {message['message']}", stderr_tail=detail[-4000:])
            if message["type"] not in kinds:
                raise ProtocolViolation(f"unexpected {message['type']!r} while {what}", flags=("protocol_violation",))
            return message


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file a worker wrote: no link followed, no FIFO or device opened
    (``O_NONBLOCK``: opening a FIFO cannot hang the grader), at most ``max_bytes``."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"larger than {max_bytes} bytes")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    return data


def check_images(folder: Path, files: list[str], expected: int) -> list[np.ndarray]:
    """The answered images, each a regular file holding an HxWx3 uint8 array, all one size."""
    if len(files) != expected:
        raise WorkerCrashed(f"batch returned {len(files)} images for {expected} prompts", flags=("wrong_image_count",))
    if folder.is_symlink() or not folder.is_dir():
        raise WorkerCrashed(f"output folder {folder.name}: missing or not a plain folder", flags=("bad_image",))
    arrays = []
    for name in files:
        try:
            array = np.load(io.BytesIO(read_regular(folder / name, MAX_IMAGE_FILE)), allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise WorkerCrashed(f"image {name}: unreadable: {exc}", flags=("bad_image",)) from exc
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise WorkerCrashed(f"image {name}: expected HxWx3 uint8, got {getattr(array, 'dtype', '?')} "
                                f"{getattr(array, 'shape', '?')}", flags=("bad_image",))
        arrays.append(array)
    if len({a.shape for a in arrays}) > 1:
        raise WorkerCrashed("images in one batch have different sizes", flags=("wrong_image_size",))
    return arrays


def exchange_batch(session: WorkerSession, batch: Batch, steps: int, batch_timeout: float, work: Path,
                   run: VariantRun) -> tuple[float, list[np.ndarray]]:
    """Send one batch, time it on the supervisor's clock, read and check its images.

    The arrays are read and digested at once and the worker's folder is removed: what the
    grader keeps (:mod:`grader.runs.keeper`) is what it read at answer time, whatever the
    worker writes afterwards.
    """
    out_rel = f"out/{batch.label}"
    request = {"op": "batch", "index": batch.index, "prompts": list(batch.prompts), "seed": batch.seed,
               "steps": steps, "out": out_rel}
    request["seeds"] = list(batch.seeds) if batch.seeds is not None else [batch.seed + k for k in range(len(batch.prompts))]
    what = f"generating {batch.kind} batch {batch.index}"
    started_at = time.time()
    t0 = time.perf_counter()
    session.request(request)
    answer = session.expect({"batch_done"}, batch_timeout, what)
    seconds = time.perf_counter() - t0
    if answer["index"] != batch.index:
        raise ProtocolViolation(f"answer for batch {answer['index']} while waiting for {batch.index}",
                                flags=("protocol_violation",))
    folder = work / out_rel
    try:
        arrays = check_images(folder, answer["files"], len(batch.prompts))
    finally:
        remove_tree(folder)
    shape = arrays[0].shape[:2]
    if run.image_shape is None:
        run.image_shape = shape
    elif run.image_shape != shape:
        raise WorkerCrashed(f"image size changed from {run.image_shape} to {shape}", flags=("wrong_image_size",))
    key = batch.label if batch.kind in ("timed", "warmup") else f"probe-{batch.kind}"
    run.digests[key] = [hashlib.sha1(a.tobytes()).hexdigest() for a in arrays]
    if batch.kind == "timed":
        run.batches.append(BatchTime(batch.index, len(arrays), seconds, answer["worker_seconds"], started_at))
    return seconds, arrays


def remove_tree(folder: Path) -> None:
    """Remove a folder a worker wrote without following anything in it (a link is unlinked, not entered)."""
    try:
        if folder.is_symlink() or not folder.is_dir():
            folder.unlink(missing_ok=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    except OSError:
        pass
