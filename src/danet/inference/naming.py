"""The output names of ``danet predict``'s inputs: each input gets its own, and a folder's
search says what it passes over.

An image ``<name>`` writes ``<name>_label.png`` (``_color``, ``_overlay``); a video ``<stem>``
writes ``<stem>_<frame:06d>_label.png`` ... per frame and ``<stem>_overlay.mp4``. Two inputs
whose names meet there are refused in one line that names both, before anything is read.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from danet.inference.video import VIDEO_EXTENSIONS
from danet.utils.outputs import check_output_names

_FRAME = re.compile(r"(.+)_(\d{6})")


class Named(Protocol):
    """An input of predict: its file, its output name and whether it is a video."""

    @property
    def path(self) -> Path: ...  # noqa: D102

    @property
    def name(self) -> Path: ...  # noqa: D102

    @property
    def is_video(self) -> bool: ...  # noqa: D102


def check_distinct_outputs(files: Iterable[Named]) -> None:
    """Refuse two inputs that would write the same output files: the same name, or an image
    named like a video's frame (``a_000000.png`` beside ``a.mp4``)."""
    files = list(files)
    check_output_names((f"{item.name}_*", item.path) for item in files)
    videos = {str(item.name): item.path for item in files if item.is_video}
    for item in files:
        match = _FRAME.fullmatch(str(item.name))
        if not item.is_video and match and match.group(1) in videos:
            raise ValueError(
                f"{videos[match.group(1)]} and {item.path} would both write {item.name}_*.png "
                f"(frame {int(match.group(2))} of the video); rename one, or predict them into "
                "different --out folders"
            )


def frames_of(video: Named, names: Iterable[str]) -> list[str]:
    """Which of the output ``names`` are frames of ``video`` (``<stem>_<6 digits>``), in order:
    an image ``<stem>_cover`` is not one of them."""
    stem = str(video.name)
    return [n for n in names if (m := _FRAME.fullmatch(n)) is not None and m.group(1) == stem]


def warn_unsearched_videos(folder: Path) -> None:
    """Say which videos inside ``folder`` a folder's search passes over (it takes images only;
    a video is predicted when given as an input of its own)."""
    videos = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        videos += [Path(root, n) for n in names if Path(n).suffix.lower() in VIDEO_EXTENSIONS]
    for video in sorted(videos)[:5]:
        print(
            f"danet: warning: {video}: a video inside a folder, not predicted (a folder's search "
            "takes images; give the video as an input of its own)",
            file=sys.stderr,
        )
    if len(videos) > 5:
        print(f"danet: warning: and {len(videos) - 5} more videos in {folder}", file=sys.stderr)
