"""The danet command opens no network connection of its own: no hub, no update check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import danet

PROBE = """
import socket, sys
attempts = []
def refuse(self, address):
    attempts.append(address)
    raise OSError("no network in this test")
socket.socket.connect = refuse
from danet.cli import main
code = main(sys.argv[1:])
print(code, len(attempts))
"""


def test_predict_connects_nowhere(tmp_path: Path) -> None:
    frame = sorted((danet.samples_dir("camvid") / "val").glob("*.jpg"))[0]
    argv = ["predict", str(frame), "--out", str(tmp_path / "out"), "--quiet"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["0", "0"], done.stdout  # exit 0, no connection tried
