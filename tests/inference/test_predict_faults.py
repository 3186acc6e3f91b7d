"""danet predict under faults (issue #23): a full disk keeps earlier outputs, outputs never
land on inputs, thin images are bounded by the size they run at, stale temp files go, symlinked
folders are reported, skipped inputs leave the progress count."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from danet.cli import main
from danet.inference.files import collect_inputs


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and stderr of ``danet argv`` (argparse's own exits included)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.strip()


def one_line(err: str) -> str:
    """The one error line of stderr (warnings and progress lines aside), with no traceback."""
    lines = [
        line
        for line in err.splitlines()
        if line.strip() and not line.startswith(("danet: warning", "predict ", "train "))
    ]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _png(path: Path, size: tuple[int, int] = (40, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _edit_config(folder: Path, **changes: object) -> Path:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


def test_full_disk_during_a_predict_rerun_keeps_the_earlier_outputs(
    checkpoint: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    image, out = _png(tmp_path / "in" / "a.png"), tmp_path / "out"
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]
    assert run(argv, capsys)[0] == 0
    before = _contents(out)

    def full_disk(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        with open(fp, "wb") as f:  # a part of the file, then the disk is full
            f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    code, err = run(argv, capsys)
    assert code == 2
    assert one_line(err) == f"danet predict: error: No space left on device: {out / 'a_label.png'}"
    assert _contents(out) == before  # nothing lost, no temp file left


def test_predict_into_its_input_folder_never_overwrites_an_input(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "photos"
    _png(folder / "a.png")
    taken = _png(folder / "a_label.png", (30, 30))  # the user's own photo
    before = taken.read_bytes()
    argv = ["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(folder)]
    code, err = run(argv, capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"danet predict: error: {taken}: an input that the output for "), line
    assert "--out" in line
    assert taken.read_bytes() == before and not (folder / "a_color.png").exists()


def test_predict_never_reads_its_own_output_folder(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _png(folder / "a.png")
    out = folder / "predictions"
    _png(out / "a_color.png")  # an earlier run's outputs, inside the folder searched
    _png(out / "a_overlay.png")
    assert [item.path for item in collect_inputs([folder], out)] == [folder / "a.png"]


@pytest.mark.parametrize("size", [(2, 400), (1, 1600)])
def test_thin_images_are_refused_by_the_size_they_run_at(
    checkpoint: Path, tmp_path: Path, capsys, size: tuple[int, int]
) -> None:
    image = _png(tmp_path / "thin.png", size)  # 800 or 1600 pixels as decoded
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"),
            "--max-pixels", "100000", "--quiet"]  # fmt: skip
    code, err = run(argv, capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(
        f"danet predict: error: {image}: this {size[1]}x{size[0]} image would run"
    )
    assert "over the pixel budget of 100000" in line and "--max-pixels" in line


def test_predict_removes_stale_temp_files_but_not_a_live_one(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    from danet.utils.atomic import remove_stale_temp_files

    image, out = _png(tmp_path / "a.png"), tmp_path / "out"
    out.mkdir()
    stale = out / ".a_color.png.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 1000)
    live = out / ".b_color.png.wr1t1ng.tmp"
    live.write_bytes(b"\0")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as atomic_write holds it while writing
    try:
        assert remove_stale_temp_files(out, ("*_color.png",)) == [stale]
        stale.write_bytes(b"\0")
        argv = [
            "predict",
            str(image),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--quiet",
        ]
        assert run(argv, capsys)[0] == 0
        assert not stale.exists() and live.exists()
    finally:
        os.close(fd)


def test_a_symlinked_subfolder_is_reported(tmp_path: Path, capsys) -> None:
    _png(tmp_path / "elsewhere" / "b.png")
    folder = tmp_path / "photos"
    _png(folder / "a.png")
    (folder / "linked").symlink_to(tmp_path / "elsewhere")
    assert [item.path for item in collect_inputs([folder])] == [folder / "a.png"]
    err = capsys.readouterr().err
    assert f"danet: warning: {folder / 'linked'}: a symlinked folder, not searched" in err


@pytest.mark.parametrize("bad", ["0_bad.png", "z_bad.png"])
def test_progress_leaves_out_skipped_inputs(
    checkpoint: Path, tmp_path: Path, capsys, bad: str
) -> None:
    folder = tmp_path / "in"
    _png(folder / "good.png")
    (folder / bad).write_bytes(b"not an image")
    argv = ["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    code, err = run(argv, capsys)
    assert code == 0
    progress = [line for line in err.splitlines() if line.startswith("predict ")]
    assert progress[-1].startswith("predict 1/1 img (100%)"), err
