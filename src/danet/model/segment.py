"""Segmenting images with a PyTorch model: the tensor side of :mod:`danet.utils.inference`.

The inference path itself (resizing, multi-scale, flip, sliding windows, the pixel budget and
the labels at the image's size) is numpy code shared with the ONNX stand-in
(:mod:`danet.utils.inference`); this module runs a ``torch.nn.Module`` inside it:
:func:`logits_array` maps a normalised float32 array to logits, :func:`predict_labels` and
:func:`segment` are that path for any module that maps a batch to ``{"out": logits}``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from danet.options import ResizeMode
from danet.utils.images import as_rgb
from danet.utils.inference import (
    MAX_WINDOWS,
    InferenceSettings,
    check_run_size,
    inference_size,
    label_images,
    model_input_size,
    segment_images,
    settings_of,
    small_image_warning,
    view_probs,
)

__all__ = [
    "MAX_WINDOWS",
    "ArrayModel",
    "inference_size",
    "logits_array",
    "main_logits",
    "predict_labels",
    "predict_probs",
    "segment",
    "settings_of",
    "small_image_warning",
    "to_rgb_array",
]

to_rgb_array = as_rgb  # the name it had here


def main_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The ``"out"`` logits of ``model(x)``. A model whose ``forward`` takes ``heads`` (a
    :class:`~danet.DANet`) is asked for that head only, so the side outputs are not upsampled;
    any other module that maps a batch to ``{"out": logits}`` is called as it is."""
    if "heads" in inspect.signature(model.forward).parameters:
        return model(x, heads=("out",))["out"]
    return model(x)["out"]


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a module without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def logits_array(
    model: nn.Module, x: np.ndarray, device: str | torch.device | None = None
) -> np.ndarray:
    """The ``"out"`` logits (B, K, H, W) float32 of a normalised (B, 3, H, W) float32 array."""
    batch = torch.from_numpy(np.ascontiguousarray(x)).to(device or model_device(model))
    return main_logits(model, batch).float().cpu().numpy()


class ArrayModel:
    """Any module that maps a batch to ``{"out": logits}`` (and has ``mean``, ``std`` and
    ``config``), seen as :mod:`danet.utils.inference` sees a model."""

    def __init__(self, model: nn.Module, device: str | torch.device | None = None) -> None:
        self.model, self.device = model, device
        self.config = getattr(model, "config", {})
        self.mean, self.std = getattr(model, "mean", None), getattr(model, "std", None)

    def array_logits(self, x: np.ndarray) -> np.ndarray:
        """The model's logits of a normalised float32 array."""
        return logits_array(self.model, x, self.device)


def _arrays(model: Any, device: str | torch.device | None = None) -> Any:
    if device is None and hasattr(model, "array_logits"):
        return model
    return ArrayModel(model, device)


@torch.no_grad()
def predict_labels(
    model: nn.Module,
    images: Sequence[np.ndarray],
    settings: InferenceSettings | None = None,
    device: str | torch.device | None = None,
    **options: Any,
) -> np.ndarray:
    """Labels (B, H, W) for HxWx3 uint8 RGB ``images`` of one size: what ``danet predict``
    writes and ``danet eval`` scores (:func:`danet.utils.inference.label_images`). Without
    ``settings``, the keyword arguments (``scales``, ``flip``, ``sliding_window``,
    ``input_size``, ``resize``, ``max_pixels``) build them."""
    return label_images(_arrays(model, device), images, settings_of(settings, **options))


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
    """Class probabilities (B, K, H, W) of an already normalised batch, averaged over scales and
    flips, at the batch's size: the tensor form of :func:`predict_labels`'s path."""
    settings = settings_of(
        scales=scales, flip=flip, sliding_window=sliding_window, resize=resize,
        input_size=input_size, max_pixels=max_pixels,
    )  # fmt: skip
    arrays = _arrays(model)
    size = model_input_size(arrays, settings)
    h, w = x.shape[-2:]
    total: np.ndarray | None = None
    for run in check_run_size(h, w, size, settings):
        xs = x if run == (h, w) else F.interpolate(x, run, mode="bilinear", align_corners=False)
        probs = view_probs(arrays, xs.float().cpu().numpy(), settings, size, (h, w))
        total = probs if total is None else total + probs
    assert total is not None
    return torch.from_numpy(total / settings.views).to(x.device)


def segment(
    model: nn.Module,
    image: Any,
    settings: InferenceSettings | None = None,
    probs: bool = False,
    device: str | torch.device | None = None,
    **options: Any,
) -> np.ndarray | list[np.ndarray]:
    """Segment an image or a batch with a model in eval mode (``model.predict``).

    ``image`` is a file path, a PIL image, or an HxW / HxWx3 / HxWx4 array (uint8, or floats in
    [0, 1] or [0, 255]); a list of those, or a BxHxWx3 array, is a batch. Returns the HxW uint8
    label map, or with ``probs`` the (K, H, W) float32 class probabilities; for a batch, a list
    of those (a stacked array for a BxHxWx3 input). Without ``settings``, the keyword arguments
    (``scales``, ``flip``, ``sliding_window``, ``resize``, ...) build them.
    """
    settings = settings_of(settings, **options)
    arrays = _arrays(model, device)
    return segment_images(arrays, image, settings, probs)
