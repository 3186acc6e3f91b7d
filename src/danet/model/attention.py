"""The two attention modules of DANet (Fu et al., CVPR 2019), exactly as the paper defines them.

For a feature map X reshaped to C x N (N = H*W):

- position attention (PAM): ``Y = X + gamma * V softmax(Q^T K)^T``; Q, K are 1x1 convs to C/r,
  V is a 1x1 conv to C, there is no 1/sqrt(d) scaling, and ``gamma`` starts at 0.
- channel attention (CAM): ``Y = X + gamma * softmax(E) X`` with ``E = X X^T`` (C x C).

One named departure, off by default: ``PositionAttention(scale="learned")`` multiplies the scores
by a learnable temperature ``s = exp(log_scale)`` (starting at 1, the paper's form), so that the
rows are ``softmax(s * Q^T K)``. It lets training sharpen attention rows that would otherwise stay
near uniform (see docs/attention_alive.md).
"""

from __future__ import annotations

import torch
from torch import nn

from danet.model.efficient_attention import position_attention
from danet.options import (
    CAM_VARIANTS,
    PAM_IMPLS,
    PAM_SCALES,
    CamVariant,
    PamImpl,
    PamScale,
    check_choice,
)


class PositionAttention(nn.Module):
    """Position attention module: every pixel attends to every other pixel.

    ``impl`` picks how ``softmax(Q^T K)`` is applied (see :func:`position_attention`): ``"auto"``
    never materialises the N x N matrix on the CPU; ``"naive"`` does, as the authors' code does.
    All choices compute the same function; ``impl`` is not saved in checkpoints.

    ``scale="none"`` is the paper's ``softmax(Q^T K)``; ``scale="learned"`` adds a learnable
    temperature, ``softmax(s * Q^T K)`` with ``s = exp(log_scale)`` starting at 1.
    """

    def __init__(
        self,
        in_channels: int,
        reduction: int = 8,
        impl: PamImpl = "auto",
        scale: PamScale = "none",
    ) -> None:
        super().__init__()
        if in_channels // reduction < 1:
            raise ValueError(f"in_channels={in_channels} is too small for reduction={reduction}")
        check_choice("impl", impl, PAM_IMPLS)
        check_choice("pam_scale", scale, PAM_SCALES)
        self.query = nn.Conv2d(in_channels, in_channels // reduction, 1)
        self.key = nn.Conv2d(in_channels, in_channels // reduction, 1)
        self.value = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        if scale == "learned":
            self.log_scale = nn.Parameter(torch.zeros(()))
        self.impl = impl

    @property
    def scale(self) -> torch.Tensor | float:
        """The factor ``s`` of the scores ``softmax(s * Q^T K)``: 1 in the paper's form."""
        log_scale = getattr(self, "log_scale", None)
        return 1.0 if log_scale is None else log_scale.exp()

    def queries_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s * Q, K)`` as (B, N, C/r) each, so that the attention rows are ``softmax(s Q K^T)``."""
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C/r)
        k = self.key(x).flatten(2).transpose(1, 2)  # (B, N, C/r)
        return q * self.scale, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k = self.queries_keys(x)  # (B, N, C/r) each, q scaled
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

    def __init__(self, variant: CamVariant = "paper") -> None:
        super().__init__()
        check_choice("cam_variant", variant, CAM_VARIANTS)
        self.variant = variant
        self.gamma = nn.Parameter(torch.zeros(1))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, C, C) channel attention matrix of a (B, C, H, W) input."""
        flat = x.flatten(2)  # (B, C, N)
        energy = flat @ flat.transpose(1, 2)  # (B, C, C)
        if self.variant == "original":
            energy = energy.amax(dim=-1, keepdim=True) - energy
        return energy.softmax(dim=-1)  # (B, C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attn = self.weights(x)  # (B, C, C)
        out = (attn @ x.flatten(2)).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.gamma * out
