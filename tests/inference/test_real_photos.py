"""Predictions on real photos: aspect ratio kept, EXIF orientation, folders, bad files, outputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_video
from PIL import Image

import danet
from danet.cli import main
from danet.data import DataError, read_image
from danet.data.classes import color_map
from danet.data.transforms import normalize
from danet.inference.files import predict_paths
from danet.inference.legend import add_legend, classes_by_area
from danet.model.segment import inference_size


def _image(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def test_inference_sizes_keep_the_aspect_ratio() -> None:
    assert inference_size(1080, 1920, [360, 480]) == (360, 640)  # 16:9 stays 16:9
    assert inference_size(1920, 1080, [360, 480]) == (640, 360)  # portrait stays portrait
    assert inference_size(1080, 1920, [360, 480], "squash") == (360, 480)
    assert inference_size(1080, 1920, [360, 480], "none") == (1080, 1920)
    with pytest.raises(ValueError, match="resize='stretch'"):
        inference_size(10, 10, [8, 8], "stretch")


def test_portrait_image_is_not_squashed(small_model: danet.DANet) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (90, 40, 3), dtype=np.uint8)
    x = normalize(rgb, small_model.mean, small_model.std)[None]
    with torch.no_grad():  # input_size is 64x96: the short side 40 becomes 64, so 144x64
        logits = small_model(F.interpolate(x, (144, 64), mode="bilinear"))["out"]
    probs = F.interpolate(logits.softmax(1), (90, 40), mode="bilinear")
    expected = probs.argmax(1)[0].numpy()
    np.testing.assert_array_equal(small_model.predict(rgb), expected)
    squashed = small_model.predict(rgb, resize="squash")
    assert squashed.shape == (90, 40) and (squashed != expected).any()


def test_exif_orientation_is_applied(tmp_path: Path, checkpoint: Path) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    upright = read_image(path)
    assert upright.shape == (40, 20, 3)
    assert upright[:20].mean() > 200 and upright[20:].mean() < 50  # white on top once upright
    predict_paths(danet.load(checkpoint), [path], tmp_path / "out", progress=False)
    assert np.asarray(Image.open(tmp_path / "out" / "phone_label.png")).shape == (40, 20)


def test_folders_are_recursive_and_bad_files_are_skipped(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "city"
    _image(root / "a.png", (30, 40))
    _image(root / "frankfurt" / "b.png", (30, 40), seed=1)
    _image(root / "frankfurt" / "deep" / "c.jpg", (20, 30), seed=2)
    (root / "frankfurt" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    written = predict_paths(danet.load(checkpoint), [root], out, progress=False)
    assert len(written) == 9
    for name in ("a", "frankfurt/b", "frankfurt/deep/c"):
        assert (out / f"{name}_label.png").is_file(), name
    err = capsys.readouterr().err
    assert "broken.png" in err and "skipped 1 unreadable file" in err
    with pytest.raises(DataError, match="broken.png"):
        predict_paths(
            danet.load(checkpoint), [root], tmp_path / "strict", strict=True, progress=False
        )
    with pytest.raises(DataError, match="broken.png"):  # nothing readable: an error all the same
        predict_paths(
            danet.load(checkpoint), [root / "frankfurt" / "broken.png"], tmp_path / "none"
        )
    args = ["predict", str(root), "--checkpoint", str(checkpoint), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "cli")]) == 0
    assert main([*args, "--out", str(tmp_path / "cli2"), "--strict"]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_legend_lists_the_classes_shown() -> None:
    palette = np.array(color_map(4), np.uint8)
    labels = np.zeros((30, 40), np.uint8)
    labels[:, 30:] = 2  # class 2 on a quarter, class 0 on the rest
    assert classes_by_area(labels, 4) == [0, 2]
    color = palette[labels]
    out = add_legend(color, [0, 2], ["sky", "road", "car", "tree"], palette)
    np.testing.assert_array_equal(out[:30, :40], color)  # the image's pixels are kept
    panel = out[:, 40:].reshape(-1, 3)
    present = {tuple(c) for c in panel}
    assert tuple(palette[2]) in present and tuple(palette[1]) not in present


def test_video_gives_an_overlay_video(tmp_path: Path, checkpoint: Path) -> None:
    path = make_video(tmp_path / "clip.avi")
    written = predict_paths(danet.load(checkpoint), [path], tmp_path / "out", overlay_video=True)
    video = tmp_path / "out" / "clip_overlay.mp4"
    assert video in written
    capture = cv2.VideoCapture(str(video))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    capture.release()
    assert len(frames) == 3 and frames[0].shape == (32, 48, 3)
    import av

    with av.open(str(video)) as container:  # H.264 in yuv420p: what browsers play
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert len(list(container.decode(stream))) == 3
