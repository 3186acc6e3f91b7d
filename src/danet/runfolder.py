"""A training run's folder: an exclusive lock and the metrics log.

The log, ``metrics.jsonl``, gets one JSON object per line. A line is appended with one
``write`` on an ``O_APPEND`` descriptor and, if that fails (a full disk), the file is cut back to
its previous size, so a row is written whole or not at all. A torn last line left by an older
version or a crash of the machine is skipped with a warning when the log is read.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOCK_NAME = ".danet-train.lock"


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder's lock."""


def warn(message: str) -> None:
    """One line on stderr, as the CLI's errors are."""
    print(f"danet: warning: {message}", file=sys.stderr)


@contextmanager
def locked(run: str | Path) -> Iterator[Path]:
    """Hold an exclusive ``fcntl`` lock on ``run/.danet-train.lock`` for the life of a run.

    A second run into the same folder fails at once with :class:`RunFolderBusy`. The lock goes
    with the process, so a killed run never leaves a stale one.
    """
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    fd = os.open(run / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusy(
                f"{run}: another danet train is running in this folder (it holds "
                f"{run / LOCK_NAME}); wait for it or choose another --out"
            ) from None
        yield run
    finally:
        os.close(fd)


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line, whole or not at all (a full disk leaves no torn line)."""
    data = (json.dumps(row) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(28, os.strerror(28), str(path))
        except OSError as err:
            os.ftruncate(fd, size)
            raise OSError(err.errno, err.strerror, str(path)) from None
    finally:
        os.close(fd)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines log; a torn last line is skipped with a warning, any other bad
    line is a ValueError that names the file and the line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            if number == len(lines):
                warn(f"{path}: skipping its torn last line {number} ({err})")
                continue
            raise ValueError(f"{path}: line {number} is not valid JSON ({err})") from None
        rows.append(row)
    return rows


def has_row(path: str | Path, step: int, key: str) -> bool:
    """Whether the log holds a row of ``step`` with ``key`` (a validation's ``val_miou``)."""
    return any(r.get("step") == step and key in r for r in read_rows(path))
