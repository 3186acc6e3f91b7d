"""The paper's attention figures: position-attention maps of chosen pixels, channel-attended maps.

The inputs of the two attention modules are caught with forward hooks, so the model is not
changed. A pixel's position-attention map is its row of ``softmax(Q^T K)``, computed from that
pixel's query against all keys: only the rows drawn are built, never the N x N matrix.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch.func import functional_call

from danet.analysis.diagnostics import AttentionInputs
from danet.data import read_image
from danet.model.attention import ChannelAttention, PositionAttention
from danet.model.danet import DANet, load
from danet.utils.atomic import atomic_write
from danet.utils.images import as_rgb, prepare

TOP_CHANNELS = 6


def pam_rows(pam: PositionAttention, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows ``indices`` (flat positions ``y * W + x``) of the PAM's ``softmax(Q^T K)``.

    ``x`` is the module's (B, C, H, W) input; returns (B, len(indices), H*W): for each chosen
    pixel, how much it attends to every position. Memory is O(len(indices) * N).
    """
    q, k = pam.queries_keys(x)  # (B, N, d) each, q scaled by the module's temperature
    return (q[:, indices] @ k.transpose(1, 2)).softmax(dim=-1)  # (B, P, N)


def cam_attended(cam: ChannelAttention, x: torch.Tensor) -> torch.Tensor:
    """The CAM's attended features ``softmax(E) X`` (B, C, H, W), without the residual.

    Runs the module itself with ``gamma = 1`` for this one call, so the variant's formula is the
    module's own, and subtracts the input.
    """
    with_gamma_one = functional_call(cam, {"gamma": torch.ones_like(cam.gamma)}, (x,))
    return with_gamma_one - x


def distinct_channels(
    maps: torch.Tensor, k: int = TOP_CHANNELS, max_corr: float = 0.9
) -> list[int]:
    """Up to ``k`` channels of (C, H, W) ``maps``, most varying first, skipping near-duplicates.

    A channel is skipped when its map correlates above ``max_corr`` with one already chosen:
    with ``softmax(E)`` close to one-hot, many channels attend to the same source channel.
    """
    flat = maps.flatten(1).double()  # (C, N)
    corr = torch.corrcoef(flat).abs()  # (C, C)
    chosen: list[int] = []
    for c in flat.std(dim=1).argsort(descending=True).tolist():
        if len(chosen) == k:
            break
        if all(corr[c, other] < max_corr for other in chosen):
            chosen.append(c)
    return chosen


def capture_attention_inputs(model: DANet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``x`` and return the inputs of its ``"pam"``/``"cam"`` attention modules."""
    with AttentionInputs(model) as probe, torch.no_grad():
        model(x)
    return probe.pop()


def _feature_index(
    point: tuple[int, int], image_hw: tuple[int, int], feat_hw: tuple[int, int]
) -> int:
    """Flat index of the feature cell that holds image pixel ``point`` = (x, y)."""
    (x, y), (h, w), (fh, fw) = point, image_hw, feat_hw
    fx = min(int((x + 0.5) * fw / w), fw - 1)
    fy = min(int((y + 0.5) * fh / h), fh - 1)
    return fy * fw + fx


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(P, h, w) maps to (P, H, W) numpy, bilinear."""
    return F.interpolate(maps[None].float(), size, mode="bilinear", align_corners=False)[0].numpy()


def _save(fig: Figure, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    return path


TOP_PERCENTILE = 99.0
"""The PAM scale ends at this percentile of the map (at least at 2x uniform): a few pixels of
self-attention at a thousand times uniform would otherwise leave the rest of the map black."""


def attention_scale(ratio: np.ndarray) -> tuple[Normalize, list[float], list[str]]:
    """The colour scale of a PAM map (attention weights divided by the uniform weight 1/N): from
    0 up to its :data:`TOP_PERCENTILE` (values above take the top colour; the title gives the
    peak), and at least up to 2, so that a uniform row (1 everywhere) sits mid-scale, flat, and
    a peaked row shows its peak; with the colour bar's ticks and their labels, 1 marked as the
    uniform weight where it does not crowd 0."""
    top = max(float(np.percentile(ratio, TOP_PERCENTILE)), 2.0)
    ticks = [float(t) for t in MaxNLocator(5).tick_values(0.0, top) if 0 <= t <= top]
    if 1.0 / top >= 0.08:  # room between 0 and 1 for both labels
        ticks = sorted({*ticks, 1.0})
    labels = ["1 = uniform" if t == 1 else f"{t:g}" for t in ticks]
    return Normalize(vmin=0.0, vmax=top, clip=True), ticks, labels


def _pam_figure(image: np.ndarray, point: tuple[int, int], ratio: np.ndarray, path: Path) -> Path:
    """``ratio``: the pixel's attention row times N (1 everywhere for a uniform row)."""
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    left.imshow(image)
    left.set_title(f"pixel ({point[0]}, {point[1]})")
    norm, ticks, labels = attention_scale(ratio)
    strength = np.asarray(norm(ratio), dtype=np.float64)
    right.imshow(image.mean(axis=2), cmap="gray", vmin=0, vmax=255)  # the scene, in grey
    shown = right.imshow(ratio, cmap="inferno", norm=norm, alpha=0.25 + 0.65 * strength)
    bar = fig.colorbar(shown, ax=right, fraction=0.035, ticks=ticks, extend="max")
    bar.solids.set_alpha(1.0)
    bar.ax.set_yticklabels(labels)
    bar.set_label("attention weight / uniform weight 1/N")
    right.set_title(f"where it attends: peak {ratio.max():.1f}x uniform")
    for ax in (left, right):
        ax.plot(*point, marker="*", color="white", markeredgecolor="black", markersize=16)
        ax.axis("off")
    return _save(fig, path)


CAM_EXPLANATION = (
    "Channel attention (CAM): each panel is one feature channel after the attention, the sum of "
    "all channels weighted by how strongly this channel attends to them (softmax(E) X, without "
    "the residual), at the image's size. Bright: strong response; each panel has its own scale."
)


BRIGHT_SHARE = 0.1
"""A CAM panel's title names the predicted class that covers most of the map's brightest tenth."""


def brightest_class(heat: np.ndarray, pred: np.ndarray, names: Sequence[str]) -> str:
    """The predicted class most of the brightest :data:`BRIGHT_SHARE` of ``heat`` lies on, and
    its share there, in words: ``"brightest on car (64% of its top tenth)"``."""
    top = heat >= np.quantile(heat, 1 - BRIGHT_SHARE)
    counts = np.bincount(pred[top].ravel(), minlength=len(names))
    k = int(counts.argmax())
    return f"brightest on {names[k]} ({counts[k] / max(counts.sum(), 1):.0%} of its top tenth)"


def _cam_figure(
    image: np.ndarray,
    maps: np.ndarray,
    channels: Sequence[int],
    path: Path,
    notes: Sequence[str] = (),
) -> Path:
    cols = 1 + len(channels)
    rows = 1 if cols <= 4 else 2
    cols = -(-cols // rows)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows + 0.8), layout="constrained")
    fig.suptitle(textwrap.fill(CAM_EXPLANATION, 45 * cols), fontsize=9)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    axes[0].imshow(image)
    axes[0].set_title("the image")
    notes = list(notes) or [""] * len(channels)
    for ax, channel, heat, note in zip(axes[1:], channels, maps, notes, strict=False):
        shown = ax.imshow(heat, cmap="viridis")
        fig.colorbar(shown, ax=ax, fraction=0.04, label="response (a.u.)")
        title = f"channel {channel} after channel attention"
        ax.set_title(f"{title}\n{note}" if note else title, fontsize=9)
    for ax in axes:
        ax.axis("off")
    return _save(fig, path)


def parse_points(texts: Sequence[str]) -> list[tuple[int, int]]:
    """``danet attention --points``: ``"x,y"`` strings to pixel coordinates."""
    points = []
    for text in texts:
        try:
            x, y = (int(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"--points: {text!r} is not x,y") from None
        points.append((x, y))
    return points


def default_points(width: int, height: int) -> list[tuple[int, int]]:
    """Three pixels on a line at 60% of the height, used when none are given."""
    y = int(height * 0.6)
    return [(width // 4, y), (width // 2, y), (3 * width // 4, y)]


@torch.no_grad()
def attention_figures(
    model: DANet | str | Path,
    image: str | Path | np.ndarray,
    points: Sequence[tuple[int, int]],
    out: str | Path,
    channels: Sequence[int] | None = None,
    device: str = "cpu",
) -> list[Path]:
    """Draw the paper's attention figures of ``model`` (a checkpoint is opened on ``device``)
    for one image; returns the PNGs written into ``out``.

    - ``pam_x<X>_y<Y>.png`` per point (x, y in image pixels; :func:`default_points` when empty):
      the pixel's position-attention map drawn over the image, as multiples of the uniform weight
      1/N on a scale from 0 with labelled ticks (:func:`attention_scale`), so that a flat row
      looks flat and a peaked row peaked; the title gives the peak's multiple of uniform.
    - ``cam_channels.png``: the channel-attended maps ``softmax(E) X`` of ``channels``, or of
      :func:`distinct_channels`, each with a colour bar, under a sentence saying what they are.
    """
    if isinstance(model, (str, Path)):  # a checkpoint, as callers gave before
        origin, model = str(model), load(model, map_location=device)
    else:
        origin = "model"
    device = next(model.parameters()).device
    name = str(image) if isinstance(image, (str, Path)) else "the image"
    rgb = read_image(image) if isinstance(image, (str, Path)) else as_rgb(image)
    h, w = rgb.shape[:2]
    branches = model.head.branches
    if "pam" not in branches and "cam" not in branches:
        raise ValueError(f"{origin}: model has attention='none', no attention maps to draw")
    if points and "pam" not in branches:
        raise ValueError(
            f"{origin}: model has attention={model.head.attention!r}, without position "
            "attention; drop the points to draw the channel attention only"
        )
    if channels and "cam" not in branches:
        raise ValueError(
            f"{origin}: model has attention={model.head.attention!r}, without channel "
            "attention; drop the channels to draw the position attention only"
        )
    points = [(int(x), int(y)) for x, y in points] or default_points(w, h)
    for x, y in points:
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"point ({x}, {y}) is outside {name}, which is {w}x{h} (x, y)")

    input_size = model.config.get("input_size") or (h, w)
    x_in = torch.from_numpy(prepare(rgb, input_size, model.mean, model.std))[None]
    with AttentionInputs(model) as probe, torch.no_grad():
        logits = model(x_in.to(device))["out"]  # (1, K, h', w')
    features = probe.pop()
    pred = F.interpolate(logits.float(), (h, w), mode="bilinear", align_corners=False)
    pred = pred[0].argmax(0).cpu().numpy()  # (H, W)
    attended = None
    if "cam" in features:
        attended = cam_attended(branches["cam"].attention, features["cam"])[0]  # (C, h, w)
        c = attended.shape[0]
        bad = [ch for ch in channels or () if not 0 <= ch < c]
        if bad:
            raise ValueError(f"channels {bad} are outside 0..{c - 1} of the CAM")
        channels = list(channels) if channels else distinct_channels(attended)

    out = Path(out)
    written = []
    if "pam" in features:
        feats = features["pam"]
        fh, fw = feats.shape[-2:]
        indices = torch.tensor([_feature_index(p, (h, w), (fh, fw)) for p in points])
        rows = pam_rows(branches["pam"].attention, feats, indices.to(device))[0]  # (P, N)
        heat = _upsample(rows.reshape(-1, fh, fw).cpu() * (fh * fw), (h, w))  # x uniform
        for point, heat_map in zip(points, heat, strict=True):
            path = out / f"pam_x{point[0]}_y{point[1]}.png"
            written.append(_pam_figure(rgb, point, heat_map, path))
    if attended is not None:
        maps = _upsample(attended[channels].cpu(), (h, w))
        names = model.class_names
        notes = [brightest_class(m, pred, names) for m in maps]
        written.append(_cam_figure(rgb, maps, channels, out / "cam_channels.png", notes))
    return written
