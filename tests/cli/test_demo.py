"""danet demo on the bundled samples, with a small random model standing in for the trained one.

Training the tiny model (what the demo does while no CamVid model is bundled) takes about 1.5
minutes on 2 CPU cores, too long for this suite; ``danet demo`` runs it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import danet
import danet.assets
from danet.data import build_dataset
from danet.demo import DEMO_IMAGE, DEMO_POINTS, SAMPLES_DIR, run_demo


def test_samples_ship_with_the_package() -> None:
    val = resources.files("danet") / "samples" / "camvid" / "val"
    names = sorted(p.name for p in val.iterdir())
    assert len(names) == 6 and all(n.endswith(".jpg") for n in names)
    assert DEMO_IMAGE in names
    dataset = build_dataset("camvid", SAMPLES_DIR, "val")
    assert len(dataset) == 6
    image, mask = dataset[0]
    assert image.shape == (360, 480, 3) and mask.shape == (360, 480)
    sizes = [p.stat().st_size for p in SAMPLES_DIR.rglob("*") if p.is_file()]
    assert sum(sizes) < 3 * 2**20


def test_demo_points_are_on_their_classes() -> None:
    dataset = build_dataset("camvid", SAMPLES_DIR, "val")
    _, mask = dataset[[image.name for image, _ in dataset.pairs].index(DEMO_IMAGE)]
    classes = {"car": 8, "road": 3, "building": 1, "cyclist": 10}
    for name, (x, y) in DEMO_POINTS.items():
        assert mask[y, x] == classes[name], name


def test_demo_uses_the_bundled_model(
    tmp_path: Path,
    small_model: danet.DANet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    bundled = tmp_path / "models"
    danet.save_model(small_model, bundled / "camvid")
    monkeypatch.setattr(danet.assets, "MODELS_DIR", bundled)
    out = tmp_path / "demo"
    metrics = run_demo(out)
    assert 0.0 <= metrics["miou"] <= 1.0
    assert len(metrics["per_class_iou"]) == 11
    assert len(list((out / "predictions").glob("*_overlay.png"))) == 6
    figures = sorted(p.name for p in (out / "attention").iterdir())
    assert figures == sorted(
        ["cam_channels.png", *(f"pam_x{x}_y{y}.png" for x, y in DEMO_POINTS.values())]
    )
    assert not (out / "tiny_model").exists()  # nothing trained
    printed = capsys.readouterr().out
    assert "did not train on" not in printed  # a card-less model: nothing said about its data
    assert f"mIoU {100 * metrics['miou']:.1f}%" in printed
    assert "_overlay.png" in printed
    overlay = np.asarray(danet.data.read_image(next((out / "predictions").glob("*_overlay.png"))))
    assert overlay.shape == (360, 480, 3)


def test_demo_says_what_the_card_says(
    tmp_path: Path,
    small_model: danet.DANet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    card = danet.assets.bundled_model_dir("camvid") / "card.json"
    bundled = tmp_path / "models"
    danet.save_model(small_model, bundled / "camvid")
    (bundled / "camvid" / "card.json").write_bytes(card.read_bytes())
    monkeypatch.setattr(danet.assets, "MODELS_DIR", bundled)
    run_demo(tmp_path / "demo")
    said = capsys.readouterr().out
    assert "trained on CamVid train+val" in said and "training data" in said
    assert "held out" not in said.split("held-out figure")[0]  # only the sibling run's figure
