"""python -m danet.launch: a distributed run that fails ends with one rank's one line, and no
launcher traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from conftest import assert_one_line

import danet
from danet.launch import _first_error, main

SRC = str(Path(danet.__file__).resolve().parents[1])


def test_the_first_failing_rank_with_a_line_is_the_one_shown(tmp_path: Path) -> None:
    (tmp_path / "rank0.txt").write_text("danet eval: error: rank 0's\n")
    (tmp_path / "rank1.txt").write_text("danet eval: error: rank 1's\n")
    failures = {0: SimpleNamespace(timestamp=20), 1: SimpleNamespace(timestamp=10)}
    assert _first_error(tmp_path, failures) == (1, "danet eval: error: rank 1's")
    (tmp_path / "rank1.txt").unlink()  # rank 1 crashed without a line
    assert _first_error(tmp_path, failures) == (0, "danet eval: error: rank 0's")


def test_no_command_is_one_line(capsys) -> None:
    assert main(["--nproc_per_node", "2"]) == 2
    assert_one_line(capsys.readouterr().err, "give torchrun's flags, then a danet command")


def test_a_run_failing_in_every_rank_ends_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    argv = ["--standalone", "--nproc_per_node", "2", "eval", "--checkpoint", str(tmp_path / "no"),
            "--dataset", "camvid", "--data-root", str(tmp_path), "--device", "cpu", "--quiet"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "danet.launch", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "ChildFailedError" not in result.stderr
    assert_one_line(result.stderr, "danet eval: error:", str(tmp_path / "no"))
