"""Segmenting images of any size with a model: resizing or sliding windows, multi-scale and flip.

How an image meets the model's native ``input_size`` (H, W) is the ``resize`` mode:

- ``"keep-aspect"``: scale the image so that its short side is the short side of ``input_size``,
  keeping its aspect ratio (a 16:9 frame stays 16:9, a portrait photo stays upright); the model is
  fully convolutional, so no padding is needed. The default for predictions.
- ``"squash"``: resize to exactly ``input_size`` (the aspect ratio changes); what ``danet eval``
  does, as the paper's evaluation.
- ``"none"``: run at the image's own size.

Memory: :func:`predict_labels` (``danet predict``, ``model.predict``) shrinks a large uint8 image to
the size the model runs at before normalising it (:func:`model_input`), averages the class probabilities at that size,
and upsamples them to the image's size a strip of rows at a time, taking the argmax of each strip
(:func:`upsampled_argmax`): a photo costs its own pixels (3 bytes each) and its labels (1 byte
each) on top of the model at its input size, never full-resolution float logits. Only
``sliding_window`` and ``resize="none"`` run the model at the image's own size.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import ImageOps
from torch import nn

from danet.data.arrays import check_batch
from danet.data.io import MAX_PIXELS, DataError, array_to_rgb, read_image
from danet.data.transforms import normalize
from danet.options import RESIZE_MODES, ResizeMode, check_choice

MAX_WINDOWS = 1024
"""The most ``--sliding-window`` windows one image may take (all scales and flips together)."""
ORIENTATION = 0x0112  # the EXIF tag


def to_rgb_array(image: Any) -> np.ndarray:
    """Accept a PIL image or an HxW / HxWx3 / HxWx4 numpy array; return HxWx3 uint8 RGB.

    A PIL image is turned upright by its EXIF orientation first, as :func:`read_image` does."""
    if hasattr(image, "convert"):  # PIL
        if hasattr(image, "getexif") and image.getexif().get(ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
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


SMALL_FACTOR = 4
"""An image whose short side is under 1/SMALL_FACTOR of the input size's gets a warning."""


def small_image_warning(height: int, width: int, input_size: Sequence[int] | None) -> str | None:
    """What to tell a user about an image far below the model's input size (a 32x32 thumbnail
    for a 360x480 model): it is blown up, or seen at a few feature pixels, and its labels mean
    little. None for an image of a sensible size."""
    if input_size is None or min(height, width) * SMALL_FACTOR >= min(input_size):
        return None
    size = f"{int(input_size[0])}x{int(input_size[1])}"
    return (
        f"{width}x{height} is far smaller than the model's input size {size} (H x W); its labels "
        f"are unlikely to be meaningful (give an image at least {min(input_size) // SMALL_FACTOR} "
        "pixels on its short side)"
    )


def _windows(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride)) + [length - window]
    return sorted(set(starts))


def main_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The ``"out"`` logits of ``model(x)``. A model whose ``forward`` takes ``heads`` (a
    :class:`~danet.DANet`) is asked for that head only, so the side outputs are not upsampled;
    any other module that maps a batch to ``{"out": logits}`` is called as it is."""
    if "heads" in inspect.signature(model.forward).parameters:
        return model(x, heads=("out",))["out"]
    return model(x)["out"]


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
            logits = main_logits(model, x[:, :, top : top + wh, left : left + ww])
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


def check_bounds(
    height: int,
    width: int,
    scales: Sequence[float],
    flip: bool,
    sliding_window: bool,
    input_size: Sequence[int] | None,
    resize: ResizeMode,
    max_pixels: int | None = None,
) -> list[tuple[int, int]]:
    """Refuse an image whose run size is over the pixel budget (:func:`check_run_size`) or that
    would take more than :data:`MAX_WINDOWS` sliding windows; return its run sizes."""
    check_run_size(height, width, input_size, resize, scales, sliding_window, max_pixels)
    sizes = run_sizes(height, width, input_size, resize, scales, sliding_window)
    if sliding_window and input_size is not None:
        windows = sum(count_windows(*size, input_size) for size in sizes) * (2 if flip else 1)
        if windows > MAX_WINDOWS:
            raise ValueError(
                f"--sliding-window: a {width}x{height} image takes {windows} windows of "
                f"{input_size[1]}x{input_size[0]}, more than the {MAX_WINDOWS} allowed; a larger "
                "--input-size (or fewer --scales) takes fewer"
            )
    return sizes


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
    sizes = check_bounds(h, w, scales, flip, sliding_window, input_size, resize, max_pixels)
    total = x.new_zeros(())
    for size in sizes:
        xs = x if size == (h, w) else F.interpolate(x, size, mode="bilinear", align_corners=False)
        total = total + _view_probs(model, xs, flip, sliding_window, input_size, (h, w))
    return total / (len(scales) * (2 if flip else 1))


def _view_probs(
    model: nn.Module,
    x: torch.Tensor,
    flip: bool,
    sliding_window: bool,
    input_size: Sequence[int] | None,
    out_size: tuple[int, int],
) -> torch.Tensor:
    """Class probabilities of ``x`` at ``out_size``, summed over x and, with ``flip``, its mirror."""
    total = x.new_zeros(())
    for flipped in (False, True) if flip else (False,):
        xi = x.flip(-1) if flipped else x
        if sliding_window and input_size is not None:
            logits = _sliding(model, xi, input_size)
        else:
            logits = main_logits(model, xi)
        probs = logits.float().softmax(1)
        probs = probs.flip(-1) if flipped else probs
        if probs.shape[-2:] != out_size:
            probs = F.interpolate(probs, out_size, mode="bilinear", align_corners=False)
        total = total + probs
    return total


STRIP_ELEMENTS = 1 << 20
"""Output pixels times classes of one strip of :func:`upsampled_argmax` (4 MiB of floats when
every pixel of the strip is on a class boundary)."""


def _axis_taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear interpolation along one axis as ``F.interpolate`` does it (``align_corners=False``):
    for each output index, the two input indices and the second one's weight."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=n_in - 1)
    high = (low + 1).clamp(max=n_in - 1)
    return low, high, (src - low).float()


def upsampled_argmax(probs: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The argmax over classes of ``probs`` (B, K, h, w) bilinearly resized to ``size`` (H, W):
    (B, H, W) uint8 (int64 above 256 classes), the labels of ``F.interpolate(probs, size).argmax(1)``
    without the resized probabilities ever existing.

    An output pixel is a weighted mean of four input pixels; where those four share their argmax,
    so does the mean (each class's lead over another is a mean of non-negative leads), and the
    pixel takes it. Only the others, along class boundaries, are interpolated, a strip of rows
    at a time.
    """
    b, k, h, w = probs.shape
    height, width = int(size[0]), int(size[1])
    dtype = torch.uint8 if k <= 256 else torch.int64
    low_res = probs.argmax(1).to(dtype)  # (B, h, w)
    if (h, w) == (height, width):
        return low_res
    rows, cols = _axis_taps(h, height), _axis_taps(w, width)
    c_low, c_high, c_weight = (t.to(probs.device) for t in cols)
    out = torch.empty((b, height, width), dtype=dtype, device=probs.device)
    step = max(1, STRIP_ELEMENTS // (b * k * width))
    for top in range(0, height, step):
        r_low, r_high, r_weight = (t[top : top + step].to(probs.device) for t in rows)
        upper, lower = low_res[:, r_low], low_res[:, r_high]  # (B, rows, w)
        corners = upper[..., c_low], upper[..., c_high], lower[..., c_low], lower[..., c_high]
        strip = corners[0].clone()  # (B, rows, W)
        mixed = torch.zeros_like(strip, dtype=torch.bool)
        for other in corners[1:]:
            mixed |= other != corners[0]
        bi, yi, xi = mixed.nonzero(as_tuple=True)  # boundary pixels: interpolate the classes
        if len(bi):
            ry, rx = r_weight[yi, None], c_weight[xi, None]
            y0, y1, x0, x1 = r_low[yi], r_high[yi], c_low[xi], c_high[xi]
            pick = probs.permute(0, 2, 3, 1)  # (B, h, w, K): a pixel's classes side by side
            upper_mix = torch.lerp(pick[bi, y0, x0], pick[bi, y0, x1], rx)
            lower_mix = torch.lerp(pick[bi, y1, x0], pick[bi, y1, x1], rx)
            strip[bi, yi, xi] = torch.lerp(upper_mix, lower_mix, ry).argmax(1).to(dtype)
        out[:, top : top + step] = strip
    return out


def model_input(
    image: np.ndarray, size: tuple[int, int], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """An HxWx3 uint8 image as the model's normalised (3, H, W) input at ``size``.

    A larger image is area-averaged to ``size`` while still uint8, so that it never exists as
    full-resolution floats; a smaller one is normalised first and resized bilinearly, as
    :func:`predict_probs` does.
    """
    if size[0] * size[1] < image.shape[0] * image.shape[1]:
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    x = normalize(image, mean, std)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x[None], size, mode="bilinear", align_corners=False)[0]
    return x


def _device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def predict_labels(
    model: nn.Module,
    images: Sequence[np.ndarray],
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    sliding_window: bool = False,
    input_size: Sequence[int] | None = None,
    resize: str = "keep-aspect",
    device: str | torch.device | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Labels (B, H, W) for HxWx3 uint8 RGB ``images`` of one size, in memory bounded by the
    model's input size (module docstring).

    The probabilities are averaged over ``scales`` and flips at the size the image is run at
    (:func:`inference_size`), then upsampled to the image's size with :func:`upsampled_argmax`.
    Images over the pixel budget ``max_pixels`` or the window cap are refused first.
    """
    device = device or _device(model)
    h, w = images[0].shape[:2]
    check_bounds(h, w, scales, flip, sliding_window, input_size, resize, max_pixels)  # type: ignore[arg-type]
    base = (h, w) if sliding_window else inference_size(h, w, input_size, resize)
    total = torch.zeros((), device=device)
    for scale in scales:
        size = (max(round(base[0] * scale), 8), max(round(base[1] * scale), 8))
        x = torch.stack([model_input(i, size, model.mean, model.std) for i in images])
        total = total + _view_probs(model, x.to(device), flip, sliding_window, input_size, base)
    return upsampled_argmax(total, (h, w)).cpu().numpy()


def _as_rgb_list(images: Any) -> tuple[list[np.ndarray], bool]:
    """The images of one input (path, PIL, array) or of a batch (list, BxHxWx3 array), and
    whether it was a batch."""
    check_batch(images)  # no empty batch, no nested list of numbers (img.tolist())
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
    device = device or _device(model)
    input_size = model.config.get("input_size")
    results = []
    for rgb in rgbs:
        message = small_image_warning(*rgb.shape[:2], input_size)
        if message:
            warnings.warn(message, UserWarning, stacklevel=3)
        if not probs:
            args = (scales, flip, sliding_window, input_size, resize, device)
            results.append(predict_labels(model, [rgb], *args)[0])
            continue
        x = normalize(rgb, model.mean, model.std)[None].to(device)
        p = predict_probs(model, x, scales, flip, sliding_window, input_size, resize)[0]
        results.append(p.cpu().numpy())
    if not batched:
        return results[0]
    if isinstance(image, np.ndarray):
        return np.stack(results)
    return results
