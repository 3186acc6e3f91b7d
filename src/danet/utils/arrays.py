"""Checks of what a caller passes as an image: every array that reaches the model holds real,
finite pixel values in a documented range, and a batch is a list of images, not of numbers.

Each refusal is a one-line ``ValueError`` that says what is wrong (``image holds 3 NaN or
infinite values``), raised before anything is resized or allocated for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import Any

import numpy as np

MAX_WIDE_INTEGER = 65535
"""Integer pixels other than uint8 may be 16-bit data (what Pillow's 32-bit "I" mode holds for a
16-bit PNG): 0-255 is read as 8-bit, up to 65535 as 16-bit; anything else is refused."""

_KINDS = {
    "c": "complex numbers",
    "O": "Python objects",
    "U": "strings",
    "S": "bytes",
    "V": "raw records",
    "M": "dates",
    "m": "time spans",
}
EXPECTED = "expected pixel values: uint8, floats in [0, 1] or [0, 255], or 16-bit integers"


def check_pixel_array(array: np.ndarray, what: str = "image") -> None:
    """Refuse an array that cannot be an image's pixels: complex, object, string, empty,
    holding NaN or infinities, or integers outside 0-255 (0-65535 for integer types wider than
    uint8, which are read as 16-bit data). ``what`` names it in the message."""
    kind = array.dtype.kind
    if kind in _KINDS:
        raise ValueError(f"{what} is an array of {_KINDS[kind]} (dtype {array.dtype}); {EXPECTED}")
    if array.size == 0:
        raise ValueError(f"{what} is empty (shape {array.shape}); it has no pixels to segment")
    if kind == "f":
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ValueError(
                f"{what} holds {bad} NaN or infinite value(s) of {array.size}; {EXPECTED}"
            )
    elif kind in "iu" and array.dtype != np.uint8:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > MAX_WIDE_INTEGER:
            raise ValueError(
                f"{what} holds integers in [{low}, {high}] (dtype {array.dtype}); expected 0-255, "
                f"or 0-{MAX_WIDE_INTEGER} for 16-bit data"
            )


def _is_image(item: Any) -> bool:
    return isinstance(item, np.ndarray) or hasattr(item, "convert") or hasattr(item, "__fspath__")


def check_batch(images: Any, what: str = "image") -> None:
    """Refuse a batch that is not a list of images: an empty list or array, or a list that
    holds numbers or lists (``img.tolist()``: one image's rows, not a batch of images)."""
    if isinstance(images, np.ndarray):
        if images.size == 0:
            raise ValueError(f"{what} is empty (shape {images.shape}); it has no pixels to segment")
        return
    if not isinstance(images, (list, tuple)):
        return
    if not images:
        raise ValueError(f"{what} is an empty {type(images).__name__}; give an image or a batch")
    for index, item in enumerate(images):
        if isinstance(item, (Sequence, Number)) and not isinstance(item, (str, bytes)):
            raise ValueError(
                f"{what} is a nested list ({what}[{index}] is a {type(item).__name__}, not an "
                "image): pass a numpy array (np.asarray), or a list of arrays, PIL images or paths"
            )
        if not (_is_image(item) or isinstance(item, str)):
            raise ValueError(
                f"{what}[{index}] is a {type(item).__name__}; a batch holds numpy arrays, PIL "
                "images or paths"
            )
