"""Writing files so that a crash leaves either the whole file or none of it.

The pattern is the Maildir one: write under a name nobody reads, fsync the data, give it
its real name with an atomic ``link``/``rename``, then fsync the directory so the name
itself survives a power cut (POSIX leaves directory entries in the page cache otherwise).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until everything is written (a short write is legal, ENOSPC raises)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_synced(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create ``path`` (it must not exist) with ``data``, fsync'd; on failure remove it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def replace_synced(path: Path, data: bytes) -> None:
    """Atomically give ``path`` the content ``data`` (tmp file, fsync, rename, fsync dir)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    write_synced(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)
