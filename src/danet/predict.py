"""``danet predict``: label, colour and overlay PNGs for image files, folders and videos.

Folders are searched recursively and their layout is kept under ``out``; images keep their aspect
ratio (:mod:`danet.inference`'s ``keep-aspect``); a file that cannot be read is reported on stderr
and skipped unless ``strict``; label PNGs are palette images (indices that open in colour).

Memory is bounded by a pixel budget (``max_pixels``, default ``danet.data.io.MAX_PIXELS``):
images are decoded one at a time, an image or video frame larger than the budget is refused
before it is decoded, and a batch holds at most ``batch_size`` images and at most the budget's
worth of pixels, so large images go one at a time.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
from PIL import Image

from danet.checkpoint import atomic_write, remove_stale_temp_files
from danet.data import DataError, read_image
from danet.data.io import IMAGE_EXTENSIONS, MAX_PIXELS, check_pixels, list_images
from danet.data.transforms import normalize
from danet.inference import check_run_size, predict_probs, run_sizes
from danet.legend import add_legend, classes_by_area
from danet.model import DANet
from danet.onnx_runtime import load_model
from danet.progress import progress as progress_bar
from danet.progress import shrink

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
OVERLAY_ALPHA = 0.5
LEGENDS = ("color", "overlay", "both", "none")
OUTPUTS = ("label", "color", "overlay")
"""Each image or frame ``<name>`` gets ``<name>_label.png``, ``_color.png`` and ``_overlay.png``."""


def make_palette(num_classes: int) -> np.ndarray:
    """A (K, 3) uint8 palette of distinct colours (PASCAL VOC's bit-interleaving scheme)."""
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for k in range(num_classes):
        label, r, g, b = k, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (label & 1) << shift
            g |= ((label >> 1) & 1) << shift
            b |= ((label >> 2) & 1) << shift
            label >>= 3
        palette[k] = (r, g, b)
    return palette


def model_palette(model: DANet) -> np.ndarray:
    """The checkpoint's palette as (K, 3) uint8, or a generated one when its config has none."""
    palette = model.config.get("palette")
    if palette is None:
        return make_palette(model.num_classes)
    return np.asarray(palette, dtype=np.uint8).reshape(model.num_classes, 3)


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """HxW class indices to an HxWx3 uint8 colour image."""
    return palette[labels]


def overlay(image: np.ndarray, color: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """Alpha-blend a colour label image onto an RGB image (both HxWx3 uint8)."""
    blend = (1 - alpha) * image.astype(np.float32) + alpha * color.astype(np.float32)
    return (blend + 0.5).astype(np.uint8)


def _video_frames(path: Path, max_pixels: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB frame) of each frame of a video.

    A video that ends before the frame count in its header says so on stderr (read against
    promised); the frames read are still used, since some containers only estimate the count.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: cannot open as a video")
    promised = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    try:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        check_pixels(path, width, height, max_pixels)
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise DataError(f"{path}: video has no readable frames")
    if index < promised:
        print(
            f"danet: warning: {path}: read {index} of the {promised} frames its header promises "
            f"(truncated or damaged?); predicted the {index} read",
            file=sys.stderr,
        )


def _frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return max(count, 0)


@dataclass(frozen=True)
class Input:
    """A file to segment and the output name it gets under ``out`` (its folder-relative path
    without suffix, e.g. ``frankfurt/frankfurt_000000_000294_leftImg8bit``)."""

    path: Path
    name: Path

    @property
    def is_video(self) -> bool:
        """Whether the file is read as a video (by its suffix)."""
        return self.path.suffix.lower() in VIDEO_EXTENSIONS


def _warn_symlinked_folders(folder: Path) -> None:
    """Say which subfolders of ``folder`` are symlinks: the recursive search does not enter them
    (a link to a parent would loop)."""
    for root, dirs, _ in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in dirs:
            if os.path.islink(os.path.join(root, name)):
                print(
                    f"danet: warning: {os.path.join(root, name)}: a symlinked folder, not searched "
                    "(give it as an input of its own to predict its images)",
                    file=sys.stderr,
                )


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def collect_inputs(inputs: Sequence[str | Path], out: str | Path | None = None) -> list[Input]:
    """Expand folders recursively to their images; check that every path exists, that no two
    inputs would write the same output files, and that no output would land on an input.

    A folder's search skips ``out`` when ``out`` lies inside it (``danet predict .`` never reads
    its own earlier predictions) and warns about the symlinked subfolders it does not enter.
    """
    out_dir = Path(out).resolve() if out is not None else None
    files: list[Input] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = list_images(path, recursive=True)
            root = path.resolve()
            if out_dir is not None and out_dir != root and _inside(out_dir, root):
                images = [p for p in images if not _inside(p.resolve(), out_dir)]
            _warn_symlinked_folders(path)
            if not images:
                raise DataError(f"{path}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            files += [Input(p, p.relative_to(path).with_suffix("")) for p in images]
        elif path.is_file():
            files.append(Input(path, Path(path.stem)))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    seen: dict[Path, Path] = {}
    for item in files:
        if item.name in seen:
            raise ValueError(
                f"{seen[item.name]} and {item.path} would write the same output files "
                f"{item.name}_*.png"
            )
        seen[item.name] = item.path
    if out is not None:
        _check_outputs_miss_inputs(files, Path(out))
    return files


def _check_outputs_miss_inputs(files: Sequence[Input], out: Path) -> None:
    """Raise a ValueError naming both when an output file of one input is another input."""
    inputs = {item.path.resolve(): item.path for item in files}
    for item in files:
        stem = out / item.name
        if item.is_video:
            frame = re.compile(re.escape(stem.name) + r"_\d{6}_(label|color|overlay)\.png")
            parent = stem.parent.resolve()
            taken = [
                shown
                for real, shown in inputs.items()
                if real.parent == parent and frame.fullmatch(real.name)
            ]
            taken += [shown for real, shown in inputs.items()
                      if real == stem.with_name(f"{stem.name}_overlay.mp4").resolve()]  # fmt: skip
        else:
            names = [stem.with_name(f"{stem.name}_{kind}.png").resolve() for kind in OUTPUTS]
            taken = [inputs[p] for p in names if p in inputs]
        if taken:
            raise ValueError(
                f"{taken[0]}: an input that the output for {item.path} would overwrite; give "
                "another --out (predict never writes over its inputs)"
            )


Frame = tuple[str, np.ndarray]  # output name (relative, without suffix), RGB image


def _frames(
    files: Sequence[Input],
    strict: bool,
    skipped: list[DataError],
    max_pixels: int | None = None,
    rank: int = 0,
    world: int = 1,
    check: Callable[[Path, np.ndarray], None] | None = None,
    shortfall: Callable[[int], None] | None = None,
) -> Iterator[Frame]:
    """Decode inputs one at a time, as they are needed; report and skip unreadable ones. With
    ``world`` > 1, only every world-th image or frame, from ``rank`` on. ``check(path, image)``
    may refuse an image with a ``DataError``; ``shortfall(n)`` hears of the n images or frames
    this rank counted on (a video's header count) and did not yield."""
    count = 0
    for item in files:
        start, mine = count, 0
        promised = _frame_count(item.path) if item.is_video else 1
        try:
            if item.is_video:
                for index, frame in _video_frames(item.path, max_pixels):
                    if count % world == rank:
                        if check is not None:
                            check(item.path, frame)
                        mine += 1
                        yield f"{item.name}_{index:06d}", frame
                    count += 1
            else:
                if count % world == rank:  # only this rank's images are decoded
                    image = read_image(item.path, max_pixels)
                    if check is not None:
                        check(item.path, image)
                    mine += 1
                    yield str(item.name), image
                count += 1
        except DataError as err:
            if strict:
                raise
            skipped.append(err)
            print(f"danet: warning: skipped {err}", file=sys.stderr)
        expected = len(range(start + (rank - start) % world, start + promised, world))
        if shortfall is not None and expected > mine:
            shortfall(expected - mine)


def _batches(
    frames: Iterator[Frame],
    batch_size: int,
    max_pixels: int | None = None,
    pixels_of: Callable[[np.ndarray], int] | None = None,
) -> Iterator[list[Frame]]:
    """Consecutive frames of the same size, at most ``batch_size`` of them and at most
    ``max_pixels`` pixels in all (but always at least one frame); ``pixels_of(image)`` counts an
    image's pixels (default: as decoded; predict counts the size the model runs at)."""
    budget = MAX_PIXELS if max_pixels is None else max_pixels
    batch: list[Frame] = []
    for name, image in frames:
        pixels = pixels_of(image) if pixels_of else image.shape[0] * image.shape[1]
        if batch and (
            len(batch) == batch_size
            or image.shape != batch[0][1].shape
            or (len(batch) + 1) * pixels > budget
        ):
            yield batch
            batch = []
        batch.append((name, image))
    if batch:
        yield batch


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


def _save_png(array: np.ndarray, path: Path) -> Path:
    image = Image.fromarray(array)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def class_names(model: DANet) -> list[str]:
    """The checkpoint's class names, or ``class <k>`` when its config has none."""
    names = model.config.get("class_names")
    return list(names) if names else [f"class {k}" for k in range(model.num_classes)]


def write_overlay_video(frames: Sequence[Path], path: Path, fps: float) -> Path:
    """Encode overlay PNGs (all the same size) as an MP4 video (``mp4v``)."""
    first = cv2.imread(str(frames[0]))
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot write an mp4v video here")
    try:
        for frame in frames:
            image = cv2.imread(str(frame))
            if image.shape[:2] != (h, w):  # a taller legend panel on some frame
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            writer.write(image)
    finally:
        writer.release()
    return path


def _video_fps(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return fps or 25.0


def predict_paths(
    checkpoint: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    sliding_window: bool = False,
    batch_size: int = 4,
    device: str = "cpu",
    resize: str = "keep-aspect",
    input_size: Sequence[int] | None = None,
    strict: bool = False,
    legend: str = "color",
    overlay_video: bool = False,
    progress: bool = True,
    max_pixels: int | None = None,
    backend: str = "torch",
    int8: bool = False,
) -> list[Path]:
    """Segment images, folders of images (recursively) and videos; write three PNGs per image.

    For each input ``<name>`` (its path relative to the folder given, without suffix;
    ``<video-stem>_<frame:06d>`` for video frames) ``out`` gets ``<name>_label.png`` (class
    indices as a palette PNG, the input's size), ``<name>_color.png`` (the checkpoint's palette)
    and ``<name>_overlay.png`` (the colours blended onto the image). ``legend`` adds the class
    legend to the ``"color"`` images (default), the ``"overlay"`` ones, ``"both"`` or ``"none"``;
    the image keeps its pixels at the top left. ``overlay_video`` also writes
    ``<video-stem>_overlay.mp4`` per video. ``resize`` and ``input_size`` (default: the
    checkpoint's) say how an image meets the model (:mod:`danet.inference`). Unreadable files
    are reported on stderr and skipped, unless ``strict`` (when none can be read, the first
    one's ``DataError`` is raised). Returns the written paths. Images
    over ``max_pixels`` (default ``danet.data.io.MAX_PIXELS``) are refused (skipped unless
    ``strict``), and batches hold at most that many pixels. ``backend``/``int8`` pick the
    runtime (see :func:`danet.onnx_runtime.load_model`). Under torch.distributed each rank
    segments every world-th image or frame and returns the paths it wrote.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    if legend not in LEGENDS:
        raise ValueError(f"legend={legend!r} is not one of {LEGENDS}")
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if overlay_video and world > 1:
        raise ValueError("--overlay-video needs one process: its frames would be split over ranks")
    files = collect_inputs(inputs, out)
    model = load_model(checkpoint, backend, int8, device)
    if model.num_classes > 256:
        raise ValueError(f"{checkpoint}: {model.num_classes} classes do not fit a uint8 label PNG")
    palette = model_palette(model)
    names = class_names(model)
    input_size = input_size or model.config.get("input_size")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for folder in {(out / item.name).parent for item in files}:  # of killed runs
        remove_stale_temp_files(folder, tuple(f"*_{kind}.png" for kind in OUTPUTS))
    total = sum(_frame_count(item.path) if item.is_video else 1 for item in files)
    written: list[Path] = []
    skipped: list[DataError] = []
    overlays: dict[str, Path] = {}
    shard = len(range(rank, total, world))

    def check(path: Path, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        check_run_size(h, w, input_size, resize, scales, sliding_window, max_pixels, str(path))

    def run_pixels(image: np.ndarray) -> int:
        sizes = run_sizes(*image.shape[:2], input_size, resize, scales, sliding_window)
        return max(h * w for h, w in sizes)

    with progress_bar(shard, "predict", unit="img", quiet=not progress) as bar:

        def shortfall(n: int) -> None:  # skipped inputs leave the count ("1/1", not "1/2")
            shrink(bar, n)

        frames = _frames(files, strict, skipped, max_pixels, rank, world, check, shortfall)
        for batch in _batches(frames, batch_size, max_pixels, run_pixels):
            x = torch.stack([normalize(image, model.mean, model.std) for _, image in batch])
            probs = predict_probs(
                model, x.to(device), scales, flip, sliding_window, input_size, resize, max_pixels
            )
            labels = probs.argmax(1).to(torch.uint8).cpu().numpy()  # (B, H, W)
            for (name, image), label in zip(batch, labels, strict=True):
                color = colorize(label, palette)
                blended = overlay(image, color)
                if legend != "none":
                    shown = classes_by_area(label, model.num_classes)
                    if legend in ("color", "both"):
                        color = add_legend(color, shown, names, palette)
                    if legend in ("overlay", "both"):
                        blended = add_legend(blended, shown, names, palette)
                stem = out / name
                stem.parent.mkdir(parents=True, exist_ok=True)
                written += [
                    save_label_png(label, palette, stem.with_name(f"{stem.name}_{OUTPUTS[0]}.png")),
                    _save_png(color, stem.with_name(f"{stem.name}_{OUTPUTS[1]}.png")),
                    _save_png(blended, stem.with_name(f"{stem.name}_{OUTPUTS[2]}.png")),
                ]
                overlays[name] = written[-1]
            bar.update(len(batch))
    if overlay_video:
        for item in files:
            frames = [p for n, p in overlays.items() if n.rsplit("_", 1)[0] == str(item.name)]
            if item.is_video and frames:
                video = out / f"{item.name}_overlay.mp4"
                written.append(write_overlay_video(frames, video, _video_fps(item.path)))
    if skipped and not written:  # nothing could be read: an error, as with --strict
        if len(skipped) == 1:
            raise skipped[0]
        raise DataError(f"none of the {len(skipped)} inputs could be read; first: {skipped[0]}")
    if skipped:
        print(f"danet: warning: skipped {len(skipped)} unreadable file(s)", file=sys.stderr)
    return written
