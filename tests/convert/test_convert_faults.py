"""danet convert under faults (issue #23): --out that holds anything, sources that inflate,
text files, stale temp files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line, contents


def test_convert_refuses_an_out_that_holds_anything(checkpoint: Path, tmp_path: Path, cli) -> None:
    src = tmp_path / "src.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, src)
    before = contents(checkpoint)
    code, _, err = cli(["convert", str(src), "--out", str(checkpoint)])
    assert code == 2
    line = assert_one_line(err)
    assert f"--out {checkpoint}: already holds config.json, model.safetensors" in line, line
    assert "--overwrite" in line
    assert contents(checkpoint) == before
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    torch.save({"step": 1}, run_folder / "checkpoint.pt")
    code, _, err = cli(["convert", str(src), "--out", str(run_folder), "--overwrite"])
    assert code == 2 and "holds a training run (checkpoint.pt)" in assert_one_line(err)
    file_out = tmp_path / "model.safetensors"
    file_out.write_text("mine")
    code, _, err = cli(["convert", str(src), "--out", str(file_out)])
    assert code == 2
    assert assert_one_line(err).endswith(
        f"--out {file_out}: is a file; give a folder for the model"
    )
    assert file_out.read_text() == "mine"


def test_convert_refuses_a_source_that_inflates_before_loading_it(
    tmp_path: Path, monkeypatch
) -> None:
    from danet.convert import read_checkpoint

    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": {"w": torch.zeros(2_000_000)}}, plain)  # 8 MB of zeros
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 200_000

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load ran on a source that inflates")

    monkeypatch.setattr(torch, "load", no_load)
    with pytest.raises(
        ValueError, match=r"bomb.pth: its entries inflate to \d+ bytes from a \d+-byte"
    ):
        read_checkpoint(bomb)


def test_a_text_file_given_to_convert_is_named(tmp_path: Path, cli) -> None:
    src = tmp_path / "notes.pth"
    src.write_text("these are not weights\n")
    code, _, err = cli(["convert", str(src), "--out", str(tmp_path / "m")])
    assert code == 2
    assert assert_one_line(err).startswith(
        f"danet convert: error: {src}: not a PyTorch checkpoint (it is text)"
    )


def test_convert_removes_stale_temp_files_and_takes_a_folder_holding_only_them(
    tmp_path: Path,
) -> None:
    from danet.convert import check_out

    out = tmp_path / "m"
    out.mkdir()
    stale = out / ".model.safetensors.k1ll3d00.danet-tmp"
    stale.write_bytes(b"\0" * 1000)
    check_out(out, overwrite=False)
    assert not stale.exists()
