"""The explorer's pictures (numpy RGB, drawn with Pillow: fast enough for a click) and HTML."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from danet.inference.render import colorize, overlay

HEAT = (colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
CHANNEL = (colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
BAR_W, PAD = 14, 8  # colour bar, pixels
MIN_MASS = 0.001  # smaller class masses are summed into one "others" bar


def prediction_picture(rgb: np.ndarray, pred: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The image with the predicted classes overlaid."""
    return overlay(rgb, colorize(pred, palette))


def _upsample(values: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(h, w) values to (H, W), bilinear."""
    up = F.interpolate(values[None, None].float(), size, mode="bilinear", align_corners=False)
    return up[0, 0].numpy()


def _marker(image: Image.Image, point: tuple[int, int]) -> None:
    x, y = point
    draw = ImageDraw.Draw(image)
    for radius, colour in ((7, (0, 0, 0)), (5, (255, 255, 255))):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour, width=2)


def _colour_bar(height: int, lut: np.ndarray, top: float, title: str) -> Image.Image:
    """A vertical bar from 0 (bottom) to ``top``, with three labelled ticks and a title."""
    font = ImageFont.load_default()
    ticks = [(0.0, "0"), (top / 2, f"{top / 2:.3g}"), (top, f"{top:.3g}")]
    text_w = int(font.getlength("8.88e+88"))  # the widest label: the same width every time
    panel = Image.new("RGB", (PAD + BAR_W + 4 + text_w + PAD, height), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    bar_top, bar_bottom = PAD + 6, height - PAD - 22
    span = max(bar_bottom - bar_top, 1)
    for yy in range(bar_top, bar_bottom + 1):
        colour = lut[int(255 * (bar_bottom - yy) / span)]
        draw.line((PAD, yy, PAD + BAR_W - 1, yy), fill=tuple(int(c) for c in colour))
    for value, text in ticks:
        yy = bar_bottom - int(span * value / top) if top > 0 else bar_bottom
        draw.line((PAD + BAR_W, yy, PAD + BAR_W + 3, yy), fill=(0, 0, 0))
        draw.text((PAD + BAR_W + 5, yy - 5), text, fill=(0, 0, 0), font=font)
    draw.text((2, height - PAD - 12), title, fill=(0, 0, 0), font=font)
    return panel


def heat_picture(
    rgb: np.ndarray,
    values: torch.Tensor,
    point: tuple[int, int],
    title: str,
    lut: np.ndarray = HEAT,
) -> np.ndarray:
    """(h, w) ``values`` >= 0 over the grey image, on a scale from 0 to their maximum, with the
    clicked ``point`` marked and a labelled colour bar on the right."""
    heat = _upsample(values, rgb.shape[:2])  # float32
    top = float(values.max())
    index = (heat * np.float32(255 / top if top > 0 else 0)).clip(0, 255).astype(np.uint8)
    grey = rgb.sum(axis=2, dtype=np.uint16)[..., None] // 3  # integer arithmetic: fast on a click
    blend = (grey * 35 + lut[index].astype(np.uint16) * 65) // 100
    bar = np.asarray(_colour_bar(rgb.shape[0], lut, top, title))
    canvas = Image.fromarray(np.concatenate([blend.astype(np.uint8), bar], axis=1))
    _marker(canvas, point)
    return np.asarray(canvas)


def _swatch(colour: Sequence[int]) -> str:
    r, g, b = (int(c) for c in colour)
    return (
        f'<span style="display:inline-block;width:12px;height:12px;background:rgb({r},{g},{b});'
        'margin-right:4px;vertical-align:middle;border:1px solid #888"></span>'
    )


def legend_html(pred: np.ndarray, names: Sequence[str], palette: np.ndarray) -> str:
    """The predicted classes, largest area first, each with its colour and share."""
    counts = np.bincount(pred.ravel(), minlength=len(names))
    items = [
        f"<span style='margin-right:10px'>{_swatch(palette[k])}{html.escape(names[k])} "
        f"{100 * counts[k] / pred.size:.0f}%</span>"
        for k in np.argsort(-counts, kind="stable")
        if counts[k] > 0
    ]
    return f"<div class='danet-legend'><b>prediction:</b> {''.join(items)}</div>"


def mass_html(
    mass: np.ndarray, names: Sequence[str], palette: np.ndarray, source: str, query_class: int
) -> str:
    """The PAM row's mass per class as horizontal bars (each carries ``data-mass``; together
    they sum to the row's total, 1)."""
    labels = [*names, "unlabelled"]
    colours = [*palette, (255, 255, 255)]
    own = query_class if query_class >= 0 else len(names)
    order = [int(k) for k in np.argsort(-mass, kind="stable")]
    shown = [k for k in order if mass[k] >= MIN_MASS or k == own]
    rest = float(mass.sum() - mass[shown].sum())
    star = {own: " &#9733;"}
    bars = [(colours[k], html.escape(labels[k]) + star.get(k, ""), mass[k]) for k in shown]
    if len(shown) < len(order):
        bars.append(((255, 255, 255), f"{len(order) - len(shown)} others", rest))
    rows = [
        f"<tr><td>{_swatch(colour)}{label}</td><td style='width:160px'><div class='danet-mass' "
        f"data-mass='{value:.6f}' style='background:#c44;height:10px;width:{100 * value:.1f}%'>"
        f"</div></td><td>{value:.3f}</td></tr>"
        for colour, label, value in bars
    ]
    return (
        f"<div><b>where its attention goes, by class</b> (classes from the {source}; &#9733; the "
        f"pixel's own) {_small('row mass per class')}"
        f"<table class='danet-mass-table'>{''.join(rows)}</table></div>"
    )


def _figure(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _small(text: str) -> str:
    return f"<span class='danet-formula'>({text})</span>"


def reach_html(
    reach: dict[str, float], n: int, radius: int, source: str, query_class: str, where: str
) -> str:
    """The reach figures of one query in plain words, each with its technical name after it."""
    far = _figure(reach.get("pam_far_same_mass", math.nan))
    ceiling = _figure(reach.get("pam_far_same_uniform", math.nan))
    rows = [
        ("the pixel", f"{where}, class {html.escape(query_class)} ({source})"),
        (
            "how much it looks at itself",
            f"{_figure(reach['pam_self_mass'])} of its attention "
            + _small(f"self mass; an even spread gives {1 / n:.5f}"),
        ),
        (
            "how much it looks close by",
            f"{_figure(reach['pam_local_mass'])} "
            + _small(f"local mass: within {radius} feature cells"),
        ),
        (
            "how many places it looks at",
            f"about {_figure(reach['pam_effective_keys'], 0)} of {n} "
            + _small("effective keys, exp(entropy)"),
        ),
        (
            "how much it looks far away at its own class",
            f"{far}, where {ceiling} would be all of it spread evenly over that class "
            + _small(f"far same-class mass, beyond {radius} cells"),
        ),
    ]
    body = "".join(f"<tr><td>{k}</td><td class='danet-reach'>{v}</td></tr>" for k, v in rows)
    return (
        f"<div><b>how far this pixel looks</b><table class='danet-reach-table'>{body}</table></div>"
    )


def channels_html(channels: Sequence[tuple[int, float]]) -> str:
    """The CAM channels that light up most at the clicked pixel, each with how much more than
    its own average over the image."""
    items = "".join(
        f"<li>feature map {c}: {ratio:.1f}x its average here</li>" for c, ratio in channels
    )
    return (
        "<div><b>feature maps that light up most at this pixel</b> "
        + _small("channels of the channel attention's output, against their mean")
        + f"<ol class='danet-channels'>{items}</ol></div>"
    )
