"""classes.txt with a class name of millions of characters (issue #23)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from danet.data import DataError
from danet.data.folder import read_classes


def _edit_config(folder: Path, **changes: object) -> Path:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


def test_long_class_names_in_classes_txt_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("road\n" + "x" * 3_000_000 + "\n")
    with pytest.raises(
        DataError, match=r"classes.txt: class 1 is named by 3000000 characters"
    ) as info:
        read_classes(path)
    assert len(str(info.value)) < 200
