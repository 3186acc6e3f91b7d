"""Checks that a file may be read before anything is allocated for it: a regular file (a FIFO or a
device given as a config or weight file would block or never end), and a ``torch.save`` zip
archive whose entries cannot inflate past the file's own size.

Imports nothing from danet (the ground floor), and no torch. Text files are read by
:mod:`danet.utils.textfile`.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

ZIP_SLACK = 1 << 20
"""How many bytes a checkpoint's zip entries may inflate to beyond the file's own size."""

_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words ("a FIFO (named pipe)", "a character device", ...)."""
    for test, name in _SPECIAL:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def check_regular_file(path: str | Path, what: str = "file") -> os.stat_result:
    """``path``'s stat when it is a regular file (symlinks followed); a FIFO, device, socket or
    folder is a one-line ``ValueError`` naming it, raised without opening it (a FIFO would
    block). A missing file is ``FileNotFoundError``."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(
            f"{path}: is {file_kind(info.st_mode)}; danet reads a {what} only from a regular file"
        )
    return info


def check_torch_file(path: str | Path, what: str = "PyTorch checkpoint") -> None:
    """Refuse, before ``torch.load`` allocates anything, a file that is not one ``torch.save``
    wrote (a zip archive or a pickle), or a zip archive whose entries inflate past the file's
    size (a zip bomb) or whose stored entries declare sizes they do not have.

    Every refusal is a one-line ``ValueError`` naming ``path``; ``what`` says what was expected.
    """
    path = Path(path)
    size = check_regular_file(path, what).st_size
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise ValueError(
                f"{path}: not a loadable {what} (a damaged zip archive: {err})"
            ) from None
        inflated = sum(info.file_size for info in infos)
        if inflated > size + ZIP_SLACK:
            raise ValueError(
                f"{path}: its entries inflate to {inflated} bytes from a {size}-byte file; "
                "torch.save stores tensors uncompressed, and danet refuses compressed ones"
            )
        for info in infos:
            stored = info.compress_type == zipfile.ZIP_STORED
            if (stored and info.compress_size != info.file_size) or info.compress_size > size:
                raise ValueError(
                    f"{path}: entry {info.filename[:80]!r} declares {info.file_size} bytes but "
                    f"holds {info.compress_size}; a damaged or crafted archive, not a {what}"
                )
    elif not head.startswith(b"\x80"):  # a pickle (torch's legacy format) starts with PROTO
        text = head and all(32 <= b < 127 or b in b"\t\r\n" for b in head)
        what_it_is = "text" if text else ("empty" if not head else f"starts with {head!r}")
        raise ValueError(
            f"{path}: not a {what} (it is {what_it_is}); expected a file that "
            "torch.save wrote (a zip archive or a pickle)"
        )
