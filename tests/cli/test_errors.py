"""Bad input to the CLI: one line on stderr that names the culprit, exit status 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import danet
from danet.cli import main


def test_unknown_dataset_lists_the_valid_ones(tmp_path: Path, cli) -> None:
    code, _, err = cli(["eval", "--checkpoint", "x", "--dataset", "kitti", "--data-root",
                        str(tmp_path)])  # fmt: skip
    assert code == 2
    # the checkpoint is looked up first; give a real one to reach the dataset check
    model = danet.DANet(num_classes=11, backbone="mobilenetv2_100")
    danet.save_model(model, tmp_path / "m")
    code, _, err = cli(["eval", "--checkpoint", str(tmp_path / "m"), "--dataset", "kitti",
                        "--data-root", str(tmp_path)])  # fmt: skip
    assert code == 2 and "kitti" in err and "camvid" in err and "cityscapes" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_unknown_backbone_lists_the_valid_ones(tmp_path: Path, cli) -> None:
    code, _, err = cli(["train", "--dataset", "camvid", "--data-root", str(tmp_path),
                        "--backbone", "resnet_9000", "--iters", "1", "--out",
                        str(tmp_path / "r")])  # fmt: skip
    assert code == 2, err
    assert "resnet_9000" in err and "mobilenetv2_100" in err


def test_checkpoint_with_other_class_count(camvid_root: Path, tmp_path: Path, cli) -> None:
    danet.save_model(danet.DANet(num_classes=19, backbone="mobilenetv2_100"), tmp_path / "m")
    code, _, err = cli(["eval", "--checkpoint", str(tmp_path / "m"), "--dataset", "camvid",
                        "--data-root", str(camvid_root)])  # fmt: skip
    assert code == 2 and "19 classes" in err and "11" in err


def test_checkpoint_whose_backbone_does_not_match_its_weights(tmp_path: Path, cli) -> None:
    danet.save_model(danet.DANet(num_classes=11, backbone="mobilenetv2_100"), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["backbone"] = "efficientnet_lite0"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    code, _, err = cli(["export", "--checkpoint", str(tmp_path / "m"), "--onnx",
                        str(tmp_path / "x.onnx"), "--height", "32", "--width", "32"])  # fmt: skip
    assert code == 2 and "model.safetensors" in err and "do not match" in err
    assert not (tmp_path / "x.onnx").exists()


def test_empty_split(tmp_path: Path, cli) -> None:
    (tmp_path / "val").mkdir()
    (tmp_path / "valannot").mkdir()
    danet.save_model(danet.DANet(num_classes=11, backbone="mobilenetv2_100"), tmp_path / "m")
    code, _, err = cli(["eval", "--checkpoint", str(tmp_path / "m"), "--dataset", "camvid",
                        "--data-root", str(tmp_path)])  # fmt: skip
    assert code == 2 and "empty" in err and str(tmp_path) in err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        main(["--debug", "eval", "--checkpoint", str(tmp_path / "nope"), "--dataset", "camvid",
              "--data-root", str(tmp_path)])  # fmt: skip
