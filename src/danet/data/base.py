"""The common part of every dataset reader: pairs of files, label mapping and checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from danet.data.io import DataError, read_image, read_mask

IGNORE_INDEX = 255


class SegmentationDataset(Dataset):
    """A list of (image, mask) file pairs; items are ``(HxWx3 uint8 image, HxW int64 mask)``.

    Subclasses fill ``pairs`` and may set ``label_map``, a lookup table from raw mask values to
    train ids (``IGNORE_INDEX`` for void). Every item is checked: image and mask sizes must agree,
    and labels must be a class index or ignore.
    """

    class_names: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()
    label_map: np.ndarray | None = None

    def __init__(self, root: str | Path, split: str) -> None:
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found")
        self.pairs: list[tuple[Path, Path | None]] = self.find_pairs()
        if not self.pairs:
            raise DataError(f"{self.root}: split {split!r} is empty (no image/mask pairs found)")

    def find_pairs(self) -> list[tuple[Path, Path | None]]:
        """Return the (image, mask) paths of this split; override in each reader."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of classes (ignore excluded)."""
        return len(self.class_names)

    def meta(self) -> dict[str, Any]:
        """Class names, palette and ignore index, as a model config wants them."""
        return {
            "class_names": list(self.class_names),
            "palette": [list(c) for c in self.palette],
            "ignore_index": IGNORE_INDEX,
        }

    def __len__(self) -> int:
        return len(self.pairs)

    def load_mask(self, path: Path) -> np.ndarray:
        """Read a mask and map it to train ids, checking the label range."""
        raw = read_mask(path)
        if self.label_map is not None:
            if raw.min(initial=0) < 0 or raw.max(initial=0) >= len(self.label_map):
                raise DataError(
                    f"{path}: label values {int(raw.min())}..{int(raw.max())} outside "
                    f"0..{len(self.label_map) - 1}"
                )
            mask = self.label_map[raw]
        else:
            mask = raw
        bad = (mask >= self.num_classes) & (mask != IGNORE_INDEX)
        if bad.any():
            values = sorted(set(np.unique(raw[bad]).tolist()))[:5]
            raise DataError(
                f"{path}: label values {values} are outside the {self.num_classes} classes "
                f"and are not void/ignore"
            )
        return mask.astype(np.int64)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path)
        if mask_path is None:
            return image, np.full(image.shape[:2], IGNORE_INDEX, dtype=np.int64)
        mask = self.load_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise DataError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_path.name} "
                f"is {image.shape[1]}x{image.shape[0]}"
            )
        return image, mask


def make_label_map(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    """A lookup table of ``size`` entries, ``IGNORE_INDEX`` except where ``mapping`` says."""
    table = np.full(size, IGNORE_INDEX, dtype=np.int64)
    for raw, train_id in mapping.items():
        table[raw] = train_id
    return table
