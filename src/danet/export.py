"""``danet export``: ONNX that onnxruntime runs, at a fixed size or with dynamic batch and size.

The graph takes what :meth:`DANet.forward` takes, a normalised (B, 3, H, W) float batch
(``model.mean``/``model.std``), and returns the logits: output 0 is ``"out"``, then the other
heads' logits (``"pam"``, ``"cam"``, ...), all (B, classes, H, W).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from danet.attention import PositionAttention
from danet.checkpoint import atomic_write, load


class _Outputs(nn.Module):
    """The model with its dict of logits returned as a tuple, in ``names`` order."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.model(x)
        return tuple(logits[name] for name in self.names)


def export_onnx(
    checkpoint: str | Path,
    onnx_path: str | Path,
    height: int | None = None,
    width: int | None = None,
    dynamic: bool = False,
    opset: int = 17,
) -> Path:
    """Write the checkpoint as ONNX and check it with ``onnx.checker``; returns ``onnx_path``.

    The size is the checkpoint's ``input_size`` unless ``height``/``width`` are given;
    ``dynamic`` makes batch, height and width dynamic axes (the size is then only the example).
    """
    model = load(checkpoint)
    native = model.config.get("input_size") or (None, None)
    height, width = height or native[0], width or native[1]
    if height is None or width is None:
        raise ValueError(
            f"{checkpoint}: the checkpoint has no input_size; pass --height and --width"
        )
    if height < 8 or width < 8:
        raise ValueError(f"height={height}, width={width}: both must be at least 8 pixels")
    for module in model.modules():
        if isinstance(module, PositionAttention):
            module.impl = "naive"  # plain matmul + softmax: exports to every opset and runtime
    x = torch.randn(1, 3, height, width)
    with torch.no_grad():
        names = list(model(x))  # "out" first, as the head returns it
    axes = {0: "batch", 2: "height", 3: "width"}
    dynamic_axes = {name: axes for name in ["input", *names]} if dynamic else None

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False: deliberate
            torch.onnx.export(
                _Outputs(model, names),
                (x,),
                tmp,
                input_names=["input"],
                output_names=names,
                opset_version=opset,
                dynamic_axes=dynamic_axes,
                dynamo=False,
            )
        onnx.checker.check_model(tmp, full_check=True)

    onnx_path = Path(onnx_path)
    atomic_write(onnx_path, write)
    return onnx_path
