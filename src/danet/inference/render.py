"""What a label map looks like: palette colours, an overlay on the image, a palette PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from danet.data.classes import class_names_or_default, palette_or_default
from danet.utils.atomic import atomic_write

OVERLAY_ALPHA = 0.5


def model_palette(model: Any) -> np.ndarray:
    """The checkpoint's palette as (K, 3) uint8, or a generated one when its config has none."""
    palette = palette_or_default(model.config.get("palette"), model.num_classes)
    return np.asarray(palette, dtype=np.uint8).reshape(model.num_classes, 3)


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """HxW class indices to an HxWx3 uint8 colour image."""
    return palette[labels]


def overlay(image: np.ndarray, color: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """Alpha-blend a colour label image onto an RGB image (both HxWx3 uint8)."""
    return cv2.addWeighted(image, 1 - alpha, color, alpha, 0.0)  # uint8 throughout, rounded


def save_label_png(labels: np.ndarray, palette: np.ndarray, path: Path) -> Path:
    """Write HxW class indices as a palette PNG (mode ``P``): it opens in colour and
    ``np.asarray(Image.open(path))`` gives the indices back. Written atomically, as every PNG of
    predict: a failure (a full disk) leaves the earlier file and names it."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), np.uint8)
    flat[: len(palette)] = palette
    image.putpalette(flat.ravel().tolist())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def save_png(array: np.ndarray, path: Path) -> Path:
    """Write an image as a PNG, atomically."""
    image = Image.fromarray(array)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def class_names(model: Any) -> list[str]:
    """The checkpoint's class names, or fallback names when its config has none."""
    return class_names_or_default(model.config.get("class_names"), model.num_classes)
