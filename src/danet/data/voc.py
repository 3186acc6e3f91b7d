"""PASCAL VOC 2012, with the SBD augmented set: ``JPEGImages/``, ``SegmentationClass/`` (or
``SegmentationClassAug/``) and ``ImageSets/Segmentation/<split>.txt``.

Masks are palette PNGs whose indices are the labels: 0-20 are the classes, 255 the boundary
(ignored). ``trainaug`` reads ``SegmentationClassAug/``; the other splits read
``SegmentationClass/`` when it exists.
"""

from __future__ import annotations

from pathlib import Path

from danet.data.base import SegmentationDataset, make_label_map, pairs_from_list
from danet.data.classes import VOC_CLASSES, color_map


class VOC(SegmentationDataset):
    """PASCAL VOC 2012, 21 classes incl. background; any split with a list file."""

    class_names = VOC_CLASSES
    palette = color_map(len(VOC_CLASSES))
    label_map = make_label_map({i: i for i in range(len(VOC_CLASSES))}, void=(255,))

    def find_pairs(self) -> list[tuple[Path, Path | None]]:
        """Ids from ImageSets/Segmentation/<split>.txt; JPEGImages, SegmentationClass(Aug)."""
        masks = self.root / "SegmentationClass"
        if self.split == "trainaug" or not masks.is_dir():
            masks = self.root / "SegmentationClassAug"
        return pairs_from_list(
            self.root / "ImageSets" / "Segmentation" / f"{self.split}.txt",
            self.root / "JPEGImages",
            ".jpg",
            masks,
            ".png",
        )
