"""Any dataset as plain folders: ``images/<split>/*`` and ``masks/<split>/*`` paired by file
stem, and ``classes.txt``.

``classes.txt`` has one class per line, in label order: a name, optionally followed by its colour
as three integers (``traffic light 250 170 30``). Classes without a colour get one from the
PASCAL VOC colour map. Mask values are class indices; 255 is ignored and any other value at or
above the number of classes is an error.
"""

from __future__ import annotations

from pathlib import Path

from danet.data.base import SegmentationDataset, pair_by_stem
from danet.data.classes import Palette, color_map
from danet.data.io import DataError
from danet.utils.bounds import MAX_CLASS_NAME
from danet.utils.textfile import read_text_file


class Folder(SegmentationDataset):
    """A dataset whose classes are read from ``root/classes.txt``; any split with a folder."""

    def __init__(self, root: str | Path, split: str) -> None:
        super().__init__(root, split)
        self.class_names, self.palette = read_classes(self.root / "classes.txt")

    def find_pairs(self) -> list[tuple[Path, Path | None]]:
        """images/<split>/X with masks/<split>/X (the same stem)."""
        return pair_by_stem(self.root / "images" / self.split, self.root / "masks" / self.split)


def read_classes(path: Path) -> tuple[tuple[str, ...], Palette]:
    """Class names and palette from a ``classes.txt`` (``name`` or ``name R G B`` per line)."""
    try:
        text = read_text_file(path, "classes.txt (one class name per line)")
        lines = [line.strip() for line in text.splitlines()]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (one class name per line)") from None
    except ValueError as err:
        raise DataError(str(err)) from None
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    lines = [line for line in lines if line]
    if not lines:
        raise DataError(f"{path}: no class names")
    if len(lines) > 255:
        raise DataError(f"{path}: {len(lines)} classes; at most 255 (255 is the ignore label)")
    default = color_map(len(lines))
    names, palette = [], []
    for number, line in enumerate(lines):
        fields = line.split()
        name, color = line, default[number]
        if len(fields) >= 4 and all(f.lstrip("-").isdigit() for f in fields[-3:]):
            rgb = tuple(int(f) for f in fields[-3:])
            if not all(0 <= c <= 255 for c in rgb):
                raise DataError(f"{path}: class {number} colour {rgb} is not 0-255 RGB")
            name, color = " ".join(fields[:-3]), (rgb[0], rgb[1], rgb[2])
        if len(name) > MAX_CLASS_NAME:
            raise DataError(
                f"{path}: class {number} is named by {len(name)} characters "
                f"({name[:40]!r}...); at most {MAX_CLASS_NAME}"
            )
        if name in names:
            raise DataError(f"{path}: class name {name!r} appears twice")
        names.append(name)
        palette.append(color)
    return tuple(names), tuple(palette)
