"""The timm backbone of a DANet: c3 and c4 features at output stride 8, 16 or 32.

Dilation is decided when timm builds the model (``output_stride``); a model family that cannot
dilate (ViT, Swin, ...) is refused with one line that says which backbones work.
"""

from __future__ import annotations

import timm
from torch import nn

WORKING_FAMILIES = "resnet*, resnext*, convnext*, efficientnet*, mobilenetv2/v3*, regnet*"


def create_features(name: str, output_stride: int, pretrained: bool = False) -> nn.Module:
    """A timm ``features_only`` model giving its last two feature maps at ``output_stride``."""
    try:
        return timm.create_model(
            name,
            features_only=True,
            output_stride=output_stride,
            out_indices=(-2, -1),
            pretrained=pretrained,
        )
    except (TypeError, RuntimeError, AssertionError) as err:
        lines = str(err).strip().splitlines()
        reason = lines[0] if lines else type(err).__name__
        raise ValueError(
            f"backbone={name!r} cannot give dilated feature maps at output_stride={output_stride} "
            f"({reason}); DANet needs a CNN from timm, e.g. {WORKING_FAMILIES}"
        ) from None
