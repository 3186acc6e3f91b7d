"""Reading the frames of a video and writing overlay frames back as one."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from danet.data import DataError
from danet.data.io import check_pixels

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
        print(
            f"danet: warning: {path}: read {index} of the {promised} frames its header promises "
            f"(truncated or damaged?); predicted the {index} read",
            file=sys.stderr,
        )


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return max(count, 0)


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


def video_fps(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return fps or 25.0
