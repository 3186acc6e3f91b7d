"""Dataset readers, one per layout, and the registry that names them."""

from __future__ import annotations

from pathlib import Path

from danet.data.ade20k import ADE20K
from danet.data.base import IGNORE_INDEX, SegmentationDataset
from danet.data.camvid import CamVid
from danet.data.cityscapes import Cityscapes
from danet.data.cocostuff import COCOStuff
from danet.data.context import PascalContext
from danet.data.folder import Folder
from danet.data.io import DataError, read_image, read_mask
from danet.data.voc import VOC

DATASETS: dict[str, type[SegmentationDataset]] = {
    "camvid": CamVid,
    "cityscapes": Cityscapes,
    "voc": VOC,
    "context": PascalContext,
    "ade20k": ADE20K,
    "cocostuff": COCOStuff,
    "folder": Folder,
}


def build_dataset(name: str, root: str | Path, split: str) -> SegmentationDataset:
    """The reader for dataset ``name`` on the files under ``root``, for ``split``."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](root, split)


__all__ = [
    "DATASETS",
    "IGNORE_INDEX",
    "DataError",
    "SegmentationDataset",
    "build_dataset",
    "read_image",
    "read_mask",
]
