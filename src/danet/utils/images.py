"""Images as arrays: conversion to uint8 RGB, the model's input, and labels at the image's size.

Numpy, OpenCV and Pillow only (no torch), so that the ONNX path, ``danet eval``, ``danet
predict``, the explorer and the attention maps prepare an image with the same code:

- :func:`array_to_rgb` / :func:`as_rgb`: any array, PIL image or file to HxWx3 uint8 RGB;
- :func:`prepare`: uint8 RGB to the model's normalised (3, H, W) float32 input at a run size;
- :func:`resize_probs`: class probabilities to another size (bilinear, half-pixel centres);
- :func:`upsampled_argmax`: the labels of probabilities resized to the image's size, without
  the resized probabilities ever existing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from danet.utils.arrays import check_pixel_array
from danet.utils.bounds import MAX_SIZE_PIXELS

ORIENTATION = 0x0112  # the EXIF tag


def _float_to_uint8(array: np.ndarray) -> np.ndarray:
    """Floats in [0, 1], or in [0, 255] when any value is above 1; anything else is refused."""
    finite = array[np.isfinite(array)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if low < 0 or high > 255:
        raise ValueError(
            f"float image has values in [{low:.3g}, {high:.3g}]; expected pixels in [0, 1] or "
            "[0, 255] (a normalised tensor? pass the image before normalisation)"
        )
    scale = 255.0 if high <= 1.0 else 1.0
    return (np.nan_to_num(array) * scale + 0.5).astype(np.uint8)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Convert pixel values to uint8: floats in [0, 1] or [0, 255] (refused outside both),
    16- or 32-bit integers, booleans (0/255)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255  # as Pillow converts a 1-bit image
    if np.issubdtype(array.dtype, np.floating):
        return _float_to_uint8(array)
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    # 32-bit integer grayscale ("I"): Pillow stores 16-bit PNG/TIFF data this way too.
    bits = 16 if array.max(initial=0) > 255 else 8
    return (np.clip(array, 0, 2**bits - 1) >> (bits - 8)).astype(np.uint8)


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """Return an HxW, HxWx3 or HxWx4 array of any pixel dtype as contiguous HxWx3 uint8 RGB;
    refuse what no image is (:func:`~danet.utils.arrays.check_pixel_array`)."""
    try:
        array = np.asarray(array)
    except ValueError:  # numpy's "inhomogeneous shape"
        raise ValueError("image is a ragged nested list (rows of different lengths)") from None
    check_pixel_array(array)
    if array.ndim != 2 and (array.ndim != 3 or array.shape[2] not in (3, 4)):
        raise ValueError(f"image has shape {array.shape}; expected HxW, HxWx3 or HxWx4")
    array = _to_uint8(array)  # before repeating gray: a third of the work
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """A PIL image as HxWx3 uint8 RGB, turned upright by its EXIF orientation first."""
    if hasattr(image, "getexif") and image.getexif().get(ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "F"):
        return array_to_rgb(np.asarray(image))
    return np.asarray(image.convert("RGB"))


def as_rgb(image: Any, max_pixels: int | None = None) -> np.ndarray:
    """A file path, a PIL image or an HxW / HxWx3 / HxWx4 array as HxWx3 uint8 RGB.

    A file whose header claims more than ``max_pixels`` pixels (default: 4096 x 4096) is
    refused before it is decoded; any file that cannot be read is a ValueError naming it.
    """
    if isinstance(image, (str, Path)):
        budget = MAX_SIZE_PIXELS if max_pixels is None else max_pixels
        try:
            with Image.open(image) as opened:
                if opened.size[0] * opened.size[1] > budget:
                    raise ValueError(f"{opened.size[0]}x{opened.size[1]} is over {budget} pixels")
                opened.load()
                return pil_to_rgb(opened)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise ValueError(f"{image}: cannot read the image ({err})") from None
    if hasattr(image, "convert"):  # PIL
        return pil_to_rgb(image)
    return array_to_rgb(image)


def prepare(
    image: np.ndarray, size: Sequence[int], mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """An HxWx3 uint8 image as the model's normalised (3, H, W) float32 input at ``size`` (H, W).

    A larger image is area-averaged to ``size`` while still uint8, so that it never exists as
    full-resolution floats; a smaller one is normalised first and resized bilinearly (half-pixel
    centres, as ``F.interpolate(..., align_corners=False)``).
    """
    import cv2  # loaded on use: data.io, which the parser imports, shares the conversions above

    height, width = int(size[0]), int(size[1])
    if height * width < image.shape[0] * image.shape[1]:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    scale = np.float32(1 / 255)
    x: np.ndarray = (image.astype(np.float32) * scale - np.asarray(mean, np.float32)) / np.asarray(
        std, np.float32
    )
    if x.shape[:2] != (height, width):
        x = cv2.resize(x, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def resize_probs(probs: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(B, K, h, w) float maps bilinearly resized to ``size`` (H, W), half-pixel centres."""
    import cv2

    height, width = int(size[0]), int(size[1])
    if probs.shape[-2:] == (height, width):
        return probs
    out = np.empty((*probs.shape[:2], height, width), dtype=np.float32)
    for b in range(probs.shape[0]):
        for k0 in range(0, probs.shape[1], 512):  # OpenCV takes at most 512 channels
            chunk = np.ascontiguousarray(probs[b, k0 : k0 + 512].transpose(1, 2, 0))
            resized = cv2.resize(chunk, (width, height), interpolation=cv2.INTER_LINEAR)
            out[b, k0 : k0 + 512] = resized.reshape(height, width, -1).transpose(2, 0, 1)
    return out


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    """The softmax of float ``logits`` along ``axis``, in float32."""
    shifted = logits.astype(np.float32) - logits.max(axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted


STRIP_ELEMENTS = 1 << 20
"""Output pixels times classes of one strip of :func:`upsampled_argmax` (4 MiB of floats when
every pixel of the strip is on a class boundary)."""


def _axis_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear interpolation along one axis as ``F.interpolate`` does it (``align_corners=False``):
    for each output index, the two input indices and the second one's weight."""
    src = np.clip((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0, None)
    low = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (src - low).astype(np.float32)


def upsampled_argmax(probs: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The argmax over classes of ``probs`` (B, K, h, w) bilinearly resized to ``size`` (H, W):
    (B, H, W) uint8 (int64 above 256 classes), the labels of the resized probabilities' argmax
    without the resized probabilities ever existing.

    An output pixel is a weighted mean of four input pixels; where those four share their argmax,
    so does the mean (each class's lead over another is a mean of non-negative leads), and the
    pixel takes it. Only the others, along class boundaries, are interpolated, a strip of rows
    at a time.
    """
    b, k, h, w = probs.shape
    height, width = int(size[0]), int(size[1])
    dtype = np.uint8 if k <= 256 else np.int64
    low_res = probs.argmax(1).astype(dtype)  # (B, h, w)
    if (h, w) == (height, width):
        return low_res
    rows, cols = _axis_taps(h, height), _axis_taps(w, width)
    c_low, c_high, c_weight = cols
    out = np.empty((b, height, width), dtype=dtype)
    pick = probs.transpose(0, 2, 3, 1)  # (B, h, w, K): a pixel's classes side by side
    step = max(1, STRIP_ELEMENTS // (b * k * width))
    for top in range(0, height, step):
        r_low, r_high, r_weight = (t[top : top + step] for t in rows)
        upper, lower = low_res[:, r_low], low_res[:, r_high]  # (B, rows, w)
        corners = upper[..., c_low], upper[..., c_high], lower[..., c_low], lower[..., c_high]
        strip = corners[0].copy()  # (B, rows, W)
        mixed = np.zeros(strip.shape, dtype=bool)
        for other in corners[1:]:
            mixed |= other != corners[0]
        bi, yi, xi = np.nonzero(mixed)  # boundary pixels: interpolate the classes
        if len(bi):
            ry, rx = r_weight[yi, None], c_weight[xi, None]
            y0, y1, x0, x1 = r_low[yi], r_high[yi], c_low[xi], c_high[xi]
            upper_mix = pick[bi, y0, x0] + rx * (pick[bi, y0, x1] - pick[bi, y0, x0])
            lower_mix = pick[bi, y1, x0] + rx * (pick[bi, y1, x1] - pick[bi, y1, x0])
            mixed_probs = upper_mix + ry * (lower_mix - upper_mix)
            strip[bi, yi, xi] = mixed_probs.argmax(1).astype(dtype)
        out[:, top : top + step] = strip
    return out
