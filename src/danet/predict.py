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

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch.distributed as dist
from PIL import Image

from danet.data import DataError, read_image
from danet.data.io import IMAGE_EXTENSIONS, MAX_PIXELS, check_pixels, list_images
from danet.inference import predict_labels, small_image_warning
from danet.legend import add_legend, classes_by_area
from danet.model import DANet
from danet.onnx_runtime import load_model
from danet.progress import progress as progress_bar

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
OVERLAY_ALPHA = 0.5
LEGENDS = ("color", "overlay", "both", "none")


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
    return cv2.addWeighted(image, 1 - alpha, color, alpha, 0.0)  # uint8 throughout, rounded


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


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder)


def collect_inputs(inputs: Sequence[str | Path], out: str | Path | None = None) -> list[Input]:
    """Expand folders recursively to their images; check that every path exists and that no two
    inputs would write the same output files.

    A folder's images inside ``out`` (the output folder, ``predictions`` inside the input folder
    by default) are left out, so that ``danet predict .`` run twice does not predict its own
    output; a file named on its own is always taken."""
    skip = Path(out).resolve() if out is not None else None
    files: list[Input] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = list_images(path, recursive=True)
            if skip is not None and not _inside(path, skip):
                images = [p for p in images if not _inside(p, skip)]
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
    return files


Frame = tuple[str, np.ndarray]  # output name (relative, without suffix), RGB image


def _frames(
    files: Sequence[Input],
    strict: bool,
    skipped: list[DataError],
    max_pixels: int | None = None,
    rank: int = 0,
    world: int = 1,
) -> Iterator[Frame]:
    """Decode inputs one at a time, as they are needed; report and skip unreadable ones. With
    ``world`` > 1, only every world-th image or frame, from ``rank`` on."""
    count = 0
    for item in files:
        try:
            if item.is_video:
                for index, frame in _video_frames(item.path, max_pixels):
                    if count % world == rank:
                        yield f"{item.name}_{index:06d}", frame
                    count += 1
            else:
                if count % world == rank:  # only this rank's images are decoded
                    yield str(item.name), read_image(item.path, max_pixels)
                count += 1
        except DataError as err:
            if strict:
                raise
            skipped.append(err)
            if len(files) > 1 or count > 0:  # else it is the only error, raised at the end
                print(f"danet: warning: skipped {err}", file=sys.stderr)


def _batches(
    frames: Iterator[Frame], batch_size: int, max_pixels: int | None = None
) -> Iterator[list[Frame]]:
    """Consecutive frames of the same size, at most ``batch_size`` of them and at most
    ``max_pixels`` pixels in all (but always at least one frame)."""
    budget = MAX_PIXELS if max_pixels is None else max_pixels
    batch: list[Frame] = []
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


def save_label_png(labels: np.ndarray, palette: np.ndarray, path: Path) -> Path:
    """Write HxW class indices as a palette PNG (mode ``P``): it opens in colour and
    ``np.asarray(Image.open(path))`` gives the indices back."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), np.uint8)
    flat[: len(palette)] = palette
    image.putpalette(flat.ravel().tolist())
    image.save(path)
    return path


def _save_png(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path)
    return path


def class_names(model: DANet) -> list[str]:
    """The checkpoint's class names, or ``class <k>`` when its config has none."""
    names = model.config.get("class_names")
    return list(names) if names else [f"class {k}" for k in range(model.num_classes)]


def write_overlay_video(frames: Sequence[Path], path: Path, fps: float) -> Path:
    """Encode overlay PNGs as an H.264 MP4 (yuv420p, ``+faststart``): what browsers play.

    PyAV's wheel carries the encoder (libx264), so no system FFmpeg is needed. Frames take the
    first frame's size (a frame with a taller legend panel is resized to it), padded with black
    to even sides, as yuv420p needs.
    """
    import av

    first = _rgb_png(frames[0])
    h, w = first.shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = w + w % 2, h + h % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20"}
        for frame in frames:
            image = first if frame == frames[0] else _rgb_png(frame)
            if image.shape[:2] != (h, w):  # a taller legend panel on some frame
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder
    return path


def _rgb_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


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
    resize: str | None = None,
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
    checkpoint's) say how an image meets the model (:mod:`danet.inference`; by default
    ``"keep-aspect"``, or ``"squash"`` for an ONNX file exported at a fixed size). Unreadable files
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
    if resize is None:
        resize = "squash" if getattr(model, "fixed_size", False) else "keep-aspect"
    palette = model_palette(model)
    names = class_names(model)
    input_size = input_size or model.config.get("input_size")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(_frame_count(item.path) if item.is_video else 1 for item in files)
    written: list[Path] = []
    skipped: list[DataError] = []
    overlays: dict[str, Path] = {}
    shard = len(range(rank, total, world))
    with progress_bar(shard, "predict", unit="img", quiet=not progress) as bar:
        frames = _frames(files, strict, skipped, max_pixels, rank, world)
        for batch in _batches(frames, batch_size, max_pixels):
            images = [image for _, image in batch]
            labels = predict_labels(
                model, images, scales, flip, sliding_window, input_size, resize, device
            )  # (B, H, W) uint8
            for (name, image), label in zip(batch, labels, strict=True):
                message = small_image_warning(*image.shape[:2], input_size)
                if message:
                    print(f"danet: warning: {name}: {message}", file=sys.stderr)
                stem = out / name
                stem.parent.mkdir(parents=True, exist_ok=True)
                written.append(
                    save_label_png(label, palette, stem.with_name(f"{stem.name}_label.png"))
                )
                shown = classes_by_area(label, model.num_classes) if legend != "none" else []
                # each picture is written and let go before the next: a photo's memory is a few
                # copies of its pixels, not one per output
                color = colorize(label, palette)
                blended = overlay(image, color)
                if legend in ("color", "both"):
                    color = add_legend(color, shown, names, palette)
                written.append(_save_png(color, stem.with_name(f"{stem.name}_color.png")))
                del color
                if legend in ("overlay", "both"):
                    blended = add_legend(blended, shown, names, palette)
                written.append(_save_png(blended, stem.with_name(f"{stem.name}_overlay.png")))
                del blended
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
        raise DataError(f"none of the {len(skipped)} inputs could be read (warnings above)")
    if skipped:
        print(f"danet: warning: skipped {len(skipped)} unreadable file(s)", file=sys.stderr)
    return written
