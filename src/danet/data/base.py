"""The common part of every dataset reader: pairs of files, label mapping and checks."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from danet.data.io import DataError, list_images, read_image, read_mask
from danet.utils.outputs import note_inputs
from danet.utils.textfile import read_text_file

IGNORE_INDEX = 255
INVALID = -1  # a label_map entry for raw values that must not occur in a mask


class SegmentationDataset:
    """A list of (image, mask) file pairs; items are ``(HxWx3 uint8 image, HxW int64 mask)``.

    A map-style dataset (``len`` and indexing), as torch's ``DataLoader`` takes it; the readers
    import no torch, so the command line can list them quickly.

    Subclasses fill ``pairs`` and may set ``label_map``, a lookup table from raw mask values to
    train ids (``IGNORE_INDEX`` for void, ``INVALID`` for values that must not occur), and
    ``splits``, the split names they know. Every item is checked: image and mask sizes must
    agree, and labels must be a class index or ignore.
    """

    class_names: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()
    label_map: np.ndarray | None = None
    splits: tuple[str, ...] = ()  # empty: any split the files provide

    def __init__(self, root: str | Path, split: str) -> None:
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found")
        if self.splits and split not in self.splits:
            raise DataError(
                f"{self.root}: unknown {type(self).__name__} split {split!r}; "
                f"valid: {', '.join(self.splits)}"
            )
        self.pairs: list[tuple[Path, Path | None]] = self.find_pairs()
        if not self.pairs:
            raise DataError(f"{self.root}: split {split!r} is empty (no image/mask pairs found)")
        note_inputs(path for pair in self.pairs for path in pair)  # no output may land on them

    def find_pairs(self) -> list[tuple[Path, Path | None]]:
        """Return the (image, mask) paths of this split; override in each reader."""
        raise NotImplementedError

    def first(self, count: int) -> SegmentationDataset:
        """This split cut to its first ``count`` images (at least 1), for a quick measurement."""
        if count < 1:
            raise ValueError(f"--max-images {count} must be at least 1")
        subset = copy.copy(self)
        subset.pairs = self.pairs[:count]
        return subset

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
        bad = ((mask < 0) | (mask >= self.num_classes)) & (mask != IGNORE_INDEX)
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


def make_label_map(
    mapping: dict[int, int], size: int = 256, void: Iterable[int] | None = None
) -> np.ndarray:
    """A lookup table of ``size`` entries from raw mask values to train ids.

    Values in ``mapping`` get their train id and values in ``void`` get ``IGNORE_INDEX``; any
    other value is ``INVALID`` (a mask holding it is an error). With ``void=None`` every value
    not in ``mapping`` is void.
    """
    table = np.full(size, IGNORE_INDEX if void is None else INVALID, dtype=np.int64)
    for raw in void or ():
        table[raw] = IGNORE_INDEX
    for raw, train_id in mapping.items():
        table[raw] = train_id
    return table


def pair_by_stem(
    images: Path,
    masks: Path,
    image_suffix: str = "",
    mask_suffix: str = "",
    recursive: bool = False,
) -> list[tuple[Path, Path | None]]:
    """Pair each image under ``images`` with the mask under ``masks`` that has the same name.

    A file's name is its path below its folder, without extension and without the suffix
    (e.g. Cityscapes' ``_leftImg8bit``); files whose stem lacks the suffix are skipped. An image
    without a mask, or two files of one name, is an error that names the file.
    """
    image_of = _files_by_name(images, image_suffix, recursive)
    mask_of = _files_by_name(masks, mask_suffix, recursive)
    pairs: list[tuple[Path, Path | None]] = []
    for name, image in sorted(image_of.items()):
        if name not in mask_of:
            raise DataError(f"{image}: no label mask {name}{mask_suffix}.* in {masks}")
        pairs.append((image, mask_of[name]))
    return pairs


def _files_by_name(folder: Path, suffix: str, recursive: bool) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in list_images(folder, recursive):
        if not path.stem.endswith(suffix):
            continue
        relative = path.relative_to(folder).with_suffix("").as_posix()
        name = relative[: len(relative) - len(suffix)]
        if name in files:
            raise DataError(f"{path}: {files[name].name} has the same name; one file per sample")
        files[name] = path
    return files


def read_split_list(path: Path) -> list[str]:
    """The sample ids of a split list file, one per line (a path's stem is taken as its id)."""
    if not path.is_file():
        listed = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        raise DataError(f"{path}: split list not found; lists there: {listed or 'none'}")
    try:
        lines = read_text_file(path, "split list (one sample id per line)").splitlines()
    except ValueError as err:
        raise DataError(str(err)) from None
    except OSError as err:
        raise DataError(f"{path}: unreadable split list ({err})") from None
    ids = [Path(line.split()[0]).stem for line in lines if line.strip()]
    if not ids:
        raise DataError(f"{path}: split list is empty")
    return ids


def pairs_from_list(
    list_file: Path, images: Path, image_ext: str, masks: Path, mask_ext: str
) -> list[tuple[Path, Path | None]]:
    """The (image, mask) paths of the ids in ``list_file``; a missing file is an error naming it."""
    pairs: list[tuple[Path, Path | None]] = []
    for sample in read_split_list(list_file):
        image, mask = images / f"{sample}{image_ext}", masks / f"{sample}{mask_ext}"
        for path in (image, mask):
            if not path.is_file():
                raise DataError(f"{path}: missing (listed as {sample!r} in {list_file})")
        pairs.append((image, mask))
    return pairs
