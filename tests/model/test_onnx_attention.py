"""The position attention for ONNX graphs of any size: a Scan over query blocks, the naive form's
numbers at every size, and the budget that refuses the N x N form where it would not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from danet import PositionAttention
from danet.model import onnx_attention
from danet.model.onnx_attention import (
    DOMAIN,
    expand_query_blocks,
)

AXES = {0: "batch", 2: "height", 3: "width"}


def _export(module: torch.nn.Module, path: Path) -> onnx.ModelProto:
    """``module`` as ONNX with dynamic batch, height and width, its placeholders expanded."""
    torch.onnx.export(
        module,
        (torch.randn(1, 32, 6, 9),),
        str(path),
        input_names=["input"],
        output_names=["out"],
        opset_version=17,
        dynamic_axes={"input": AXES, "out": AXES},
        custom_opsets={DOMAIN: 1},
        dynamo=False,
    )
    proto = onnx.load(str(path))
    assert expand_query_blocks(proto) == 1
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return proto


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_scan_graph_matches_naive_at_any_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_attention, "QUERY_BLOCK", 16)  # several blocks at small sizes
    pam = PositionAttention(32, impl="blocked").eval()
    with torch.no_grad():
        pam.gamma.fill_(1.0)
    proto = _export(pam, tmp_path / "pam.onnx")
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Scan") == 1 and "Softmax" not in ops  # the scores live in the Scan body
    assert all(node.domain != DOMAIN for node in proto.graph.node)
    assert DOMAIN not in {o.domain for o in proto.opset_import}
    session = ort.InferenceSession(str(tmp_path / "pam.onnx"), providers=["CPUExecutionProvider"])
    pam.impl = "naive"
    # N = 4 (< one block), 35 (3 blocks, the last padded), 48 (3 whole blocks), 600 (38 blocks)
    for shape in [(2, 32, 2, 2), (1, 32, 5, 7), (2, 32, 6, 8), (1, 32, 20, 30)]:
        x = torch.randn(shape)
        with torch.no_grad():
            expected = pam(x).numpy()
        (got,) = session.run(None, {"input": x.numpy()})
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
