"""The backend choice: a checkpoint opened in PyTorch, or exported and run in onnxruntime."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from danet.deploy.export import export_onnx
from danet.deploy.onnx_runtime import OnnxModel
from danet.model.danet import load
from danet.options import BACKENDS, Backend, check_choice


def open_model(
    checkpoint: str | Path,
    backend: Backend = "torch",
    int8: bool = False,
    device: str = "cpu",
    calibration: Sequence[str | Path] | None = None,
) -> nn.Module:
    """The model for ``danet predict``/``eval``: a :class:`danet.DANet`, or an :class:`OnnxModel`.

    ``checkpoint`` may be an ``.onnx`` file (onnxruntime only); any other checkpoint is exported
    at its input size for onnxruntime (int8 when ``int8``, see :mod:`danet.deploy.quantize`) into a
    temporary folder first.
    """
    check_choice("backend", backend, BACKENDS)
    is_onnx = str(checkpoint).endswith(".onnx")
    if backend == "torch":
        if int8:
            raise ValueError("--int8 needs --backend onnxruntime")
        if is_onnx:
            raise ValueError(f"{checkpoint}: an ONNX file needs --backend onnxruntime")
        return load(checkpoint, map_location=device)
    if device not in ("cpu", "auto"):
        raise ValueError(f"--device {device}: --backend onnxruntime runs on the CPU")
    if is_onnx:
        if int8:
            raise ValueError(f"{checkpoint}: already exported; pass the int8 file without --int8")
        return OnnxModel(checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(checkpoint, Path(tmp) / "model.onnx", int8=int8, calibration=calibration)
        return OnnxModel(path, origin=str(checkpoint))  # the session holds the weights
