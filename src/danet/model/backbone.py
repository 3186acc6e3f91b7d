"""The timm backbone of a DANet: c3 and c4 features at output stride 8, 16 or 32.

Dilation is decided when timm builds the model (``output_stride``); a model family that cannot
dilate (ViT, Swin, ...) is refused with one line that says which backbones work.

``output_stride=8`` dilates the last two stages as timm does: every block of a dilated stage uses
the stage's dilation except the first, which keeps the previous stage's (the "contract dilation"
of mmsegmentation's ResNetV1c-D8). ``multi_grid`` (DeepLabv3's multi-grid, mmsegmentation's
``multi_grid``) instead gives block i of the last stage ``multi_grid[i]`` times the stage's dilation,
the first block included: ``(1, 2, 4)`` at output stride 8 gives 4, 8, 16, as in the DANet authors'
release. It is passed to timm's ResNet constructor, so the modules are built dilated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import timm
import torch
from torch import nn

from danet.model.dilated_depthwise import use_dilated_depthwise

WORKING_FAMILIES = "resnet*, resnext*, convnext*, efficientnet*, mobilenetv2/v3*, regnet*"


def create_features(
    name: str,
    output_stride: int,
    pretrained: bool = False,
    multi_grid: Sequence[int] | None = None,
    stride4: bool = False,
) -> nn.Module:
    """A timm ``features_only`` model giving its last two feature maps at ``output_stride``,
    preceded by its stride-4 map when ``stride4`` (same modules, so the same weights)."""
    kwargs: dict[str, Any] = {}
    if multi_grid is not None:
        block = check_multi_grid(name, multi_grid)
        kwargs["block"] = (block, block, block, MultiGridBlock(block, multi_grid))
    try:
        features = timm.create_model(
            name,
            features_only=True,
            output_stride=output_stride,
            out_indices=(1, -2, -1) if stride4 else (-2, -1),
            pretrained=pretrained,
            **kwargs,
        )
    except (TypeError, RuntimeError, AssertionError) as err:
        lines = str(err).strip().splitlines()
        _refuse(name, output_stride, lines[0] if lines else type(err).__name__)
    # Older timm releases accept output_stride for some transformers and ignore it; their maps
    # are then at stride 16/32 and channels-last, which the head cannot take.
    stride = features.feature_info.reduction()[-1]
    layout = str(getattr(features, "output_fmt", "NCHW"))
    if stride4 and features.feature_info.reduction()[0] != 4:
        _refuse(name, output_stride, "its second feature map is not at stride 4")
    if stride != output_stride or "NHWC" in layout:
        _refuse(name, output_stride, f"it gives stride {stride}, layout {layout.split('.')[-1]}")
    use_dilated_depthwise(features)  # the same convolutions, with a faster backward on the CPU
    return features


def _refuse(name: str, output_stride: int, reason: str) -> NoReturn:
    raise ValueError(
        f"backbone={name!r} cannot give dilated feature maps at output_stride={output_stride} "
        f"({reason}); DANet needs a CNN from timm, e.g. {WORKING_FAMILIES}"
    ) from None


class MultiGridBlock:
    """Block constructor for timm's ``make_blocks``: the i-th call builds block i with dilation
    ``grid[i]`` times the dilation timm asks for (the stage's), in all its 3x3 convolutions."""

    def __init__(self, block: type[nn.Module], grid: Sequence[int]) -> None:
        self.block = block
        self.expansion = block.expansion  # make_blocks reads it
        self._grid: Iterator[int] = iter(grid)

    def __call__(
        self, *args: Any, dilation: int = 1, first_dilation: int | None = None, **kwargs: Any
    ) -> nn.Module:
        """The next block, its 3x3 convolutions all at ``dilation`` times its grid rate."""
        rate = dilation * next(self._grid)
        return self.block(*args, dilation=rate, first_dilation=rate, **kwargs)


def check_multi_grid(backbone: str, multi_grid: Sequence[int]) -> type[nn.Module]:
    """Raise a ValueError unless ``multi_grid`` fits the last stage of ``backbone``; return its block.

    Only timm's ResNet family builds blocks through a constructor that can take it.
    """
    if not timm.models.is_model_in_modules(backbone, ["resnet"]):
        raise ValueError(f"multi_grid needs a timm ResNet backbone, not backbone={backbone!r}")
    if not isinstance(multi_grid, (list, tuple)) or not all(
        isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in multi_grid
    ):
        raise ValueError(f"multi_grid={multi_grid!r} must be a list of positive integers")
    with torch.device("meta"):  # structure only: no memory, no initialisation cost
        probe = timm.create_model(backbone, pretrained=False)
    last = probe.layer4
    if len(multi_grid) != len(last):
        raise ValueError(
            f"multi_grid={list(multi_grid)!r} has {len(multi_grid)} rates but the last stage of "
            f"{backbone} has {len(last)} blocks"
        )
    return type(last[0])
