"""A run's stdout or stderr, kept in memory head + tail capped: one rule for every provider.

Untrusted code may write without end. Each provider feeds what it reads (the local one from a
pipe, the docker one from attach-socket frames) into a :class:`CappedOutput`, which keeps the
first and the last ``cap // 2`` bytes and says whether anything in between was dropped, so a
flood fills neither the grader's memory nor a disk, and a report still shows how a run began
and how it ended. :data:`OOM_MARKERS` are the lines by which such output says the run ran
out of memory.
"""

from __future__ import annotations

TRUNCATION_MARKER = b"\n...[output truncated by the grader]...\n"
OOM_MARKERS = (b"MemoryError", b"OutOfMemoryError", b"CUDA out of memory", b"Cannot allocate memory")


class CappedOutput:
    """Keeps the first and last ``cap // 2`` bytes of a stream fed by :meth:`add`."""

    def __init__(self, cap: int):
        self.half = max(cap // 2, 1)
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.half:  # trim now and then, not on every chunk
                del self.tail[: len(self.tail) - self.half]

    def result(self) -> tuple[bytes, bool]:
        """(the kept bytes, with a marker where the middle was dropped; whether it was)."""
        if len(self.tail) > self.half:
            del self.tail[: len(self.tail) - self.half]
        truncated = self.total > len(self.head) + len(self.tail)
        middle = TRUNCATION_MARKER if truncated else b""
        return bytes(self.head) + middle + bytes(self.tail), truncated
