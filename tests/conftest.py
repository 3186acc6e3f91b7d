"""Shared fixtures: tiny models and a tiny CamVid tree, so no test needs ../shared or a hub."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import danet
import danet.data.camvid


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own XDG cache (the onnxruntime backend's exports), never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache"


def make_camvid_tree(root: Path, splits: dict[str, int], size: tuple[int, int] = (48, 64)) -> Path:
    """A SegNet-layout CamVid tree of random images whose masks follow the image content."""
    rng = np.random.default_rng(0)
    h, w = size
    for split, count in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            mask = np.zeros((h, w), np.uint8)
            mask[: h // 3] = 0  # sky on top
            mask[h // 3 : 2 * h // 3] = 1 + i % 2  # building or pole band
            mask[2 * h // 3 :] = 3  # road below
            mask[rng.random((h, w)) < 0.05] = 11  # void
            palette = np.array(danet.data.camvid.CamVid.palette + ((0, 0, 0),), np.uint8)
            image = palette[mask] + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / f"seq_{i:03d}.png")
            Image.fromarray(mask).save(root / f"{split}annot" / f"seq_{i:03d}.png")
    return root


def make_video(path: Path, frames: int = 3) -> Path:
    """A 48x32 MJPG video of ``frames`` grey frames, 0, 60, 120, ... bright."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (48, 32))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((32, 48, 3), 60 * i, np.uint8))
    writer.release()
    return path


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    """A tiny CamVid tree with 4 train and 2 val images of 48x64."""
    return make_camvid_tree(tmp_path / "camvid", {"train": 4, "val": 2})


@pytest.fixture
def small_model() -> danet.DANet:
    """A random MobileNetV2 DANet with CamVid metadata, in eval mode."""
    from danet.data.camvid import CamVid

    return danet.DANet(
        num_classes=11,
        backbone="mobilenetv2_100",
        input_size=[64, 96],
        class_names=list(CamVid.class_names),
        palette=[list(c) for c in CamVid.palette],
    ).eval()


@pytest.fixture
def checkpoint(tmp_path: Path, small_model: danet.DANet) -> Path:
    """The small model saved as a model folder."""
    return danet.save_model(small_model, tmp_path / "model")


def live_attention(model: danet.DANet) -> danet.DANet:
    """``model`` with non-zero attention gammas (a new DANet's are 0), so that both attentions
    reach the output."""
    with torch.no_grad():
        model.head.branches["pam"].attention.gamma.fill_(0.7)
        model.head.branches["cam"].attention.gamma.fill_(0.3)
    return model
