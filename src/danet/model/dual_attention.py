"""DualAttention: DANet's two attention modules side by side, as a block for any network.

For a feature map X (B, C, H, W) it returns ``PAM(X) + CAM(X)``, the paper's sum of the two
branches (Eq. 2 and Eq. 4, each with its residual and its zero-initialised gamma):

    Y = (X + gamma_p * V softmax(Q^T K)^T) + (X + gamma_c * softmax(E) X),   E = X X^T

so at initialisation ``Y = 2 X``: the block passes its input on, doubled, until training moves
the gammas. Memory is linear in N = H*W: the PAM never builds the N x N matrix on the CPU unless
it fits one block (:mod:`danet.model.efficient_attention`); the CAM's matrix is C x C. It exports
to ONNX with ``torch.onnx.export(..., dynamo=False)``.

In DANet's own head each module sits in a branch between 3x3 convolutions; this block is the
attention part alone, so ``block.pam`` and ``block.cam`` load the weights of
``model.head.branches["pam"].attention`` and ``model.head.branches["cam"].attention``.
"""

from __future__ import annotations

import torch
from torch import nn

from danet.model.attention import ChannelAttention, PositionAttention
from danet.options import CamVariant, PamImpl, PamScale


class DualAttention(nn.Module):
    """Position and channel attention on the same input, summed: ``PAM(X) + CAM(X)``.

    ``channels`` is C of the (B, C, H, W) input; the output has the same shape. ``reduction``
    sets the PAM's query/key width C/r (``channels // reduction`` must be at least 1);
    ``cam_variant``, ``pam_scale`` and ``impl`` are those of :class:`ChannelAttention` and
    :class:`PositionAttention`.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 8,
        cam_variant: CamVariant = "paper",
        pam_scale: PamScale = "none",
        impl: PamImpl = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if not isinstance(reduction, int) or isinstance(reduction, bool) or reduction < 1:
            raise ValueError(f"reduction must be a positive int, got {reduction!r}")
        self.pam = PositionAttention(channels, reduction, impl=impl, scale=pam_scale)
        self.cam = ChannelAttention(cam_variant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.pam.value.in_channels:
            raise ValueError(
                f"x must be (B, {self.pam.value.in_channels}, H, W), got {tuple(x.shape)}"
            )
        return self.pam(x) + self.cam(x)  # (B, C, H, W) each
