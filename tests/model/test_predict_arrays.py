"""model.predict trusts no lying array: each refusal is one line that says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

import danet

GOOD = np.zeros((32, 48, 3), np.uint8)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((32, 48, 3), np.nan, np.float32), r"holds 4608 NaN or infinite value\(s\)"),
        (np.full((32, 48, 3), np.inf), "NaN or infinite"),
        (np.full((32, 48, 3), 70000, np.int32), r"integers in \[70000, 70000\]"),
        (np.full((32, 48, 3), -5, np.int16), r"integers in \[-5, -5\]"),
        (np.zeros((0, 0, 3), np.uint8), r"image is empty \(shape \(0, 0, 3\)\)"),
        (np.zeros((0, 32, 48, 3), np.uint8), "image is empty"),
        (np.zeros((32, 48, 3), np.complex64), "array of complex numbers"),
        (np.full((32, 48, 3), None, object), "array of Python objects"),
        (np.full((32, 48, 3), "a"), "array of strings"),
        (GOOD.tolist(), r"nested list \(image\[0\] is a list"),
        ([[1, 2], [3]], "nested list"),
        ([], "image is an empty list"),
        ([GOOD, {"a": 1}], r"image\[1\] is a dict"),
    ],
)
def test_predict_refuses_a_lying_array_in_one_line(
    small_model: danet.DANet, image: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as err:
        small_model.predict(image)
    assert "\n" not in str(err.value)


def test_predict_still_takes_uint8_floats_and_16_bit_integers(small_model: danet.DANet) -> None:
    for image in (GOOD, GOOD / 255.0, np.full((32, 48), 40000, np.int32), [GOOD, GOOD]):
        labels = small_model.predict(image)
        assert np.asarray(labels).shape[-2:] == (32, 48)
