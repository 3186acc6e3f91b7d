"""The onnxruntime backend: OnnxModel stands in for DANet in predict and eval, from the file alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import live_attention
from PIL import Image

import danet
from danet.cli import main
from danet.deploy.export import export_onnx
from danet.deploy.onnx_runtime import OnnxModel


@pytest.fixture
def checkpoint(tmp_path: Path, small_model: danet.DANet) -> Path:
    """The small model with both attentions reaching the output."""
    return danet.save_model(live_attention(small_model), tmp_path / "model")


@pytest.fixture
def onnx_file(checkpoint: Path, tmp_path: Path) -> Path:
    return export_onnx(checkpoint, tmp_path / "model.onnx")


def test_model_from_file_alone(onnx_file: Path, checkpoint: Path) -> None:
    model, reference = OnnxModel(onnx_file), danet.load(checkpoint)
    assert model.num_classes == 11
    assert model.config["class_names"] == reference.config["class_names"]
    assert model.config["palette"] == reference.config["palette"]
    assert model.config["input_size"] == [64, 96]
    assert (model.mean, model.std) == (reference.mean, reference.std)
    x = torch.randn(3, 3, 64, 96)  # a batch of 3 through a graph with batch 1
    with torch.no_grad():
        expected = reference(x)["out"]
    torch.testing.assert_close(model(x)["out"], expected, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="exported for 64x96 inputs, got 32x96"):
        model(torch.randn(1, 3, 32, 96))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo=False, for a bare graph
def test_files_that_are_not_danet_exports(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        OnnxModel(tmp_path / "nope.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="garbage.onnx: onnxruntime cannot load it"):
        OnnxModel(garbage)
    bare = tmp_path / "bare.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 2, 1), (torch.randn(1, 3, 8, 8),), bare, dynamo=False)
    assert onnx.load(str(bare)).metadata_props == []
    with pytest.raises(ValueError, match="bare.onnx: not a danet export"):
        OnnxModel(bare)


def test_backend_choice_errors(checkpoint: Path, onnx_file: Path) -> None:
    with pytest.raises(ValueError, match="int8=True needs backend='onnxruntime'"):
        danet.load(checkpoint, backend="torch", int8=True)
    with pytest.raises(ValueError, match="needs backend='onnxruntime'"):
        danet.load(onnx_file, backend="torch")
    with pytest.raises(ValueError, match="runs on the CPU"):
        danet.load(checkpoint, "cuda", backend="onnxruntime")
    with pytest.raises(ValueError, match="backend='tf'"):
        danet.load(checkpoint, backend="tf")
    assert isinstance(danet.load(onnx_file), OnnxModel)  # an .onnx file picks onnxruntime


def test_predict_cli_onnxruntime_matches_torch(checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(
            tmp_path / f"{name}.png"
        )
    images = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    for backend in ("torch", "onnxruntime"):
        argv = ["predict", *images, "--checkpoint", str(checkpoint), "--backend", backend]
        argv += ["--resize", "squash"]  # a fixed-size ONNX file runs at the input size only
        assert main([*argv, "--out", str(tmp_path / backend)]) == 0
    for name in ("a", "b"):
        labels = [
            np.asarray(Image.open(tmp_path / backend / f"{name}_label.png"))
            for backend in ("torch", "onnxruntime")
        ]
        assert (labels[0] == labels[1]).mean() >= 0.999
    code = main(["predict", *images, "--checkpoint", str(checkpoint), "--int8"])
    assert code == 2  # int8 needs onnxruntime


def test_eval_cli_onnxruntime_matches_torch(
    checkpoint: Path, onnx_file: Path, camvid_root: Path, tmp_path: Path
) -> None:
    results = []
    for backend, source in (("torch", checkpoint), ("onnxruntime", onnx_file)):
        out = tmp_path / f"{backend}.json"
        argv = ["eval", "--checkpoint", str(source), "--dataset", "camvid", "--data-root",
                str(camvid_root), "--backend", backend, "--json", str(out),
                "--resize", "squash"]  # fmt: skip
        assert main(argv) == 0
        results.append(json.loads(out.read_text()))
    assert results[1]["backend"] == "onnxruntime"
    assert abs(results[0]["miou"] - results[1]["miou"]) < 1e-3
