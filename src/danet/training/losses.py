"""The training loss: weighted cross-entropy summed over the head's outputs, and optionally an
affinity loss that supervises the position attention's rows with the labels (a departure from the
paper, in the spirit of Context Prior, Yu et al. CVPR 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from danet.data.labels import downsample_labels
from danet.training.config import DEFAULT_LOSS_WEIGHTS


def affinity_loss(
    q: torch.Tensor,
    k: torch.Tensor,
    labels: torch.Tensor,
    num_queries: int = 1024,
    ignore_index: int = 255,
) -> torch.Tensor:
    """Mean over labelled query pixels of ``-log`` (attention mass on keys of the query's class).

    ``q``, ``k``: (B, N, d) with the rows ``softmax(q k^T)`` (the PAM's scaled queries and keys);
    ``labels``: (B, h, w) at feature resolution, h * w = N. Up to ``num_queries`` labelled query
    pixels per image are drawn at random (the global torch RNG), so memory is O(num_queries * N).
    Keys of every label, void included, stay in the softmax's denominator, as in the attention.
    """
    b, n, _ = q.shape
    flat = labels.reshape(b, n)
    losses = []
    for i in range(b):
        valid = (flat[i] != ignore_index).nonzero().squeeze(1)
        if valid.numel() == 0:
            continue
        if valid.numel() > num_queries:
            valid = valid[torch.randperm(valid.numel(), device=valid.device)[:num_queries]]
        scores = q[i, valid].float() @ k[i].float().T  # (M, N)
        same = flat[i, valid][:, None] == flat[i][None, :]  # (M, N); each query matches itself
        positive = scores.masked_fill(~same, float("-inf")).logsumexp(dim=1)
        losses.append(scores.logsumexp(dim=1) - positive)
    if not losses:
        return q.sum() * 0.0
    return torch.cat(losses).mean()


class DANetLoss(nn.Module):
    """``sum_k w_k * CE(logits[k], target)`` over the outputs present, ignoring ``ignore_index``.

    Calling it returns a pair ``(loss, parts)``: ``loss`` is the weighted sum as a scalar tensor
    (call ``.backward()`` on it), ``parts`` maps each output with a non-zero weight (``"out"``,
    ``"pam"``, ``"cam"``, ``"aux"``) to its unweighted cross-entropy as a float, for logging::

        loss, parts = criterion(model(images), targets)
        loss.backward()
    """

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        ignore_index: int = 255,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.weights = dict(DEFAULT_LOSS_WEIGHTS if weights is None else weights)
        self.ignore_index = ignore_index
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(
        self,
        logits: dict[str, torch.Tensor],
        target: torch.Tensor,
        pam_qk: tuple[torch.Tensor, torch.Tensor, tuple[int, int]] | None = None,
        affinity_queries: int = 1024,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return ``(loss, parts)``: the weighted total (a 0-d tensor to backpropagate) and a dict
        of each term's unweighted value as a float, keyed by output name (``"out"``, ``"pam"``,
        ``"cam"``, ``"aux"``, and ``"affinity"`` when it is weighted and ``pam_qk`` is given: the PAM's
        ``(s * Q, K)`` as (B, N, d) and its feature map's (h, w))."""
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
        weight = self.weights.get("affinity", 0.0)
        if weight and pam_qk is not None:
            q, k, feat_size = pam_qk
            labels = downsample_labels(target, feat_size)
            aff = affinity_loss(q, k, labels, affinity_queries, self.ignore_index)
            parts["affinity"] = aff.detach().item()
            total = total + weight * aff
        return total, parts
