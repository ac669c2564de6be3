"""Atomic file writes: a reader sees the old file or the whole new one, never a partial one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from amnesiac.errors import AmnesiacError


class OutputPathError(AmnesiacError, OSError):
    """An output path cannot be written."""


try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def locked(fd: int) -> Iterator[None]:
    """An exclusive ``flock`` on an open file for the block (none where ``fcntl`` is missing).
    The kernel releases it when the holder dies, so a killed process blocks nobody."""
    if fcntl is None:
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` for the block: a ``flock`` on ``PATH.lock`` beside it
    (created if missing), so it also guards a file that is replaced by renaming, as atomic
    writes do. Across machines the file system must honour ``flock`` (NFSv4 does)."""
    path = Path(path)
    with (path.parent / (path.name + ".lock")).open("a+b") as f, locked(f.fileno()):
        yield


def cache_root() -> Path:
    """Where amnesiac caches what it can compute again: ``$AMNESIAC_CACHE``, else
    ``~/.cache/amnesiac``."""
    return Path(os.environ.get("AMNESIAC_CACHE") or Path.home() / ".cache" / "amnesiac")


def check_writable(path: str | Path) -> Path:
    """Return ``path`` as a Path if its folder exists and is writable, else raise a clear error."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputPathError(
            f"cannot write {path}: folder {folder} does not exist; create it first"
        )
    if not os.access(folder, os.W_OK):
        raise OutputPathError(f"cannot write {path}: folder {folder} is not writable")
    if path.is_dir():
        raise OutputPathError(f"cannot write {path}: it is a folder; give a file name")
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync and rename."""
    path = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))
