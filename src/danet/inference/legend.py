"""A class legend beside a colour or overlay image: a swatch and a name per class shown."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_FONT = 11
"""Font size (pixels) of the legend of a small image; it grows with the image's height."""
FONT_PER_HEIGHT = 1 / 40
"""Font size per pixel of image height: 27 px beside a 1080-pixel-high picture."""
OUTLINE = (160, 160, 160)
"""Every swatch is outlined in this grey, so a black class stays visible on the black panel."""


def legend_font_size(height: int) -> int:
    """The legend's font size for an image ``height`` pixels high."""
    return max(MIN_FONT, round(height * FONT_PER_HEIGHT))


def classes_by_area(labels: np.ndarray, num_classes: int) -> list[int]:
    """The classes present in ``labels``, largest area first."""
    counts = np.bincount(labels.ravel(), minlength=num_classes)
    return [int(k) for k in np.argsort(-counts, kind="stable") if counts[k] > 0]


def add_legend(
    image: np.ndarray, classes: Sequence[int], names: Sequence[str], palette: np.ndarray
) -> np.ndarray:
    """``image`` (HxWx3 uint8) with a panel on its right listing ``classes`` (swatch + name).

    The font grows with the image's height (:func:`legend_font_size`), and each swatch has a
    grey outline (:data:`OUTLINE`). The image's pixels are kept unchanged at ``[:H, :W]``; the
    result is taller than ``image`` only when the list does not fit its height (black below).
    """
    h, w = image.shape[:2]
    size = legend_font_size(h)
    font = ImageFont.load_default(size=size)
    row, pad, swatch = round(size * 1.4), max(size // 2, 4), size
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [str(names[k]) for k in classes]
    text_w = max((probe.textbbox((0, 0), t, font=font)[2] for t in labels), default=0)
    panel_w = pad + swatch + pad + text_w + pad
    out_h = max(h, pad + row * len(classes) + pad)
    panel = Image.new("RGB", (panel_w, out_h), (0, 0, 0))  # drawn apart: the image is not copied
    draw = ImageDraw.Draw(panel)
    for index, (k, text) in enumerate(zip(classes, labels, strict=True)):
        top = pad + index * row
        box = (pad, top, pad + swatch - 1, top + swatch - 1)
        draw.rectangle(box, fill=tuple(int(c) for c in palette[k]), outline=OUTLINE)
        draw.text((pad + swatch + pad, top), text, fill=(255, 255, 255), font=font)
    out = np.zeros((out_h, w + panel_w, 3), np.uint8)
    out[:h, :w] = image
    out[:, w:] = np.asarray(panel)
    return out
