"""DAHead: the authors' dual attention head, and the optional FCN auxiliary head."""

from __future__ import annotations

import torch
from torch import nn

from danet.model.attention import ChannelAttention, PositionAttention
from danet.model.conv_bn_relu import ConvBNReLU
from danet.model.decoder import Stride4Decoder
from danet.options import ATTENTIONS, Attention, CamVariant, PamScale, check_choice


class Classifier(nn.Sequential):
    """Dropout2d(0.1) then a 1x1 convolution to class logits."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__(nn.Dropout2d(dropout), nn.Conv2d(in_channels, num_classes, 1))


class Branch(nn.Module):
    """One branch of the head: 3x3 conv-BN-ReLU down to C/4, attention, 3x3 conv-BN-ReLU."""

    def __init__(
        self,
        in_channels: int,
        inter_channels: int,
        attention: nn.Module,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv_in = ConvBNReLU(in_channels, inter_channels, norm_layer)
        self.attention = attention
        self.conv_out = ConvBNReLU(inter_channels, inter_channels, norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.attention(self.conv_in(x)))


class DAHead(nn.Module):
    """Position and channel attention branches in parallel, summed, as in the authors' code.

    Returns a dict of logits at feature resolution: ``"out"`` from the sum, and ``"pam"`` and
    ``"cam"`` from each branch alone. ``attention`` selects the branches for the paper's ablation:
    ``"both"`` (DANet), ``"pam"``, ``"cam"``, or ``"none"`` (the dilated FCN baseline, whose single
    branch has no attention and which returns only ``"out"``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        attention: Attention = "both",
        cam_variant: CamVariant = "paper",
        pam_reduction: int = 8,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        pam_scale: PamScale = "none",
        low_channels: int | None = None,
        separable_decoder: bool = False,
    ) -> None:
        super().__init__()
        check_choice("attention", attention, ATTENTIONS)
        inter = in_channels // 4
        self.attention = attention
        self.branches = nn.ModuleDict()
        if attention in ("both", "pam"):
            self.branches["pam"] = Branch(
                in_channels,
                inter,
                PositionAttention(inter, pam_reduction, scale=pam_scale),
                norm_layer,
            )
        if attention in ("both", "cam"):
            self.branches["cam"] = Branch(
                in_channels, inter, ChannelAttention(cam_variant), norm_layer
            )
        if attention == "none":
            self.branches["fcn"] = Branch(in_channels, inter, nn.Identity(), norm_layer)
        self.classifiers = nn.ModuleDict(
            {
                name: Classifier(inter, num_classes)
                for name in ("pam", "cam")
                if name in self.branches
            }
        )
        self.classifier = Classifier(inter, num_classes)
        # A departure (decoder="stride4"): the fused features meet the stride-4 backbone features
        # before the classifier; the branches' own classifiers stay at the head's stride.
        self.decoder = (
            Stride4Decoder(inter, low_channels, norm_layer=norm_layer, separable=separable_decoder)
            if low_channels
            else None
        )

    def forward(self, x: torch.Tensor, low: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Logits of the fused branches (``"out"``) and of each branch alone.

        ``low`` (the stride-4 backbone features) is needed when the head has a decoder.
        """
        feats = {name: branch(x) for name, branch in self.branches.items()}
        fused = sum(feats.values())
        if self.decoder is not None:
            if low is None:
                raise ValueError("this head has a stride-4 decoder: pass the stride-4 features")
            fused = self.decoder(fused, low)
        logits = {"out": self.classifier(fused)}
        for name, classifier in self.classifiers.items():
            logits[name] = classifier(feats[name])
        return logits


class FCNHead(nn.Sequential):
    """mmsegmentation's auxiliary head: 3x3 conv-BN-ReLU to C/4, dropout, 1x1 classifier."""

    def __init__(
        self, in_channels: int, num_classes: int, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ) -> None:
        super().__init__(
            ConvBNReLU(in_channels, in_channels // 4, norm_layer),
            Classifier(in_channels // 4, num_classes),
        )
