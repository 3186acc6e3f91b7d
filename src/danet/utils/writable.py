"""Checking that outputs can be written before the work that produces them is spent."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def check_writable_dir(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check that a file can be written in it.

    Raises an ``OSError`` naming the folder and the reason (permission, read-only file system,
    not a folder, ...).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)  # its OSError names the folder it could not make
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".danet-write-check.")
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(folder)) from None
    os.close(fd)
    os.unlink(probe)
    return folder


def check_writable_file(path: str | Path) -> Path:
    """Check that a file can be written at ``path``: not a folder, in a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    check_writable_dir(path.parent)
    return path
