"""The training loss: weighted cross-entropy summed over the head's outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The paper weighs the three outputs equally; mmsegmentation's auxiliary FCN head gets 0.4.
DEFAULT_WEIGHTS = {"out": 1.0, "pam": 1.0, "cam": 1.0, "aux": 0.4}


class DANetLoss(nn.Module):
    """``sum_k w_k * CE(logits[k], target)`` over the outputs present, ignoring ``ignore_index``."""

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        ignore_index: int = 255,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.ignore_index = ignore_index
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(
        self, logits: dict[str, torch.Tensor], target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the total loss and each output's (unweighted) cross-entropy as floats."""
        parts = {}
        total = logits["out"].new_zeros(())
        for name, out in logits.items():
            weight = self.weights.get(name, 0.0)
            if weight == 0.0:
                continue
            ce = F.cross_entropy(
                out.float(), target, weight=self.class_weights, ignore_index=self.ignore_index
            )
            parts[name] = ce.detach().item()
            total = total + weight * ce
        return total, parts
