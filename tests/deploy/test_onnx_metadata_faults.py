"""ONNX files whose metadata lies (issue #23): class count against the graph, a zero std,
palette overflow, broken or deeply nested JSON."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from conftest import assert_one_line, random_png

import danet


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from danet.deploy.export import export_onnx

    model = danet.DANet(num_classes=11, backbone="mobilenetv2_100", input_size=[32, 32]).eval()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    stale = path.with_name(".model.onnx.k1ll3d00.danet-tmp")  # 17: a killed export's temp file
    stale.write_bytes(b"\0" * 1000)
    export_onnx(model, path)
    assert not stale.exists()
    return path


def _with_metadata(src: Path, dst: Path, **changes: str) -> Path:
    proto = onnx.load(str(src))
    onnx.helper.set_model_props(
        proto, {**{p.key: p.value for p in proto.metadata_props}, **changes}
    )
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"class_names": json.dumps([f"c{k}" for k in range(5)]),
          "palette": json.dumps([[0, 0, 0]] * 5)},
         "the graph outputs 11 classes but its metadata names 5"),
        ({"std": "[0, 0, 0]"}, "metadata 'std' must be 3 numbers > 0"),
        ({"palette": json.dumps([[0, 0, 300]] * 11)}, "palette must be [R, G, B] colours of integers 0-255"),
        ({"mean": "[0.5, 0.5"}, "metadata 'mean': not valid JSON"),
        ({"mean": "[1, 2, 3, 4]"}, "metadata 'mean' must be 3 finite numbers"),
        ({"input_size": "[0, 0]"}, "metadata: input_size must be H,W"),
        ({"config": "[" * 100_000}, "metadata 'config': JSON nested more than 32 levels deep"),
    ],
)  # fmt: skip
def test_lying_onnx_metadata_is_refused_naming_the_file(
    onnx_file: Path, tmp_path: Path, cli, changes: dict[str, str], message: str
) -> None:
    from danet.deploy.onnx_runtime import OnnxModel

    path = _with_metadata(onnx_file, tmp_path / "lying.onnx", **changes)
    with pytest.raises(ValueError, match=str(path)) as info:
        OnnxModel(path)
    assert message in str(info.value)
    image = random_png(tmp_path / "a.png")
    code, _, err = cli(["predict", str(image), "--checkpoint", str(path), "--backend", "onnxruntime",
                        "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2 and message in assert_one_line(err)


def test_a_fifo_given_as_an_onnx_file_is_refused_not_read(tmp_path: Path) -> None:
    import os

    from danet.deploy.onnx_runtime import OnnxModel

    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="model.onnx: is a FIFO"):
        OnnxModel(fifo)
