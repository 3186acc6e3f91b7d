"""``danet predict``: label, colour and overlay PNGs for image files, folders and videos.

Folders are searched recursively and their layout is kept under ``out``; images keep their aspect
ratio (:mod:`danet.model.segment`'s ``keep-aspect``); a file that cannot be read is reported on stderr
and skipped unless ``strict``; label PNGs are palette images (indices that open in colour).

Memory is bounded by a pixel budget (``max_pixels``, default ``danet.data.io.MAX_PIXELS``):
images are decoded one at a time, an image or video frame larger than the budget is refused
before it is decoded, and a batch holds at most ``batch_size`` images and at most the budget's
worth of pixels, so large images go one at a time.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from danet.data import DataError, read_image
from danet.data.io import IMAGE_EXTENSIONS, MAX_PIXELS, list_images
from danet.inference.legend import add_legend, classes_by_area
from danet.inference.naming import check_distinct_outputs, frames_of, warn_unsearched_videos
from danet.inference.render import (
    class_names,
    colorize,
    model_palette,
    overlay,
    save_label_png,
    save_png,
)
from danet.inference.video import (
    VIDEO_EXTENSIONS,
    frame_count,
    video_fps,
    video_frames,
    write_overlay_video,
)
from danet.options import LEGENDS, Legend, check_choice
from danet.utils.atomic import remove_stale_temp_files
from danet.utils.inference import (
    InferenceSettings,
    check_run_size,
    fixed_size,
    label_images,
    model_attention,
    model_input_size,
    run_sizes,
    small_image_warning,
)
from danet.utils.progress import progress as progress_bar
from danet.utils.progress import shrink
from danet.utils.ranks import rank_world

logger = logging.getLogger(__name__)
OUTPUTS = ("label", "color", "overlay")
"""Each image or frame ``<name>`` gets ``<name>_label.png``, ``_color.png`` and ``_overlay.png``."""


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
                logger.warning(
                    "%s: a symlinked folder, not searched (give it as an input of its own to "
                    "predict its images)",
                    os.path.join(root, name),
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
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            images = list_images(path, recursive=True)
            root = path.resolve()
            if out_dir is not None and out_dir != root and _inside(out_dir, root):
                images = [p for p in images if not _inside(p.resolve(), out_dir)]
            _warn_symlinked_folders(path)
            warn_unsearched_videos(path)
            if not images:
                raise DataError(f"{path}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            files += [Input(p, p.relative_to(path).with_suffix("")) for p in images]
        elif path.is_file():
            files.append(Input(path, Path(path.stem)))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    check_distinct_outputs(files)
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
        promised = frame_count(item.path) if item.is_video else 1
        try:
            if item.is_video:
                for index, frame in video_frames(item.path, max_pixels):
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
            if len(files) > 1 or count > 0:  # else it is the only error, raised at the end
                logger.warning("skipped %s", err)
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


def predict_paths(
    model: Any,
    inputs: Sequence[str | Path],
    out: str | Path,
    settings: InferenceSettings | None = None,
    *,
    batch_size: int = 4,
    legend: Legend = "color",
    overlay_video: bool = False,
    strict: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Segment images, folders of images (recursively) and videos with ``model`` (a
    :class:`~danet.DANet` or an :class:`~danet.deploy.onnx_runtime.OnnxModel`, from
    :func:`danet.load`); write three PNGs per image.

    For each input ``<name>`` (its path relative to the folder given, without suffix;
    ``<video-stem>_<frame:06d>`` for video frames) ``out`` gets ``<name>_label.png`` (class
    indices as a palette PNG, the input's size), ``<name>_color.png`` (the model's palette) and
    ``<name>_overlay.png`` (the colours blended onto the image). ``settings`` say how images
    meet the model (:mod:`danet.utils.inference`); images over its pixel budget are refused
    (skipped unless ``strict``), and batches of ``batch_size`` hold at most that many pixels.
    ``legend`` adds the class legend to the ``"color"`` images (default), the ``"overlay"``
    ones, ``"both"`` or ``"none"``. ``overlay_video`` also writes ``<video-stem>_overlay.mp4``
    per video. Unreadable files are reported on stderr and skipped, unless ``strict`` (when
    none can be read, the first one's ``DataError`` is raised). Returns the written paths. Under
    torch.distributed each rank segments every world-th image or frame.
    """
    runner = _runner(model, batch_size, legend, overlay_video)
    settings = settings or InferenceSettings()
    max_pixels = settings.max_pixels
    rank, world = rank_world()
    files = collect_inputs(inputs, out)
    input_size = model_input_size(model, settings)
    fit = fixed_size(model) is not None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for folder in {(out / item.name).parent for item in files}:  # of killed runs
        remove_stale_temp_files(folder, (*(f"*_{kind}.png" for kind in OUTPUTS), "*_overlay.mp4"))
    total = sum(frame_count(item.path) if item.is_video else 1 for item in files)
    written: list[Path] = []
    skipped: list[DataError] = []
    overlays: dict[str, Path] = {}
    shard = len(range(rank, total, world))

    check, run_pixels = _size_checks(model, settings, input_size, fit)
    with progress_bar(shard, "predict", unit="img", quiet=not progress) as bar:

        def shortfall(n: int) -> None:  # skipped inputs leave the count ("1/1", not "1/2")
            shrink(bar, n)

        frames = _frames(files, strict, skipped, max_pixels, rank, world, check, shortfall)
        for batch in _batches(frames, batch_size, max_pixels, run_pixels):
            images = [image for _, image in batch]
            labels = label_images(runner, images, settings)  # (B, H, W) uint8
            for (name, image), label in zip(batch, labels, strict=True):
                message = small_image_warning(image.shape[0], image.shape[1], input_size)
                if message:
                    logger.warning("%s: %s", name, message)
                written += write_outputs(out / name, image, label, model, legend)
                overlays[name] = written[-1]
            bar.update(len(batch))
    if overlay_video:
        written += _overlay_videos(files, overlays, out)
    _report_skipped(skipped, written)
    return written


def _size_checks(
    model: Any, settings: InferenceSettings, input_size: Any, fit: bool
) -> tuple[Any, Any]:
    """``check(path, image)``, which refuses (``DataError``) an image over the pixel budget, and
    ``run_pixels(image)``, the most pixels it runs at, for :func:`predict_paths`."""
    attention = model_attention(model)  # an older --dynamic ONNX file's budget is its own

    def check(path: Path, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        try:
            check_run_size(h, w, input_size, settings, str(path), fit, *attention)
        except ValueError as err:
            raise DataError(str(err)) from None

    def run_pixels(image: np.ndarray) -> int:
        sizes = run_sizes(image.shape[0], image.shape[1], input_size, settings, fit)
        return max(h * w for h, w in sizes)

    return check, run_pixels


def _runner(model: Any, batch_size: int, legend: Legend, overlay_video: bool) -> Any:
    """Check :func:`predict_paths`'s arguments; return ``model`` as the inference path runs it
    (any module that maps a batch to ``{"out": logits}`` is wrapped)."""
    if isinstance(model, (str, Path)):
        raise TypeError(
            f"predict_paths takes a model, not {str(model)!r}: open it with danet.load() first"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    check_choice("legend", legend, LEGENDS)
    if overlay_video and rank_world()[1] > 1:
        raise ValueError("overlay_video needs one process: its frames would be split over ranks")
    if model.num_classes > 256:
        raise ValueError(f"{model.num_classes} classes do not fit a uint8 label PNG")
    if hasattr(model, "array_logits"):
        return model
    from danet.model.segment import ArrayModel

    return ArrayModel(model)


def _report_skipped(skipped: Sequence[DataError], written: Sequence[Path]) -> None:
    """Raise when no input could be read (as with ``strict``); else say how many were skipped."""
    if skipped and not written:
        if len(skipped) == 1:
            raise skipped[0]
        raise DataError(f"none of the {len(skipped)} inputs could be read (warnings above)")
    if skipped:
        logger.warning("skipped %d unreadable file(s)", len(skipped))


def write_outputs(
    stem: Path, image: np.ndarray, label: np.ndarray, model: Any, legend: Legend = "color"
) -> list[Path]:
    """Write ``<stem>_label.png``, ``_color.png`` and ``_overlay.png`` for one image and its
    labels (the overlay last); ``legend`` says which get the class legend."""
    palette, names = model_palette(model), class_names(model)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(f"{stem.name}_{kind}.png") for kind in OUTPUTS]
    written = [save_label_png(label, palette, paths[0])]
    shown = classes_by_area(label, model.num_classes) if legend != "none" else []
    # each picture is written and let go before the next: a photo's memory is a few copies of
    # its pixels, not one per output
    color = colorize(label, palette)
    blended = overlay(image, color)
    if legend in ("color", "both"):
        color = add_legend(color, shown, names, palette)
    written.append(save_png(color, paths[1]))
    del color
    if legend in ("overlay", "both"):
        blended = add_legend(blended, shown, names, palette)
    written.append(save_png(blended, paths[2]))
    return written


def _overlay_videos(files: Sequence[Input], overlays: dict[str, Path], out: Path) -> list[Path]:
    """``<video-stem>_overlay.mp4`` of each video's overlay PNGs."""
    videos = []
    for item in files:
        frames = [overlays[n] for n in frames_of(item, overlays)]
        if item.is_video and frames:
            video = out / f"{item.name}_overlay.mp4"
            videos.append(write_overlay_video(frames, video, video_fps(item.path)))
    return videos


def summary(written: Sequence[Path], out: str | Path) -> str:
    """``danet predict``'s closing lines: how many PNG triples went where, and each video."""
    rank, world = rank_world()
    where = f" (rank {rank} of {world})" if world > 1 else ""
    pngs = [p for p in written if p.suffix == ".png"]
    lines = [f"wrote {len(pngs) // 3} label/color/overlay PNG triples to {out}{where}"]
    lines += [f"wrote {video}" for video in written if video.suffix == ".mp4"]
    return "\n".join(lines)
