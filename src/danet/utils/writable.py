"""Checking that outputs can be written before the work that produces them is spent."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from danet.utils.outputs import resolve_output


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


def check_writable_file(path: str | Path, what: str = "output") -> Path:
    """Check that a file can be written at ``path``: not a folder, in a writable folder, and not
    an input of the running command nor a special file it would replace
    (:func:`danet.utils.outputs.resolve_output`; a character device, a FIFO or ``/dev/stdout``
    is written in place)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    target = resolve_output(path, what)
    if target.mode == "replace":
        check_writable_dir(target.path.parent)
    return path
