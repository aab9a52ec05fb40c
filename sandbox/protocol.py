"""Line-delimited JSON over two FIFOs in the run's work folder.

FIFOs rather than stdin/stdout so that whatever the untrusted module prints cannot
corrupt the channel, and so that the same files work for a local subprocess and a
container with the work folder bind-mounted. The supervisor creates the FIFOs and
opens both ends read-write (which never blocks on Linux); the worker opens them
for reading requests and writing responses.
"""

from __future__ import annotations

import json
import os
import select
import time
from pathlib import Path

REQUEST_FIFO = "req.fifo"
RESPONSE_FIFO = "resp.fifo"
MAX_LINE = 1 << 20


class ChannelClosed(Exception):
    """The other side went away or sent something that is not a protocol line."""


class Channel:
    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd, self.write_fd = read_fd, write_fd
        self._buffer = bytearray()

    @classmethod
    def create(cls, folder: Path) -> "Channel":
        """Supervisor side: make the FIFOs and open them without blocking."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in (REQUEST_FIFO, RESPONSE_FIFO):
            path = folder / name
            if path.exists():
                path.unlink()
            os.mkfifo(path, 0o666)
            os.chmod(path, 0o666)
        write_fd = os.open(folder / REQUEST_FIFO, os.O_RDWR)
        read_fd = os.open(folder / RESPONSE_FIFO, os.O_RDWR | os.O_NONBLOCK)
        return cls(read_fd, write_fd)

    @classmethod
    def connect(cls, folder: Path) -> "Channel":
        """Worker side."""
        read_fd = os.open(folder / REQUEST_FIFO, os.O_RDONLY)
        write_fd = os.open(folder / RESPONSE_FIFO, os.O_WRONLY)
        return cls(read_fd, write_fd)

    def send(self, message: dict) -> None:
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self.write_fd, view)
            view = view[written:]

    def recv(self, timeout: float | None = None) -> dict | None:
        """Next message; None when ``timeout`` passes first. Raises ChannelClosed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise ChannelClosed(f"protocol line longer than {MAX_LINE} bytes")
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            ready, _, _ = select.select([self.read_fd], [], [], wait)
            if not ready:
                return None
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise ChannelClosed("channel closed")
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        try:
            message = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ChannelClosed(f"not a JSON line: {line[:200]!r}") from exc
        if not isinstance(message, dict):
            raise ChannelClosed(f"not a JSON object: {line[:200]!r}")
        return message

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
