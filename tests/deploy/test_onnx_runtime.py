"""The onnxruntime backend: OnnxModel stands in for DANet in predict and eval, from the file alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import assert_one_line, live_attention
from PIL import Image

import danet
from danet.cli import main
from danet.deploy.export import export_onnx
from danet.deploy.onnx_runtime import OnnxModel
from danet.utils.inference import label_images


@pytest.fixture
def checkpoint(tmp_path: Path, small_model: danet.DANet) -> Path:
    """The small model with both attentions reaching the output."""
    return danet.save_model(live_attention(small_model), tmp_path / "model")


@pytest.fixture
def onnx_file(checkpoint: Path, tmp_path: Path) -> Path:
    return export_onnx(checkpoint, tmp_path / "model.onnx")


def test_model_from_file_alone(onnx_file: Path, checkpoint: Path) -> None:
    model, reference = OnnxModel(onnx_file), danet.load(checkpoint)
    assert model.num_classes == 11
    assert model.config["class_names"] == reference.config["class_names"]
    assert model.config["palette"] == reference.config["palette"]
    assert model.config["input_size"] == [64, 96]
    assert (model.mean, model.std) == (reference.mean, reference.std)
    x = torch.randn(3, 3, 64, 96)  # a batch of 3 through a graph with batch 1
    with torch.no_grad():
        expected = reference(x)["out"]
    torch.testing.assert_close(model(x)["out"], expected, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="exported for 64x96 inputs, got 32x96"):
        model(torch.randn(1, 3, 32, 96))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # dynamo=False, for a bare graph
def test_files_that_are_not_danet_exports(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        OnnxModel(tmp_path / "nope.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="garbage.onnx: onnxruntime cannot load it"):
        OnnxModel(garbage)
    bare = tmp_path / "bare.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 2, 1), (torch.randn(1, 3, 8, 8),), bare, dynamo=False)
    assert onnx.load(str(bare)).metadata_props == []
    with pytest.raises(ValueError, match="bare.onnx: not a danet export"):
        OnnxModel(bare)


def test_backend_choice_errors(checkpoint: Path, onnx_file: Path) -> None:
    with pytest.raises(ValueError, match="int8=True needs backend='onnxruntime'"):
        danet.load(checkpoint, backend="torch", int8=True)
    with pytest.raises(ValueError, match="needs backend='onnxruntime'"):
        danet.load(onnx_file, backend="torch")
    with pytest.raises(ValueError, match="runs on the CPU"):
        danet.load(checkpoint, "cuda", backend="onnxruntime")
    with pytest.raises(ValueError, match="backend='tf'"):
        danet.load(checkpoint, backend="tf")
    assert isinstance(danet.load(onnx_file), OnnxModel)  # an .onnx file picks onnxruntime


def test_predict_cli_onnxruntime_matches_torch(checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(
            tmp_path / f"{name}.png"
        )
    images = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    for backend in ("torch", "onnxruntime"):
        argv = ["predict", *images, "--checkpoint", str(checkpoint), "--backend", backend]
        argv += ["--resize", "squash"]  # a fixed-size ONNX file runs at the input size only
        assert main([*argv, "--out", str(tmp_path / backend)]) == 0
    for name in ("a", "b"):
        labels = [
            np.asarray(Image.open(tmp_path / backend / f"{name}_label.png"))
            for backend in ("torch", "onnxruntime")
        ]
        assert (labels[0] == labels[1]).mean() >= 0.999
    code = main(["predict", *images, "--checkpoint", str(checkpoint), "--int8"])
    assert code == 2  # int8 needs onnxruntime


def test_eval_cli_onnxruntime_matches_torch(
    checkpoint: Path, onnx_file: Path, camvid_root: Path, tmp_path: Path
) -> None:
    results = []
    for backend, source in (("torch", checkpoint), ("onnxruntime", onnx_file)):
        out = tmp_path / f"{backend}.json"
        argv = ["eval", "--checkpoint", str(source), "--dataset", "camvid", "--data-root",
                str(camvid_root), "--backend", backend, "--json", str(out),
                "--resize", "squash"]  # fmt: skip
        assert main(argv) == 0
        results.append(json.loads(out.read_text()))
    assert results[1]["backend"] == "onnxruntime"
    assert abs(results[0]["miou"] - results[1]["miou"]) < 1e-3


def test_budget_refuses_an_older_dynamic_file_whose_attention_would_not_fit(
    checkpoint: Path, tmp_path: Path, cli
) -> None:
    scan = export_onnx(danet.load(checkpoint), tmp_path / "scan.onnx", dynamic=True)
    proto = onnx.load(str(scan))  # as written before the Scan form: naive, without the key
    kept = [p for p in proto.metadata_props if p.key != "position_attention"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    naive = tmp_path / "naive.onnx"
    onnx.save(proto, str(naive))
    assert OnnxModel(scan).attention_form == "linear"
    assert OnnxModel(naive).attention_form == "naive"
    image = tmp_path / "wide.png"  # runs at 64x512: N = 8 x 64 = 512 positions, 2 MiB naive
    Image.fromarray(np.zeros((64, 512, 3), np.uint8)).save(image)
    argv = ["predict", str(image), "--backend", "onnxruntime", "--max-pixels", "40000"]
    code, _, err = cli([*argv, "--checkpoint", str(naive), "--out", str(tmp_path / "naive")])
    assert code == 2
    assert_one_line(err, "wide.png", "naive form", "N = 512", "--max-pixels")
    assert not (tmp_path / "naive" / "wide_label.png").exists()
    budget = danet.InferenceSettings(max_pixels=40000)  # the Python path checks it too
    with pytest.raises(ValueError, match="naive form"):
        OnnxModel(naive).predict(np.zeros((64, 512, 3), np.uint8), settings=budget)
    code, _, err = cli([*argv, "--checkpoint", str(scan), "--out", str(tmp_path / "scan")])
    assert code == 0, err
    assert (tmp_path / "scan" / "wide_label.png").is_file()


NO_TORCH = """
import sys
import numpy as np
import danet
from danet.cli import main

onnx, image, out = sys.argv[1:4]
assert main(["predict", image, "--checkpoint", onnx, "--out", out, "--quiet"]) == 0
labels = danet.load(onnx).predict(np.zeros((40, 60, 3), np.uint8))
assert labels.shape == (40, 60) and labels.dtype == np.uint8
try:
    main(["predict", image, "--checkpoint", onnx, "--scales", "0"])  # an argument error
except SystemExit as err:
    assert err.code == 2
heavy = sorted({"torch", "timm", "torchvision"} & set(sys.modules))
print("heavy:", heavy)
tops = {m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names) - {"danet"}
print("imports:", " ".join(sorted(t for t in tops if not t.startswith("_"))))
"""


def test_onnx_predict_never_imports_torch(onnx_file: Path, tmp_path: Path) -> None:
    """danet predict and danet.load(...).predict with an .onnx file, and an argument error, in a
    fresh process: torch, timm and torchvision are never imported."""
    image = tmp_path / "a.png"
    Image.fromarray(np.full((50, 70, 3), 90, np.uint8)).save(image)
    src = Path(danet.__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(onnx_file), str(image), str(tmp_path / "out")],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout, done.stdout
    assert (tmp_path / "out" / "a_label.png").is_file()
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():  # the runtime extra lists every distribution that path imports
        from importlib.metadata import packages_distributions

        import tomllib
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
        runtime = {canonicalize_name(Requirement(r).name) for r in extra["runtime"]}
        owners = packages_distributions()
        line = next(x for x in done.stdout.splitlines() if x.startswith("imports:"))
        for module in line.split()[1:]:
            names = {canonicalize_name(d) for d in owners.get(module, [])}
            assert not names or names & runtime, f"{module} ({names}) is not in the runtime extra"


def test_int8_export_names_its_calibration_images(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    images = []
    for name in ("street.png", "square.png"):
        Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / name)
        images.append(str(tmp_path / name))
    path = tmp_path / "int8.onnx"
    argv = ["export", "--checkpoint", str(checkpoint), "--onnx", str(path), "--int8"]
    assert main([*argv, "--calibration", *images]) == 0
    out = capsys.readouterr().out
    assert "int8: calibrated on 2 image(s): street.png, square.png" in out
    assert "fixed size 64x96 (H x W): danet keeps other images' aspect ratio" in out
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["calibration"]) == ["street.png", "square.png"]
    assert OnnxModel(path).backend == "onnxruntime int8"


def test_a_fixed_size_file_keeps_the_aspect_ratio(onnx_file: Path, checkpoint: Path) -> None:
    """A 64x96 graph and a 16:9 image: the image is fitted inside (54x96) and padded, not
    squashed, and the labels are cropped back; PyTorch run the same way gives the same labels."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    model = OnnxModel(onnx_file)
    seen = []
    run = model.array_logits
    model.array_logits = lambda x: seen.append(x.copy()) or run(x)  # type: ignore[method-assign]
    labels = model.predict(image)
    assert labels.shape == (90, 160) and seen[0].shape == (1, 3, 64, 96)
    assert not seen[0][..., 54:, :].any() and seen[0][..., :54, :].any()  # padded below

    class FixedTorch:  # the PyTorch model behind the same fixed-size interface
        fixed_size = True

        def __init__(self, reference: danet.DANet) -> None:
            self.mean, self.std, self.config = reference.mean, reference.std, reference.config
            self.array_logits = reference.array_logits

    reference = FixedTorch(danet.load(checkpoint))
    settings = danet.InferenceSettings()
    expected = label_images(reference, [image], settings)[0]
    assert (labels == expected).mean() >= 0.99
