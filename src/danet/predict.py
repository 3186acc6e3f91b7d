"""``danet predict``: label, colour and overlay PNGs for image files, folders and videos.

Memory is bounded by a pixel budget (``max_pixels``, default ``danet.data.io.MAX_PIXELS``):
images are decoded one at a time, an image or video frame larger than the budget is refused
before it is decoded, and a batch holds at most ``batch_size`` images and at most the budget's
worth of pixels, so large images go one at a time.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from tqdm import tqdm

from danet.data import DataError, read_image
from danet.data.io import IMAGE_EXTENSIONS, MAX_PIXELS, check_pixels, list_images
from danet.data.transforms import normalize
from danet.inference import predict_probs
from danet.model import DANet
from danet.onnx_runtime import load_model

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
OVERLAY_ALPHA = 0.5


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


def _video_frames(path: Path, max_pixels: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """The frames of a video, named ``<stem>_<index:06d>``.

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
            yield f"{path.stem}_{index:06d}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise DataError(f"{path}: video has no readable frames")
    if index < promised:
        tqdm.write(
            f"danet: warning: {path}: read {index} of the {promised} frames its header promises "
            f"(truncated or damaged?); predicted the {index} read",
            file=sys.stderr,
        )


def _frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return max(count, 0)


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand folders to their images; check that every path exists and names are unique."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = list_images(path)
            if not images:
                raise DataError(f"{path}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            files += images
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise ValueError(
                f"{seen[path.stem]} and {path} would write the same output files {path.stem}_*.png"
            )
        seen[path.stem] = path
    return files


def _frames(
    files: Sequence[Path], max_pixels: int | None = None, rank: int = 0, world: int = 1
) -> Iterator[tuple[str, np.ndarray]]:
    """Decode inputs one at a time, as they are needed; with ``world`` > 1, only every
    world-th image or frame, from ``rank`` on."""
    index = 0
    for path in files:
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            for name, frame in _video_frames(path, max_pixels):
                if index % world == rank:
                    yield name, frame
                index += 1
        else:
            if index % world == rank:
                yield path.stem, read_image(path, max_pixels)  # only this rank's images
            index += 1


def _batches(
    frames: Iterator[tuple[str, np.ndarray]], batch_size: int, max_pixels: int | None = None
) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Consecutive frames of the same size, at most ``batch_size`` of them and at most
    ``max_pixels`` pixels in all (but always at least one frame)."""
    budget = MAX_PIXELS if max_pixels is None else max_pixels
    batch: list[tuple[str, np.ndarray]] = []
    for name, image in frames:
        pixels = image.shape[0] * image.shape[1]
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


def _save_png(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path)
    return path


def predict_paths(
    checkpoint: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    sliding_window: bool = False,
    batch_size: int = 4,
    device: str = "cpu",
    max_pixels: int | None = None,
    backend: str = "torch",
    int8: bool = False,
) -> list[Path]:
    """Segment images, folders of images and videos; write three PNGs per image or frame.

    For each input ``<stem>`` (``<video-stem>_<frame:06d>`` for video frames) ``out`` gets
    ``<stem>_label.png`` (uint8 class indices, the input's size), ``<stem>_color.png`` (the
    checkpoint's palette) and ``<stem>_overlay.png`` (the colours blended onto the image).
    Returns the written paths. Images over ``max_pixels`` (default
    ``danet.data.io.MAX_PIXELS``) are refused, and batches hold at most that many pixels.
    ``backend``/``int8`` pick the runtime (see :func:`danet.onnx_runtime.load_model`). Under
    torch.distributed each rank segments every world-th image or frame and returns the paths
    it wrote.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    files = collect_inputs(inputs)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    model = load_model(checkpoint, backend, int8, device)
    if model.num_classes > 256:
        raise ValueError(f"{checkpoint}: {model.num_classes} classes do not fit a uint8 label PNG")
    palette = model_palette(model)
    input_size = model.config.get("input_size")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(_frame_count(p) if p.suffix.lower() in VIDEO_EXTENSIONS else 1 for p in files)
    written: list[Path] = []
    with tqdm(total=len(range(rank, total, world)), desc="predict", unit="img") as bar:
        for batch in _batches(_frames(files, max_pixels, rank, world), batch_size, max_pixels):
            x = torch.stack([normalize(image, model.mean, model.std) for _, image in batch])
            probs = predict_probs(model, x.to(device), scales, flip, sliding_window, input_size)
            labels = probs.argmax(1).to(torch.uint8).cpu().numpy()  # (B, H, W)
            for (name, image), label in zip(batch, labels, strict=True):
                color = colorize(label, palette)
                written += [
                    _save_png(label, out / f"{name}_label.png"),
                    _save_png(color, out / f"{name}_color.png"),
                    _save_png(overlay(image, color), out / f"{name}_overlay.png"),
                ]
            bar.update(len(batch))
    return written
