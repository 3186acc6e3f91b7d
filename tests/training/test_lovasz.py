"""The Lovasz-softmax loss term (``--loss-weights lovasz=W``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from danet.training.config import TrainConfig
from danet.training.losses import DANetLoss, lovasz_loss


def _labels(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 4, (2, 12, 16), generator=g)
    target[1, :3] = 255  # void rows
    return target


def _confident(pred: torch.Tensor, classes: int = 4) -> torch.Tensor:
    """Logits whose softmax is (numerically) the one-hot of ``pred``."""
    return F.one_hot(pred, classes).permute(0, 3, 1, 2).float() * 100


def test_at_hard_predictions_it_is_one_minus_the_iou_of_each_present_class() -> None:
    target = _labels()
    g = torch.Generator().manual_seed(1)
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.7, target.clamp(max=3), 0)
    valid = target != 255
    ious = []
    for c in range(4):
        t, p = (target == c) & valid, (pred == c) & valid
        if t.any():
            ious.append((t & p).sum().item() / (t | p).sum().item())
    expected = 1 - sum(ious) / len(ious)
    assert 0.1 < expected < 0.9  # a case with real errors, not a trivial one
    assert lovasz_loss(_confident(pred), target, 255).item() == pytest.approx(expected, abs=1e-4)


def test_perfect_logits_cost_nothing_and_void_pixels_are_ignored() -> None:
    target = _labels()
    pred = target.clamp(max=3).masked_fill(target == 255, 2)  # void predicted anything
    assert lovasz_loss(_confident(pred), target, 255).item() == pytest.approx(0.0, abs=1e-4)


def test_danet_loss_adds_the_weighted_term_and_logs_it() -> None:
    target = _labels(2)
    logits = torch.randn(2, 4, 12, 16, generator=torch.Generator().manual_seed(3))
    plain, _ = DANetLoss({"out": 1.0})({"out": logits}, target)
    loss, parts = DANetLoss({"out": 1.0, "lovasz": 0.5})({"out": logits}, target)
    assert parts["lovasz"] == pytest.approx(lovasz_loss(logits, target).item(), rel=1e-5)
    assert loss.item() == pytest.approx(plain.item() + 0.5 * parts["lovasz"], rel=1e-5)


def test_the_recipe_accepts_the_term_by_name() -> None:
    cfg = TrainConfig().merge({"loss_weights": {"lovasz": 1.0}})
    assert cfg.loss_weights["lovasz"] == 1.0 and cfg.loss_weights["out"] == 1.0
