"""COCO-Stuff 164k, 171 classes, in mmsegmentation's converted layout:
``images/{train2017,val2017}/*.jpg`` and ``annotations/{train2017,val2017}/*_labelTrainIds.png``
(labels 0-170, 255 ignored).
"""

from __future__ import annotations

from pathlib import Path

from danet.data.base import SegmentationDataset, pair_by_stem
from danet.data.classes import COCOSTUFF_CLASSES, color_map

FOLDERS = {"train": "train2017", "val": "val2017"}


class COCOStuff(SegmentationDataset):
    """COCO-Stuff 164k, 171 classes; splits ``train`` and ``val``."""

    class_names = COCOSTUFF_CLASSES
    palette = color_map(len(COCOSTUFF_CLASSES))
    splits = tuple(FOLDERS)

    def find_pairs(self) -> list[tuple[Path, Path | None]]:
        """images/<folder>/X with annotations/<folder>/X_labelTrainIds."""
        folder = FOLDERS[self.split]
        return pair_by_stem(
            self.root / "images" / folder,
            self.root / "annotations" / folder,
            mask_suffix="_labelTrainIds",
        )
