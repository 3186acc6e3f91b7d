"""Where an output may go: the checks that every danet writer (JSON, ONNX, PNG, MP4, model
folders) makes before it writes, and the in-place write into a stream.

- **Inputs are never outputs.** While a command runs (:func:`command_scope`), its readers note the
  files they read (:func:`note_input`: the checkpoint's files, the dataset's images and masks, the
  calibration images); an output whose real path or inode is one of them is refused.
- **Special files are never replaced.** A character device (``/dev/null``) or a FIFO is written
  into in place; a block device, a socket or a folder is refused.
- **Symlinks are followed.** An output goes to the link's real target (the link stays a link);
  ``/dev/stdout``, ``/dev/fd/N`` and ``/proc/self/fd/N`` are the process's own open files, written
  to as such.

Imports nothing from danet (the ground floor).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from danet.utils.readable import file_kind

_FD_LINK = re.compile(r"/(?:proc/(?:self|thread-self|(\d+))|dev)/fd/(\d+)")
_NAMES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


class _Inputs:
    """The files the running command reads: by (device, inode) and by real path."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], str] = {}
        self.paths: dict[str, str] = {}


_SCOPE: list[_Inputs] = []


@contextmanager
def command_scope() -> Iterator[None]:
    """While this context lasts, noted inputs are refused as outputs (one per command run)."""
    _SCOPE.append(_Inputs())
    try:
        yield
    finally:
        _SCOPE.pop()


def note_input(*paths: str | Path) -> None:
    """Record files that the running command reads, so that no output lands on them (a no-op
    outside :func:`command_scope`: a library caller may save over what it loaded)."""
    if not _SCOPE:
        return
    inputs = _SCOPE[-1]
    for path in paths:
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            continue
        inputs.nodes[(info.st_dev, info.st_ino)] = str(path)
        inputs.paths[os.path.realpath(path)] = str(path)


def note_inputs(paths: Iterable[str | Path | None]) -> None:
    """:func:`note_input` for each path of ``paths`` that is not None."""
    note_input(*(p for p in paths if p is not None))


@dataclass(frozen=True)
class Target:
    """Where an output really goes: ``path`` (a symlink's real target), and how.

    ``mode`` is ``"replace"`` (a new name or a regular file: written beside and renamed over),
    ``"in-place"`` (a character device or FIFO: its bytes are written into it) or ``"fd"`` (the
    process's own open file ``fd``: ``/dev/stdout``)."""

    path: Path
    mode: str
    fd: int | None = None
    fifo: bool = False


def _fd_of(path: str) -> int | None:
    """The file descriptor that ``path`` names when it is one of this process's own (e.g.
    ``/dev/stdout`` -> ``/proc/self/fd/1``), following symlinks hop by hop."""
    current = os.path.abspath(path)
    for _ in range(40):
        if current in _NAMES:
            return _NAMES[current]
        match = _FD_LINK.fullmatch(current)
        if match and (match.group(1) is None or int(match.group(1)) == os.getpid()):
            return int(match.group(2))
        if not os.path.islink(current):
            return None
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return None


def resolve_output(path: str | Path, what: str = "output") -> Target:
    """Check that an output may be written at ``path`` and say where and how it goes.

    Raises a one-line ``ValueError`` naming ``path`` when it is an input of the running command
    (by real path or inode) or a block device, socket or folder; the caller's file is never
    replaced by anything but a regular file at a regular file's place.
    """
    text = os.fspath(path)
    fd = _fd_of(text)
    if fd is not None:
        return Target(Path(text), "fd", fd=fd)
    real = Path(os.path.realpath(text))
    try:
        info = os.stat(real)
    except FileNotFoundError:
        info = None
    except OSError as err:
        raise OSError(err.errno, err.strerror, text) from None
    if _SCOPE:
        inputs = _SCOPE[-1]
        source = inputs.paths.get(str(real))
        if source is None and info is not None:
            source = inputs.nodes.get((info.st_dev, info.st_ino))
        if source is not None:
            same = "" if os.path.realpath(source) == os.path.realpath(text) else f" ({source})"
            raise ValueError(
                f"{text}: is an input of this command{same}; the {what} would overwrite it, "
                "give another name"
            )
    if info is None or stat.S_ISREG(info.st_mode):
        return Target(real, "replace")
    if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
        return Target(real, "in-place", fifo=stat.S_ISFIFO(info.st_mode))
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"is a folder; give a file name for the {what}", text)
    raise ValueError(
        f"{text}: is {file_kind(info.st_mode)}; danet writes the {what} only to a regular file, "
        "a character device or a FIFO, and never replaces it"
    )


def write_in_place(target: Target, source: str | Path) -> None:
    """Copy the bytes of the file ``source`` into ``target`` (an ``"in-place"`` or ``"fd"``
    target), without replacing it. A FIFO that nobody reads is an ``OSError`` naming it (not a
    write that blocks forever)."""
    if target.mode == "fd":
        stream = {1: sys.stdout, 2: sys.stderr}.get(target.fd)
        if stream is not None:
            stream.flush()
            buffer = getattr(stream, "buffer", None)
            with open(source, "rb") as f:
                data = f.read()
            if buffer is not None:
                buffer.write(data)
                buffer.flush()
            else:
                stream.write(data.decode("utf-8", "replace"))
            stream.flush()
            return
        fd = target.fd
        close = False
    else:
        flags = os.O_WRONLY | (os.O_NONBLOCK if target.fifo else 0)
        try:
            fd = os.open(target.path, flags)
        except OSError as err:
            if err.errno == errno.ENXIO:
                raise OSError(err.errno, "a FIFO that no process reads", str(target.path)) from None
            raise OSError(err.errno, err.strerror, str(target.path)) from None
        if target.fifo:
            os.set_blocking(fd, True)
        close = True
    try:
        with open(source, "rb") as f:
            while chunk := f.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(target.path)) from None
    finally:
        if close:
            os.close(fd)


def check_output_names(outputs: Iterable[tuple[str, str | Path]]) -> None:
    """Refuse, in one line naming both inputs, two inputs that would write the same output
    name: ``outputs`` holds (output name, input) pairs."""
    seen: dict[str, str | Path] = {}
    for name, source in outputs:
        if name in seen and str(seen[name]) != str(source):
            raise ValueError(f"{seen[name]} and {source} would both write {name}; rename one")
        seen.setdefault(name, source)


__all__ = [
    "Target",
    "check_output_names",
    "command_scope",
    "note_input",
    "note_inputs",
    "resolve_output",
    "write_in_place",
]
