"""PASCAL Context, 60 classes, in the mmsegmentation layout: ``JPEGImages/``,
``SegmentationClassContext/*.png`` (labels 0-59, 0 = background) and
``ImageSets/SegmentationContext/<split>.txt``.
"""

from __future__ import annotations

from pathlib import Path

from danet.data.base import SegmentationDataset, pairs_from_list
from danet.data.classes import CONTEXT_CLASSES, color_map


class PascalContext(SegmentationDataset):
    """PASCAL Context, 60 classes incl. background; splits ``train`` and ``val``."""

    class_names = CONTEXT_CLASSES
    palette = color_map(len(CONTEXT_CLASSES))
    splits = ("train", "val")

    def find_pairs(self) -> list[tuple[Path, Path | None]]:
        """Ids in ImageSets/SegmentationContext/<split>.txt; JPEGImages, SegmentationClassContext"""
        return pairs_from_list(
            self.root / "ImageSets" / "SegmentationContext" / f"{self.split}.txt",
            self.root / "JPEGImages",
            ".jpg",
            self.root / "SegmentationClassContext",
            ".png",
        )
