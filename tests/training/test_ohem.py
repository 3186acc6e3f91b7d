"""Online hard example mining of the cross-entropies' pixels (``--pixel-sampler ohem``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from danet.training.losses import DANetLoss, ohem_pixels


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 5, 16, 20, generator=g) * 3
    target = torch.randint(0, 5, (2, 16, 20), generator=g)
    target[0, :4] = 255  # void rows
    return logits, target


def _mmseg_reference(logits, target, threshold, min_kept):
    """OHEMPixelSampler.sample of mmsegmentation (thresh given), written out by sorting."""
    valid = target != 255
    prob = logits.softmax(1).gather(1, target.masked_fill(~valid, 0)[:, None])[:, 0]
    sort_prob, _ = prob[valid].sort()
    cut = max(sort_prob[min(min_kept * target.shape[0], sort_prob.numel() - 1)].item(), threshold)
    return valid & (prob < cut)


@pytest.mark.parametrize(("threshold", "min_kept"), [(0.7, 10), (0.2, 150), (0.0, 40), (1.0, 0)])
def test_hard_pixels_are_mmsegmentations(threshold: float, min_kept: int) -> None:
    logits, target = _batch()
    hard = ohem_pixels(logits, target, 255, threshold, min_kept)
    assert torch.equal(hard, _mmseg_reference(logits, target, threshold, min_kept))
    assert not hard[target == 255].any()


def test_min_kept_decides_when_the_threshold_keeps_too_few() -> None:
    logits, target = _batch(1)
    assert ohem_pixels(logits, target, 255, 0.0, 150).sum() == 300  # 150 per image, 2 images
    easy = ohem_pixels(logits, target, 255, 0.3, 0)
    valid = target != 255
    prob = logits.softmax(1).gather(1, target.masked_fill(~valid, 0)[:, None])[:, 0]
    assert torch.equal(easy, valid & (prob < 0.3))


def test_a_batch_with_no_hard_pixel_keeps_them_all() -> None:
    _, target = _batch()
    logits = F.one_hot(target.clamp(max=4), 5).permute(0, 3, 1, 2).float() * 100
    assert torch.equal(ohem_pixels(logits, target, 255, 0.7, 0), target != 255)


def test_ohem_loss_is_the_cross_entropy_of_the_hard_pixels() -> None:
    logits, target = _batch(2)
    out = {"out": logits}
    plain, _ = DANetLoss({"out": 1.0})(out, target)
    loss, parts = DANetLoss({"out": 1.0}, pixel_sampler="ohem", ohem_min_kept=50)(out, target)
    hard = ohem_pixels(logits, target, 255, 0.7, 50)
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    assert loss.item() == pytest.approx(per_pixel[hard].mean().item(), rel=1e-5)
    assert parts["out"] == pytest.approx(loss.item()) and loss > plain
    assert 0 < hard.sum() < (target != 255).sum()


def test_unknown_sampler_names_the_choices() -> None:
    with pytest.raises(ValueError, match="pixel_sampler.*ohem"):
        DANetLoss(pixel_sampler="hardest")  # type: ignore[arg-type]
