"""Files the grader writes and hashes: one way to do each.

- :func:`atomic_write` (and :func:`atomic_write_json`): write to a temp file in the same
  folder, fsync, rename, fsync the folder. After a ``kill -9`` a reader finds the old file
  or the whole new one, never a part; the temp file is named ``.<name>.<random>.tmp`` so
  :func:`remove_partials` can sweep what an interrupted write left.
- :func:`file_digest` and :func:`sources_digest`: sha256 of one file, and of a package's
  sources (names and bytes), the hash that names the sandbox image's worker.
- :func:`open_dir_nofollow` and :func:`read_regular`: how the host reads what a sandboxed
  worker wrote: no link followed at any step below the trusted folder, no FIFO or device
  opened, the size capped before a byte is read.

Standard library only: ``docker/inputs_hash.py`` runs this with a bare ``python3``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

PARTIAL_SUFFIX = ".tmp"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write ``data`` (text is UTF-8) so that a reader sees the old file or the whole new one."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, document: object) -> None:
    """:func:`atomic_write` of ``document`` as indented JSON; NaN and infinities are refused."""
    atomic_write(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def remove_partials(folder: Path, name: str) -> None:
    """Delete the temp files an interrupted :func:`atomic_write` of ``folder/name`` left."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name.startswith(f".{name}.") and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_digest(path: Path | None) -> str | None:
    """sha256 of a file's bytes; None when there is no path or it cannot be read."""
    if path is None:
        return None
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def sources_digest(package_dir: Path, prefix: str, pattern: str = "*.py") -> str:
    """sha256 over ``<prefix>/<relative path>`` names and contents of the files matching ``pattern``."""
    package_dir = Path(package_dir)
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob(pattern)):
        if "__pycache__" in path.parts:
            continue
        rel = f"{prefix}/" + path.relative_to(package_dir).as_posix()
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class NotRegularFile(ValueError):
    """A FIFO, device, folder or socket where a regular file was expected."""


class FileTooLarge(ValueError):
    """A file over the size the reader allows."""


def open_dir_nofollow(base: Path, rel: str | Path) -> int:
    """A file descriptor of the folder ``base/rel``, reached one component at a time without
    following a link below ``base`` (``base`` itself is the grader's). The caller closes it.
    Raises OSError (ELOOP or ENOTDIR for a link or a file on the way)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        for part in Path(rel).parts:
            if part in ("/", ".", ".."):
                raise OSError(errno.EINVAL, f"{rel}: not a plain relative path")
            step = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = step
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | Path, max_bytes: int, dir_fd: int | None = None) -> bytes:
    """The bytes of a regular file a sandboxed process wrote: the last component is not
    followed if it is a link, a FIFO or device is not read (``O_NONBLOCK``: opening a FIFO
    cannot hang the grader), and a file over ``max_bytes`` is refused before it is read.
    With ``dir_fd``, ``path`` is relative to that folder. Raises OSError (ELOOP for a link),
    NotRegularFile or FileTooLarge."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile("not a regular file")
        if info.st_size > max_bytes:
            raise FileTooLarge(f"larger than {max_bytes} bytes")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(info.st_size + 1)     # never a buffer of max_bytes for a small file
    finally:
        os.close(fd)
    if len(data) > info.st_size:
        raise ValueError("the file grew while it was read")
    return data
