"""--input-size and its aliases are bounded and named (issue #23)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_one_line


@pytest.mark.parametrize("size", ["0,0", "1,1", "-5,-5", "1,2,3", "8,8", "100000,100000"])
@pytest.mark.parametrize("command", ["predict", "export", "train", "convert"])
def test_bad_input_sizes_are_refused_naming_the_flag(
    cli, tmp_path: Path, command: str, size: str
) -> None:
    argv = {
        "predict": ["predict", "a.png"],
        "export": ["export", "--onnx", str(tmp_path / "m.onnx")],
        "train": ["train", "--data-root", str(tmp_path)],
        "convert": ["convert", "src.pth", "--out", str(tmp_path / "m")],
    }[command]
    code, _, err = cli([*argv, f"--input-size={size}"])
    assert code == 2
    line = assert_one_line(err)
    if command == "train":  # a recipe value: checked by the recipe's schema, named as a flag
        assert "--input-size must be an integer >= 32 or H,W (two integers >= 32)" in line, line
        return
    assert f"argument --input-size: '{size}'" in line, line
    assert "give H,W (or N): two integers >= 32" in line or "two integers at most" in line, line


def test_input_size_and_height_width_must_agree(tmp_path: Path, cli) -> None:
    argv = ["export", "--onnx", str(tmp_path / "m.onnx"), "--input-size", "64,96", "--height", "32"]
    code, _, err = cli(argv)
    assert code == 2
    assert assert_one_line(err).endswith(
        "--input-size 64,96 and --height 32 disagree; give --input-size or --height/--width"
    )
    assert not (tmp_path / "m.onnx").exists()
