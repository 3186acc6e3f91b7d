"""``danet eval`` scores exactly the labels ``danet predict`` writes, on frames that are not the
model's aspect ratio, at one scale and with several scales and the flip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import danet
from danet.cli import main
from danet.data.camvid import CamVid
from danet.training.metrics import ConfusionMatrix

SAMPLES = danet.samples_dir("camvid")


@pytest.fixture
def wide_frames(tmp_path: Path) -> Path:
    """Three bundled sample frames cropped to 16:9 and enlarged, as a ``folder`` dataset."""
    root = tmp_path / "frames"
    (root / "images" / "val").mkdir(parents=True)
    (root / "masks" / "val").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(CamVid.class_names) + "\n")
    for path in sorted((SAMPLES / "val").glob("*.jpg"))[:3]:
        image = Image.open(path).crop((0, 45, 480, 315)).resize((288, 162), Image.BILINEAR)
        mask = Image.open(SAMPLES / "valannot" / f"{path.stem}.png").crop((0, 45, 480, 315))
        labels = np.asarray(mask.resize((288, 162), Image.NEAREST)).copy()
        labels[labels >= len(CamVid.class_names)] = 255  # CamVid's void, the folder's ignore
        image.save(root / "images" / "val" / f"{path.stem}.png")
        Image.fromarray(labels).save(root / "masks" / "val" / f"{path.stem}.png")
    return root


def predicted_miou(out: Path, root: Path) -> float:
    """The mIoU of the label PNGs in ``out`` against the masks of ``root``."""
    matrix = ConfusionMatrix(len(CamVid.class_names))
    for mask in sorted((root / "masks" / "val").glob("*.png")):
        labels = np.asarray(Image.open(out / f"{mask.stem}_label.png"))
        matrix.update(labels, np.asarray(Image.open(mask)))
    assert np.count_nonzero(matrix.mat.sum(0)) > 1  # more than one class predicted
    return float(matrix.compute()["miou"])


@pytest.mark.parametrize("views", [[], ["--scales", "0.75", "1.0", "--flip"]])
def test_eval_scores_what_predict_writes(
    views: list[str], wide_frames: Path, small_model: danet.DANet, tmp_path: Path
) -> None:
    checkpoint = danet.save_model(small_model, tmp_path / "model")
    common = ["--checkpoint", str(checkpoint), *views, "--quiet"]
    out = tmp_path / "predictions"
    assert main(["predict", str(wide_frames / "images" / "val"), "--out", str(out), *common]) == 0
    report = tmp_path / "eval.json"
    argv = ["eval", "--dataset", "folder", "--data-root", str(wide_frames), "--json", str(report)]
    assert main([*argv, *common]) == 0
    result = json.loads(report.read_text())
    assert result["resize"] == "keep-aspect" and result["flip"] == ("--flip" in views)
    assert abs(result["miou"] - predicted_miou(out, wide_frames)) <= 0.0005
