"""Shared fixtures: tiny models and a tiny CamVid tree, so no test needs ../shared or a hub."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import danet
import danet.data.camvid


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own XDG cache (the onnxruntime backend's exports), never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache"


class CliResult(NamedTuple):
    """What ``danet argv`` gave: its exit status, stdout and stderr (both stripped)."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Callable[[list[str]], CliResult]:
    """Runs ``danet argv`` in this process: ``code, out, err = cli(["predict", ...])``.

    The exit status is the one a shell sees: argparse's own exits (``SystemExit``) included.
    The output is all captured since the test's last read of it, this call's and any before."""
    from danet.cli import main

    def run(argv: list[str]) -> CliResult:
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out.strip(), captured.err.strip())

    return run


# a tqdm progress bar's redraw, or a progress line off a terminal (danet.utils.progress.LineProgress)
_PROGRESS = re.compile(r"^\w+:\s+\d+%\||^\w+ \d+/\d+ \w+( \(\d+%\))?  ")


def assert_one_line(err: str, *needles: str) -> str:
    """The one error line of stderr ``err`` (progress bars and warnings aside), asserting there is
    exactly one, no traceback, and that each of ``needles`` is in it; returns the line."""
    parts = [p for p in re.split(r"\r|\n|\x1b\[A|(?=danet \w+: )", err) if p.strip()]
    lines = [p for p in parts if not _PROGRESS.match(p) and not p.startswith("danet: warning")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def edit_config(folder: Path, **changes: object) -> Path:
    """``folder``'s config.json with ``changes`` written over its keys."""
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    """Each file of ``folder`` (not below it) by name: its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def random_png(path: Path, size: tuple[int, int] = (40, 60)) -> Path:
    """A PNG of random pixels, ``size`` (H, W), at ``path`` (its folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def make_camvid_tree(root: Path, splits: dict[str, int], size: tuple[int, int] = (48, 64)) -> Path:
    """A SegNet-layout CamVid tree of random images whose masks follow the image content."""
    rng = np.random.default_rng(0)
    h, w = size
    for split, count in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            mask = np.zeros((h, w), np.uint8)
            mask[: h // 3] = 0  # sky on top
            mask[h // 3 : 2 * h // 3] = 1 + i % 2  # building or pole band
            mask[2 * h // 3 :] = 3  # road below
            mask[rng.random((h, w)) < 0.05] = 11  # void
            palette = np.array(danet.data.camvid.CamVid.palette + ((0, 0, 0),), np.uint8)
            image = palette[mask] + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / f"seq_{i:03d}.png")
            Image.fromarray(mask).save(root / f"{split}annot" / f"seq_{i:03d}.png")
    return root


def make_video(path: Path, frames: int = 3) -> Path:
    """A 48x32 MJPG video of ``frames`` grey frames, 0, 60, 120, ... bright."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (48, 32))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((32, 48, 3), 60 * i, np.uint8))
    writer.release()
    return path


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    """A tiny CamVid tree with 4 train and 2 val images of 48x64."""
    return make_camvid_tree(tmp_path / "camvid", {"train": 4, "val": 2})


@pytest.fixture
def small_model() -> danet.DANet:
    """A random MobileNetV2 DANet with CamVid metadata, in eval mode."""
    from danet.data.camvid import CamVid

    return danet.DANet(
        num_classes=11,
        backbone="mobilenetv2_100",
        input_size=[64, 96],
        class_names=list(CamVid.class_names),
        palette=[list(c) for c in CamVid.palette],
    ).eval()


@pytest.fixture
def checkpoint(tmp_path: Path, small_model: danet.DANet) -> Path:
    """The small model saved as a model folder."""
    return danet.save_model(small_model, tmp_path / "model")


def live_attention(model: danet.DANet) -> danet.DANet:
    """``model`` with non-zero attention gammas (a new DANet's are 0), so that both attentions
    reach the output."""
    with torch.no_grad():
        model.head.branches["pam"].attention.gamma.fill_(0.7)
        model.head.branches["cam"].attention.gamma.fill_(0.3)
    return model
