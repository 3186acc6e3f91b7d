"""Segmenting images of any size with a model: resizing or sliding windows, multi-scale and flip.

How an image meets the model's native ``input_size`` (H, W) is the ``resize`` mode:

- ``"keep-aspect"``: scale the image so that its short side is the short side of ``input_size``,
  keeping its aspect ratio (a 16:9 frame stays 16:9, a portrait photo stays upright); the model is
  fully convolutional, so no padding is needed. The default for predictions.
- ``"squash"``: resize to exactly ``input_size`` (the aspect ratio changes); what ``danet eval``
  does, as the paper's evaluation.
- ``"none"``: run at the image's own size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from danet.data.io import MAX_PIXELS, DataError, array_to_rgb, read_image
from danet.data.transforms import normalize
from danet.options import RESIZE_MODES, ResizeMode, check_choice

MAX_WINDOWS = 1024
"""The most ``--sliding-window`` windows one image may take (all scales and flips together)."""


def to_rgb_array(image: Any) -> np.ndarray:
    """Accept a PIL image or an HxW / HxWx3 / HxWx4 numpy array; return HxWx3 uint8 RGB."""
    if hasattr(image, "convert"):  # PIL
        return np.asarray(image.convert("RGB"))
    return array_to_rgb(image)


def inference_size(
    height: int, width: int, input_size: Sequence[int] | None, resize: ResizeMode = "keep-aspect"
) -> tuple[int, int]:
    """The (H, W) an image of ``height`` x ``width`` is run at, for a ``resize`` mode."""
    check_choice("resize", resize, RESIZE_MODES)
    if input_size is None or resize == "none":
        return height, width
    if resize == "squash":
        return int(input_size[0]), int(input_size[1])
    scale = min(input_size) / min(height, width)
    return max(round(height * scale), 1), max(round(width * scale), 1)


def run_sizes(
    height: int,
    width: int,
    input_size: Sequence[int] | None,
    resize: ResizeMode,
    scales: Sequence[float] = (1.0,),
    sliding_window: bool = False,
) -> list[tuple[int, int]]:
    """The (H, W) the model runs at for each scale (the image's own size with sliding windows)."""
    base = (height, width) if sliding_window else inference_size(height, width, input_size, resize)
    return [(max(round(base[0] * s), 8), max(round(base[1] * s), 8)) for s in scales]


def check_run_size(
    height: int,
    width: int,
    input_size: Sequence[int] | None,
    resize: ResizeMode,
    scales: Sequence[float] = (1.0,),
    sliding_window: bool = False,
    max_pixels: int | None = None,
    origin: str = "image",
) -> None:
    """Refuse, before anything is allocated, an image whose run size (:func:`run_sizes`) is over
    the pixel budget: a thin 2x4000 image under ``keep-aspect`` runs at 360x720000."""
    budget = MAX_PIXELS if max_pixels is None else max_pixels
    for h, w in run_sizes(height, width, input_size, resize, scales, sliding_window):
        if h * w > budget:
            raise DataError(
                f"{origin}: this {width}x{height} image would run at {w}x{h} ({h * w} pixels) "
                f"under --resize {resize}, over the pixel budget of {budget} (--max-pixels "
                "raises it; --resize squash runs at the input size)"
            )


def _windows(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride)) + [length - window]
    return sorted(set(starts))


def _sliding(model: nn.Module, x: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """Average the logits of overlapping ``window``-sized crops (stride 2/3 of the window)."""
    b, _, h, w = x.shape
    wh, ww = window
    pad_h, pad_w = max(wh - h, 0), max(ww - w, 0)
    x = F.pad(x, (0, pad_w, 0, pad_h))
    out: torch.Tensor | None = None
    count = x.new_zeros(1, 1, x.shape[2], x.shape[3])
    for top in _windows(x.shape[2], wh, math.ceil(wh * 2 / 3)):
        for left in _windows(x.shape[3], ww, math.ceil(ww * 2 / 3)):
            logits = model(x[:, :, top : top + wh, left : left + ww])["out"]
            if out is None:
                out = x.new_zeros(b, logits.shape[1], x.shape[2], x.shape[3])
            out[:, :, top : top + wh, left : left + ww] += logits
            count[:, :, top : top + wh, left : left + ww] += 1
    assert out is not None
    return (out / count)[:, :, :h, :w]


def count_windows(height: int, width: int, window: Sequence[int]) -> int:
    """How many ``window``-sized crops :func:`_sliding` runs on a ``height`` x ``width`` image."""
    wh, ww = window
    rows = _windows(max(height, wh), wh, math.ceil(wh * 2 / 3))
    cols = _windows(max(width, ww), ww, math.ceil(ww * 2 / 3))
    return len(rows) * len(cols)


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    x: torch.Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    sliding_window: bool = False,
    input_size: Sequence[int] | None = None,
    resize: ResizeMode = "squash",
    max_pixels: int | None = None,
) -> torch.Tensor:
    """Class probabilities (B, K, H, W) for a normalised batch, averaged over scales and flips.

    Without ``sliding_window``, the image is resized to :func:`inference_size` for ``input_size``
    (the model's native size, when it has one) and ``resize``, times each scale. With it, the
    image keeps its size (times each scale) and is covered by ``input_size`` windows, at most
    :data:`MAX_WINDOWS` of them. A run size over ``max_pixels`` (default
    ``danet.data.io.MAX_PIXELS``) is refused before it is allocated.
    """
    h, w = x.shape[-2:]
    check_run_size(h, w, input_size, resize, scales, sliding_window, max_pixels)
    sizes = run_sizes(h, w, input_size, resize, scales, sliding_window)
    if sliding_window and input_size is not None:
        windows = sum(count_windows(*size, input_size) for size in sizes) * (2 if flip else 1)
        if windows > MAX_WINDOWS:
            raise ValueError(
                f"--sliding-window: a {w}x{h} image takes {windows} windows of "
                f"{input_size[1]}x{input_size[0]}, more than the {MAX_WINDOWS} allowed; a larger "
                "--input-size (or fewer --scales) takes fewer"
            )
    total = x.new_zeros(())
    for size in sizes:
        xs = x if size == (h, w) else F.interpolate(x, size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            xi = xs.flip(-1) if flipped else xs
            if sliding_window and input_size is not None:
                logits = _sliding(model, xi, input_size)
            else:
                logits = model(xi)["out"]
            probs = logits.float().softmax(1)
            probs = probs.flip(-1) if flipped else probs
            if probs.shape[-2:] != (h, w):
                probs = F.interpolate(probs, (h, w), mode="bilinear", align_corners=False)
            total = total + probs
    return total / (len(scales) * (2 if flip else 1))


def _as_rgb_list(images: Any) -> tuple[list[np.ndarray], bool]:
    """The images of one input (path, PIL, array) or of a batch (list, BxHxWx3 array), and
    whether it was a batch."""
    if isinstance(images, (list, tuple)):
        return [_one_rgb(image) for image in images], True
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return [_one_rgb(image) for image in images], True
    return [_one_rgb(images)], False


def _one_rgb(image: Any) -> np.ndarray:
    if isinstance(image, (str, Path)):
        return read_image(image)
    return to_rgb_array(image)


def segment(
    model: nn.Module,
    image: Any,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    sliding_window: bool = False,
    device: str | torch.device | None = None,
    resize: ResizeMode = "keep-aspect",
    probs: bool = False,
) -> np.ndarray | list[np.ndarray]:
    """Segment an image or a batch with a :class:`danet.DANet` in eval mode.

    ``image`` is a file path, a PIL image, or an HxW / HxWx3 / HxWx4 array (uint8, or floats in
    [0, 1] or [0, 255]); a list of those, or a BxHxWx3 array, is a batch. Returns the HxW uint8
    label map, or with ``probs`` the (K, H, W) float32 class probabilities; for a batch, a list
    of those (a stacked array for a BxHxWx3 input). ``resize`` is one of :data:`RESIZE_MODES`.
    """
    rgbs, batched = _as_rgb_list(image)
    device = device or next(model.parameters()).device
    input_size = model.config.get("input_size")
    results = []
    for rgb in rgbs:
        x = normalize(rgb, model.mean, model.std)[None].to(device)
        p = predict_probs(model, x, scales, flip, sliding_window, input_size, resize)[0]
        results.append(p.cpu().numpy() if probs else p.argmax(0).to(torch.uint8).cpu().numpy())
    if not batched:
        return results[0]
    if isinstance(image, np.ndarray):
        return np.stack(results)
    return results
