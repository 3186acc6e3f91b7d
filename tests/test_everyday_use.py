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
from danet.inference import upsampled_argmax
from danet.onnx_runtime import load_model


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
    monkeypatch.setattr("danet.inference.STRIP_ELEMENTS", 5000)  # many strips
    probs = torch.rand(2, 7, 40, 48).softmax(1)
    expected = F.interpolate(probs, size, mode="bilinear", align_corners=False).argmax(1)
    labels = upsampled_argmax(probs, size)
    assert labels.shape == (2, *size) and labels.dtype == torch.uint8
    assert (labels.long() == expected).float().mean() > 0.999


MEMORY_SCRIPT = """
import resource, numpy as np, torch
from danet.inference import segment

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
    first = load_model(live_checkpoint, "onnxruntime")
    assert not first.fixed_size
    cached = list((_cache_home / "danet" / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and first.path == cached[0]

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr("danet.export.export_onnx", no_export)
    assert load_model(live_checkpoint, "onnxruntime").path == cached[0]
    with pytest.raises(AssertionError, match="exported again"):  # other options, other file
        load_model(live_checkpoint, "onnxruntime", int8=True)
    other = danet.save_model(danet.load(live_checkpoint), tmp_path / "copy")
    assert load_model(other, "onnxruntime").path == cached[0]  # same bytes, same key
    weights = other / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(AssertionError, match="exported again"):  # changed weights, new key
        load_model(other, "onnxruntime")


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
