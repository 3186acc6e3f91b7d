"""Every bundled model: within the package's size budget, its stride as named, and it segments
the bundled CamVid frames (val frames: held out from camvid-os16's training, trained on by camvid's,
which used train+val)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import danet
from danet.assets import bundled_model_dir

FRAMES = sorted((danet.samples_dir("camvid") / "val").glob("*.jpg"))[:2]


@pytest.mark.parametrize("name", danet.bundled_models())
def test_bundled_model_is_small_and_segments_val_frames(name: str) -> None:
    size = sum(p.stat().st_size for p in bundled_model_dir(name).iterdir())
    assert size <= 10 * 2**20
    model = danet.load(name)
    assert model.config["output_stride"] == (16 if name.endswith("-os16") else 8)
    for frame in FRAMES:
        labels = model.predict(frame)
        truth = np.asarray(Image.open(frame.parent.parent / "valannot" / f"{frame.stem}.png"))
        known = truth < 11
        assert labels.shape == truth.shape
        assert (labels[known] == truth[known]).mean() > 0.85  # pixel accuracy on a val frame


def test_both_strides_ship() -> None:
    assert {"camvid", "camvid-os16"} <= set(danet.bundled_models())
