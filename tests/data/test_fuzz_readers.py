"""Fuzzing the readers: whatever a file holds, only a one-line DataError may escape, and quickly."""

from __future__ import annotations

import io
import signal
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from danet.data import DataError, build_dataset
from danet.data.base import IGNORE_INDEX, SegmentationDataset
from danet.data.io import read_image, read_mask

FUZZ = settings(
    max_examples=60,
    deadline=2000,  # ms per example: a slow decode fails the test, a shared CPU must not
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
HANG_S = 10  # an example still running after this is a hang: the test fails
# Pillow warns about some corrupt metadata it can read past ("Truncated File Read"): expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png(width: int, height: int, depth: int = 8, color: int = 2, pixels: bytes = b"") -> bytes:
    """A PNG with valid chunk checksums whose header claims any size, depth and colour type."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


RGB = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
LABELS = np.resize(np.array([0, 1, 2, 255], np.uint8), (6, 8))
SEEDS = [
    encode(Image.fromarray(RGB), "PNG"),
    encode(Image.fromarray(LABELS, "L"), "PNG"),
    encode(Image.fromarray(LABELS, "P"), "PNG"),
    encode(Image.fromarray(LABELS.astype(np.uint16) * 200), "PNG"),
    encode(Image.fromarray(RGB), "JPEG", quality=90),
    encode(Image.fromarray(RGB), "JPEG", progressive=True),
    encode(Image.fromarray(RGB), "BMP"),
    encode(Image.fromarray(LABELS, "P"), "GIF"),
    encode(Image.fromarray(RGB), "TIFF"),
    encode(Image.fromarray(RGB), "WEBP", lossless=True),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid small image with a few bytes overwritten, and perhaps cut short."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for position, value in draw(
        st.lists(st.tuples(st.integers(0), st.integers(0, 255)), max_size=6)
    ):
        data[position % len(data)] = value
    return bytes(data[: draw(st.integers(1, len(data)))])


HEADERS = st.builds(
    png,
    width=st.integers(0, 64) | st.sampled_from([2**16, 10**5, 2**31 - 1, 2**32 - 1]),
    height=st.integers(0, 64) | st.sampled_from([2**16, 10**5, 2**31 - 1, 2**32 - 1]),
    depth=st.sampled_from([0, 1, 2, 4, 8, 16, 3, 255]),
    color=st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
    pixels=st.binary(max_size=256),
)
FILES = st.binary(max_size=512) | mutated() | HEADERS


@contextmanager
def no_hang(seconds: int = HANG_S) -> Iterator[None]:
    """Fail, instead of waiting forever, if the body runs longer than ``seconds``."""

    def interrupt(*_: object) -> None:
        raise TimeoutError(f"a reader ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(read: Callable[[], object], *paths: Path) -> object | None:
    """The value read, or None after a DataError that is one line and names one of ``paths``."""
    try:
        with no_hang():
            return read()
    except DataError as err:
        assert any(str(p) in str(err) for p in paths) and "\n" not in str(err), str(err)
        return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def dataset(workdir: Path) -> SegmentationDataset:
    """A one-sample folder dataset whose image and mask files the tests overwrite."""
    root = workdir / "folder"
    for sub in ("images/train", "masks/train"):
        (root / sub).mkdir(parents=True)
    (root / "classes.txt").write_text("a\nb\nc\n")
    (root / "images/train/x.png").write_bytes(SEEDS[0])
    (root / "masks/train/x.png").write_bytes(SEEDS[1])
    return build_dataset("folder", root, "train")


@FUZZ
@given(data=FILES)
def test_image_and_mask_readers_raise_only_data_error(workdir: Path, data: bytes) -> None:
    path = workdir / "sample.png"
    path.write_bytes(data)
    image = outcome(lambda: read_image(path), path)
    if image is not None:
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8
        assert image.ndim == 3 and image.shape[2] == 3
    mask = outcome(lambda: read_mask(path), path)
    if mask is not None:
        assert isinstance(mask, np.ndarray) and mask.dtype == np.int64 and mask.ndim == 2


@FUZZ
@given(data=FILES, target=st.sampled_from(["images", "masks"]))
def test_dataset_items_raise_only_data_error(
    dataset: SegmentationDataset, data: bytes, target: str
) -> None:
    image_path, mask_path = dataset.pairs[0]
    assert mask_path is not None
    path = image_path if target == "images" else mask_path
    path.write_bytes(data)
    try:
        item = outcome(lambda: dataset[0], image_path, mask_path)
    finally:
        image_path.write_bytes(SEEDS[0])
        mask_path.write_bytes(SEEDS[1])
    if item is not None:
        image, mask = item  # type: ignore[misc]
        assert image.shape == (*mask.shape, 3)
        assert np.isin(mask, [0, 1, 2, IGNORE_INDEX]).all()


def test_seeds_are_valid(dataset: SegmentationDataset) -> None:
    """The fuzzers start from files that read: the mutations, not the seeds, make them fail."""
    image, mask = dataset[0]
    assert image.shape == (6, 8, 3)
    np.testing.assert_array_equal(mask, LABELS)
    for seed in SEEDS:
        path = dataset.root / "seed.bin"
        path.write_bytes(seed)
        assert read_image(path).shape == (6, 8, 3)


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 10_000), (2**31 - 1, 1)])
def test_decompression_bomb_is_refused_quickly(workdir: Path, size: tuple[int, int]) -> None:
    path = workdir / "bomb.png"
    path.write_bytes(png(*size))
    assert path.stat().st_size < 100
    for read in (read_image, read_mask):
        start = time.perf_counter()
        with pytest.raises(DataError, match="too large to decode safely") as err:
            read(path)
        assert time.perf_counter() - start < 1.0
        assert str(path) in str(err.value) and "\n" not in str(err.value)
