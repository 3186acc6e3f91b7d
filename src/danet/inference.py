"""Inference on images of any size: resizing or sliding windows, multi-scale and flip."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from danet.data.io import array_to_rgb
from danet.data.transforms import normalize


def to_rgb_array(image: Any) -> np.ndarray:
    """Accept a PIL image or an HxW / HxWx3 / HxWx4 numpy array; return HxWx3 uint8 RGB."""
    if hasattr(image, "convert"):  # PIL
        return np.asarray(image.convert("RGB"))
    return array_to_rgb(image)


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


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    x: torch.Tensor,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    sliding_window: bool = False,
    input_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Class probabilities (B, K, H, W) for a normalised batch, averaged over scales and flips.

    Without ``sliding_window``, the image is resized to ``input_size`` (the model's native size,
    when it has one) times each scale. With it, the image keeps its size (times each scale) and
    is covered by ``input_size`` windows.
    """
    h, w = x.shape[-2:]
    base = (h, w) if sliding_window or input_size is None else tuple(input_size)
    total = x.new_zeros(())
    for scale in scales:
        size = (max(round(base[0] * scale), 8), max(round(base[1] * scale), 8))
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


def segment(
    model: nn.Module,
    image: Any,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    sliding_window: bool = False,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Label map (HxW uint8) of one image for a :class:`danet.DANet` in eval mode."""
    rgb = to_rgb_array(image)
    device = device or next(model.parameters()).device
    x = normalize(rgb, model.mean, model.std)[None].to(device)
    probs = predict_probs(model, x, scales, flip, sliding_window, model.config.get("input_size"))
    return probs.argmax(1)[0].to(torch.uint8).cpu().numpy()
