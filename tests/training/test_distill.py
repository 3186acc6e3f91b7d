"""Distillation from a teacher model: the loss itself, and a run that distils end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line

import danet
from danet.cli import main
from danet.training.losses import DANetLoss, distillation_loss


def test_distillation_loss_is_zero_on_agreement_and_grows_with_disagreement() -> None:
    t = torch.randn(2, 5, 4, 6)
    assert distillation_loss(t, t, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    near = distillation_loss(t + 0.1 * torch.randn_like(t), t).item()
    far = distillation_loss(torch.randn(2, 5, 4, 6) * 3, t).item()
    assert 0 < near < far


def test_distillation_loss_matches_kl_div_written_out() -> None:
    s, t, temp = torch.randn(1, 3, 2, 2), torch.randn(1, 3, 2, 2), 2.0
    p = torch.softmax(t / temp, 1)
    kl = (p * (torch.log(p) - torch.log_softmax(s / temp, 1))).sum(1).mean() * temp**2
    torch.testing.assert_close(distillation_loss(s, t, temp), kl)


def test_the_criterion_adds_distill_with_its_weight() -> None:
    out = {"out": torch.randn(1, 3, 4, 4, requires_grad=True)}
    target = torch.randint(0, 3, (1, 4, 4))
    teacher = torch.randn(1, 3, 4, 4)
    plain, parts = DANetLoss({"out": 1.0})(out, target)
    assert "distill" not in parts
    with_kd, parts = DANetLoss({"out": 1.0, "distill": 0.5})(out, target, teacher_logits=teacher)
    assert with_kd.item() == pytest.approx(plain.item() + 0.5 * parts["distill"], rel=1e-5)
    with_kd.backward()
    assert out["out"].grad.abs().sum() > 0


def test_a_run_distils_from_a_teacher_folder(
    camvid_root: Path, tmp_path: Path, checkpoint: Path
) -> None:
    run = tmp_path / "student"
    tiny = ["--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained", "none",
            "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--output-stride", "16",
            "--val-split", ""]  # fmt: skip
    args = ["train", *tiny, "--data-root", str(camvid_root), "--iters", "2", "--out", str(run)]
    assert main([*args, "--teacher", str(checkpoint), "--distill-temperature", "2"]) == 0
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    kd = [r["distill"] for r in rows if "distill" in r]
    assert len(kd) == 2 and all(v > 0 for v in kd)
    config = json.loads((run / "run_config.json").read_text())
    assert config["teacher"] == str(checkpoint) and config["distill_temperature"] == 2.0
    assert danet.load(run).config["output_stride"] == 16


def test_a_teacher_of_other_classes_is_refused(
    camvid_root: Path, tmp_path: Path, cli, checkpoint: Path
) -> None:
    other = tmp_path / "other"
    danet.save_model(danet.DANet(num_classes=4, backbone="mobilenetv2_100"), other)
    code, _, err = cli(["train", "--dataset", "camvid", "--backbone", "mobilenetv2_100",
                        "--pretrained", "none", "--batch-size", "2", "--crop-size", "32",
                        "--workers", "0", "--data-root", str(camvid_root), "--iters", "1",
                        "--out", str(tmp_path / "run"), "--teacher", str(other)])  # fmt: skip
    assert code == 2
    assert_one_line(err, "teacher", "4 classes")
