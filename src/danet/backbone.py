"""The timm backbone of a DANet: c3 and c4 features at output stride 8, 16 or 32.

Dilation is decided when timm builds the model (``output_stride``); a model family that cannot
dilate (ViT, Swin, ...) is refused with one line that says which backbones work.
"""

from __future__ import annotations

from typing import NoReturn

import timm
from torch import nn

WORKING_FAMILIES = "resnet*, resnext*, convnext*, efficientnet*, mobilenetv2/v3*, regnet*"


def create_features(name: str, output_stride: int, pretrained: bool = False) -> nn.Module:
    """A timm ``features_only`` model giving its last two feature maps at ``output_stride``."""
    try:
        features = timm.create_model(
            name,
            features_only=True,
            output_stride=output_stride,
            out_indices=(-2, -1),
            pretrained=pretrained,
        )
    except (TypeError, RuntimeError, AssertionError) as err:
        lines = str(err).strip().splitlines()
        _refuse(name, output_stride, lines[0] if lines else type(err).__name__)
    # Older timm releases accept output_stride for some transformers and ignore it; their maps
    # are then at stride 16/32 and channels-last, which the head cannot take.
    stride = features.feature_info.reduction()[-1]
    layout = str(getattr(features, "output_fmt", "NCHW"))
    if stride != output_stride or "NHWC" in layout:
        _refuse(name, output_stride, f"it gives stride {stride}, layout {layout.split('.')[-1]}")
    return features


def _refuse(name: str, output_stride: int, reason: str) -> NoReturn:
    raise ValueError(
        f"backbone={name!r} cannot give dilated feature maps at output_stride={output_stride} "
        f"({reason}); DANet needs a CNN from timm, e.g. {WORKING_FAMILIES}"
    ) from None
