"""One inference path for every model and every command: :class:`InferenceSettings` and the
functions that turn uint8 RGB images into labels with them.

``danet predict``, ``danet eval``, ``model.predict``, the explorer and the ONNX stand-in all run
:func:`label_images` (or :func:`image_probs`), so that eval scores exactly the labels predict
writes. Numpy and OpenCV only: a model is anything with ``mean``, ``std``, ``config`` and
``array_logits(x)``, which maps a normalised (B, 3, H, W) float32 array to (B, K, H, W) logits
(:class:`danet.DANet` and :class:`danet.deploy.onnx_runtime.OnnxModel` both have it).

How an image meets the model's native ``input_size`` (H, W) is the ``resize`` mode:

- ``"keep-aspect"`` (the default): scale the image so that its short side is the short side of
  ``input_size``, keeping its aspect ratio; the model is fully convolutional, so no padding is
  needed. A model that takes only its input size (an ONNX file exported at a fixed size) gets
  the image scaled to fit inside it instead, padded to it, and the padding cropped off again.
- ``"squash"``: resize to exactly ``input_size`` (the aspect ratio changes).
- ``"none"``: run at the image's own size.

Memory: a large uint8 image is shrunk to the size the model runs at before it is normalised
(:func:`~danet.utils.images.prepare`); the class probabilities are averaged at that size and
upsampled to the image's size a strip of rows at a time
(:func:`~danet.utils.images.upsampled_argmax`): a photo costs its own pixels (3 bytes each) and
its labels (1 byte each) on top of the model at its input size. Only ``sliding_window`` and
``resize="none"`` run the model at the image's own size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from danet.options import RESIZE_MODES, ResizeMode, check_choice
from danet.utils.arrays import check_batch
from danet.utils.attention_budget import AttentionForm, check_attention_budget
from danet.utils.bounds import INPUT_SIZE_RULE, MAX_SIZE_PIXELS, input_size_ok
from danet.utils.images import as_rgb, prepare, resize_probs, softmax, upsampled_argmax

MAX_WINDOWS = 1024
"""The most sliding windows one image may take (all scales and flips together)."""
SMALL_FACTOR = 4
"""An image whose short side is under 1/SMALL_FACTOR of the input size's gets a warning."""


@dataclass(frozen=True)
class InferenceSettings:
    """How images are run through a model: the settings that ``danet predict`` and ``danet
    eval`` share, checked once when built.

    - ``scales``: factors of the run size; the class probabilities are averaged over them.
    - ``flip``: also run the mirrored image and average.
    - ``sliding_window``: cover the image (at its own size, times each scale) with
      ``input_size`` windows instead of resizing it.
    - ``resize``: how an image meets ``input_size`` (module docstring).
    - ``input_size``: (H, W); None takes the model's.
    - ``max_pixels``: an image whose run size is over this many pixels is refused before
      anything is allocated; None is 4096 x 4096.
    """

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    sliding_window: bool = False
    resize: ResizeMode = "keep-aspect"
    input_size: tuple[int, int] | None = None
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        scales = tuple(float(s) for s in self.scales)
        if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"scales={list(self.scales)} must be finite numbers > 0, at least one")
        object.__setattr__(self, "scales", scales)
        check_choice("resize", self.resize, RESIZE_MODES)
        if self.input_size is not None:
            if not input_size_ok(list(self.input_size)):
                raise ValueError(f"input_size={self.input_size}: give {INPUT_SIZE_RULE}")
            object.__setattr__(
                self, "input_size", (int(self.input_size[0]), int(self.input_size[1]))
            )
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError(f"max_pixels={self.max_pixels} must be at least 1")

    @property
    def views(self) -> int:
        """How many views of an image are averaged (scales times flips)."""
        return len(self.scales) * (2 if self.flip else 1)


def settings_of(settings: InferenceSettings | None = None, **options: Any) -> InferenceSettings:
    """``settings``, or settings built from the keyword arguments that are not None (the
    parameters functions took before :class:`InferenceSettings`)."""
    if settings is not None:
        return settings
    given = {k: v for k, v in options.items() if v is not None}
    if "scales" in given:
        given["scales"] = tuple(given["scales"])
    if "input_size" in given:
        given["input_size"] = tuple(given["input_size"])
    return InferenceSettings(**given)


def model_input_size(model: Any, settings: InferenceSettings) -> tuple[int, int] | None:
    """The input size ``model`` runs at under ``settings``: the settings', else the model's. A
    model that takes only its own size (:func:`fixed_size`) refuses another."""
    own = model.config.get("input_size")
    own = (int(own[0]), int(own[1])) if own else None
    fixed = fixed_size(model)
    if fixed and settings.input_size not in (None, fixed):
        raise ValueError(
            f"input_size={list(settings.input_size or ())}: this model was exported for "
            f"{fixed[0]}x{fixed[1]} inputs only"
        )
    return settings.input_size or own


def fixed_size(model: Any) -> tuple[int, int] | None:
    """The only (H, W) ``model`` takes (an ONNX file exported at a fixed size), else None."""
    if not getattr(model, "fixed_size", False):
        return None
    size = model.config["input_size"]
    return int(size[0]), int(size[1])


def inference_size(
    height: int,
    width: int,
    input_size: Sequence[int] | None,
    resize: ResizeMode = "keep-aspect",
    fit_inside: bool = False,
) -> tuple[int, int]:
    """The (H, W) an image of ``height`` x ``width`` is run at, for a ``resize`` mode; with
    ``fit_inside``, ``keep-aspect`` fits the image inside ``input_size`` (to be padded to it)."""
    check_choice("resize", resize, RESIZE_MODES)
    if input_size is None or resize == "none":
        return height, width
    if resize == "squash":
        return int(input_size[0]), int(input_size[1])
    if fit_inside:
        scale = min(input_size[0] / height, input_size[1] / width)
        return (
            min(max(round(height * scale), 1), int(input_size[0])),
            min(max(round(width * scale), 1), int(input_size[1])),
        )
    scale = min(input_size) / min(height, width)
    return max(round(height * scale), 1), max(round(width * scale), 1)


def _scaled(base: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(round(base[0] * scale), 8), max(round(base[1] * scale), 8)


def base_size(
    height: int,
    width: int,
    input_size: Sequence[int] | None,
    settings: InferenceSettings,
    fit_inside: bool = False,
) -> tuple[int, int]:
    """The size the views' probabilities are averaged at: the image's own with sliding windows,
    else :func:`inference_size`."""
    if settings.sliding_window:
        return height, width
    return inference_size(height, width, input_size, settings.resize, fit_inside)


def run_sizes(
    height: int,
    width: int,
    input_size: Sequence[int] | None,
    settings: InferenceSettings,
    fit_inside: bool = False,
) -> list[tuple[int, int]]:
    """The (H, W) the model runs at for each scale (the image's own size with sliding windows)."""
    base = base_size(height, width, input_size, settings, fit_inside)
    return [_scaled(base, s) for s in settings.scales]


def _windows(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride)) + [length - window]
    return sorted(set(starts))


def count_windows(height: int, width: int, window: Sequence[int]) -> int:
    """How many ``window``-sized crops a sliding window takes on a ``height`` x ``width`` image."""
    wh, ww = int(window[0]), int(window[1])
    rows = _windows(max(height, wh), wh, math.ceil(wh * 2 / 3))
    cols = _windows(max(width, ww), ww, math.ceil(ww * 2 / 3))
    return len(rows) * len(cols)


def check_run_size(
    height: int,
    width: int,
    input_size: Sequence[int] | None,
    settings: InferenceSettings,
    origin: str = "image",
    fit_inside: bool = False,
    attention_form: AttentionForm = "linear",
    output_stride: int = 8,
) -> list[tuple[int, int]]:
    """Refuse, before anything is allocated, an image whose run size is over the pixel budget
    (a thin 2x4000 image under ``keep-aspect`` runs at 360x720000) or that would take more than
    :data:`MAX_WINDOWS` sliding windows; return its run sizes. A model whose position attention
    grows with N squared (``attention_form="naive"``: an ONNX file of an older ``--dynamic``
    export) is also refused a run size whose attention would pass the memory the budget allows
    the linear form (:func:`danet.utils.attention_budget.check_attention_budget`)."""
    budget = MAX_SIZE_PIXELS if settings.max_pixels is None else settings.max_pixels
    sizes = run_sizes(height, width, input_size, settings, fit_inside)
    for h, w in sizes:
        if h * w > budget:
            raise ValueError(
                f"{origin}: this {width}x{height} image would run at {w}x{h} ({h * w} pixels) "
                f"under resize={settings.resize!r}, over the pixel budget of {budget} "
                "(max_pixels raises it; resize='squash' runs at the input size)"
            )
        if attention_form != "linear":
            window = input_size if settings.sliding_window and input_size else (h, w)
            wh, ww = int(window[0]), int(window[1])
            check_attention_budget(wh, ww, output_stride, attention_form, budget, origin)
    if settings.sliding_window and input_size is not None:
        windows = sum(count_windows(*size, input_size) for size in sizes)
        windows *= 2 if settings.flip else 1
        if windows > MAX_WINDOWS:
            raise ValueError(
                f"sliding_window: a {width}x{height} image takes {windows} windows of "
                f"{input_size[1]}x{input_size[0]}, more than the {MAX_WINDOWS} allowed; a larger "
                "input_size (or fewer scales) takes fewer"
            )
    return sizes


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


def _logits(model: Any, x: np.ndarray) -> np.ndarray:
    """``model.array_logits(x)``; a model that takes only its own size gets ``x`` padded to it
    (zeros: the mean colour) and the logits cropped back."""
    fixed = fixed_size(model)
    h, w = x.shape[-2:]
    if fixed is None or (h, w) == fixed or h > fixed[0] or w > fixed[1]:
        return model.array_logits(np.ascontiguousarray(x, dtype=np.float32))
    padded = np.zeros((*x.shape[:2], *fixed), dtype=np.float32)
    padded[:, :, :h, :w] = x
    return model.array_logits(padded)[:, :, :h, :w]


def _sliding(model: Any, x: np.ndarray, window: Sequence[int]) -> np.ndarray:
    """Average the logits of overlapping ``window``-sized crops (stride 2/3 of the window)."""
    b, _, h, w = x.shape
    wh, ww = int(window[0]), int(window[1])
    x = np.pad(x, ((0, 0), (0, 0), (0, max(wh - h, 0)), (0, max(ww - w, 0))))
    out: np.ndarray | None = None
    count = np.zeros((1, 1, *x.shape[2:]), dtype=np.float32)
    for top in _windows(x.shape[2], wh, math.ceil(wh * 2 / 3)):
        for left in _windows(x.shape[3], ww, math.ceil(ww * 2 / 3)):
            logits = _logits(model, x[:, :, top : top + wh, left : left + ww])
            if out is None:
                out = np.zeros((b, logits.shape[1], *x.shape[2:]), dtype=np.float32)
            out[:, :, top : top + wh, left : left + ww] += logits
            count[:, :, top : top + wh, left : left + ww] += 1
    assert out is not None
    return (out / count)[:, :, :h, :w]


def view_probs(
    model: Any,
    x: np.ndarray,
    settings: InferenceSettings,
    input_size: Sequence[int] | None,
    out_size: Sequence[int],
) -> np.ndarray:
    """Class probabilities (B, K, H, W) of a normalised batch ``x`` at ``out_size``, summed
    over ``x`` and, with ``settings.flip``, its mirror."""
    total: np.ndarray | None = None
    for flipped in (False, True) if settings.flip else (False,):
        xi = np.ascontiguousarray(x[..., ::-1]) if flipped else x
        if settings.sliding_window and input_size is not None:
            logits = _sliding(model, xi, input_size)
        else:
            logits = _logits(model, xi)
        probs = softmax(logits)
        probs = probs[..., ::-1] if flipped else probs
        probs = resize_probs(np.ascontiguousarray(probs), out_size)
        total = probs if total is None else total + probs
    assert total is not None
    return total


def model_attention(model: Any) -> tuple[AttentionForm, int]:
    """How ``model``'s position attention grows with N (its ``attention_form``: ``"naive"`` only
    for an ONNX file of an older ``--dynamic`` export) and its output stride, the two last
    arguments of :func:`check_run_size`."""
    form: AttentionForm = "naive" if getattr(model, "attention_form", "") == "naive" else "linear"
    config = getattr(model, "config", None) or {}
    return form, int(config.get("output_stride") or 8)


def summed_probs(
    model: Any, images: Sequence[np.ndarray], settings: InferenceSettings, origin: str = "image"
) -> np.ndarray:
    """The class probabilities of HxWx3 uint8 ``images`` of one size, summed over the views of
    ``settings`` at the size they are averaged at (:func:`base_size`): (B, K, h, w)."""
    input_size = model_input_size(model, settings)
    fit = fixed_size(model) is not None
    h, w = images[0].shape[:2]
    sizes = check_run_size(h, w, input_size, settings, origin, fit, *model_attention(model))
    base = base_size(h, w, input_size, settings, fit)
    total: np.ndarray | None = None
    for size in sizes:
        x = np.stack([prepare(image, size, model.mean, model.std) for image in images])
        probs = view_probs(model, x, settings, input_size, base)
        total = probs if total is None else total + probs
    assert total is not None
    return total


def label_images(
    model: Any, images: Sequence[np.ndarray], settings: InferenceSettings, origin: str = "image"
) -> np.ndarray:
    """Labels (B, H, W) uint8 (int64 above 256 classes) for HxWx3 uint8 RGB ``images`` of one
    size, in memory bounded by the model's input size (module docstring). What ``danet
    predict`` writes and ``danet eval`` scores."""
    h, w = images[0].shape[:2]
    return upsampled_argmax(summed_probs(model, images, settings, origin), (h, w))


def image_probs(model: Any, image: np.ndarray, settings: InferenceSettings) -> np.ndarray:
    """The (K, H, W) float32 class probabilities of one HxWx3 uint8 image at its own size."""
    total = summed_probs(model, [image], settings)
    return resize_probs(total / settings.views, image.shape[:2])[0]


def segment_images(
    model: Any, image: Any, settings: InferenceSettings, probs: bool = False
) -> np.ndarray | list[np.ndarray]:
    """Segment an image or a batch (paths, PIL images, arrays: :func:`~danet.utils.images.as_rgb`)
    with ``model``: an HxW label map per image, or with ``probs`` (K, H, W) probabilities."""
    check_batch(image)  # no empty batch, no nested list of numbers (img.tolist())
    batched = isinstance(image, (list, tuple)) or (
        isinstance(image, np.ndarray) and image.ndim == 4
    )
    rgbs = [as_rgb(i) for i in image] if batched else [as_rgb(image)]
    input_size = model_input_size(model, settings)
    results = []
    for rgb in rgbs:
        message = small_image_warning(rgb.shape[0], rgb.shape[1], input_size)
        if message:
            warnings.warn(message, UserWarning, stacklevel=3)
        if probs:
            results.append(image_probs(model, rgb, settings))
        else:
            results.append(label_images(model, [rgb], settings)[0])
    if not batched:
        return results[0]
    if isinstance(image, np.ndarray):
        return np.stack(results)
    return results
