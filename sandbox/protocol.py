"""Line-delimited JSON over two FIFOs in the run's work folder.

FIFOs rather than stdin/stdout so that whatever the untrusted module prints cannot
corrupt the channel, and so that the same files work for a local subprocess and a
container with the work folder bind-mounted. The supervisor creates the FIFOs and
opens both ends read-write (which never blocks on Linux), without blocking: a send is
bounded in time (:class:`ChannelTimeout` when a worker never reads its requests and the
pipe is full); the worker opens them for reading requests and writing responses.

The supervisor reads raw lines (:meth:`Channel.recv_line`) and parses them itself with
the grader's strict parser: nothing a worker writes is parsed by this module on the
grader's side. :meth:`Channel.recv` (plain ``json.loads``) is the worker's, for the
supervisor's requests.
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


class ChannelTimeout(Exception):
    """A send did not complete in time: the other side does not read."""


def _wait(fd: int, events: int, timeout: float | None) -> bool:
    """Whether ``fd`` became ready for ``events`` within ``timeout`` seconds (None: forever)."""
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(None if timeout is None else max(timeout, 0.0) * 1000))


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
            if path.exists() or path.is_symlink():
                path.unlink()
            os.mkfifo(path, 0o666)
            os.chmod(path, 0o666)
        write_fd = os.open(folder / REQUEST_FIFO, os.O_RDWR | os.O_NONBLOCK)
        read_fd = os.open(folder / RESPONSE_FIFO, os.O_RDWR | os.O_NONBLOCK)
        return cls(read_fd, write_fd)

    @classmethod
    def connect(cls, folder: Path) -> "Channel":
        """Worker side."""
        read_fd = os.open(folder / REQUEST_FIFO, os.O_RDONLY)
        write_fd = os.open(folder / RESPONSE_FIFO, os.O_WRONLY)
        return cls(read_fd, write_fd)

    def send(self, message: dict, timeout: float | None = None) -> None:
        """Write one line; ChannelTimeout when it is not all written within ``timeout`` seconds."""
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        deadline = None if timeout is None else time.monotonic() + timeout
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.write_fd, view):]
                continue
            except BlockingIOError:
                pass
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0 or not _wait(self.write_fd, select.POLLOUT, wait):
                raise ChannelTimeout(f"the reader took no data for {timeout:.1f}s "
                                     f"({len(data) - len(view)} of {len(data)} bytes written)")

    def recv_line(self, timeout: float | None = None) -> bytes | None:
        """Next line, without its newline; None when ``timeout`` passes first. Raises ChannelClosed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise ChannelClosed(f"protocol line longer than {MAX_LINE} bytes")
            wait = None if deadline is None else max(deadline - time.monotonic(), 0)
            if not _wait(self.read_fd, select.POLLIN, wait):
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
        if len(line) > MAX_LINE:
            raise ChannelClosed(f"protocol line longer than {MAX_LINE} bytes")
        return line

    def recv(self, timeout: float | None = None) -> dict | None:
        """Next message (plain JSON: the worker's side); None when ``timeout`` passes first. Raises ChannelClosed."""
        line = self.recv_line(timeout)
        if line is None:
            return None
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as exc:
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
