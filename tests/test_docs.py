"""Every Python block of README.md and docs/*.md runs, as written, in a folder of its own.

Each block runs in a fresh temporary folder that holds ``street.jpg`` and ``street.png`` (the
names the docs use for a user's photo) and ``danet.onnx`` (``danet export --checkpoint camvid``):
once with a bundled CamVid sample frame and, for blocks that read a photo, once more with a
1920x1080 photo. A block that cannot run offline is marked on the line above its fence with
``<!-- docs-test: skip REASON -->``; the reason must be given.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import matplotlib
import pytest
from PIL import Image

import danet

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\s*$")
SKIP = re.compile(r"^<!--\s*docs-test:\s*skip\b\s*(?P<reason>.*?)\s*-->\s*$")
SAMPLE = danet.samples_dir("camvid") / "val" / "0016E5_08049.jpg"
PHOTO_NAMES = ("street.jpg", "street.png")


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """(line of the fence, code, skip reason or None) of each ```python block of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].startswith("```"))
            marker = SKIP.match(lines[i - 1]) if i > 0 else None
            reason = marker.group("reason") if marker else None
            blocks.append((start, "\n".join(lines[start:end]) + "\n", reason))
            i = end
        i += 1
    return blocks


BLOCKS = [
    pytest.param(path, line, code, reason, id=f"{path.relative_to(ROOT)}:{line}")
    for path in DOCS
    for line, code, reason in python_blocks(path)
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder of the docs' input files for each photo: the bundled sample, and 1920x1080."""
    from danet.cli import main

    base = tmp_path_factory.mktemp("docs-inputs")
    onnx = base / "danet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["export", "--checkpoint", "camvid", "--onnx", str(onnx)]) == 0
    folders = {}
    for name, size in (("sample", None), ("1920x1080", (1920, 1080))):
        folder = base / name
        folder.mkdir()
        photo = Image.open(SAMPLE).convert("RGB")
        if size is not None:
            photo = photo.resize(size, Image.BILINEAR)
        photo.save(folder / "street.jpg", quality=92)
        photo.save(folder / "street.png")
        shutil.copy(onnx, folder / "danet.onnx")
        shutil.copy(onnx, folder / "camvid.onnx")  # the name the README exports to
        folders[name] = folder
    return folders


def test_the_docs_have_python_blocks_and_every_skip_says_why() -> None:
    assert len(BLOCKS) >= 5
    for param in BLOCKS:
        _, line, _, reason = param.values
        assert reason is None or reason, f"{param.id}: a docs-test skip needs a reason"


@pytest.mark.parametrize("photo", ["sample", "1920x1080"])
@pytest.mark.parametrize(("path", "line", "code", "reason"), BLOCKS)
def test_a_docs_block_runs(
    path: Path,
    line: int,
    code: str,
    reason: str | None,
    photo: str,
    inputs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if reason is not None:
        pytest.skip(reason)
    if photo != "sample" and not any(name in code for name in PHOTO_NAMES):
        pytest.skip("the block reads no photo: it ran once, with the sample")
    if 'pretrained="imagenet"' in code:
        from danet.model.pretrained import imagenet_weights

        try:
            imagenet_weights("mobilenetv2_100")
        except (FileNotFoundError, ValueError) as err:
            pytest.skip(f"no ImageNet MobileNetV2 weights here: {err}")
    for item in inputs[photo].iterdir():
        os.symlink(item, tmp_path / item.name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    matplotlib.use("Agg")
    compiled = compile(code, f"{path.relative_to(ROOT)}:{line}", "exec")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compiled, {"__name__": "__main__"})
