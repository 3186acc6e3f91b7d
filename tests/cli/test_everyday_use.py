"""Everyday use (issue 20): phone photos, the onnxruntime backend, strict JSON, predict twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import live_attention
from PIL import Image

import danet
from danet.cli import main
from danet.utils.images import upsampled_argmax


@pytest.fixture
def live_checkpoint(tmp_path: Path, small_model: danet.DANet) -> Path:
    return danet.save_model(live_attention(small_model), tmp_path / "live")


def _save(path: Path, shape: tuple[int, int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path)
    return path


# --- memory bounded by the model's input size --------------------------------------------------


@pytest.mark.parametrize("size", [(131, 257), (20, 30), (64, 64)])
def test_upsampled_argmax_is_the_argmax_of_the_resized_probabilities(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("danet.utils.images.STRIP_ELEMENTS", 5000)  # many strips
    probs = torch.rand(2, 7, 40, 48).softmax(1)
    expected = F.interpolate(probs, size, mode="bilinear", align_corners=False).argmax(1)
    labels = upsampled_argmax(probs.numpy(), size)
    assert labels.shape == (2, *size) and labels.dtype == np.uint8
    assert (labels == expected.numpy()).mean() > 0.999


MEMORY_SCRIPT = """
import resource, numpy as np, torch
from danet.model.segment import segment

class Fake(torch.nn.Module):
    config = {"input_size": [64, 96]}
    mean, std = [0.5] * 3, [0.25] * 3
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 19, 1)
    def forward(self, x):
        return {"out": self.conv(x)}

torch.set_num_threads(1)
model = Fake().eval()
image = np.random.default_rng(0).integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
segment(model, image[:200, :300])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
labels = segment(model, image)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert labels.shape == (2000, 3000), labels.shape
print((after - before) / 1024)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_a_large_photo_costs_its_pixels_not_full_resolution_logits() -> None:
    # 6 MP and 19 classes: full-resolution float probabilities alone would be 456 MB
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, check=True
    )
    grew_mib = float(done.stdout.strip().splitlines()[-1])
    assert grew_mib < 100, f"peak memory grew by {grew_mib:.0f} MiB"


def test_a_refused_image_is_reported_once(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = _save(tmp_path / "big.png", (64, 64))
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--max-pixels", "1000"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("over the pixel budget") == 1, err


# --- predict . twice ---------------------------------------------------------------------------


def test_predict_dot_twice_never_reads_its_own_output(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(photos / "a.png", (40, 60))
    monkeypatch.chdir(photos)
    for _ in range(2):
        assert main(["predict", ".", "--checkpoint", str(checkpoint), "--quiet"]) == 0
    written = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.png"))
    expected = ["a.png"] + [f"predictions/a_{kind}.png" for kind in ("color", "label", "overlay")]
    assert written == expected


# --- the onnxruntime backend -------------------------------------------------------------------


def test_onnxruntime_keeps_the_aspect_ratio_with_the_same_labels(
    live_checkpoint: Path, tmp_path: Path
) -> None:
    image = _save(tmp_path / "wide.png", (54, 160))  # 16:9-ish against a 2:3 input size
    for backend in ("torch", "onnxruntime"):
        argv = ["predict", str(image), "--checkpoint", str(live_checkpoint), "--quiet"]
        assert main([*argv, "--backend", backend, "--out", str(tmp_path / backend)]) == 0
    torch_labels, ort_labels = (
        np.asarray(Image.open(tmp_path / backend / "wide_label.png"))
        for backend in ("torch", "onnxruntime")
    )
    assert torch_labels.shape == ort_labels.shape == (54, 160)
    assert (torch_labels == ort_labels).mean() >= 0.995


def test_onnxruntime_export_is_cached_by_checkpoint_and_options(
    live_checkpoint: Path, tmp_path: Path, _cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = danet.load(live_checkpoint, backend="onnxruntime")
    assert not first.fixed_size
    cached = list((_cache_home / "danet" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and first.path == cached[0]

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr("danet.deploy.backend.export_onnx", no_export)
    assert danet.load(live_checkpoint, backend="onnxruntime").path == cached[0]
    with pytest.raises(AssertionError, match="exported again"):  # other options, other file
        danet.load(live_checkpoint, backend="onnxruntime", int8=True)
    other = danet.save_model(danet.load(live_checkpoint), tmp_path / "copy")
    assert danet.load(other, backend="onnxruntime").path == cached[0]  # same bytes, same key
    weights = other / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(AssertionError, match="exported again"):  # changed weights, new key
        danet.load(other, backend="onnxruntime")


# --- strict JSON -------------------------------------------------------------------------------


def _no_constants(name: str) -> None:
    raise ValueError(f"not JSON: {name}")


def test_eval_json_writes_null_for_an_absent_class(
    checkpoint: Path, camvid_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval.json"
    argv = ["eval", "--checkpoint", str(checkpoint), "--dataset", "camvid", "--data-root"]
    assert main([*argv, str(camvid_root), "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text(), parse_constant=_no_constants)
    assert None in result["per_class_iou"]  # the tiny tree has no car, no pedestrian...
    assert all(v is None or 0 <= v <= 1 for v in result["per_class_iou"])


# --- a CLI that is even ------------------------------------------------------------------------

TINY_TRAIN = [
    "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained", "none",
    "--batch-size", "2", "--crop-size", "32", "--workers", "0",
]  # fmt: skip


def _help(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().out


def test_top_level_and_attention_help_read_cleanly(capsys: pytest.CaptureFixture) -> None:
    text = _help(["--help"], capsys)
    assert "`" not in text and "inspect" in text.split("\n\n")[1]  # the description names it
    text = _help(["attention", "--help"], capsys)
    assert "(default: three)" in text and "(default: [])" not in text


def test_train_help_shows_the_recipe_of_its_config(capsys: pytest.CaptureFixture) -> None:
    built_in = " ".join(_help(["train", "--help"], capsys).split())
    assert "--cam-variant {paper,original} channel attention formula: the paper's" in built_in
    assert "(default: paper)" in built_in
    assert "recipe default" not in built_in and "--config camvid --help" in built_in
    options = _help(["train", "--config", "camvid", "--help"], capsys).split("\n  --")
    helps = {o.split()[0]: " ".join(o.split("\n\n")[0].split()) for o in options}
    for flag, value in [("cam-variant", "original"), ("affinity-target", "uniform"),
                        ("crop-size", "[256, 320]"), ("workers", "1")]:  # fmt: skip
        assert helps[flag].endswith(f"; --config camvid: {value})"), helps[flag]


def test_inspect_takes_the_run_dataset_and_prints_miou_in_percent(
    camvid_root: Path, tmp_path: Path, small_model: danet.DANet, capsys: pytest.CaptureFixture
) -> None:
    run = danet.save_model(small_model, tmp_path / "run")
    settings = {"dataset": "camvid", "data_root": str(camvid_root), "val_split": "val"}
    (run / "run_config.json").write_text(json.dumps(settings))
    out = tmp_path / "inspect.json"
    assert main(["inspect", "--checkpoint", str(run), "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text(), parse_constant=_no_constants)
    printed = capsys.readouterr().out.splitlines()
    line = next(x for x in printed if x.startswith("mIoU (%)"))
    assert float(line.split()[2]) == pytest.approx(100 * result["miou"], abs=0.01)
    assert printed[-1].startswith("verdict: ") and printed[-1] == result["verdict"]
    assert (result["dataset"], result["split"], result["images"]) == ("camvid", "val", 2)


def test_attention_and_export_are_quiet_and_export_takes_a_device(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = _save(tmp_path / "a.png", (48, 64))
    argv = ["attention", str(image), "--checkpoint", str(checkpoint), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "att")]) == 0
    argv = ["export", "--checkpoint", str(checkpoint), "--device", "cpu", "--quiet"]
    assert main([*argv, "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert capsys.readouterr().out == ""
    assert (tmp_path / "m.onnx").is_file() and list((tmp_path / "att").glob("*.png"))


# --- training leftovers ------------------------------------------------------------------------


def test_a_failed_train_leaves_no_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ["train", *TINY_TRAIN, "--data-root", str(tmp_path / "nowhere"), "--iters", "1"]
    assert main([*argv, "--out", str(run)]) == 2
    assert not run.exists()


def test_a_finished_run_says_where_its_model_is_and_its_mIoU_once(
    camvid_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    recipe = tmp_path / "warm.yaml"
    recipe.write_text("warmup_iters: 5\n")
    run = tmp_path / "run"
    argv = ["train", "--config", str(recipe), *TINY_TRAIN, "--data-root", str(camvid_root)]
    assert main([*argv, "--iters", "2", "--out", str(run)]) == 0
    out, err = capsys.readouterr()
    assert out.count("val mIoU") == 1, out
    assert f"model: {run / 'model.safetensors'}" in out
    assert "shorter than the warm-up (5 iterations)" in err


# --- the Python API ----------------------------------------------------------------------------


def test_model_predict_turns_a_pil_image_upright_and_names_classes(
    small_model: danet.DANet, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    stored = Image.fromarray(pixels)
    exif = stored.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view: the upright image is 70x40
    stored.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    from_path = small_model.predict(tmp_path / "phone.jpg")
    with Image.open(tmp_path / "phone.jpg") as opened:
        from_pil = small_model.predict(opened)
    assert from_path.shape == from_pil.shape == (70, 40)
    np.testing.assert_array_equal(from_path, from_pil)
    assert small_model.class_names[:2] == ["sky", "building"]


def test_the_model_card_says_how_to_use_the_model(small_model: danet.DANet, tmp_path: Path) -> None:
    small_model.save_pretrained(tmp_path / "hf")
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "More Information Needed" not in card
    assert "model.predict(" in card and "danet predict" in card


def test_demo_says_whether_its_frames_were_in_the_training_set(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import danet.demo

    monkeypatch.setattr(danet.demo, "predict_paths", lambda *args, **kwargs: [])
    monkeypatch.setattr(danet.demo, "attention_figures", lambda *args, **kwargs: [])
    danet.demo.run_demo(tmp_path / "demo")
    said = capsys.readouterr().out
    assert "did not train on" not in said  # the bundled camvid trained on train+val
    assert "camvid trained on CamVid train+val, so CamVid val images are training data" in said
    usage = Path(__file__).parents[2] / "docs" / "usage.md"
    assert "until that model ships" not in usage.read_text()


# --- tiny inputs -------------------------------------------------------------------------------


def test_a_thumbnail_gets_a_warning(
    checkpoint: Path, small_model: danet.DANet, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert small_model.config["input_size"] == [64, 96]  # under 16 px short side: a thumbnail
    with pytest.warns(UserWarning, match="far smaller than the model's input size 64x96"):
        small_model.predict(np.zeros((8, 8, 3), np.uint8))
    image = _save(tmp_path / "thumb.png", (8, 8))
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert "thumb: 8x8 is far smaller" in capsys.readouterr().err


# --- readable figures and legends --------------------------------------------------------------


def test_cam_figure_says_what_a_panel_shows_with_colour_bars(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import danet.analysis.attention_maps as maps

    figures = []
    monkeypatch.setattr(maps, "_save", lambda fig, path: figures.append(fig) or path)
    image = _save(tmp_path / "a.png", (48, 64))
    maps.attention_figures(checkpoint, image, [(10, 10)], tmp_path, channels=[1, 2])
    pam, cam = figures
    assert "uniform" in " ".join(t.get_text() for ax in pam.axes for t in ax.get_yticklabels())
    assert "each panel is one feature channel" in cam._suptitle.get_text()
    titles = [ax.get_title() for ax in cam.axes]
    title = next(t for t in titles if t.startswith("channel 1 after channel attention"))
    assert "\nbrightest on " in title and "of its top tenth)" in title
    assert sum(ax.get_label() == "<colorbar>" for ax in cam.axes) == 2


def test_legend_scales_with_the_image_and_outlines_a_black_swatch() -> None:
    from danet.inference.legend import OUTLINE, add_legend

    palette = np.array([[0, 0, 0], [200, 30, 30]], np.uint8)
    names = ["background", "thing"]
    small = add_legend(np.zeros((240, 320, 3), np.uint8), [0, 1], names, palette)
    large = add_legend(np.zeros((1080, 2000, 3), np.uint8), [0, 1], names, palette)
    assert (large.shape[1] - 2000) > 2 * (small.shape[1] - 320)  # the panel grows with the image
    panel = large[:, 2000:]
    rows, cols = np.nonzero((panel == OUTLINE).all(axis=2))
    assert len(rows) > 0 and rows.min() < 60  # the black swatch's outline, at the top


def test_predict_says_in_one_line_that_alpha_was_dropped(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rgba = np.full((48, 64, 4), 128, np.uint8)
    rgba[:24, :, 3] = 0  # the top half transparent
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    argv = ["predict", str(tmp_path / "cutout.png"), "--checkpoint", str(checkpoint)]
    assert main([*argv, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "transparent" in line]
    assert lines == [
        f"danet: warning: {tmp_path / 'cutout.png'}: 50.0% of its pixels are transparent; alpha "
        "is dropped, so they are segmented from the colour stored under them"
    ]
