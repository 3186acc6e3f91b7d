"""Reading the frames of a video and writing overlay frames back as one."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from danet.data import DataError
from danet.data.io import check_pixels
from danet.utils.atomic import atomic_write

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def video_frames(path: Path, max_pixels: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
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
        logger.warning(
            "%s: read %d of the %d frames its header promises (truncated or damaged?); "
            "predicted the %d read",
            path,
            index,
            promised,
            index,
        )


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return max(count, 0)


def write_overlay_video(frames: Sequence[Path], path: Path, fps: float) -> Path:
    """Encode overlay PNGs as an H.264 MP4 (yuv420p, ``+faststart``): what browsers play.

    PyAV's wheel carries the encoder (libx264), so no system FFmpeg is needed. Frames take the
    first frame's size (a frame with a taller legend panel is resized to it), padded with black
    to even sides, as yuv420p needs. The video is encoded into a temp file beside ``path`` and
    renamed over it when whole (:func:`danet.utils.atomic.atomic_write`): a failed or killed run
    leaves no half video at ``path``.
    """
    atomic_write(path, lambda tmp: _encode(frames, tmp, fps))
    return path


def _encode(frames: Sequence[Path], path: str, fps: float) -> None:
    first = _rgb_png(frames[0])
    h, w = first.shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    import av  # only --overlay-video writes with it: not loaded for images

    with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
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


def _rgb_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def video_fps(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return fps or 25.0
