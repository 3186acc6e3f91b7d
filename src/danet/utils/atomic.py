"""Atomic file writes: a crash or a full disk leaves the old file or the new one, never a torn one;
the temp files of killed writes; small JSON files read with one-line errors, and strict JSON
written (``null`` for a non-finite number)."""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from danet.utils.outputs import resolve_output, write_in_place

TEMP_SUFFIX = ".danet-tmp"
"""What names every temp file of :func:`atomic_write`: ``.<name>.<8 random>.danet-tmp``. The
stale-temp sweep deletes only such names, never a user's own ``.notes.png.bak.tmp``."""
_TEMP = re.compile(r"\.(.+)\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    A crash or a full disk at any moment leaves either the old file or the new one, never a torn
    one. Any failure to write is an ``OSError`` that names ``path`` and the reason ("No space left
    on device", "Permission denied", ...), not the temp file. ``path`` is first checked by
    :func:`danet.utils.outputs.resolve_output`: an input of the running command, a block device,
    a socket or a folder is refused; a symlink is written through (its real target is replaced,
    the link stays); a character device, a FIFO or ``/dev/stdout`` gets the bytes in place.
    """
    given = Path(path)
    target = resolve_output(given)
    if target.mode != "replace":
        with tempfile.TemporaryDirectory(prefix="danet-") as folder:
            tmp = os.path.join(folder, given.name or "output")
            write(tmp)
            write_in_place(target, tmp)
        return
    path = target.path
    tmp, fd = None, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        fcntl.flock(fd, fcntl.LOCK_EX)  # a live write: remove_stale_temp_files leaves it alone
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        try:  # the file it replaces keeps its permissions; a new one gets the usual ones
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp makes 0600
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        os.close(fd)
        fd = None
    except BaseException as err:
        if fd is not None:
            os.close(fd)
        full = not isinstance(err, OSError) and tmp is not None and _disk_full(path.parent)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(given)) from err
        if full:  # a writer that hides the OSError (torch's zip writer, ONNX) on a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(given)) from err
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return Path(path)


def remove_stale_temp_files(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the ``.<name>.<random>.danet-tmp`` files of :func:`atomic_write` that killed
    commands left in ``folder`` (``names`` may be glob patterns, ``*.png``). Only names that
    :func:`atomic_write` makes are touched (a user's ``.notes.png.bak.tmp`` stays); a live
    write's temp file is locked and kept."""
    removed = []
    for name in names:
        for path in Path(folder).glob(f".{name}.*{TEMP_SUFFIX}"):
            if not _TEMP.fullmatch(path.name) or not path.is_file() or path.is_symlink():
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another process is writing it
            else:
                path.unlink(missing_ok=True)
                removed.append(path)
            finally:
                os.close(fd)
    return removed


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float (an absent class's NaN IoU, an infinite gradient
    norm) as ``None``: what ``json.dumps`` then writes is strict JSON (``null``, never ``NaN``),
    which ``JSON.parse`` and strict parsers accept."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    """``value`` as strict JSON text (:func:`strict_json`)."""
    return json.dumps(strict_json(value), indent=indent, allow_nan=False)
