"""A training run's folder: the name of every file in it, an exclusive lock, and the metrics
log (:func:`danet.utils.atomic.remove_stale_temp_files` removes the temp files of killed saves).

The log, ``metrics.jsonl``, gets one JSON object per line. A line is appended with one
``write`` on an ``O_APPEND`` descriptor and, if that fails (a full disk), the file is cut back to
its previous size, so a row is written whole or not at all. A torn last line left by an older
version or a crash of the machine is skipped with a warning when the log is read. Each line is
strict JSON: a number that is not finite (a NaN validation figure, an infinite gradient norm
under float16) is written as ``null``, which :func:`read_rows` reads back as NaN.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from danet.model.checkpoint import CONFIG_NAME, TRAIN_STATE_NAME, WEIGHTS_NAME
from danet.utils.atomic import dumps, write_text
from danet.utils.outputs import resolve_output
from danet.utils.textfile import read_json, read_text_file

# A run folder is a model folder (CONFIG_NAME, WEIGHTS_NAME, TRAIN_STATE_NAME, named where the
# model's files are defined) plus the log, its plot and the recipe the run was trained with.
METRICS_NAME = "metrics.jsonl"
CURVES_NAME = "curves.png"
RUN_CONFIG_NAME = "run_config.json"
RUN_FILES = (
    TRAIN_STATE_NAME,
    WEIGHTS_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    CURVES_NAME,
    RUN_CONFIG_NAME,
)
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
    with the process, so a killed run never leaves a stale one, and a run that ends removes the
    lock file (while still holding it; a run that locked a file already removed so takes the new
    one). A folder that this call created and that holds nothing but the lock when the run ends
    (it failed before writing anything) is removed.
    """
    run = Path(run)
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    lock = run / LOCK_NAME
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderBusy(
                f"{run}: another danet train is running in this folder (it holds "
                f"{lock}); wait for it or choose another --out"
            ) from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # a run that just ended removed this file: lock the current one
    try:
        yield run
    finally:
        lock.unlink(missing_ok=True)  # while still holding it
        if created and not any(run.iterdir()):
            run.rmdir()
        os.close(fd)


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` as one line of strict JSON (a non-finite number as ``null``), whole or not
    at all (a full disk leaves no torn line)."""
    data = (dumps(row, indent=None) + "\n").encode()
    if resolve_output(path, "log").mode != "replace":  # a FIFO would block, a device swallow it
        raise ValueError(f"{path}: is not a regular file; a run's log is appended to one")
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
    """The rows of a JSON-lines log, ``null`` values (numbers that were not finite) as NaN; a
    torn last line is skipped with a warning, any other bad line is a ValueError that names the
    file and the line. Older logs' ``NaN`` and ``Infinity`` are read as well."""
    path = Path(path)
    if not path.exists():
        return []
    lines = read_text_file(path, "JSON-lines log").splitlines()
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
        rows.append({k: math.nan if v is None else v for k, v in row.items()})
    return rows


def truncate_log(run: str | Path, step: int) -> None:
    """Drop log rows past ``step``: they belong to the part of a killed run that is redone."""
    path = Path(run) / METRICS_NAME
    if path.exists():
        kept = [dumps(r, indent=None) for r in read_rows(path) if r.get("step", 0) <= step]
        write_text(path, "".join(r + "\n" for r in kept))


def read_run_config(folder: str | Path) -> dict[str, Any]:
    """The recipe a run folder was trained with (its ``run_config.json``), or {} if none."""
    path = Path(folder) / RUN_CONFIG_NAME
    if not path.is_file():
        return {}
    data = read_json(path)
    return data if isinstance(data, dict) else {}


def has_row(path: str | Path, step: int, key: str) -> bool:
    """Whether the log holds a row of ``step`` with ``key`` (a validation's ``val_miou``)."""
    return any(r.get("step") == step and key in r for r in read_rows(path))
