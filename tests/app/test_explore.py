"""`danet explore` without a browser: the per-click computation, bad input, the command's errors."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import live_attention
from PIL import Image

import danet
from danet.app.explorer import Explorer, Picture, load_picture, load_sample, sample_images
from danet.cli import main
from danet.data.io import MAX_PIXELS, DataError


@pytest.fixture
def explorer(small_model: danet.DANet) -> Explorer:
    return Explorer(live_attention(small_model), "small")


def _picture(size: tuple[int, int] = (64, 96)) -> Picture:
    rgb = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    return Picture("random", rgb, None)


def test_a_click_is_one_row_of_the_pam(explorer: Explorer) -> None:
    picture = _picture()
    feats = explorer.features(picture)
    query = explorer.query(feats, picture, x=50, y=30)
    assert feats.q is not None and feats.k is not None and query.row is not None
    full = (feats.q @ feats.k.T).softmax(-1)  # (N, N): only here, in the test
    torch.testing.assert_close(query.row, full[query.index])
    assert query.class_mass is not None and query.class_mass.sum() == pytest.approx(1, abs=1e-5)
    assert feats.label_source == "prediction"
    assert 0 < query.reach["pam_self_mass"] <= query.reach["pam_local_mass"] <= 1
    assert 1 <= query.reach["pam_effective_keys"] <= len(query.row)
    assert len(query.channels) == 5
    assert sum(share for _, share in query.channels) <= 1 + 1e-6


def test_the_sample_labels_are_used_when_known() -> None:
    model = danet.load("camvid")
    name = next(iter(sample_images()))
    explorer = Explorer(model, "camvid")
    picture = load_sample(name, explorer.input_size, explorer.num_classes)
    assert picture.rgb.shape[:2] == tuple(model.config["input_size"])
    assert picture.labels is not None and picture.labels.max() < explorer.num_classes
    feats = explorer.features(picture)
    assert feats.label_source == "ground truth"
    query = explorer.query(feats, picture, 240, 300)
    assert query.class_mass is not None and query.class_mass.sum() == pytest.approx(1, abs=1e-5)
    assert 0 <= query.reach["pam_far_same_mass"] <= 1


@pytest.mark.parametrize("attention", ["none", "cam", "pam"])
def test_a_model_without_pam_or_cam_says_so(attention: str) -> None:
    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", attention=attention).eval()
    explorer = Explorer(model, "m")
    notes = explorer.missing()
    assert ("no position attention" in notes.get("pam", "")) == (attention in ("none", "cam"))
    assert ("no channel attention" in notes.get("cam", "")) == (attention in ("none", "pam"))
    picture = _picture()
    query = explorer.query(explorer.features(picture), picture, 3, 4)
    assert (query.row is None) == (attention in ("none", "cam"))
    assert (not query.channels) == (attention in ("none", "pam"))


def test_a_non_image_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(DataError, match="not an image file"):
        load_picture(path, [64, 96], 11)


def test_a_huge_image_is_refused_by_the_pixel_budget(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    Image.new("L", (4097, 4096)).save(path)  # one column over MAX_PIXELS
    with pytest.raises(DataError, match=f"over the pixel budget of {MAX_PIXELS}"):
        load_picture(path, [64, 96], 11)


def test_a_large_image_runs_at_the_model_size(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (1200, 300)).save(path)
    picture = load_picture(path, [64, 96], 11)
    assert picture.rgb.shape == (64, 256, 3)  # short side to the model's, aspect kept


def test_without_gradio_one_line_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["explore"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'danet[app]'" in err


def test_a_busy_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gradio", reason="the app extra is not installed")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["explore", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"danet explore: error: port {port} on 127.0.0.1 is in use; pick another with --port\n"
    )


def test_the_page_refuses_bad_uploads_and_builds_for_two_models(
    explorer: Explorer, tmp_path: Path
) -> None:
    pytest.importorskip("gradio", reason="the app extra is not installed")
    from danet.app.ui import build, read_upload

    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    picture, message = read_upload(str(bad), explorer)
    assert picture is None and message.startswith("**Upload refused**: not an image file")
    good = tmp_path / "photo.png"
    Image.fromarray(_picture().rgb).save(good)
    picture, _ = read_upload(str(good), explorer, max_pixels=100)
    assert picture is None
    picture, message = read_upload(str(good), explorer)
    assert picture is not None and picture.labels is None
    build([explorer, Explorer(danet.load("camvid"), "camvid")])
