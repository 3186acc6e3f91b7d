"""A light decoder that brings back the backbone's stride-4 features before the classifier.

DeepLabV3+'s decoder (Chen et al., ECCV 2018) in the width of the DANet head: the stride-4
features are projected to 48 channels by a 1x1 conv-BN-ReLU, the head's fused features are
upsampled to stride 4 and concatenated with them, and two 3x3 conv-BN-ReLU mix the two. It is a
departure from the paper (``decoder="stride4"``), meant for thin structures (poles, signs) that a
stride-8 prediction cannot resolve. With ``separable`` (``decoder="stride4_separable"``) the two
3x3 convolutions are depthwise-separable, as in DeepLabV3+'s own decoder: about an eighth of the
multiply-adds, for the fast models, where the decoder is the costliest part of the head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from danet.model.conv_bn_relu import ConvBNReLU, SeparableConvBNReLU


class Stride4Decoder(nn.Module):
    """Fuse head features at stride 8 (or 16) with backbone features at stride 4."""

    def __init__(
        self,
        in_channels: int,
        low_channels: int,
        low_proj: int = 48,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        separable: bool = False,
    ) -> None:
        super().__init__()
        block = SeparableConvBNReLU if separable else ConvBNReLU
        self.project = nn.Sequential(
            nn.Conv2d(low_channels, low_proj, 1, bias=False),
            norm_layer(low_proj),
            nn.ReLU(inplace=True),
        )
        self.fuse = nn.Sequential(
            block(in_channels + low_proj, in_channels, norm_layer),
            block(in_channels, in_channels, norm_layer),
        )

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) head features and (B, L, 2h, 2w) stride-4 features -> (B, C, 2h, 2w)."""
        low = self.project(low)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, low], dim=1))
