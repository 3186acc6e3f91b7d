"""A class legend beside a colour or overlay image: a swatch and a name per class shown."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROW, PAD, SWATCH = 16, 6, 12  # pixels


def classes_by_area(labels: np.ndarray, num_classes: int) -> list[int]:
    """The classes present in ``labels``, largest area first."""
    counts = np.bincount(labels.ravel(), minlength=num_classes)
    return [int(k) for k in np.argsort(-counts, kind="stable") if counts[k] > 0]


def add_legend(
    image: np.ndarray, classes: Sequence[int], names: Sequence[str], palette: np.ndarray
) -> np.ndarray:
    """``image`` (HxWx3 uint8) with a panel on its right listing ``classes`` (swatch + name).

    The image's pixels are kept unchanged at ``[:H, :W]``; the result is taller than ``image``
    only when the list does not fit its height (black below).
    """
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [str(names[k]) for k in classes]
    text_w = max((probe.textbbox((0, 0), t, font=font)[2] for t in labels), default=0)
    h, w = image.shape[:2]
    panel_w = PAD + SWATCH + PAD + text_w + PAD
    out_h = max(h, PAD + ROW * len(classes) + PAD)
    canvas = Image.new("RGB", (w + panel_w, out_h), (0, 0, 0))
    canvas.paste(Image.fromarray(image), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for row, (k, text) in enumerate(zip(classes, labels, strict=True)):
        top = PAD + row * ROW
        left = w + PAD
        draw.rectangle((left, top, left + SWATCH - 1, top + SWATCH - 1), fill=tuple(palette[k]))
        draw.text((left + SWATCH + PAD, top), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)
