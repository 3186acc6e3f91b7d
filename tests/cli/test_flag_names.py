"""The command line says the library's Python argument names as its flags."""

from __future__ import annotations

import pytest

from danet.cli import flag_names, main


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ("int8=True needs backend='onnxruntime'", "--int8 needs --backend onnxruntime"),
        ("a larger input_size takes fewer", "a larger --input-size takes fewer"),
        (
            "under resize='keep-aspect' (max_pixels raises it)",
            "under --resize keep-aspect (--max-pixels raises it)",
        ),  # fmt: skip
        (
            "dataset is required: m has no run_config.json",
            "--dataset is required: m has no run_config.json",
        ),
        ("the dataset camvid has 11 classes", "the dataset camvid has 11 classes"),
        ("m/config.json: input_size must be H,W", "m/config.json: input_size must be H,W"),
    ],
)
def test_python_names_become_flags(message: str, said: str) -> None:
    assert flag_names(message) == said


def test_a_torch_only_command_refuses_an_onnx_file(tmp_path, capsys) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not a graph")
    image = tmp_path / "a.png"
    image.write_bytes(b"")  # only its existence is checked before the model is opened
    assert main(["attention", str(image), "--checkpoint", str(onnx)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"danet attention: error: {onnx}: an .onnx file runs only in danet predict and danet eval (give the PyTorch checkpoint)"
    )
