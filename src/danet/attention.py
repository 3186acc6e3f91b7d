"""The two attention modules of DANet (Fu et al., CVPR 2019), exactly as the paper defines them.

For a feature map X reshaped to C x N (N = H*W):

- position attention (PAM): ``Y = X + gamma * V softmax(Q^T K)^T``; Q, K are 1x1 convs to C/r,
  V is a 1x1 conv to C, there is no 1/sqrt(d) scaling, and ``gamma`` starts at 0.
- channel attention (CAM): ``Y = X + gamma * softmax(E) X`` with ``E = X X^T`` (C x C).
"""

from __future__ import annotations

import torch
from torch import nn

from danet.efficient_attention import PAM_IMPLS, position_attention

CAM_VARIANTS = ("paper", "original")


class PositionAttention(nn.Module):
    """Position attention module: every pixel attends to every other pixel.

    ``impl`` picks how ``softmax(Q^T K)`` is applied (see :func:`position_attention`): ``"auto"``
    never materialises the N x N matrix on the CPU; ``"naive"`` does, as the authors' code does.
    All choices compute the same function; ``impl`` is not saved in checkpoints.
    """

    def __init__(self, in_channels: int, reduction: int = 8, impl: str = "auto") -> None:
        super().__init__()
        if in_channels // reduction < 1:
            raise ValueError(f"in_channels={in_channels} is too small for reduction={reduction}")
        if impl not in PAM_IMPLS:
            raise ValueError(f"impl={impl!r} is not one of {PAM_IMPLS}")
        self.query = nn.Conv2d(in_channels, in_channels // reduction, 1)
        self.key = nn.Conv2d(in_channels, in_channels // reduction, 1)
        self.value = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C/r)
        k = self.key(x).flatten(2).transpose(1, 2)  # (B, N, C/r)
        v = self.value(x).flatten(2).transpose(1, 2)  # (B, N, C)
        out = position_attention(q, k, v, impl=self.impl)  # (B, N, C): softmax(q k^T) v
        out = out.transpose(1, 2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.gamma * out


class ChannelAttention(nn.Module):
    """Channel attention module: every channel attends to every other channel.

    ``variant="paper"`` computes ``softmax(E) X`` with ``E = X X^T``, as the paper's Eq. 3 writes it.
    ``variant="original"`` is the authors' released code, ``softmax(rowmax(E) - E) X``; since a
    softmax ignores a constant added to a row, that is ``softmax(-E) X``. The two differ: the paper
    attends most to similar channels, the released code to dissimilar ones. Pretrained weights from
    the original repository need ``"original"``.
    """

    def __init__(self, variant: str = "paper") -> None:
        super().__init__()
        if variant not in CAM_VARIANTS:
            raise ValueError(f"variant={variant!r} is not one of {CAM_VARIANTS}")
        self.variant = variant
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.flatten(2)  # (B, C, N)
        energy = flat @ flat.transpose(1, 2)  # (B, C, C)
        if self.variant == "original":
            energy = energy.amax(dim=-1, keepdim=True) - energy
        attn = energy.softmax(dim=-1)  # (B, C, C)
        out = (attn @ flat).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.gamma * out
