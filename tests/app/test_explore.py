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
from danet.app.explorer import (
    MAX_ASPECT,
    Explorer,
    Picture,
    Sessions,
    click_point,
    load_picture,
    load_sample,
    responding_channels,
    sample_images,
)
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
    ratios = [ratio for _, ratio in query.channels]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] > 0


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


def test_the_cam_map_shown_lights_up_at_the_clicked_car() -> None:
    from danet.demo import DEMO_IMAGE, DEMO_POINTS

    model = danet.load("camvid")
    explorer = Explorer(model, "camvid")
    picture = load_sample(Path(DEMO_IMAGE).stem, explorer.input_size, explorer.num_classes)
    feats = explorer.features(picture)
    assert feats.cam_out is not None
    for x, y in (DEMO_POINTS["car"], DEMO_POINTS["cyclist"]):
        query = explorer.query(feats, picture, x, y)
        shown = feats.cam_out[query.channels[0][0]].clamp_min(0)
        # the clicked cell is among the brightest tenth of the map shown
        assert shown[query.index] >= torch.quantile(shown, 0.9)
        assert query.channels[0][1] > 1


def test_a_quiet_channel_is_not_chosen_for_a_tiny_ratio() -> None:
    cam_out = torch.ones(3, 10)
    cam_out[1] = 1e-9
    cam_out[1, 4] = 1e-6  # 1000x its mean, but nothing at all
    cam_out[2, 4] = 3.0
    assert responding_channels(cam_out, 4, k=1)[0][0] == 2


def test_an_uploaded_photo_is_reported_in_its_own_pixels(tmp_path: Path) -> None:
    path = tmp_path / "tall.png"
    Image.new("RGB", (300, 400)).save(path)
    picture = load_picture(path, [64, 96], 11)
    assert picture.rgb.shape[:2] == (85, 64) and picture.source_size == (400, 300)
    assert picture.source_point(0, 0) == (2, 2)
    assert picture.source_point(63, 84) == (297, 397)


@pytest.mark.parametrize("size", [(1, 100000), (100000, 1), (20, 400)])
def test_a_thin_image_is_refused_in_one_line(tmp_path: Path, size: tuple[int, int]) -> None:
    path = tmp_path / "thin.png"
    Image.new("RGB", size).save(path)
    with pytest.raises(DataError, match=f"too thin to explore.*{MAX_ASPECT}") as err:
        load_picture(path, [360, 480], 11)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "index",
    [None, [], [1], [1, 2, 3], ["a", 2], [1.0, float("nan")], [True, 2], [-1, 5], [5, 64], "12"],
)
def test_malformed_clicks_are_refused(index: object) -> None:
    with pytest.raises(ValueError, match="click"):
        click_point(index, (64, 96))


def test_a_valid_click_is_taken() -> None:
    assert click_point([95, 63], (64, 96)) == (95, 63)
    assert click_point((3.7, 2.2), (64, 96)) == (3, 2)


def test_sessions_have_a_limit_and_an_expiry() -> None:
    now = [0.0]
    sessions = Sessions(limit=3, ttl_s=100, clock=lambda: now[0])
    tokens = [sessions.put(i) for i in range(5)]
    assert len(sessions) == 3
    assert sessions.get(tokens[0]) is None and sessions.get(tokens[4]) == 4
    now[0] = 60.0
    assert sessions.get(tokens[3]) == 3  # used: its clock restarts
    now[0] = 130.0
    assert sessions.get(tokens[2]) is None  # idle for 130 s
    assert sessions.get(tokens[4]) is None  # last used at 0 s
    assert sessions.get(tokens[3]) == 3 and len(sessions) == 1
    now[0] = 1000.0
    assert len(sessions) == 0
    assert sessions.get(None) is None and sessions.get(123) is None


def _handler(page: object, name: str) -> object:
    return next(f.fn for f in page.fns.values() if getattr(f.fn, "__name__", "") == name)


def test_the_page_answers_bad_input_in_one_line(explorer: Explorer, tmp_path: Path) -> None:
    gr = pytest.importorskip("gradio", reason="the app extra is not installed")
    from danet.app.ui import build

    sessions = Sessions(limit=2)
    page = build([explorer], sessions=sessions)
    on_upload, on_click = _handler(page, "on_upload"), _handler(page, "on_click")
    thin = tmp_path / "thin.png"
    Image.new("RGB", (100000, 1)).save(thin)
    out = on_upload(None, str(thin))
    assert out[0] is None and out[1].startswith("**Upload refused**") and "too thin" in out[1]
    good = tmp_path / "photo.png"
    Image.fromarray(_picture((300, 200)).rgb).save(good)
    out = on_upload(None, str(good))
    token = out[0]
    assert sessions.get(token) is not None and "200x300" in out[1]

    def click(index: object) -> list:
        return on_click(token, gr.EventData(None, {"index": index}))

    for bad in (["x", 1], [1e9, 2], None, [float("inf"), 0]):
        message = click(bad)[1]
        assert message.startswith("**Click ignored**") and "\n" not in message
    for payload in ({}, None, "x", {"index": {"x": 1}}):
        message = on_click(token, gr.EventData(None, payload))[1]
        assert message.startswith("**Click ignored**") and "\n" not in message
    answer = click([10, 20])
    assert "pixel (" in answer[1] and "of the 200x300 image" in answer[1]
    assert answer[2] is not None  # the heat picture
    assert on_click("no-such-session", gr.EventData(None, {"index": [1, 1]}))[1].startswith(
        "This page was idle"
    )
