"""``danet export``: ONNX that onnxruntime runs, in memory linear in the number of pixels.

The graph takes what :meth:`DANet.forward` takes, a normalised (B, 3, H, W) float batch
(``model.mean``/``model.std``), and returns the logits (B, classes, H, W): output 0 is ``"out"``,
then, with ``all_heads``, the other heads' logits (``"pam"``, ``"cam"``, ...).

At a fixed size (the default) the position attention is written out as a fixed sequence of query
blocks (:func:`danet.model.efficient_attention.unrolled_attention`) wherever its N x N matrix
would pass :data:`~danet.model.efficient_attention.BLOCK_BYTES`; with ``dynamic`` axes it is a
``Scan`` over query blocks whose number follows the input size
(:mod:`danet.model.onnx_attention`). Either way its memory is linear in N. The file carries what
a deployment needs besides the weights, as ``metadata_props`` (JSON strings): ``class_names``,
``palette``, ``mean``, ``std``, ``input_size``, the model's ``config`` and
``position_attention``.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from torch import nn

from danet.data.classes import class_names_or_default, palette_or_default
from danet.deploy.quantize import calibration_size, default_calibration, quantize_int8
from danet.model.attention import PositionAttention
from danet.model.danet import DANet, load
from danet.model.onnx_attention import DOMAIN, expand_query_blocks
from danet.utils.atomic import atomic_write, remove_stale_temp_files

DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}
GRAPH_VERSION = 2
"""Bumped when the exported graph changes for the same model and options (2: a ``Scan`` over query
blocks in ``--dynamic`` graphs), so that the onnxruntime backend's cache exports again."""


class _Outputs(nn.Module):
    """The model with its dict of logits returned as a tuple, in ``names`` order."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.model(x)
        return tuple(logits[name] for name in self.names)


def model_metadata(model: DANet, height: int, width: int, dynamic: bool = False) -> dict[str, str]:
    """The ``metadata_props`` of an exported file: class names, palette, mean/std, input size,
    and how the position attention is written (``position_attention``: ``"query-block scan"``
    with ``dynamic`` axes, ``"fixed"`` at a fixed size)."""
    n = model.num_classes
    return {
        "position_attention": json.dumps("query-block scan" if dynamic else "fixed"),
        "class_names": json.dumps(class_names_or_default(model.config.get("class_names"), n)),
        "palette": json.dumps(palette_or_default(model.config.get("palette"), n)),
        "mean": json.dumps(list(model.mean)),
        "std": json.dumps(list(model.std)),
        "input_size": json.dumps([height, width]),
        "config": json.dumps(model.config),
    }


def set_metadata(path: str | Path, metadata: dict[str, str]) -> None:
    """Write ``metadata`` into the ONNX file's ``metadata_props`` (replacing keys it has)."""
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(path))


def export_onnx(
    checkpoint: str | Path | DANet,
    onnx_path: str | Path,
    height: int | None = None,
    width: int | None = None,
    dynamic: bool = False,
    opset: int = 17,
    all_heads: bool = False,
    int8: bool = False,
    calibration: Sequence[str | Path] | None = None,
    device: str | torch.device = "cpu",
) -> Path:
    """Write the checkpoint (or model) as ONNX, checked by ``onnx.checker``; returns ``onnx_path``.

    The size is the checkpoint's ``input_size`` unless ``height``/``width`` are given;
    ``dynamic`` makes batch, height and width dynamic axes (the size is then only the example).
    Only ``"out"`` is exported unless ``all_heads``. ``int8`` writes onnxruntime's static QDQ
    quantization instead, calibrated on the ``calibration`` images (files or folders; by default
    the bundled samples of the checkpoint's dataset, see
    :func:`danet.deploy.quantize.default_calibration`). The graph is traced on ``device``; the
    file is the same wherever it was traced.
    """
    model = checkpoint if isinstance(checkpoint, DANet) else load(checkpoint, map_location=device)
    model = model.eval()
    origin = "model" if isinstance(checkpoint, DANet) else str(checkpoint)  # for messages
    height, width = _export_size(model, origin, height, width)
    remove_stale_temp_files(Path(onnx_path).parent, (Path(onnx_path).name,))  # of killed exports
    if int8:
        images = calibration or default_calibration(model, origin)
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(
                model, Path(tmp) / "fp32.onnx", height, width, dynamic, opset, all_heads
            )
            small = calibration_size(height, width)
            graph = small and export_onnx(
                model, Path(tmp) / "calibration.onnx", *small, dynamic, opset, all_heads
            )
            atomic_write(onnx_path, lambda out: quantize_int8(fp32, out, images, graph))
        return Path(onnx_path)
    impls = {}
    for module in model.modules():
        if isinstance(module, PositionAttention):
            impls[module] = module.impl
            # unrolled blocks are fixed at the example's size: a dynamic graph Scans over them
            module.impl = "blocked" if dynamic else "auto"
    onnx_path = Path(onnx_path)
    try:
        atomic_write(
            onnx_path,
            lambda tmp: _trace(model, tmp, height, width, dynamic, opset, all_heads, bool(impls)),
        )
    finally:
        for module, impl in impls.items():
            module.impl = impl
    return onnx_path


def _export_size(
    model: DANet, origin: str, height: int | None, width: int | None
) -> tuple[int, int]:
    """The (H, W) to export at: the given one, else the model's ``input_size``."""
    native = model.config.get("input_size") or (None, None)
    height = native[0] if height is None else height
    width = native[1] if width is None else width
    if height is None or width is None:
        raise ValueError(f"{origin}: the checkpoint has no input_size; pass --height and --width")
    if height < 8 or width < 8:
        raise ValueError(f"height={height}, width={width}: both must be at least 8 pixels")
    return height, width


def _trace(
    model: DANet,
    path: str,
    height: int,
    width: int,
    dynamic: bool,
    opset: int,
    all_heads: bool,
    has_pam: bool,
) -> None:
    """Trace ``model`` into the ONNX file ``path``, with its query-block attention expanded,
    its metadata set, and the result checked by ``onnx.checker``."""
    device = next(model.parameters()).device
    with torch.no_grad():  # "out" first; a small run names them
        heads = list(model(torch.randn(1, 3, 64, 64, device=device)))
    x = torch.randn(1, 3, height, width, device=device)
    names = heads if all_heads else heads[:1]
    dynamic_axes = {name: DYNAMIC_AXES for name in ["input", *names]} if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():  # no autograd graph while tracing
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False: deliberate
        torch.onnx.export(
            _Outputs(model, names).eval(),  # export restores its mode: a new module trains
            (x,),
            path,
            input_names=["input"],
            output_names=names,
            opset_version=opset,
            dynamic_axes=dynamic_axes,
            custom_opsets={DOMAIN: 1} if dynamic and has_pam else None,  # the Scan placeholder
            dynamo=False,
        )
    proto = onnx.load(path)
    expand_query_blocks(proto)
    onnx.helper.set_model_props(proto, model_metadata(model, height, width, dynamic))
    onnx.save(proto, path)
    onnx.checker.check_model(path, full_check=True)
