"""danet predict under faults (issue #23): a full disk keeps earlier outputs, outputs never
land on inputs, thin images are bounded by the size they run at, stale temp files go, symlinked
folders are reported, skipped inputs leave the progress count, an overlay video appears whole or
not at all."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest
from conftest import assert_one_line, contents, make_video, random_png
from PIL import Image

from danet.inference.files import collect_inputs


def test_full_disk_during_a_predict_rerun_keeps_the_earlier_outputs(
    checkpoint: Path, tmp_path: Path, cli, monkeypatch
) -> None:
    image, out = random_png(tmp_path / "in" / "a.png"), tmp_path / "out"
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]
    assert cli(argv).code == 0
    before = contents(out)

    def full_disk(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        with open(fp, "wb") as f:  # a part of the file, then the disk is full
            f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    code, _, err = cli(argv)
    assert code == 2
    assert (
        assert_one_line(err)
        == f"danet predict: error: No space left on device: {out / 'a_label.png'}"
    )
    assert contents(out) == before  # nothing lost, no temp file left


def test_predict_into_its_input_folder_never_overwrites_an_input(
    checkpoint: Path, tmp_path: Path, cli
) -> None:
    folder = tmp_path / "photos"
    random_png(folder / "a.png")
    taken = random_png(folder / "a_label.png", (30, 30))  # the user's own photo
    before = taken.read_bytes()
    argv = ["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(folder)]
    code, _, err = cli(argv)
    assert code == 2
    line = assert_one_line(err)
    assert line.startswith(f"danet predict: error: {taken}: an input that the output for "), line
    assert "--out" in line
    assert taken.read_bytes() == before and not (folder / "a_color.png").exists()


def test_predict_never_reads_its_own_output_folder(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    random_png(folder / "a.png")
    out = folder / "predictions"
    random_png(out / "a_color.png")  # an earlier run's outputs, inside the folder searched
    random_png(out / "a_overlay.png")
    assert [item.path for item in collect_inputs([folder], out)] == [folder / "a.png"]


@pytest.mark.parametrize("size", [(2, 400), (1, 1600)])
def test_thin_images_are_refused_by_the_size_they_run_at(
    checkpoint: Path, tmp_path: Path, cli, size: tuple[int, int]
) -> None:
    image = random_png(tmp_path / "thin.png", size)  # 800 or 1600 pixels as decoded
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"),
            "--max-pixels", "100000", "--quiet"]  # fmt: skip
    code, _, err = cli(argv)
    assert code == 2
    line = assert_one_line(err)
    assert line.startswith(
        f"danet predict: error: {image}: this {size[1]}x{size[0]} image would run"
    )
    assert "over the pixel budget of 100000" in line and "--max-pixels" in line


def test_predict_removes_stale_temp_files_but_not_a_live_one(
    checkpoint: Path, tmp_path: Path, cli
) -> None:
    from danet.utils.atomic import remove_stale_temp_files

    image, out = random_png(tmp_path / "a.png"), tmp_path / "out"
    out.mkdir()
    stale = out / ".a_color.png.k1ll3d00.danet-tmp"
    stale.write_bytes(b"\0" * 1000)
    live = out / ".b_color.png.wr1t1ng0.danet-tmp"
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
        assert cli(argv).code == 0
        assert not stale.exists() and live.exists()
    finally:
        os.close(fd)


def test_a_symlinked_subfolder_is_reported(tmp_path: Path, caplog) -> None:
    random_png(tmp_path / "elsewhere" / "b.png")
    folder = tmp_path / "photos"
    random_png(folder / "a.png")
    (folder / "linked").symlink_to(tmp_path / "elsewhere")
    assert [item.path for item in collect_inputs([folder])] == [folder / "a.png"]
    assert f"{folder / 'linked'}: a symlinked folder, not searched" in caplog.text


@pytest.mark.parametrize("bad", ["0_bad.png", "z_bad.png"])
def test_progress_leaves_out_skipped_inputs(
    checkpoint: Path, tmp_path: Path, cli, bad: str
) -> None:
    folder = tmp_path / "in"
    random_png(folder / "good.png")
    (folder / bad).write_bytes(b"not an image")
    argv = ["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    code, _, err = cli(argv)
    assert code == 0
    progress = [line for line in err.splitlines() if line.startswith("predict ")]
    assert progress[-1].startswith("predict 1/1 img (100%)"), err


def test_an_overlay_video_appears_whole_or_not_at_all(
    checkpoint: Path, tmp_path: Path, cli, monkeypatch
) -> None:
    import av

    clip, out = make_video(tmp_path / "clip.avi"), tmp_path / "out"
    video = out / "clip_overlay.mp4"
    out.mkdir()
    stale = out / ".clip_overlay.mp4.k1ll3d00.danet-tmp"  # a killed run's temp file
    stale.write_bytes(b"\0" * 1000)
    real_open = av.open

    class FullDiskMidway:
        """The encoder's container, whose disk is full once its first packets are in its file."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            self.container = real_open(*args, **kwargs)

        def __enter__(self) -> FullDiskMidway:
            return self

        def __exit__(self, *exc: object) -> None:
            self.container.__exit__(*exc)

        def add_stream(self, *args: object, **kwargs: object) -> object:
            return self.container.add_stream(*args, **kwargs)

        def mux(self, packets: list) -> None:
            self.container.mux(packets)
            if packets:
                assert not video.exists(), "the video is at its final path before it is whole"
                # it is encoded into a temp file beside it; the killed run's temp file is gone
                assert [p.name for p in out.glob(".clip_overlay.mp4.*.danet-tmp")] == [
                    Path(self.container.name).name
                ] and not stale.exists()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(av, "open", FullDiskMidway)
    argv = ["predict", str(clip), "--checkpoint", str(checkpoint), "--out", str(out),
            "--overlay-video", "--quiet"]  # fmt: skip
    code, _, err = cli(argv)
    assert code == 2
    assert assert_one_line(err) == f"danet predict: error: No space left on device: {video}"
    assert not video.exists() and not list(out.glob(".*.danet-tmp"))  # no half video, no temp file
    monkeypatch.setattr(av, "open", real_open)
    assert cli(argv).code == 0
    assert video.stat().st_size > 0 and not list(out.glob(".*.danet-tmp"))
