"""A run's log is appended only to a regular file: a FIFO put in its place is refused in one line,
not blocked on."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from danet.training.runfolder import append_row, read_rows


def test_a_fifo_in_place_of_the_log_is_refused_not_blocked_on(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    os.mkfifo(log)
    with pytest.raises(ValueError, match="metrics.jsonl: is not a regular file"):
        append_row(log, {"step": 1})
    with pytest.raises(ValueError, match="metrics.jsonl: is a FIFO"):
        read_rows(log)
    assert stat.S_ISFIFO(os.lstat(log).st_mode)


def test_a_binary_log_is_named(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_bytes(b'{"step": 1}\n\xff\xfe')
    with pytest.raises(ValueError, match="metrics.jsonl: not UTF-8 text"):
        read_rows(log)
