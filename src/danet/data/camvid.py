"""CamVid in the SegNet layout: ``train/ trainannot/ val/ valannot/ test/ testannot/``.

Labels 0-10 are the 11 classes; 11 is void (ignored).
"""

from __future__ import annotations

from pathlib import Path

from danet.data.base import SegmentationDataset, make_label_map, pair_by_stem
from danet.data.io import DataError


class CamVid(SegmentationDataset):
    """CamVid, 11 classes, SegNet layout."""

    class_names = (
        "sky",
        "building",
        "pole",
        "road",
        "sidewalk",
        "tree",
        "sign",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    )
    palette = (
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (0, 0, 192),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    )
    label_map = make_label_map({i: i for i in range(11)}, void=(11, 255))
    splits = ("train", "val", "test", "trainval")

    def find_pairs(self) -> list[tuple[Path, Path | None]]:
        """<split>/X with <split>annot/X (SegNet layout); trainval joins train and val."""
        if self.split not in self.splits:
            raise DataError(f"{self.root}: unknown CamVid split {self.split!r}; use {self.splits}")
        splits = ("train", "val") if self.split == "trainval" else (self.split,)
        pairs = []
        for split in splits:
            images, annots = self.root / split, self.root / f"{split}annot"
            for folder in (images, annots):
                if not folder.is_dir():
                    raise DataError(f"{folder}: missing (CamVid split {split!r} needs it)")
            pairs += pair_by_stem(images, annots)
        return pairs
