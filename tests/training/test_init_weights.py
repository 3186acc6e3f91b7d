"""``--init-weights``: a run that starts from a whole trained model instead of ImageNet."""

from __future__ import annotations

from pathlib import Path

import torch

import danet
from danet.cli import main

ARGS = ["train", "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--batch-size", "2",
        "--crop-size", "32", "--workers", "0", "--iters", "1", "--lr", "1e-9",
        "--val-split", ""]  # fmt: skip


def test_a_run_starts_from_the_given_model(camvid_root: Path, tmp_path: Path) -> None:
    donor = danet.DANet(num_classes=11, backbone="mobilenetv2_100")
    with torch.no_grad():
        donor.head.classifier[1].weight.fill_(0.25)
    danet.save_model(donor, tmp_path / "donor")
    run = tmp_path / "run"
    argv = [*ARGS, "--data-root", str(camvid_root), "--out", str(run)]
    assert main([*argv, "--init-weights", str(tmp_path / "donor")]) == 0
    trained = danet.load(run).head.classifier[1].weight
    # one step at lr 1e-9 leaves the donor's weights where they were
    torch.testing.assert_close(trained, torch.full_like(trained, 0.25), atol=1e-4, rtol=0)


def test_a_model_of_another_shape_is_refused(camvid_root: Path, tmp_path: Path, capsys) -> None:
    danet.save_model(danet.DANet(num_classes=11, backbone="mobilenetv2_100"), tmp_path / "d")
    argv = [*ARGS, "--data-root", str(camvid_root), "--out", str(tmp_path / "run")]
    assert main([*argv, "--init-weights", str(tmp_path / "d"), "--pam-scale", "learned"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--init-weights" in err and "log_scale" in err and len(err.splitlines()) == 1
