"""Loading a lying model folder (issue #23): config.json bounded and checked, unreadable JSON as
one line, weights that are not finite; the sliding-window cap."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import assert_one_line, edit_config, random_png
from safetensors.torch import load_file, save_file
from torch import nn

import danet


def test_sliding_windows_are_capped_before_any_runs() -> None:
    from danet.model.segment import MAX_WINDOWS, predict_probs

    class Counting(nn.Module):
        calls = 0

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            Counting.calls += 1
            return {"out": x.new_zeros(x.shape[0], 2, *x.shape[2:])}

    x = torch.zeros(1, 3, 1200, 1200)
    with pytest.raises(ValueError, match=rf"sliding_window: .* more than the {MAX_WINDOWS}"):
        predict_probs(Counting(), x, sliding_window=True, input_size=[32, 32])
    assert Counting.calls == 0
    assert (
        predict_probs(Counting(), x[..., :96, :96], sliding_window=True, input_size=[32, 32]).shape[
            1
        ]
        == 2
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_size": [6000, 8000]}, "input_size must be H,W"),
        ({"input_size": [0, 0]}, "input_size must be H,W"),
        ({"palette": [[300, 0, 0]] + [[0, 0, 0]] * 10}, "palette must be [R, G, B] colours of integers 0-255, not [300, 0, 0]"),
        ({"class_names": ["x" * 3_000_000] + ["y"] * 10}, "class name 0 is 3000000 characters long"),
    ],
)  # fmt: skip
def test_lying_config_json_is_refused_naming_it(
    checkpoint: Path, tmp_path: Path, cli, changes: dict, message: str
) -> None:
    edit_config(checkpoint, **changes)
    with pytest.raises(ValueError, match="config.json") as info:
        danet.load(checkpoint)
    assert message in str(info.value) and len(str(info.value)) < 400
    image = random_png(tmp_path / "a.png")
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    code, _, err = cli(argv)
    assert code == 2 and message in assert_one_line(err) and len(err) < 500


@pytest.mark.parametrize(
    ("text", "message"),
    [(b'{"num_classes": 11, "backbone": "mobilenetv2_\xff"}', "not UTF-8 text (byte 45 is 0xff)"),
     (b"[" * 100_000 + b"]" * 100_000, "JSON nested more than 32 levels deep")],
)  # fmt: skip
def test_unreadable_config_json_is_one_line(
    checkpoint: Path, tmp_path: Path, cli, text: bytes, message: str
) -> None:
    (checkpoint / "config.json").write_bytes(text)
    image = str(random_png(tmp_path / "a.png"))
    code, _, err = cli(["predict", image, "--checkpoint", str(checkpoint)])
    assert code == 2
    line = assert_one_line(err)
    assert line == f"danet predict: error: {checkpoint / 'config.json'}: {message}" + (
        "; expected a JSON file" if "UTF-8" in message else ""
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_file(
    checkpoint: Path, tmp_path: Path, cli, value: float
) -> None:
    path = checkpoint / "model.safetensors"
    state = load_file(path)
    name = "head.classifier.1.weight"
    state[name] = torch.full_like(state[name], value)
    save_file(state, path, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"{path}: weight {name} holds NaN or infinite values"):
        danet.load(checkpoint)
    image = random_png(tmp_path / "a.png")
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    code, _, err = cli(argv)
    assert code == 2 and f"{path}: weight {name}" in assert_one_line(err)
    assert not (tmp_path / "o" / "a_label.png").exists()
