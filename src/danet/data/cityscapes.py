"""Cityscapes (fine annotations): ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
``gtFine/<split>/<city>/*_gtFine_labelIds.png``.

Masks hold the 34 label ids; the official table maps 19 of them to train ids 0-18 and the others
(0-33) to ignore. A value above 33 is an error.
"""

from __future__ import annotations

from pathlib import Path

from danet.data.base import SegmentationDataset, make_label_map, pair_by_stem
from danet.data.classes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

# label id -> train id, from cityscapesScripts' labels.py
TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


class Cityscapes(SegmentationDataset):
    """Cityscapes, 19 classes; splits ``train``, ``val`` and ``test``."""

    class_names = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE
    label_map = make_label_map(TRAIN_IDS, void=(*range(34), 255))
    splits = ("train", "val", "test")

    def find_pairs(self) -> list[tuple[Path, Path | None]]:
        """leftImg8bit/<split>/<city>/X_leftImg8bit with gtFine/<split>/<city>/X_gtFine_labelIds."""
        return pair_by_stem(
            self.root / "leftImg8bit" / self.split,
            self.root / "gtFine" / self.split,
            image_suffix="_leftImg8bit",
            mask_suffix="_gtFine_labelIds",
            recursive=True,
        )
