"""Confusion-matrix metrics against cases computed by hand, and the loss against plain CE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from danet import ConfusionMatrix, DANetLoss


def test_confusion_matrix_by_hand() -> None:
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # rows = target, cols = pred, the ignored pixel dropped
    assert cm.mat.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 1]]
    m = cm.compute()
    # IoU_c = TP / (GT + PRED - TP): class 0: 1/(2+3-1), class 1: 2/(3+3-2), class 2: 1/(2+1-1)
    expected = [1 / 4, 2 / 4, 1 / 2]
    assert m["per_class_iou"] == pytest.approx(expected)
    assert m["miou"] == pytest.approx(sum(expected) / 3)
    assert m["pixel_acc"] == pytest.approx(4 / 7)


def test_absent_class_is_nan_and_left_out_of_mean() -> None:
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    m = cm.compute()
    assert math.isnan(m["per_class_iou"][2])
    assert m["miou"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_updates_accumulate() -> None:
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    cm.update(torch.tensor([1, 1]), torch.tensor([0, 1]))
    assert cm.mat.tolist() == [[1, 1], [0, 2]]


def test_label_outside_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="0..2"):
        ConfusionMatrix(3).update(torch.tensor([0]), torch.tensor([5]))


def test_loss_is_weighted_sum_of_cross_entropies() -> None:
    logits = {k: torch.randn(2, 4, 5, 5) for k in ("out", "pam", "cam", "aux")}
    target = torch.randint(0, 4, (2, 5, 5))
    target[0, 0, 0] = 255
    total, parts = DANetLoss()(logits, target)
    ce = {k: F.cross_entropy(v, target, ignore_index=255) for k, v in logits.items()}
    expected = ce["out"] + ce["pam"] + ce["cam"] + 0.4 * ce["aux"]
    torch.testing.assert_close(total, expected)
    assert parts["aux"] == pytest.approx(ce["aux"].item())
