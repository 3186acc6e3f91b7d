"""The training augmentation: rare-class crops on the bundled CamVid frames, and their recipe."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest

from danet.assets import samples_dir
from danet.cli import main
from danet.data import build_dataset
from danet.data.balance import rare_classes
from danet.data.transforms import RareClassCrop, train_transform
from danet.training.config import RecipeError, TrainConfig

POLE = 2


def _frames() -> list[tuple[np.ndarray, np.ndarray]]:
    dataset = build_dataset("camvid", samples_dir("camvid"), "val")
    return [(image, mask.astype(np.uint8)) for image, mask in (dataset[i] for i in range(6))]


def _crops(transform: A.Compose, seeds: range) -> list[np.ndarray]:
    masks = []
    for seed, (image, mask) in zip(seeds, _frames() * len(seeds), strict=False):
        transform.set_random_seed(seed)
        masks.append(transform(image=image, mask=mask)["mask"])
    return masks


def test_rare_crops_hold_the_rare_class_where_random_crops_often_miss_it() -> None:
    size, scales = (64, 64), (1.0, 1.5)
    plain = _crops(train_transform(size, scales), range(60))
    rare = _crops(train_transform(size, scales, rare_classes=[POLE], rare_crop=1.0), range(60))
    with_pole = [bool((m == POLE).any()) for m in rare]
    assert all(with_pole)  # every bundled frame has poles
    assert np.mean([(m == POLE).any() for m in plain]) < 0.9
    assert np.mean([(m == POLE).mean() for m in rare]) > 2 * np.mean(
        [(m == POLE).mean() for m in plain]
    )
    assert all(m.shape == size for m in rare)


def test_rare_crops_are_a_function_of_the_seed() -> None:
    transform = train_transform((64, 96), (0.5, 1.5), rare_classes=[POLE, 6], rare_crop=0.5)
    first, again = _crops(transform, range(12)), _crops(transform, range(12))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_without_rare_crops_the_pipeline_is_the_plain_random_crop() -> None:
    # so that runs from before the option resume on the same crops
    steps = train_transform((64, 64), rare_classes=[POLE], rare_crop=0.0).transforms
    assert any(type(t) is A.RandomCrop for t in steps)
    assert not any(isinstance(t, RareClassCrop) for t in steps)


def test_an_absent_class_falls_back_to_a_random_crop() -> None:
    image, mask = _frames()[0]
    crop = A.Compose([RareClassCrop(64, 64, classes=[99], prob=1.0)])
    crop.set_random_seed(0)
    assert crop(image=image, mask=mask)["mask"].shape == (64, 64)


def test_rare_classes_are_those_below_the_median_frequency() -> None:
    dataset = build_dataset("camvid", samples_dir("camvid"), "val")
    found = [dataset.class_names[c] for c in rare_classes(dataset)]
    assert "pole" in found and "road" not in found and "sky" not in found
    assert len(found) <= len(dataset.class_names) // 2


def test_the_recipe_checks_rare_class_names_and_the_probability() -> None:
    cfg = TrainConfig().merge({"rare_crop": 0.5, "rare_classes": "pole, sign"})
    assert cfg.rare_class_ids(("sky", "building", "pole", "sign")) == [2, 3]
    with pytest.raises(RecipeError, match="rare_classes names \\['lamp'\\].*known: sky"):
        TrainConfig().merge({"rare_classes": "pole,lamp"})
    with pytest.raises(RecipeError, match="rare_crop must be a number from 0 to 1"):
        TrainConfig().merge({"rare_crop": 1.5})
    assert TrainConfig().merge({"rare_crop": 0.5}).departures()["rare_crop"] == 0.5


def test_a_run_with_rare_crops_names_its_classes(
    camvid_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained",
            "none", "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--iters", "1",
            "--data-root", str(camvid_root), "--out", str(tmp_path / "run"),
            "--rare-crop", "0.5", "--rare-classes", "pole"]  # fmt: skip
    assert main(args) == 0
    assert "rare-class crops (p=0.5) aim at: pole" in capsys.readouterr().out
    args[-1] = "lamp"
    args[args.index("--out") + 1] = str(tmp_path / "other")
    assert main(args) == 2
    assert "--rare-classes names ['lamp']" in capsys.readouterr().err
