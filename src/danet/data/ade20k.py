"""ADE20K (SceneParsing, 150 classes): ``images/{training,validation}/*.jpg`` and
``annotations/{training,validation}/*.png``.

Masks hold 0 for "other" (ignored) and 1-150 for the classes, read as train ids 0-149.
"""

from __future__ import annotations

from pathlib import Path

from danet.data.base import SegmentationDataset, make_label_map, pair_by_stem
from danet.data.classes import ADE20K_CLASSES, ADE20K_PALETTE

FOLDERS = {"train": "training", "val": "validation"}


class ADE20K(SegmentationDataset):
    """ADE20K, 150 classes; splits ``train`` and ``val``."""

    class_names = ADE20K_CLASSES
    palette = ADE20K_PALETTE
    label_map = make_label_map({i + 1: i for i in range(150)}, void=(0, 255))
    splits = tuple(FOLDERS)

    def find_pairs(self) -> list[tuple[Path, Path | None]]:
        """images/<folder>/X.jpg with annotations/<folder>/X.png (training/, validation/)."""
        folder = FOLDERS[self.split]
        return pair_by_stem(self.root / "images" / folder, self.root / "annotations" / folder)
