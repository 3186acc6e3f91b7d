"""ONNX export: onnxruntime agrees with PyTorch at fixed and dynamic shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import danet
from danet.cli import main
from danet.export import export_onnx


@pytest.fixture
def checkpoint(tmp_path: Path, small_model: danet.DANet) -> Path:
    """The small model with non-zero attention gammas, so that both attentions reach the output."""
    with torch.no_grad():
        small_model.head.branches["pam"].attention.gamma.fill_(0.7)
        small_model.head.branches["cam"].attention.gamma.fill_(0.3)
    return danet.save_model(small_model, tmp_path / "model")


def _agreement(onnx_path: Path, checkpoint: Path, x: torch.Tensor) -> tuple[list, float]:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = danet.load(checkpoint)(x)["out"]
    same = (outputs[0].argmax(1) == expected.argmax(1).numpy()).mean()
    np.testing.assert_allclose(outputs[0], expected.numpy(), atol=1e-3, rtol=1e-3)
    return outputs, float(same)


def test_fixed_shape_matches_pytorch(checkpoint: Path, tmp_path: Path) -> None:
    path = export_onnx(checkpoint, tmp_path / "model.onnx")
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output][0] == "out"
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 96]  # the checkpoint's input_size
    outputs, same = _agreement(path, checkpoint, torch.randn(1, 3, 64, 96))
    assert outputs[0].shape == (1, 11, 64, 96)
    assert same >= 0.999


def test_height_width_override(checkpoint: Path, tmp_path: Path) -> None:
    path = export_onnx(checkpoint, tmp_path / "model.onnx", height=48, width=80)
    outputs, same = _agreement(path, checkpoint, torch.randn(1, 3, 48, 80))
    assert outputs[0].shape == (1, 11, 48, 80)
    assert same >= 0.999


def test_dynamic_batch_and_size(checkpoint: Path, tmp_path: Path) -> None:
    path = export_onnx(checkpoint, tmp_path / "model.onnx", dynamic=True)
    outputs, same = _agreement(path, checkpoint, torch.randn(2, 3, 72, 56))
    assert [o.shape for o in outputs] == [(2, 11, 72, 56)] * 3  # out, pam, cam
    assert same >= 0.999


def test_no_input_size_needs_height_and_width(tmp_path: Path) -> None:
    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100")
    checkpoint = danet.save_model(model, tmp_path / "model")
    with pytest.raises(ValueError, match="--height and --width"):
        export_onnx(checkpoint, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", "x.onnx"]) == 2


def test_cli_writes_onnx(checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "cli.onnx"
    argv = ["export", "--checkpoint", str(checkpoint), "--onnx", str(path), "--width", "64"]
    assert main(argv) == 0
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 64]
