"""Label maps at the resolution of a feature map."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) integer labels to (B, h, w) by nearest neighbour, as the attention sees them."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
