"""Reading images and label masks, with one-line errors that name the file.

RGBA, grayscale, palette and 16-bit images are converted to 8-bit RGB, not refused; an image with
transparent pixels gets a :class:`DataWarning` saying that alpha was dropped. Whatever a
file holds, the only exception that leaves these readers is ``DataError``; a file whose header
claims more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is refused before it is decoded, and only
the decoders in ``FORMATS`` are ever run (no Ghostscript for an EPS named ``.png``).

Memory: an image whose header claims more than ``MAX_PIXELS`` pixels (4096 x 4096, about 16.8
million; ``max_pixels`` raises it) is refused before it is decoded. ``danet predict`` keeps a
few 8-bit copies of an image (about 10 bytes a pixel; :mod:`danet.inference`), so the default
bounds one image at about 170 MB on top of the model.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from danet.utils.images import array_to_rgb  # arrays of any dtype as uint8 RGB, shared
from danet.utils.outputs import note_input
from danet.utils.readable import file_kind

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF", "PPM")  # Pillow's names; JPEG covers MPO
MAX_PIXELS = 4096 * 4096
"""The default pixel budget of one input image (``danet predict/attention --max-pixels``)."""
T = TypeVar("T")


class DataWarning(UserWarning):
    """Input data that is used, but not as the user may expect: the message names the file. The
    ``danet`` command prints it as one line, ``danet: warning: ...``."""


class DataError(ValueError):
    """Bad input data: the message names the file and says what is wrong."""


def without_worker_tracebacks(batches: Iterable[T]) -> Iterator[T]:
    """Iterate a DataLoader so that a worker's ``DataError`` comes out as its one line.

    DataLoader re-raises a worker's exception with "Caught DataError in DataLoader worker
    process N" and the worker's traceback as the message; this keeps only the original message.
    """
    try:
        yield from batches
    except DataError as err:
        lines = str(err).strip().splitlines()
        if len(lines) > 1 and lines[0].startswith("Caught DataError"):
            prefix = f"{DataError.__module__}.{DataError.__qualname__}: "
            raise DataError(lines[-1].removeprefix(prefix)) from None
        raise


def check_pixels(path: str | Path, width: int, height: int, max_pixels: int | None = None) -> None:
    """Refuse an image of ``width`` x ``height`` above the pixel budget, before decoding it."""
    budget = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > budget:
        raise DataError(
            f"{path}: {width}x{height} image ({width * height} pixels) is over the pixel budget "
            f"of {budget} (--max-pixels raises it; see danet predict --help)"
        )


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


@contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Turn whatever Pillow raises on a bad file into a one-line ``DataError`` naming it."""
    if not path.is_file():
        if path.exists():  # a FIFO would block Pillow, a device never end
            raise DataError(f"{path}: is {file_kind(path.stat().st_mode)}, not an image file")
        raise DataError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file (or not one of {', '.join(FORMATS)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(f"{path}: image is too large to decode safely ({err})") from None
    # Pillow's decoders raise many types on malformed data (OSError, SyntaxError, ValueError,
    # struct.error, IndexError, MemoryError...): all of them mean "this file cannot be read".
    except Exception as err:
        raise DataError(f"{path}: corrupt or truncated image ({_first_line(err)})") from None


def _rgb(image: Image.Image, path: Path) -> np.ndarray:
    if image.mode == "RGB":
        return np.asarray(image)  # no converted copy of a large photo
    if image.mode in ("L", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)  # 16-bit ("I;16"), 32-bit int ("I") or float ("F") grayscale
    try:
        return array_to_rgb(array)
    except ValueError as err:
        raise DataError(f"{path}: unsupported image {image.mode} {array.shape} ({err})") from None


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Return the image at ``path`` as an HxWx3 uint8 RGB array, upright (EXIF orientation
    applied, as photo viewers show it).

    An image above ``max_pixels`` (default ``MAX_PIXELS``) is refused before it is decoded.
    """
    path = Path(path)
    note_input(path)  # the running command writes no output over it
    with _decoding(path), Image.open(path, formats=FORMATS) as image:
        check_pixels(path, *image.size, max_pixels)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        rgb = _rgb(image, path)
        transparent = transparent_share(image)
    if transparent > 0:
        warnings.warn(
            f"{path}: {transparent:.1%} of its pixels are transparent; alpha is dropped, so they "
            "are segmented from the colour stored under them",
            DataWarning,
            stacklevel=2,
        )
    return rgb


def transparent_share(image: Image.Image) -> float:
    """The share of ``image``'s pixels that are fully transparent (alpha 0); 0 without alpha."""
    if not image.has_transparency_data:
        return 0.0
    if image.mode in ("RGBA", "LA", "PA"):
        alpha = image.getchannel("A")
    else:  # a palette or grey image with a transparent colour
        with warnings.catch_warnings():  # "should be converted to RGBA": that is what this does
            warnings.simplefilter("ignore", UserWarning)
            alpha = image.convert("RGBA").getchannel("A")
    lowest, _ = alpha.getextrema()
    if lowest > 0:
        return 0.0
    return float((np.asarray(alpha) == 0).mean())


def read_mask(path: str | Path) -> np.ndarray:
    """Return the label mask at ``path`` as an HxW int64 array (palette indices kept as is)."""
    path = Path(path)
    with _decoding(path), Image.open(path, formats=FORMATS) as image:
        check_pixels(path, *image.size)
        image.load()
        if image.mode not in ("L", "P", "1", "I", "I;16", "I;16L", "I;16B", "I;16N"):
            raise DataError(
                f"{path}: label mask has mode {image.mode}; expected one channel of class "
                "indices (grayscale or palette)"
            )
        array = np.asarray(image)
    if array.ndim != 2:
        raise DataError(f"{path}: label mask has shape {array.shape}; expected HxW")
    return array.astype(np.int64)


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files inside ``folder`` (and its subfolders if ``recursive``), sorted, hidden skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in files
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    )
