"""InferenceSettings and the one inference path, with a model made of numpy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from danet.utils.images import prepare
from danet.utils.inference import (
    InferenceSettings,
    check_run_size,
    inference_size,
    label_images,
    run_sizes,
)


class Channels:
    """A numpy "model" whose logits are its input's three channels: the label is the channel
    that is largest after normalisation."""

    mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    config = {"input_size": [32, 48], "num_classes": 3}

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def array_logits(self, x: np.ndarray) -> np.ndarray:
        self.shapes.append(x.shape)
        return x.copy()


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"scales": ()}, "scales"),
        ({"scales": (0.5, float("nan"))}, "scales"),
        ({"resize": "stretch"}, "resize"),
        ({"input_size": (8, 8)}, "input_size"),
        ({"max_pixels": 0}, "max_pixels"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(options: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        InferenceSettings(**options)


def test_settings_are_frozen_and_normalised() -> None:
    settings = InferenceSettings(scales=[0.5, 1], input_size=[32, 48])  # type: ignore[arg-type]
    assert settings.scales == (0.5, 1.0) and settings.input_size == (32, 48)
    assert settings.views == 2 and InferenceSettings(flip=True).views == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.flip = True  # type: ignore[misc]


def test_sizes_keep_the_aspect_ratio_or_fit_inside() -> None:
    assert inference_size(1080, 1920, (360, 480)) == (360, 640)
    assert inference_size(1080, 1920, (360, 480), fit_inside=True) == (270, 480)
    assert inference_size(1920, 1080, (360, 480), fit_inside=True) == (360, 202)
    assert run_sizes(100, 200, (32, 48), InferenceSettings(scales=(0.5, 1.0))) == [
        (16, 32),
        (32, 64),
    ]
    with pytest.raises(ValueError, match=r"over the pixel budget of 100 \(max_pixels raises it"):
        check_run_size(2, 4000, (32, 48), InferenceSettings(max_pixels=100))


def test_labels_come_from_the_shrunk_image_and_are_upsampled() -> None:
    image = np.zeros((64, 96, 3), np.uint8)
    image[:, :48, 0] = 255  # left half red, right half blue
    image[:, 48:, 2] = 255
    model = Channels()
    labels = label_images(model, [image], InferenceSettings())
    assert model.shapes == [(1, 3, 32, 48)]  # run at the input size, not the image's
    assert labels.shape == (1, 64, 96) and labels.dtype == np.uint8
    assert (labels[0, :, :46] == 0).all() and (labels[0, :, 50:] == 2).all()
    flipped = label_images(model, [image], InferenceSettings(scales=(0.5, 1.0), flip=True))
    np.testing.assert_array_equal(flipped, labels)  # the views agree on so plain an image


def test_prepare_normalises_and_resizes() -> None:
    image = np.full((20, 30, 3), 255, np.uint8)
    x = prepare(image, (10, 15), [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    assert x.shape == (3, 10, 15) and x.dtype == np.float32
    np.testing.assert_allclose(x, 2.0)
    assert prepare(image, (40, 60), [0.0] * 3, [1.0] * 3).shape == (3, 40, 60)
