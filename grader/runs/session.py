"""One worker process on the wire: requests out, validated answers in, batches timed.

A :class:`WorkerSession` owns the channel to one sandboxed worker and a budget of
wall-clock seconds (only time spent waiting on this worker counts, so a variant
interleaved with others gets the same allowance as one run alone). Every line the
worker sends is parsed by the grader's strict parser (:func:`grader.schemas.parse_json`)
and checked against ``schemas/run_result.schema.json`` before anything reads it; a line
that is not strict JSON (NaN, a duplicate key, deep nesting, a huge number) is a protocol
violation like any other. A request that the worker does not take within
:data:`SEND_TIMEOUT` seconds (it never reads, or filled its own request pipe) ends the
variant with a timeout instead of blocking the grader. :func:`exchange_batch` times one
batch on the supervisor's clock, from the moment the request is written to the moment the
answer is read, and the answer only counts once every image it names exists with the right
count and shape: work cannot be deferred past the clock without losing the images. Images
are read from the worker's folder without following a link at any step (a worker that
makes ``out/`` a link to elsewhere gets ``bad_image``, and nothing elsewhere is read or
removed).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from grader import schemas
from grader.errors import ProtocolViolation, SchemaViolation, WorkerCrashed, WorkerOOM, WorkerTimeout
from grader.files import open_dir_nofollow, read_regular
from grader.isolation import RunningProcess
from grader.runs.timing import BatchTime
from grader.runs.variant import VariantRun
from grader.taskset.prompts import Batch
from sandbox.protocol import Channel, ChannelClosed, ChannelTimeout

MAX_IMAGE_FILE = 64 << 20
SEND_TIMEOUT = 30.0   # a request is a few kB into an empty pipe: only a worker that does not read takes longer
_POLL = 0.2
_ERROR_KINDS = {"oom": WorkerOOM}


class WorkerSession:
    """One worker process and its channel, with a budget of wall-clock seconds."""

    def __init__(self, proc: RunningProcess, channel: Channel, budget: float):
        self.proc, self.channel, self.budget = proc, channel, budget
        self.used = 0.0

    def request(self, message: dict) -> None:
        """Send ``message``, within SEND_TIMEOUT (and the budget left); WorkerTimeout when the worker does not take it."""
        began = time.monotonic()
        limit = max(0.0, min(SEND_TIMEOUT, self.budget - self.used))
        try:
            self.channel.send(message, timeout=limit)
        except ChannelTimeout as exc:
            raise WorkerTimeout(f"the worker took no {message.get('op', '')!r} request within {limit:.0f}s: "
                                f"it does not read its request channel ({exc})") from None
        except OSError as exc:
            raise WorkerCrashed(f"cannot send the {message.get('op', '')!r} request: {exc}") from None
        finally:
            self.used += time.monotonic() - began

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
                line = self.channel.recv_line(min(remaining, _POLL))
                if line is None and self.proc.poll() is not None:
                    line = self.channel.recv_line(0.05)
                    if line is None:
                        raise WorkerCrashed(f"worker exited with code {self.proc.poll()} while {what}")
            except ChannelClosed as exc:
                raise ProtocolViolation(f"worker broke the protocol while {what}: {exc}",
                                        flags=("protocol_violation",)) from exc
            if line is None:
                continue
            message = _parse_line(line, what)
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


def _parse_line(line: bytes, what: str) -> dict:
    """A worker's line as a JSON object, by the strict parser; ProtocolViolation otherwise."""
    try:
        message = schemas.parse_json(line)
    except schemas.InvalidJSON as exc:
        raise ProtocolViolation(f"worker broke the protocol while {what}: not a strict JSON line ({exc}): "
                                f"{line[:200]!r}", flags=("protocol_violation",)) from None
    if not isinstance(message, dict):
        raise ProtocolViolation(f"worker broke the protocol while {what}: not a JSON object: {line[:200]!r}",
                                flags=("protocol_violation",))
    return message


class _NotAnImage(ValueError):
    """The file is a readable array, but not an HxWx3 uint8 image."""


def load_image(data: bytes) -> np.ndarray:
    """An HxWx3 uint8 array from ``.npy`` bytes, checked from the header before any array is made.

    Never ``np.load``: an ``.npz`` archive, a pickle or a header that claims more pixels than
    the file holds is refused (ValueError) without allocating what the header claims."""
    fh = io.BytesIO(data)
    version = np.lib.format.read_magic(fh)   # ValueError unless the file starts like a .npy
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f".npy format version {version} is not accepted")
    if dtype != np.uint8 or len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
        raise _NotAnImage(f"expected HxWx3 uint8, got {dtype} {shape}")
    count, offset = math.prod(shape), fh.tell()
    if len(data) - offset != count:
        raise ValueError(f"the header says {shape} ({count} bytes) but the file holds {len(data) - offset}")
    flat = np.frombuffer(data, dtype=np.uint8, count=count, offset=offset)
    return np.array(flat.reshape(shape, order="F" if fortran else "C"), order="C")


def check_images(work: Path, out_rel: str, files: list[str], expected: int) -> list[np.ndarray]:
    """The answered images in ``work/out_rel``, each a regular file holding an HxWx3 uint8 array, all one size.

    The folder is reached without following a link below ``work`` (the grader's) and each
    file is read through :func:`read_regular` (no link, no FIFO, at most MAX_IMAGE_FILE)."""
    if len(files) != expected:
        raise WorkerCrashed(f"batch returned {len(files)} images for {expected} prompts", flags=("wrong_image_count",))
    try:
        dir_fd = open_dir_nofollow(work, out_rel)
    except OSError as exc:
        raise WorkerCrashed(f"output folder {out_rel}: missing or not a plain folder (links are not followed): "
                            f"{exc.strerror or exc}", flags=("bad_image",)) from None
    arrays = []
    try:
        for name in files:
            try:
                array = load_image(read_regular(name, MAX_IMAGE_FILE, dir_fd=dir_fd))
            except _NotAnImage as exc:
                raise WorkerCrashed(f"image {name}: {exc}", flags=("bad_image",)) from None
            except (OSError, ValueError, EOFError, SyntaxError, TypeError) as exc:
                raise WorkerCrashed(f"image {name}: unreadable: {exc}", flags=("bad_image",)) from None
            arrays.append(array)
    finally:
        os.close(dir_fd)
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
    try:
        arrays = check_images(work, out_rel, answer["files"], len(batch.prompts))
    finally:
        remove_tree(work, out_rel)
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


def remove_tree(work: Path, rel: str) -> None:
    """Remove ``work/rel``, a folder a worker wrote, without following a link anywhere below
    ``work``: a link on the way means nothing is removed, a link at the end is unlinked, not
    entered, and links inside are unlinked (``shutil.rmtree`` by file descriptor)."""
    parent, name = os.path.split(rel)
    try:
        dir_fd = open_dir_nofollow(work, parent)
    except OSError:
        return
    try:
        try:
            os.unlink(name, dir_fd=dir_fd)        # a file or a link: gone, nothing followed
        except IsADirectoryError:
            shutil.rmtree(name, dir_fd=dir_fd, ignore_errors=True)
        except OSError:
            pass
    finally:
        os.close(dir_fd)
