"""What every provider does for a run the same way: its output capped, the limits it hit
named, its work folder handed over to the sandbox's uid.

Untrusted code may write without end. Each provider feeds what it reads (the local one from a
pipe, the docker one from attach-socket frames) into a :class:`CappedOutput`, which keeps the
first and the last ``cap // 2`` bytes and says whether anything in between was dropped, so a
flood fills neither the grader's memory nor a disk, and a report still shows how a run began
and how it ended. :data:`OOM_MARKERS` are the lines by which such output says the run ran
out of memory. :class:`LimitEvents` is the other half of a run's report that every isolating
provider keeps the same way: the limits it hit, each named once with a line of stderr.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

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


class LimitEvents:
    """What a provider saw a run hit (a limit, an outside kill), each once, with a line for stderr.

    Written from a provider's watcher thread and read when the result is built, so adding is
    locked; the names go to ``ExecResult.limit_events``, the notes to the end of its stderr.
    """

    def __init__(self) -> None:
        self._names: list[str] = []
        self._notes: list[str] = []
        self._lock = threading.Lock()

    def add(self, event: str, note: str) -> None:
        with self._lock:
            if event not in self._names:
                self._names.append(event)
                self._notes.append(note)

    def note(self, text: str) -> None:
        """A line for stderr that names no event."""
        with self._lock:
            self._notes.append(text)

    def __contains__(self, event: str) -> bool:
        return event in self._names

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._names)

    def stderr_suffix(self) -> bytes:
        return b"".join(f"\n[sandbox] {n}".encode() for n in self._notes) + b"\n" if self._notes else b""


def hand_over(work: Path, uid: int, gid: int) -> None:
    """Give the sandbox's uid the work folder it writes (the grader, as root, keeps full access).

    Walks without following links (``lchown`` on every entry), so a link the run left in its
    work folder changes nothing outside it.
    """
    work.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in os.walk(work):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            try:
                if os.lstat(name).st_uid != uid:
                    os.lchown(name, uid, gid)
            except OSError:
                pass
