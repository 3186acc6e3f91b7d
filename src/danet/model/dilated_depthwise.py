"""Dilated depthwise convolutions with a faster backward pass on the CPU.

oneDNN has a depthwise kernel (``jit_dw``) for the forward pass of a dilated depthwise
convolution, but not for its two backward passes: it runs them as a grouped convolution whose
1x1 channel groups are padded to 16x16 blocks, several times the cost of the undilated
convolution. :class:`DilatedDepthwiseConv2d` keeps the forward pass and computes the same
gradients with kernels that are fast:

- the input's gradient is the forward convolution of the output's gradient with the kernel
  flipped (stride 1, "same" padding);
- the kernel's gradient is the undilated kernel gradient on the ``d x d`` sub-grids of pixels
  whose rows and columns are equal modulo the dilation ``d``: on them a dilated convolution is an
  undilated one ("space to batch").

Both are the same sums as the built-in backward, in another order. The class is an
``nn.Conv2d`` with the same parameters, so checkpoints and exports do not see it: without
gradients, off the CPU, or while exporting, it is ``nn.Conv2d``'s own forward.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

ENV = "DANET_DILATED_DW"
"""``native`` turns the faster backward off (``nn.Conv2d``'s own), for comparison."""
CHOICES = ("fast", "native")


def backward_mode() -> str:
    """``DANET_DILATED_DW`` from the environment: ``fast`` (the default) or ``native``."""
    mode = os.environ.get(ENV, "").strip().lower() or "fast"
    if mode not in CHOICES:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: use one of {', '.join(CHOICES)}")
    return mode


def _to_grid(x: torch.Tensor, d: int) -> torch.Tensor:
    """(B, C, H, W) -> (B*d*d, C, ceil(H/d), ceil(W/d)): pixel (h, w) goes to sub-grid
    (h % d, w % d) at (h // d, w // d); zeros fill H and W up to multiples of d. Channels-last."""
    b, c, h, w = x.shape
    hp, wp = -(-h // d) * d, -(-w // d) * d
    nhwc = x.permute(0, 2, 3, 1)  # (B, H, W, C), a view of a channels-last tensor
    if (hp, wp) != (h, w):
        nhwc = F.pad(nhwc, (0, 0, 0, wp - w, 0, hp - h))
    grids = nhwc.reshape(b, hp // d, d, wp // d, d, c).permute(0, 2, 4, 1, 3, 5)
    return grids.reshape(b * d * d, hp // d, wp // d, c).permute(0, 3, 1, 2)


class _DilatedDepthwise(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.dilation = dilation
        return F.conv2d(x, weight, None, 1, _same(weight, dilation), dilation, weight.shape[0])

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        d, groups = ctx.dilation, weight.shape[0]
        # under autocast the forward ran in grad's dtype (bf16, say), on cast copies of x and weight
        xc, wc = x.to(grad.dtype), weight.to(grad.dtype)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, wc.flip(-1, -2), None, 1, _same(weight, d), d, groups)
            grad_x = grad_x.to(x.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = torch.nn.grad.conv2d_weight(
                _to_grid(xc, d), weight.shape, _to_grid(grad, d), 1, _same(weight, 1), 1, groups
            ).to(weight.dtype)
        return grad_x, grad_w, None


def _same(weight: torch.Tensor, dilation: int) -> tuple[int, int]:
    return (dilation * (weight.shape[-2] // 2), dilation * (weight.shape[-1] // 2))


class DilatedDepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` for a depthwise, stride-1, "same"-padded, dilated convolution without bias,
    whose backward pass on the CPU avoids oneDNN's slow path (see the module's docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution; with the faster backward when it will be differentiated on the CPU."""
        if (
            x.device.type == "cpu"
            and torch.is_grad_enabled()
            and (x.requires_grad or self.weight.requires_grad)
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
            and backward_mode() == "fast"
        ):
            return _DilatedDepthwise.apply(x, self.weight, self.dilation[0])
        return super().forward(x)


def fits(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain ``nn.Conv2d`` that :class:`DilatedDepthwiseConv2d` can run."""
    if type(conv) is not nn.Conv2d:
        return False
    kh, kw = conv.kernel_size
    d = conv.dilation[0]
    return (
        conv.groups == conv.in_channels == conv.out_channels
        and conv.bias is None
        and conv.stride == (1, 1)
        and d > 1
        and conv.dilation == (d, d)
        and kh % 2 == 1
        and kw % 2 == 1
        and conv.padding == (d * (kh // 2), d * (kw // 2))
        and conv.padding_mode == "zeros"
    )


def use_dilated_depthwise(model: nn.Module) -> int:
    """Build-time step: make every dilated depthwise ``nn.Conv2d`` in ``model`` a
    :class:`DilatedDepthwiseConv2d` sharing its weight; return how many there were.

    The state dict, its keys and the forward pass's results are unchanged.
    """
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if fits(child):
                conv = DilatedDepthwiseConv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    padding=child.padding,
                    dilation=child.dilation,
                    groups=child.groups,
                    bias=False,
                    device="meta",
                )
                conv.weight = child.weight
                conv.train(child.training)
                setattr(parent, name, conv)
                count += 1
    return count
