"""Attention diagnostics, the learned PAM temperature and the affinity loss."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import danet
from danet.analysis.attention_maps import attention_scale
from danet.analysis.diagnostics import AttentionInputs, AttentionStats
from danet.cli import main
from danet.model.attention import PositionAttention
from danet.training.config import TrainConfig
from danet.training.losses import DANetLoss, affinity_loss

# A 2x4 feature map: left half class 0, right half class 1, one void pixel.
LABELS = torch.tensor([[[0, 0, 1, 1], [0, 255, 1, 1]]])


def pam_with_scores(q: torch.Tensor, k: torch.Tensor, scale: str = "none") -> PositionAttention:
    """A PAM whose query/key convs output q and k (d channels) on a one-hot position input."""
    d, n = q.shape
    pam = PositionAttention(n, reduction=n // d, scale=scale)
    with torch.no_grad():
        pam.query.weight.copy_(q[:, :, None, None])
        pam.key.weight.copy_(k[:, :, None, None])
        pam.query.bias.zero_()
        pam.key.bias.zero_()
    return pam


def one_hot_positions(h: int, w: int) -> torch.Tensor:
    """(1, N, h, w): channel i is 1 at position i, so a 1x1 conv's output at i is its column i."""
    return torch.eye(h * w).reshape(1, h * w, h, w)


def test_learned_scale_is_a_temperature_on_the_scores() -> None:
    pam = PositionAttention(16, reduction=4, scale="learned")
    with torch.no_grad():
        pam.log_scale.fill_(math.log(3.0))
        pam.gamma.fill_(1.0)
    assert "log_scale" in pam.state_dict()
    assert pam.scale.item() == pytest.approx(3.0)
    x = torch.randn(2, 16, 5, 6)
    q = pam.query(x).flatten(2)  # (B, d, N)
    k = pam.key(x).flatten(2)
    v = pam.value(x).flatten(2)
    attn = (3.0 * q.transpose(1, 2) @ k).softmax(-1)  # (B, N, N)
    expected = x + (v @ attn.transpose(1, 2)).reshape(x.shape)
    torch.testing.assert_close(pam(x), expected, atol=1e-4, rtol=1e-4)
    assert PositionAttention(16, reduction=4).scale == 1.0  # the paper's form has no parameter
    assert "log_scale" not in PositionAttention(16, reduction=4).state_dict()


def test_uniform_attention_has_lift_one_and_full_entropy() -> None:
    n = 8
    pam = pam_with_scores(torch.zeros(2, n), torch.zeros(2, n))
    stats = AttentionStats({"pam": pam})
    stats.update({"pam": one_hot_positions(2, 4)}, LABELS)
    out = stats.compute()
    assert out["pam_lift"] == pytest.approx(1.0)
    assert out["pam_entropy"] == pytest.approx(1.0)
    assert out["pam_score_std"] == pytest.approx(0.0)


def test_class_aligned_attention_has_the_expected_lift() -> None:
    # Scores 0 within a class and -inf-ish across: each query spreads over its class's keys.
    cls = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1]).float()  # the void pixel's key counts as class 0
    q = torch.stack([cls, 1 - cls]) * 30.0  # (d=2, N)
    k = torch.stack([cls, 1 - cls])
    pam = pam_with_scores(q, k)
    stats = AttentionStats({"pam": pam})
    stats.update({"pam": one_hot_positions(2, 4)}, LABELS)
    out = stats.compute()
    # 7 labelled queries, each puts ~all its mass on 4 keys sharing its direction; keys of its
    # own label: 3 of those for class 0 (void key excluded), 4 for class 1.
    mass = 3 * (3 / 4) + 4 * 1.0
    share = 3 * (3 / 8) + 4 * (4 / 8)
    assert out["pam_lift"] == pytest.approx(mass / share, rel=1e-3)
    assert out["pam_entropy"] == pytest.approx(math.log(4) / math.log(8), rel=1e-3)


def test_affinity_loss_is_minus_log_same_class_mass() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(1, 8, 3), torch.randn(1, 8, 3)
    labels = LABELS.reshape(1, 8)
    attn = (q[0] @ k[0].T).softmax(-1)  # (N, N)
    expected = []
    for i in range(8):
        if labels[0, i] == 255:
            continue
        same = labels[0] == labels[0, i]
        expected.append(-attn[i, same].sum().log())
    loss = affinity_loss(q, k, LABELS, num_queries=100)
    torch.testing.assert_close(loss, torch.stack(expected).mean())
    # sampling fewer queries draws a subset; every value stays a valid -log(mass) >= 0
    assert affinity_loss(q, k, LABELS, num_queries=2) >= 0


def test_affinity_loss_term_is_weighted_into_the_total() -> None:
    logits = {"out": torch.randn(1, 2, 2, 4)}
    q, k = torch.randn(1, 8, 3, requires_grad=True), torch.randn(1, 8, 3)
    crit = DANetLoss({"out": 1.0, "affinity": 0.5})
    total, parts = crit(logits, LABELS, (q, k, (2, 4)))
    assert set(parts) == {"out", "affinity"}
    assert total.item() == pytest.approx(parts["out"] + 0.5 * parts["affinity"], rel=1e-5)
    total.backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    _, parts = DANetLoss({"out": 1.0})(logits, LABELS, (q, k, (2, 4)))
    assert "affinity" not in parts  # off unless weighted


def test_affinity_target_is_checked_once_where_it_is_given() -> None:
    # a recipe names the file and the field; DANetLoss, built without a recipe, checks its own
    with pytest.raises(ValueError, match=r"^r.yaml: affinity_target must be one of mass, uniform, "
                       r"not 'sharp'$"):  # fmt: skip
        TrainConfig().merge({"affinity_target": "sharp"}, origin="r.yaml")
    with pytest.raises(ValueError, match=r"^affinity_target='sharp' is not one of \('mass', "
                       r"'uniform'\)$"):  # fmt: skip
        DANetLoss(affinity_target="sharp")


def test_cam_saturation_figures(small_model: danet.DANet) -> None:
    x = torch.randn(1, 3, 64, 96)
    with AttentionInputs(small_model) as probe:
        small_model(x)
    inputs = probe.pop()
    assert set(inputs) == {"pam", "cam"}
    cam = small_model.head.branches["cam"].attention
    stats = AttentionStats({"cam": cam})
    features = torch.rand_like(inputs["cam"])
    stats.update({"cam": features * 1e3}, None)  # huge energies: one-hot rows
    out = stats.compute()
    assert out["cam_max_weight"] > 0.99 and out["cam_entropy"] < 0.05
    stats = AttentionStats({"cam": cam})
    stats.update({"cam": features * 1e-6}, None)  # tiny energies: uniform rows
    out = stats.compute()
    assert out["cam_entropy"] > 0.99


def test_attention_scale_starts_at_zero_flat_looks_flat_peaked_looks_peaked() -> None:
    flat = np.full((4, 4), 1.05)
    norm, ticks, labels = attention_scale(flat)
    assert norm.vmin == 0 and abs(float(norm(1.05)) - 0.5) < 0.05  # one mid-scale colour
    assert ticks[0] == 0 and "1 = uniform" in labels and len(ticks) >= 3
    peaked = np.full((4, 4), 0.2)
    peaked[0, 0] = 9.0
    norm, ticks, labels = attention_scale(peaked)
    assert float(norm(9.0)) == pytest.approx(1.0) and float(norm(0.2)) < 0.05
    assert labels[ticks.index(1.0)] == "1 = uniform" and max(ticks) <= 9.0


def test_train_logs_diagnostics_and_inspect_prints_them(camvid_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        "train", "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained", "none",
        "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--iters", "2",
        "--data-root", str(camvid_root), "--out", str(run), "--pam-scale", "learned",
        "--affinity-weight", "1", "--attention-weight-decay", "0",
    ]  # fmt: skip
    assert main(args) == 0
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("affinity" in r for r in rows if "loss" in r)
    val = [r for r in rows if "val_miou" in r][-1]
    for key in ("pam_gamma", "pam_scale", "pam_entropy", "pam_lift", "cam_max_weight"):
        assert key in val, key
    assert 0 < val["pam_entropy"] <= 1 and val["pam_lift"] > 0
    out = tmp_path / "inspect.json"
    argv = ["inspect", "--checkpoint", str(run), "--dataset", "camvid"]
    assert main([*argv, "--data-root", str(camvid_root), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["pam_lift"] == pytest.approx(val["pam_lift"])
    assert main([*argv, "--data-root", str(camvid_root), "--max-images", "0"]) == 2


@pytest.mark.parametrize(
    ("figures", "verdict"),
    [
        (
            {"pam_self_mass": 0.4, "pam_local_mass": 0.8, "pam_lift": 4.0},
            "collapsed onto the query",
        ),
        (
            {
                "pam_self_mass": 0.013,
                "pam_local_mass": 0.276,
                "pam_lift": 4.09,
                "pam_far_same_mass": 0.587,
                "pam_far_same_uniform": 0.720,
            },
            "stays near the query (local mass 0.276, healthy: under 0.2; self mass 0.013; far "
            "same-class mass 0.587 of a possible 0.720)",
        ),  # fmt: skip
        ({"pam_self_mass": 0.0004, "pam_local_mass": 0.018, "pam_lift": 1.03}, "is uniform"),
        (
            {
                "pam_self_mass": 0.004,
                "pam_local_mass": 0.102,
                "pam_lift": 4.47,
                "pam_far_same_mass": 0.813,
                "pam_far_same_uniform": 0.897,
            },
            "reaches across the image (far same-class mass 0.813 of a possible 0.897",
        ),
        ({"cam_gamma": 0.1}, "no position attention rows"),
    ],
)
def test_the_reach_verdict_uses_the_documented_thresholds(figures: dict, verdict: str) -> None:
    from danet.analysis.diagnostics import reach_verdict

    line = reach_verdict(figures)
    assert line.startswith("verdict: ") and verdict in line and "\n" not in line
