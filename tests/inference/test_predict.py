"""danet predict: three PNGs per image or video frame, folders, errors; model.predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_video
from PIL import Image

import danet
from danet.cli import main
from danet.data import DataError
from danet.data.classes import color_map
from danet.inference.files import predict_paths
from danet.model.segment import segment


def _image(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def test_three_files_per_image_at_input_size(checkpoint: Path, tmp_path: Path) -> None:
    a = _image(tmp_path / "a.png", (50, 70))
    b = _image(tmp_path / "b.jpg", (33, 41), seed=1)
    out = tmp_path / "out"
    written = predict_paths(danet.load(checkpoint), [a, b], out, batch_size=2)
    names = {p.name for p in written}
    assert names == {f"{s}_{k}.png" for s in "ab" for k in ("label", "color", "overlay")}
    model = danet.load(checkpoint)
    palette = np.array(model.config["palette"], np.uint8)
    for stem, (h, w) in (("a", (50, 70)), ("b", (33, 41))):
        label_png = Image.open(out / f"{stem}_label.png")
        assert label_png.mode == "P"  # opens in colour, holds the indices
        label = np.asarray(label_png)
        np.testing.assert_array_equal(label_png.convert("RGB"), palette[label])
        color = np.asarray(Image.open(out / f"{stem}_color.png"))
        overlay = np.asarray(Image.open(out / f"{stem}_overlay.png"))
        assert label.shape == (h, w) and label.dtype == np.uint8
        assert overlay.shape == (h, w, 3)  # no legend on overlays by default
        assert color.shape[0] >= h and color.shape[1] > w  # the legend panel on the right
        assert label.max() < 11
        np.testing.assert_array_equal(color[:h, :w], palette[label])
        image = np.asarray(Image.open(tmp_path / f"{stem}.{'png' if stem == 'a' else 'jpg'}"))
        np.testing.assert_array_equal(label, segment(model, image))


def test_folder_input_and_batches_of_mixed_sizes(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    sizes = [(40, 60), (40, 60), (40, 60), (30, 30)]
    for i, size in enumerate(sizes):
        _image(folder / f"img{i}.png", size, seed=i)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    written = predict_paths(danet.load(checkpoint), [folder], out, batch_size=2)
    assert len(written) == 3 * len(sizes)
    model = danet.load(checkpoint)
    for i, size in enumerate(sizes):
        label = np.asarray(Image.open(out / f"img{i}_label.png"))
        assert label.shape == size
        image = np.asarray(Image.open(folder / f"img{i}.png"))
        assert (label == segment(model, image)).mean() > 0.99  # batched as one at a time


def test_video_frames(checkpoint: Path, tmp_path: Path) -> None:
    path = make_video(tmp_path / "clip.avi")
    out = tmp_path / "out"
    written = predict_paths(danet.load(checkpoint), [path], out)
    assert len(written) == 9
    for i in range(3):
        label = np.asarray(Image.open(out / f"clip_{i:06d}_label.png"))
        assert label.shape == (32, 48)


def test_palette_falls_back_when_config_has_none(tmp_path: Path) -> None:
    model = danet.DANet(num_classes=5, backbone="mobilenetv2_100", input_size=[32, 32])
    checkpoint = danet.save_model(model, tmp_path / "model")
    out = tmp_path / "out"
    predict_paths(
        danet.load(checkpoint), [_image(tmp_path / "a.png", (32, 32))], out, legend="none"
    )
    label = np.asarray(Image.open(out / "a_label.png"))
    color = np.asarray(Image.open(out / "a_color.png"))
    np.testing.assert_array_equal(color, np.array(color_map(5), np.uint8)[label])
    assert len({tuple(c) for c in color_map(21)}) == 21  # distinct colours


def test_missing_and_bad_inputs(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.png"):
        predict_paths(danet.load(checkpoint), [tmp_path / "nope.png"], tmp_path / "out")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        predict_paths(danet.load(checkpoint), [bad], tmp_path / "out", strict=True)


def test_cli_exit_status(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "out")
    assert main(["predict", str(tmp_path / "nope.png"), "--checkpoint", str(checkpoint)]) == 2
    assert "nope.png" in capsys.readouterr().err
    image = str(_image(tmp_path / "a.png", (20, 30)))
    assert main(["predict", image, "--checkpoint", str(checkpoint), "--out", out]) == 0
    assert (tmp_path / "out" / "a_overlay.png").is_file()


def test_model_predict_numpy_and_pil(small_model: danet.DANet) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (45, 67, 3), dtype=np.uint8)
    from_numpy = small_model.predict(array, resize="squash")
    from_pil = small_model.predict(Image.fromarray(array), resize="squash")
    assert from_numpy.shape == (45, 67) and from_numpy.dtype == np.uint8
    np.testing.assert_array_equal(from_numpy, from_pil)
    x = torch.from_numpy(array).permute(2, 0, 1).float().div(255)[None]
    mean, std = torch.tensor(small_model.mean), torch.tensor(small_model.std)
    x = torch.nn.functional.interpolate(
        (x - mean[:, None, None]) / std[:, None, None], (64, 96), mode="bilinear"
    )
    with torch.no_grad():
        logits = small_model(x)["out"]
    probs = torch.nn.functional.interpolate(logits.softmax(1), (45, 67), mode="bilinear")
    np.testing.assert_array_equal(from_numpy, probs.argmax(1)[0].numpy())


def test_flip_averages_the_mirrored_view(small_model: danet.DANet) -> None:
    """predict_probs and predict_labels average the image's and its mirror's probabilities."""
    from danet.model.segment import predict_labels, predict_probs

    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    x = torch.from_numpy(array).permute(2, 0, 1).float().div(255)[None]
    mean, std = torch.tensor(small_model.mean), torch.tensor(small_model.std)
    x = (x - mean[:, None, None]) / std[:, None, None]
    with torch.no_grad():
        plain = small_model(x)["out"].softmax(1)
        mirrored = small_model(x.flip(-1))["out"].softmax(1).flip(-1)
        probs = predict_probs(small_model, x, flip=True)
    torch.testing.assert_close(probs, (plain + mirrored) / 2)
    assert not torch.allclose(probs, plain, atol=1e-3)  # the mirror changed something
    labels = predict_labels(small_model, [array], flip=True, resize="squash")
    np.testing.assert_array_equal(labels[0], probs.argmax(1)[0].numpy())
