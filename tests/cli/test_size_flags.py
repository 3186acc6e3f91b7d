"""--input-size and its aliases are bounded and named (issue #23)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from danet.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and stderr of ``danet argv`` (argparse's own exits included)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.strip()


def one_line(err: str) -> str:
    """The one error line of stderr (warnings and progress lines aside), with no traceback."""
    lines = [
        line
        for line in err.splitlines()
        if line.strip() and not line.startswith(("danet: warning", "predict ", "train "))
    ]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _edit_config(folder: Path, **changes: object) -> Path:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


@pytest.mark.parametrize("size", ["0,0", "1,1", "-5,-5", "1,2,3", "8,8", "100000,100000"])
@pytest.mark.parametrize("command", ["predict", "export", "train", "convert"])
def test_bad_input_sizes_are_refused_naming_the_flag(
    capsys, tmp_path: Path, command: str, size: str
) -> None:
    argv = {
        "predict": ["predict", "a.png"],
        "export": ["export", "--onnx", str(tmp_path / "m.onnx")],
        "train": ["train", "--data-root", str(tmp_path)],
        "convert": ["convert", "src.pth", "--out", str(tmp_path / "m")],
    }[command]
    code, err = run([*argv, f"--input-size={size}"], capsys)
    assert code == 2
    line = one_line(err)
    assert f"argument --input-size: '{size}'" in line, line
    assert "give H,W (or N): two integers >= 32" in line or "two integers at most" in line, line


def test_input_size_and_height_width_must_agree(tmp_path: Path, capsys) -> None:
    argv = ["export", "--onnx", str(tmp_path / "m.onnx"), "--input-size", "64,96", "--height", "32"]
    code, err = run(argv, capsys)
    assert code == 2
    assert one_line(err).endswith("--input-size 64,96 and --height 32 disagree; give --input-size "
                                  "or --height/--width")  # fmt: skip
    assert not (tmp_path / "m.onnx").exists()
