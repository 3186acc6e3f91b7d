"""danet convert: mmsegmentation's and the authors' DANet checkpoints, built here synthetically.

A DANet built with each format's options is renamed into the foreign layout by an inverse key map
written here, independently of the converters' rules, and saved the way each code base saves.
The conversion must reproduce the outputs exactly and use every tensor. The foreign layouts are
pinned by key and shape lists dumped from mmsegmentation 1.2.2 and from the authors' code
(``tests/convert/keys/*_keys.txt``, written by ``scripts/verify_converters.py``).
"""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import danet
from danet import DANet
from danet.cli import main
from danet.convert import convert, detect_format, read_checkpoint
from danet.convert.common import NUMPY_SCALAR_GLOBALS, allowed_globals
from danet.convert.mmseg import align_corners_from_meta, classes_from_meta

DATA = Path(__file__).parent / "keys"
NUM_CLASSES = 3
SIZE = 65

# danet name prefix -> foreign name prefix, first match wins (the inverse of the converters).
TO_MMSEG = [
    ("backbone.conv1.0.", "backbone.stem.0."),
    ("backbone.conv1.1.", "backbone.stem.1."),
    ("backbone.conv1.3.", "backbone.stem.3."),
    ("backbone.conv1.4.", "backbone.stem.4."),
    ("backbone.conv1.6.", "backbone.stem.6."),
    ("backbone.bn1.", "backbone.stem.7."),
    ("backbone.layer", "backbone.layer"),
    ("head.branches.pam.conv_in.0.", "decode_head.pam_in_conv.conv."),
    ("head.branches.pam.conv_in.1.", "decode_head.pam_in_conv.bn."),
    ("head.branches.pam.conv_out.0.", "decode_head.pam_out_conv.conv."),
    ("head.branches.pam.conv_out.1.", "decode_head.pam_out_conv.bn."),
    ("head.branches.cam.conv_in.0.", "decode_head.cam_in_conv.conv."),
    ("head.branches.cam.conv_in.1.", "decode_head.cam_in_conv.bn."),
    ("head.branches.cam.conv_out.0.", "decode_head.cam_out_conv.conv."),
    ("head.branches.cam.conv_out.1.", "decode_head.cam_out_conv.bn."),
    ("head.branches.pam.attention.query.", "decode_head.pam.query_project."),
    ("head.branches.pam.attention.key.", "decode_head.pam.key_project."),
    ("head.branches.pam.attention.value.", "decode_head.pam.value_project."),
    ("head.branches.pam.attention.gamma", "decode_head.pam.gamma.scale"),
    ("head.branches.cam.attention.gamma", "decode_head.cam.gamma.scale"),
    ("head.classifier.1.", "decode_head.conv_seg."),
    ("head.classifiers.pam.1.", "decode_head.pam_conv_seg."),
    ("head.classifiers.cam.1.", "decode_head.cam_conv_seg."),
    ("aux.0.0.", "auxiliary_head.convs.0.conv."),
    ("aux.0.1.", "auxiliary_head.convs.0.bn."),
    ("aux.1.1.", "auxiliary_head.conv_seg."),
]
TO_ORIGINAL = [
    ("backbone.", "pretrained."),
    ("head.branches.pam.conv_in.", "head.conv5a."),
    ("head.branches.cam.conv_in.", "head.conv5c."),
    ("head.branches.pam.conv_out.", "head.conv51."),
    ("head.branches.cam.conv_out.", "head.conv52."),
    ("head.branches.pam.attention.query.", "head.sa.query_conv."),
    ("head.branches.pam.attention.key.", "head.sa.key_conv."),
    ("head.branches.pam.attention.value.", "head.sa.value_conv."),
    ("head.branches.pam.attention.gamma", "head.sa.gamma"),
    ("head.branches.cam.attention.gamma", "head.sc.gamma"),
    ("head.classifiers.pam.1.", "head.conv6.1."),
    ("head.classifiers.cam.1.", "head.conv7.1."),
    ("head.classifier.1.", "head.conv8.1."),
]


def foreign_layout(model: DANet, prefixes: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in model.state_dict().items():
        ours, theirs = next((a, b) for a, b in prefixes if key.startswith(a))
        name = theirs + key[len(ours) :]
        out[name] = value.reshape(()) if name.endswith("gamma.scale") else value.clone()
    return out


def randomise(model: DANet, seed: int) -> DANet:
    """Random weights, BN statistics far from (0, 1) and non-zero gammas: every tensor matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(7)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("gamma"):
                tensor.fill_(0.7)
            elif name.endswith("attention.value.weight"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.02)
            elif tensor.is_floating_point():
                scale = 0.1 if name.endswith(("running_mean", "bias")) else 1.0
                fan_in = tensor[0].numel() if tensor.ndim == 4 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * scale / fan_in**0.5)
    return model.eval()


def reference(**options) -> DANet:
    return randomise(DANet(num_classes=NUM_CLASSES, cam_variant="original", **options), seed=0)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def mmseg_case(tmp_path_factory, image):
    """An mmseg-layout file saved as mmcv saves (meta, state_dict, optimizer), and its conversion."""
    model = reference(backbone="resnet50c", aux_head=True)
    state = foreign_layout(model, TO_MMSEG)
    meta = {
        "CLASSES": ("sky", "road", "car"),
        "PALETTE": [[0, 0, 255], [9, 9, 9], [255, 0, 0]],
        "seed": np.int64(3),
        "config": "model = dict(\n    decode_head=dict(\n        align_corners=False,",
    }
    optimizer = {"state": {0: {"momentum_buffer": torch.zeros(4)}}, "param_groups": [{"lr": 0.01}]}
    root = tmp_path_factory.mktemp("mmseg")
    src = root / "danet_r50-d8.pth"
    torch.save({"meta": meta, "state_dict": state, "optimizer": optimizer}, src)
    report = convert(src, root / "model", input_size=[SIZE, SIZE])
    with torch.no_grad():
        expected = model(image)
    return src, report, state, expected


@pytest.fixture(scope="module")
def original_case(tmp_path_factory, image):
    """An authors'-layout file saved as their train.py saves (module. prefix, numpy mIoU)."""
    model = reference(backbone="resnet50", multi_grid=[1, 2, 4], align_corners=True)
    state = {f"module.{k}": v for k, v in foreign_layout(model, TO_ORIGINAL).items()}
    optimizer = {"state": {}, "param_groups": [{"lr": 0.003, "momentum": 0.9}]}
    checkpoint = {
        "epoch": 240,
        "state_dict": state,
        "optimizer": optimizer,
        "best_pred": np.float64(0.799),
    }
    root = tmp_path_factory.mktemp("original")
    src = root / "DANet101.pth.tar"
    torch.save(checkpoint, src)
    out, printed = root / "model", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["convert", str(src), "--out", str(out)]) == 0
    with torch.no_grad():
        expected = model(image)
    return src, out, expected, printed.getvalue()


def assert_same_outputs(model: DANet, expected: dict[str, torch.Tensor], image) -> None:
    with torch.no_grad():
        got = model(image)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5)


def test_mmseg_converts_exactly(mmseg_case, image):
    src, report, state, expected = mmseg_case
    model = danet.load(report.folder)
    assert_same_outputs(model, expected, image)
    config = model.config
    assert config["backbone"] == "resnet50c" and config["aux_head"] is True
    assert config["cam_variant"] == "original" and config["pam_reduction"] == 8
    assert config["align_corners"] is False and config["multi_grid"] is None
    assert config["class_names"] == ["sky", "road", "car"]
    assert config["palette"][0] == [0, 0, 255] and config["input_size"] == [SIZE, SIZE]
    assert report.format == "mmseg"
    assert report.tensors == len(state) == len(model.state_dict())  # every tensor is used
    assert report.dropped == {"optimizer": 1}
    assert_same_outputs(DANet.from_pretrained(str(report.folder)), expected, image)


def test_original_converts_exactly(original_case, image):
    src, folder, expected, _ = original_case
    model = danet.load(folder)
    assert_same_outputs(model, expected, image)
    assert model.config["backbone"] == "resnet50" and model.config["multi_grid"] == [1, 2, 4]
    assert model.config["align_corners"] is True and model.config["aux_head"] is False
    assert model.config["class_names"] is None
    assert [block.conv2.dilation[0] for block in model.backbone.layer4] == [4, 8, 16]


def test_cli_reports_what_was_used_and_dropped(original_case):
    printed = original_case[3]
    assert "original: resnet50 DANet, 3 classes (unnamed: --dataset names them)" in printed
    assert "356 tensors loaded, dropped epoch, optimizer, best_pred" in printed


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"config": "decode_head=dict(\n  type='DAHead',\n  align_corners=True,"}, True),
        ({"cfg": "decode_head=dict(type='DAHead', align_corners=False)"}, False),
        ({"config": "align_corners=True\ndecode_head=dict(type='DAHead')"}, False),
        ({"CLASSES": ("a",)}, False),
        (None, False),
    ],
)
def test_align_corners_comes_from_the_config_in_meta(meta, expected):
    assert align_corners_from_meta(meta) is expected


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (
            {"CLASSES": ("a", "b"), "PALETTE": [[1, 2, 3], [4, 5, 6]]},
            (["a", "b"], [[1, 2, 3], [4, 5, 6]]),
        ),
        (
            {"dataset_meta": {"classes": ("a",), "palette": [(np.uint8(9), 8, 7)]}},
            (["a"], [[9, 8, 7]]),
        ),
        ({"dataset_meta": {"classes": ["a"]}}, (["a"], None)),
        ({"seed": 0}, (None, None)),
    ],
)
def test_classes_come_from_meta_of_both_mmseg_versions(meta, expected):
    assert classes_from_meta(meta) == expected


@pytest.mark.parametrize("palette", [[[1, 2]], [[1, 2, 300]], [["red", 0, 0]], [None]])
def test_a_bad_palette_in_meta_is_named(palette):
    with pytest.raises(ValueError, match="x.pth: the palette in its meta is not a list of RGB"):
        classes_from_meta({"CLASSES": ("a",), "PALETTE": palette}, "x.pth")


def _layout(path: Path) -> dict[str, tuple[int, ...]]:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return {name: tuple(int(d) for d in dims.split("x") if d != "scalar") for name, dims in rows}


@pytest.mark.parametrize(
    ("file", "options", "prefixes"),
    [
        ("mmseg_danet_r50_keys.txt", {"backbone": "resnet50c", "aux_head": True}, TO_MMSEG),
        ("original_danet_r50_keys.txt", {"backbone": "resnet50"}, TO_ORIGINAL),
    ],
)
def test_layouts_match_the_real_code(file, options, prefixes):
    """The synthetic files have exactly the names and shapes that the real code bases save."""
    with torch.device("meta"):
        model = DANet(num_classes=NUM_CLASSES, **options)
    ours = {k: tuple(v.shape) for k, v in foreign_layout(model, prefixes).items()}
    assert ours == _layout(DATA / file)


@pytest.mark.skipif(
    not np.__version__.startswith("2") or len(allowed_globals()) != len(NUMPY_SCALAR_GLOBALS),
    reason="needs numpy 2 (which pickles numpy._core) and torch >= 2.6 ((object, name) globals)",
)
def test_numpy_scalars_from_numpy1_files_load(tmp_path):
    """numpy 1.x pickles a scalar as numpy.core.multiarray.scalar; that name is allowed too."""
    path = tmp_path / "legacy.pth"
    torch.save({"best_pred": np.float64(0.5)}, path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    assert raw.count(b"numpy._core.multiarray") == 1
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert read_checkpoint(path)["best_pred"] == 0.5


class _RunsCode:
    """Unpickling this runs code: it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_code_running_pickle_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    src = tmp_path / "evil.pth"
    with open(src, "wb") as f:
        torch.save({"state_dict": {}, "meta": _RunsCode(marker)}, f)
    assert not marker.exists()
    assert main(["convert", str(src), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "refused" in err and "builtins.exec" in err and "nothing in the file was run" in err
    assert not marker.exists() and not (tmp_path / "m").exists()


def test_plain_pickle_file_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"
    src = tmp_path / "evil.pkl"
    src.write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
    assert main(["convert", str(src), "--out", str(tmp_path / "m")]) == 2
    assert "refused" in capsys.readouterr().err and not marker.exists()


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"decode_head.conv_seg.weight": torch.zeros(3, 512, 1, 1)}, "backbone.stem.0.weight"),
        ({"backbone.conv1.weight": torch.zeros(1)}, "neither an mmsegmentation DANet"),
        (
            {"backbone.stem.0.weight": torch.zeros(32, 3, 3, 3), "decode_head.psp.weight": 0},
            "'decode_head.psp.weight' is not a named tensor",
        ),
        (
            {
                "backbone.stem.0.weight": torch.zeros(32, 3, 3, 3),
                "decode_head.psp.w": torch.ones(1),
            },
            "'decode_head.psp.w' is not part of an mmsegmentation DANet",
        ),
        (
            {
                "backbone.stem.0.weight": torch.zeros(32, 3, 3, 3),
                "decode_head.pam.query_project.weight": torch.zeros(1),
                "decode_head.pam.query_project.conv.weight": torch.zeros(1),
            },
            "two tensors map to head.branches.pam.attention.query.weight",
        ),
        (
            {"pretrained.conv1.weight": torch.zeros(1), "head.conv9.weight": torch.ones(1)},
            "'head.conv9.weight' is not part of the authors' DANet",
        ),
    ],
)
def test_foreign_tensors_are_named_in_errors(tmp_path, capsys, state, message):
    src = tmp_path / "x.pth"
    torch.save({"state_dict": state}, src)
    assert main(["convert", str(src), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_dataset_names_classes_and_must_agree(original_case, tmp_path, capsys):
    src = original_case[0]
    assert main(["convert", str(src), "--out", str(tmp_path / "m"), "--dataset", "voc"]) == 2
    assert "voc has 21 classes" in capsys.readouterr().err
    assert main(["convert", str(src), "--out", str(tmp_path / "m"), "--dataset", "mars"]) == 2
    assert "'mars' is not one of" in capsys.readouterr().err


def test_format_is_checked(mmseg_case, tmp_path, capsys):
    src = mmseg_case[0]
    assert main(["convert", str(src), "--out", str(tmp_path / "m"), "--format", "original"]) == 2
    assert "'backbone.stem.0.weight' is not part of the authors' DANet" in capsys.readouterr().err
    assert main(["convert", str(src), "--out", str(tmp_path / "m"), "--format", "caffe"]) == 2
    assert "--format 'caffe'" in capsys.readouterr().err


def test_detect_format_names_both():
    assert detect_format({"decode_head.conv_seg.weight": torch.zeros(1)}) == "mmseg"
    assert detect_format({"pretrained.conv1.weight": torch.zeros(1), "head.x": torch.zeros(1)}) == (
        "original"
    )
