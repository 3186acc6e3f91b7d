"""What ``danet explore`` computes: one forward pass per image, then one PAM row per click.

Per image, :meth:`Explorer.features` runs the model once and keeps the position attention's
``(s*Q, K)`` and the channel attention's output. Per click, :meth:`Explorer.query` computes that
pixel's single row ``softmax(s * q_i K^T)`` (N values, never the N x N matrix), the row's mass
per class, its reach figures and the CAM channels that respond most at the pixel.
:class:`Sessions` keeps each page session's picture and features, bounded in number and age;
:func:`click_point` checks a click's coordinates. This module has no Gradio in it;
``danet.app.ui`` draws the page.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from danet.analysis.diagnostics import REACH_RADIUS, AttentionInputs, attention_modules, row_reach
from danet.assets import samples_dir
from danet.data.io import DataError, read_image, read_mask
from danet.inference.render import class_names, model_palette
from danet.model.segment import main_logits
from danet.utils.images import prepare
from danet.utils.inference import inference_size

SAMPLES_DIR = samples_dir("camvid")
"""The bundled CamVid frames (``val/``) and their label masks (``valannot/``)."""
WORK_PIXELS = 1024 * 1024
"""The most pixels an image is run at, after its short side is brought to the model's."""
TOP_CHANNELS = 5
MAX_ASPECT = 16
"""Images with one side over this many times the other are refused: at the model's short side
they would be all width and no height."""
MIN_WORK_SIDE = 32
"""The shortest side an image is run at (the model's smallest input)."""
SESSION_LIMIT = 32
"""At most this many page sessions keep their picture and features; the oldest goes first."""
SESSION_TTL_S = 30 * 60
"""A session's picture and features are dropped this many seconds after its last use."""


@dataclass
class Picture:
    """An image at the size the models run at, with its ground truth when known."""

    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray | None  # (H, W) int64 class indices, -1 unlabelled; None: no label file
    source_size: tuple[int, int] | None = None  # (H, W) of the file; None: as rgb

    def source_point(self, x: int, y: int) -> tuple[int, int]:
        """Pixel (x, y) of :attr:`rgb` in the coordinates of the file the picture was read from."""
        h, w = self.rgb.shape[:2]
        sh, sw = self.source_size or (h, w)
        return min(int((x + 0.5) * sw / w), sw - 1), min(int((y + 0.5) * sh / h), sh - 1)


def sample_images() -> dict[str, Path]:
    """The bundled sample images by name (file stem)."""
    return {p.stem: p for p in sorted((SAMPLES_DIR / "val").glob("*.jpg"))}


def work_size(height: int, width: int, input_size: list[int] | None) -> tuple[int, int]:
    """(H, W) an image is shown and run at: its short side at the model's (keep-aspect), and at
    most :data:`WORK_PIXELS` pixels."""
    h, w = inference_size(height, width, input_size, "keep-aspect")
    shrink = min(1.0, math.sqrt(WORK_PIXELS / (h * w)))
    return max(round(h * shrink), MIN_WORK_SIDE), max(round(w * shrink), MIN_WORK_SIDE)


def load_picture(
    path: str | Path,
    input_size: list[int] | None,
    num_classes: int,
    label_path: str | Path | None = None,
    max_pixels: int | None = None,
) -> Picture:
    """Read an image (refused above the pixel budget, as ``danet predict`` does; a bad file
    raises ``DataError`` naming it) and its label mask, resized to :func:`work_size`."""
    rgb = read_image(path, max_pixels)
    source = rgb.shape[:2]
    if max(source) > MAX_ASPECT * min(source):
        raise DataError(
            f"{path}: the image is {source[1]}x{source[0]}, too thin to explore (one side more "
            f"than {MAX_ASPECT} times the other); crop it"
        )
    h, w = work_size(*source, input_size)
    if (h, w) != rgb.shape[:2]:
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
    labels = None
    if label_path is not None and Path(label_path).is_file():
        mask = read_mask(label_path)
        mask = np.asarray(Image.fromarray(mask.astype(np.int32)).resize((w, h), Image.NEAREST))
        labels = np.where(mask < num_classes, mask, -1).astype(np.int64)
    return Picture(Path(path).stem, rgb, labels, (int(source[0]), int(source[1])))


def load_sample(name: str, input_size: list[int] | None, num_classes: int) -> Picture:
    """A bundled sample with its label mask."""
    path = sample_images()[name]
    return load_picture(path, input_size, num_classes, SAMPLES_DIR / "valannot" / f"{name}.png")


@dataclass
class Features:
    """One model on one picture: what every click reuses."""

    pred: np.ndarray  # (H, W) predicted classes
    size: tuple[int, int]  # (h, w) of the attention's feature map
    keys: torch.Tensor  # (N,) class of each feature pixel, -1 unlabelled
    label_source: str  # "ground truth" or "prediction"
    q: torch.Tensor | None  # (N, d) s*Q of the PAM
    k: torch.Tensor | None  # (N, d) K of the PAM
    cam_out: torch.Tensor | None  # (C, n) softmax(E) X, the attended channels


@dataclass
class Query:
    """One clicked pixel's PAM row and what is read from it."""

    index: int  # flat index in the feature map
    row: torch.Tensor | None  # (N,) the PAM row, sums to 1
    class_mass: np.ndarray | None  # (K + 1,) row mass per class; the last: unlabelled keys
    reach: dict[str, float]  # diagnostics.row_reach; no class figures for an unlabelled query
    query_class: int  # -1: unlabelled
    channels: list[tuple[int, float]]  # CAM channels brightest here: (channel, x its mean)


class Explorer:
    """One model, ready to answer clicks. ``name`` is how the page calls it."""

    def __init__(self, model: nn.Module, name: str) -> None:
        self.model = model.eval()
        self.name = name
        self.attention = str(model.config.get("attention", "both"))
        modules = attention_modules(model)
        self.pam, self.cam = modules.get("pam"), modules.get("cam")
        self.class_names = class_names(model)
        self.palette = model_palette(model)
        self.num_classes = len(self.class_names)
        self.input_size = model.config.get("input_size")

    def missing(self) -> dict[str, str]:
        """A sentence for each attention module this model lacks: {"pam": ..., "cam": ...}."""
        said = f"{self.name} has attention={self.attention!r}"
        out = {}
        if self.pam is None:
            out["pam"] = f"{said}: no position attention (PAM), so no attention row to show."
        if self.cam is None:
            out["cam"] = f"{said}: no channel attention (CAM), so no channel weights to show."
        return out

    @torch.no_grad()
    def features(self, picture: Picture) -> Features:
        """Run the model once on ``picture`` and keep what the clicks need."""
        device = next(self.model.parameters()).device
        x = prepare(picture.rgb, picture.rgb.shape[:2], self.model.mean, self.model.std)
        x = torch.from_numpy(x)[None].to(device)
        with AttentionInputs(self.model) as probe:
            logits = main_logits(self.model, x)
        inputs = probe.pop()
        h, w = picture.rgb.shape[:2]
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, (h, w), mode="bilinear", align_corners=False)
        pred = logits[0].argmax(0).cpu().numpy()
        some = next(iter(inputs.values()), None)
        size = tuple(some.shape[-2:]) if some is not None else (h, w)
        source = "ground truth" if picture.labels is not None else "prediction"
        labels = picture.labels if picture.labels is not None else pred
        keys = F.interpolate(torch.from_numpy(labels)[None, None].float(), size, mode="nearest")
        q = k = cam_out = None
        if "pam" in inputs:
            q, k = (t[0].float().cpu() for t in self.pam.queries_keys(inputs["pam"].float()))
        if "cam" in inputs:
            feats = inputs["cam"].float()
            weights = self.cam.weights(feats)[0].cpu()  # (C, C)
            cam_out = weights @ feats[0].flatten(1).cpu()  # (C, n)
        return Features(pred, size, keys.long().flatten(), source, q, k, cam_out)

    def cell(self, features: Features, picture: Picture, x: int, y: int) -> int:
        """Flat index of the feature pixel that holds image pixel (x, y)."""
        (h, w), (fh, fw) = picture.rgb.shape[:2], features.size
        fx = min(max(int((x + 0.5) * fw / w), 0), fw - 1)
        fy = min(max(int((y + 0.5) * fh / h), 0), fh - 1)
        return fy * fw + fx

    @torch.no_grad()
    def query(self, features: Features, picture: Picture, x: int, y: int) -> Query:
        """The clicked pixel's PAM row (one row: ``softmax(s * q_i K^T)``), its class mass and
        reach, and the CAM channels it draws on."""
        i = self.cell(features, picture, x, y)
        keys = features.keys
        query_class = int(keys[i])
        row = mass = None
        reach: dict[str, float] = {}
        if features.q is not None and features.k is not None:
            row = (features.k @ features.q[i]).softmax(0)  # (N,)
            bins = torch.where(keys >= 0, keys, self.num_classes)
            mass = torch.bincount(bins, weights=row.double(), minlength=self.num_classes + 1)
            mass = mass.numpy()
            labels = keys if query_class >= 0 else None
            reach = row_reach(row, i, features.size, labels, REACH_RADIUS)
        channels: list[tuple[int, float]] = []
        if features.cam_out is not None:
            channels = responding_channels(features.cam_out, i)
        return Query(i, row, mass, reach, query_class, channels)


def responding_channels(
    cam_out: torch.Tensor, index: int, k: int = TOP_CHANNELS
) -> list[tuple[int, float]]:
    """The ``k`` channels of the attended maps ``cam_out`` (C, n) that light up most at feature
    pixel ``index`` against their own average, as (channel, response here / mean response).

    Responses are taken from 0 (the maps are drawn so). A channel quiet everywhere is not chosen
    for a small value divided by a smaller mean: the mean is floored at a tenth of the median
    channel's.
    """
    maps = cam_out.clamp_min(0)  # (C, n)
    mean = maps.mean(dim=1)  # (C,)
    floor = 0.1 * float(mean.median()) + 1e-12
    ratio = maps[:, index] / mean.clamp_min(floor)  # (C,)
    top = ratio.argsort(descending=True)[:k]
    return [(int(c), float(ratio[c])) for c in top if ratio[c] > 0]


def click_point(index: Any, size: tuple[int, int]) -> tuple[int, int]:
    """(x, y) of a click's ``index`` (the page's ``[x, y]``) on a picture of ``size`` (H, W);
    a ValueError saying what is wrong for anything else (not two numbers, not finite, outside)."""
    if not isinstance(index, (list, tuple)) or len(index) != 2:
        raise ValueError(f"a click must be two coordinates [x, y], got {str(index)[:40]!r}")
    coords = []
    for value in index:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"click coordinates must be numbers, got {str(value)[:40]!r}")
        if not math.isfinite(value):
            raise ValueError(f"click coordinates must be finite, got {value!r}")
        coords.append(int(value))
    (x, y), (h, w) = coords, size
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"the click ({x}, {y}) is outside the {w}x{h} picture")
    return x, y


@dataclass
class _Entry:
    value: Any
    used: float = field(default=0.0)


class Sessions:
    """What each page session's clicks reuse, by a random token: at most ``limit`` sessions
    (the least recently used is dropped first), each dropped ``ttl_s`` seconds after its last
    use, so that the server's memory levels off however many visitors come."""

    def __init__(
        self,
        limit: int = SESSION_LIMIT,
        ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or ttl_s <= 0:
            raise ValueError(f"limit must be >= 1 and ttl_s > 0, got {limit} and {ttl_s}")
        self.limit, self.ttl_s, self.clock = limit, ttl_s, clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        for token in [t for t, e in self._entries.items() if now - e.used > self.ttl_s]:
            del self._entries[token]

    def put(self, value: Any) -> str:
        """Keep ``value`` for a new session; returns its token."""
        token = secrets.token_urlsafe(12)
        with self._lock:
            now = self.clock()
            self._expire(now)
            self._entries[token] = _Entry(value, now)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)
        return token

    def get(self, token: Any) -> Any:
        """The value of session ``token``, or None when it is unknown or was dropped."""
        if not isinstance(token, str):
            return None
        with self._lock:
            now = self.clock()
            self._expire(now)
            entry = self._entries.get(token)
            if entry is None:
                return None
            entry.used = now
            self._entries.move_to_end(token)
            return entry.value

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._entries)
