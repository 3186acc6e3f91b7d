"""The 3x3 conv-BN-ReLU block of the head and the decoder."""

from __future__ import annotations

from torch import nn


class ConvBNReLU(nn.Sequential):
    """3x3 convolution, batch norm, ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            norm_layer(out_channels),
            nn.ReLU(inplace=True),
        )


class SeparableConvBNReLU(nn.Sequential):
    """3x3 depthwise then 1x1 pointwise convolution, batch norm, ReLU (the separable convolution of
    DeepLabV3+'s decoder, as segmentation_models_pytorch's ``SeparableConv2d``)."""

    def __init__(
        self, in_channels: int, out_channels: int, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            norm_layer(out_channels),
            nn.ReLU(inplace=True),
        )
