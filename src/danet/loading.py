"""The one public loader, :func:`load`: a checkpoint as the model object that every command and
library function takes.

A ``.onnx`` file opens as :class:`~danet.deploy.onnx_runtime.OnnxModel` without importing torch;
any other checkpoint opens as :class:`~danet.DANet`, or, with ``backend="onnxruntime"``, is
exported for onnxruntime once and cached (:mod:`danet.deploy.backend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from danet.options import BACKENDS, check_choice

if TYPE_CHECKING:
    from danet.deploy.onnx_runtime import OnnxModel
    from danet.model.danet import DANet


def is_onnx(checkpoint: str | Path) -> bool:
    """Whether ``checkpoint`` names an ONNX file (by its suffix)."""
    return str(checkpoint).lower().endswith(".onnx")


def load(
    name_or_path: str | Path,
    map_location: Any = "cpu",
    backend: str | None = None,
    int8: bool = False,
    calibration: Sequence[str | Path] | None = None,
) -> DANet | OnnxModel:
    """Return a ready model in eval mode: a :class:`~danet.DANet`, or its ONNX stand-in.

    Takes a bundled model's name (``"camvid"``), a model or run folder, a ``.safetensors`` file
    with ``config.json`` beside it, a training ``checkpoint.pt``, or a ``danet export`` ``.onnx``
    file. ``backend`` is ``"torch"`` or ``"onnxruntime"`` (default: onnxruntime for an ``.onnx``
    file, else torch); ``"onnxruntime"`` with a PyTorch checkpoint exports it once with dynamic
    height and width (``int8``: static int8, calibrated on ``calibration`` images) and caches
    the file. ``map_location`` is the torch device; onnxruntime runs on the CPU.
    """
    onnx = is_onnx(name_or_path)
    backend = backend or ("onnxruntime" if onnx else "torch")
    check_choice("backend", backend, BACKENDS)
    if backend == "torch":
        if int8:
            raise ValueError("int8=True needs backend='onnxruntime'")
        if onnx:
            raise ValueError(f"{name_or_path}: an ONNX file needs backend='onnxruntime'")
        from danet.model.danet import load as load_torch

        return load_torch(name_or_path, map_location=map_location)
    if str(map_location) not in ("cpu", "auto"):
        raise ValueError(f"map_location={str(map_location)!r}: onnxruntime runs on the CPU")
    if onnx:
        if int8:
            raise ValueError(f"{name_or_path}: already exported; pass the int8 file without int8")
        from danet.deploy.onnx_runtime import OnnxModel

        return OnnxModel(name_or_path)
    from danet.deploy.backend import onnx_model

    return onnx_model(name_or_path, int8, calibration)
