"""ONNX export: onnxruntime agrees with PyTorch at fixed and dynamic shapes, without the N x N
matrix at fixed sizes, with metadata, and in int8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from conftest import live_attention

import danet
from danet.cli import main
from danet.data import read_image
from danet.data.transforms import normalize
from danet.deploy import quantize
from danet.deploy.export import export_onnx
from danet.deploy.quantize import default_calibration
from danet.model import efficient_attention


@pytest.fixture
def checkpoint(tmp_path: Path, small_model: danet.DANet) -> Path:
    """The small model with both attentions reaching the output."""
    return danet.save_model(live_attention(small_model), tmp_path / "model")


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
    path = export_onnx(checkpoint, tmp_path / "model.onnx", dynamic=True, all_heads=True)
    outputs, same = _agreement(path, checkpoint, torch.randn(2, 3, 72, 56))
    assert [o.shape for o in outputs] == [(2, 11, 72, 56)] * 3  # out, pam, cam
    assert same >= 0.999
    graph = onnx.load(str(path)).graph
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "height", "width"]
    assert [o.name for o in graph.output] == ["out", "pam", "cam"]
    ops = [node.op_type for node in graph.node]
    assert ops.count("Scan") == 1 and ops.count("Softmax") == 1  # PAM's blocks; CAM's C x C
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta["position_attention"] == "query-block scan"


def test_bundled_dynamic_graph_agrees_off_the_training_size(tmp_path: Path) -> None:
    """The trained model at sizes it was not trained at (360x480): one graph, PyTorch's labels."""
    model = danet.load("camvid")
    path = export_onnx(model, tmp_path / "dynamic.onnx", dynamic=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = normalize(read_image(default_calibration(model)[0]), model.mean, model.std)[None]
    for size in [(300, 700), (200, 264)]:  # N = 38 x 88 = 3344 (14 blocks), 25 x 33 = 825
        x = F.interpolate(image, size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            expected = model(x)["out"].argmax(1).numpy()
        got = session.run(None, {"input": x.numpy()})[0].argmax(1)
        assert got.shape == (1, *size)
        assert (got == expected).mean() >= 0.999


def _largest_softmax(path: Path) -> int:
    """Elements of the largest Softmax output (the attention matrices), from shape inference."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True).graph
    outputs = {node.output[0] for node in graph.node if node.op_type == "Softmax"}
    return max(
        int(np.prod([d.dim_value for d in info.type.tensor_type.shape.dim]))
        for info in graph.value_info
        if info.name in outputs
    )


def test_fixed_size_attention_in_blocks(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = (64 // 8) * (96 // 8)  # feature pixels at output stride 8
    whole = export_onnx(checkpoint, tmp_path / "whole.onnx")
    assert _largest_softmax(whole) >= n * n  # the naive form holds the N x N matrix ...
    monkeypatch.setattr(efficient_attention, "BLOCK_BYTES", 16 * n * 4)  # 16-row blocks
    blocked = export_onnx(checkpoint, tmp_path / "blocked.onnx")
    softmaxes = [node for node in onnx.load(str(blocked)).graph.node if node.op_type == "Softmax"]
    assert len(softmaxes) == n // 16 + 1  # 6 PAM blocks and the CAM's softmax
    assert _largest_softmax(blocked) < n * n  # ... the blocks never do
    outputs, same = _agreement(blocked, checkpoint, torch.randn(1, 3, 64, 96))
    assert same >= 0.999


def test_metadata_and_heads(checkpoint: Path, tmp_path: Path) -> None:
    path = export_onnx(checkpoint, tmp_path / "model.onnx", height=32, width=48)
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["out"]
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    model = danet.load(checkpoint)
    assert meta["class_names"] == model.config["class_names"]
    assert meta["palette"] == model.config["palette"]
    assert meta["mean"] == model.mean and meta["std"] == model.std
    assert meta["input_size"] == [32, 48]
    assert meta["config"]["backbone"] == "mobilenetv2_100"
    all_heads = export_onnx(checkpoint, tmp_path / "all.onnx", height=32, width=48, all_heads=True)
    assert [o.name for o in onnx.load(str(all_heads)).graph.output] == ["out", "pam", "cam"]


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


def _bundled_agreement(path: Path) -> float:
    """The share of pixels where a 96x128 int8 file of the bundled model agrees with PyTorch."""
    model = danet.load("camvid")
    image = read_image(default_calibration(model)[0])
    x = F.interpolate(normalize(image, model.mean, model.std)[None], (96, 128), mode="bilinear")
    with torch.no_grad():
        expected = model(x)["out"].argmax(1).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float((session.run(None, {"input": x.numpy()})[0].argmax(1) == expected).mean())


def test_int8_cli_writes_quantized_file(tmp_path: Path) -> None:
    # the bundled model at a small size, calibrated on the bundled samples (the default)
    path = tmp_path / "int8.onnx"
    argv = ["export", "--onnx", str(path), "--height", "96", "--width", "128", "--int8"]
    assert main(argv) == 0
    proto = onnx.load(str(path))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert [o.name for o in proto.graph.output] == ["out"]
    assert json.loads({p.key: p.value for p in proto.metadata_props}["input_size"]) == [96, 128]
    assert _bundled_agreement(path) > 0.9  # int8 keeps most pixels of the trained model


@pytest.mark.parametrize("impl", ["auto", "blocked"])
def test_int8_large_graph_is_calibrated_at_a_smaller_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, impl: str
) -> None:
    # Above CALIBRATION_PIXELS the ranges come from the model exported at a smaller size. With a
    # tiny block budget the position attention unrolls into more query blocks in the full-size
    # graph than in the calibration graph: those tensors stay in float, the rest is quantized.
    monkeypatch.setattr(quantize, "CALIBRATION_PIXELS", 48 * 64)
    if impl == "blocked":
        monkeypatch.setattr(efficient_attention, "BLOCK_BYTES", 4 * 96 * 8)
    assert quantize.calibration_size(96, 128) == (48, 64)
    assert quantize.calibration_size(48, 64) is None
    path = tmp_path / "int8.onnx"
    assert main(["export", "--onnx", str(path), "--height", "96", "--width", "128", "--int8"]) == 0
    proto = onnx.load(str(path))
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("QuantizeLinear") > 50
    # the CAM's softmax, and the PAM's: one, or one per query block (96x128 -> N = 192 rows)
    assert ops.count("Softmax") == (2 if impl == "auto" else 49)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 96, 128]
    assert _bundled_agreement(path) > 0.9


def test_int8_needs_calibration_for_unknown_classes(tmp_path: Path) -> None:
    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", input_size=[32, 32])
    checkpoint = danet.save_model(model, tmp_path / "model")
    with pytest.raises(ValueError, match="--calibration"):
        export_onnx(checkpoint, tmp_path / "int8.onnx", int8=True)
    assert not (tmp_path / "int8.onnx").exists()
