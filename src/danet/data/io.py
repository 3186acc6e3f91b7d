"""Reading images and label masks, with one-line errors that name the file.

RGBA, grayscale, palette and 16-bit images are converted to 8-bit RGB, not refused.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DataError(ValueError):
    """Bad input data: the message names the file and says what is wrong."""


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file") from None
    except Image.DecompressionBombError:
        raise DataError(f"{path}: image is too large to be safe to decode") from None
    except (OSError, SyntaxError, ValueError, EOFError, Warning) as err:
        raise DataError(f"{path}: corrupt or truncated image ({err})") from None
    return image


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        return (np.clip(array, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    bits = 16 if array.max(initial=0) > 255 else 8
    return (array.astype(np.uint32) >> (bits - 8)).astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Return the image at ``path`` as an HxWx3 uint8 RGB array."""
    path = Path(path)
    image = _open(path)
    if image.mode in ("RGB", "L", "RGBA", "P", "LA", "CMYK", "YCbCr", "1"):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)  # 16-bit ("I;16"), 32-bit int ("I") or float ("F") grayscale
    array = _to_uint8(array)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] < 3:
        raise DataError(f"{path}: unsupported image layout {image.mode} {array.shape}")
    return np.ascontiguousarray(array[:, :, :3])


def read_mask(path: str | Path) -> np.ndarray:
    """Return the label mask at ``path`` as an HxW integer array (palette indices kept as is)."""
    path = Path(path)
    image = _open(path)
    if image.mode in ("RGB", "RGBA"):
        raise DataError(
            f"{path}: label mask is a colour image ({image.mode}); expected class indices"
        )
    array = np.asarray(image)
    if array.ndim != 2:
        raise DataError(f"{path}: label mask has shape {array.shape}; expected HxW")
    return array.astype(np.int64)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
