"""Every model reader is bounded before it allocates: no zip bomb inflated, no FIFO or device
read, no mislabelled tensor trusted, and refusals that say what the file is."""

from __future__ import annotations

import argparse
import json
import os
import struct
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line, random_png

import danet
from danet.model.pretrained import read_state_dict


def _bomb(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("checkpoint/data.pkl", b"\0" * (16 << 20))
    return path


def test_a_zip_bomb_checkpoint_is_refused_before_torch_load(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = _bomb(tmp_path / "run" / "checkpoint.pt")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran on a bomb"))
    with pytest.raises(ValueError, match=r"checkpoint.pt: its entries inflate to \d+ bytes"):
        danet.load(tmp_path / "run")
    with pytest.raises(ValueError, match="inflate"):
        read_state_dict(bomb)  # train --pretrained
    image = random_png(tmp_path / "a.png")
    argv = ["predict", str(image), "--checkpoint", str(bomb), "--out", str(tmp_path / "o")]
    code, _, err = cli([*argv, "--quiet"])
    assert code == 2
    assert_one_line(err, str(bomb), "inflate")


def test_a_model_folder_whose_config_is_a_fifo_is_refused_not_blocked_on(
    checkpoint: Path,
) -> None:
    (checkpoint / "config.json").unlink()
    os.mkfifo(checkpoint / "config.json")
    done: list[BaseException] = []

    def load() -> None:
        try:
            danet.load(checkpoint)
        except BaseException as err:  # noqa: BLE001 (what the thread saw)
            done.append(err)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=30)
    if thread.is_alive():  # unblock the reader before failing
        with open(checkpoint / "config.json", "w"):
            pass
        pytest.fail("danet.load blocked on a FIFO config.json")
    assert isinstance(done[0], ValueError) and "config.json: is a FIFO" in str(done[0])


@pytest.mark.parametrize("name", ["model.safetensors", "checkpoint.pt"])
def test_a_fifo_weight_file_is_refused(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    os.mkfifo(folder / name)
    with pytest.raises(ValueError, match=f"{name}: is a FIFO"):
        danet.load(folder)


def test_dev_zero_is_a_character_device_not_pickled_code() -> None:
    with pytest.raises(ValueError, match="/dev/zero: is a character device") as err:
        danet.load("/dev/zero")
    assert "pickled" not in str(err.value)


def test_a_text_file_far_away_is_named_as_text(tmp_path: Path) -> None:
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    relative = os.path.relpath(text)
    with pytest.raises(ValueError, match="not a danet checkpoint \\(it is text\\)"):
        danet.load(relative)


def test_a_pickle_refusal_does_not_quote_the_weights_only_advice(tmp_path: Path) -> None:
    path = tmp_path / "backbone.pth"
    torch.save({"conv.weight": torch.zeros(1), "args": argparse.Namespace(a=1)}, path)
    with pytest.raises(ValueError, match="pickled code or objects") as err:
        read_state_dict(path)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


def _relabel(path: Path, dtype: str) -> str:
    """Rewrite the header of the safetensors file ``path`` so that its first float16 tensor
    says ``dtype`` over the same bytes; returns that tensor's name."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F16")
    header[name]["dtype"] = dtype
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])
    return name


def test_a_header_that_says_bf16_over_f16_bytes_is_refused_naming_the_tensor(
    tmp_path: Path, small_model: danet.DANet
) -> None:
    folder = danet.save_model(small_model, tmp_path / "m", half=True)
    assert danet.load(folder) is not None  # float16 is what save_model(half=True) writes
    name = _relabel(folder / "model.safetensors", "BF16")
    with pytest.raises(ValueError, match=f"tensor {name} is stored as bfloat16"):
        danet.load(folder)
