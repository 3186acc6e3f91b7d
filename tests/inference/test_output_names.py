"""Each input of predict gets its own output names: a video's frames and an image named like one
are refused in one line, an image is never spliced into a video, and a folder's search names the
videos it passes over."""

from __future__ import annotations

from pathlib import Path

import av
from conftest import assert_one_line, make_video, random_png


def test_a_video_and_an_image_named_like_its_frame_are_refused_naming_both(
    cli, checkpoint: Path, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    video = make_video(tmp_path / "in" / "a.avi")
    image = random_png(tmp_path / "in" / "a_000000.png", (32, 48))
    out = tmp_path / "out"
    code, _, err = cli(["predict", str(video), str(image), "--checkpoint", str(checkpoint),
                        "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 2
    assert_one_line(err, str(video), str(image), "a_000000_*.png")
    assert not out.exists() or not any(out.iterdir())


def test_overlay_video_takes_only_its_own_frames(cli, checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    video = make_video(tmp_path / "in" / "clip.avi", frames=2)
    cover = random_png(tmp_path / "in" / "clip_cover.png", (32, 48))
    out = tmp_path / "out"
    code, _, err = cli(["predict", str(video), str(cover), "--checkpoint", str(checkpoint),
                        "--out", str(out), "--overlay-video", "--quiet"])  # fmt: skip
    assert code == 0, err
    assert (out / "clip_cover_overlay.png").is_file()
    with av.open(str(out / "clip_overlay.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2


def test_a_video_inside_an_input_folder_is_named_not_skipped_silently(
    cli, checkpoint: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    random_png(folder / "a.png", (32, 48))
    (folder / "sub").mkdir()
    video = make_video(folder / "sub" / "clip.avi")
    code, _, err = cli(["predict", str(folder), "--checkpoint", str(checkpoint), "--out",
                        str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert code == 0
    assert f"danet: warning: {video}: a video inside a folder, not predicted" in err
    assert (tmp_path / "out" / "a_label.png").is_file()
