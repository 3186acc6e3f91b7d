"""One consistent CLI: shared flags, help with defaults, --version, eval from the run, progress."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import danet
from danet.cli import DEFAULT_CHECKPOINT, build_parser, main
from danet.utils.progress import LineProgress

TINY = [
    "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained", "none",
    "--batch-size", "2", "--crop-size", "32", "--workers", "0",
]  # fmt: skip


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def flag(parser: argparse.ArgumentParser, name: str) -> argparse.Action | None:
    return next((a for a in parser._actions if name in a.option_strings), None)


def test_version(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"danet {danet.__version__}"


def test_every_flag_has_help_and_shared_flags_agree() -> None:
    for name, parser in subcommands().items():
        for action in parser._actions:
            assert action.help, f"danet {name} {action.option_strings or action.dest}: no help"
        checkpoint = flag(parser, "--checkpoint")
        if name not in ("train", "convert", "weights"):  # they write models or fetch weights
            assert checkpoint is not None, name
            assert checkpoint.default == DEFAULT_CHECKPOINT and not checkpoint.required, name
        device = flag(parser, "--device")
        if name not in ("convert", "weights"):  # convert only renames; weights only downloads
            assert device is not None, name
            defaults = {"train": None, "export": "cpu"}  # train: the recipe's (auto); export:
            assert device.default == defaults.get(name, "auto"), name  # the same file anywhere
        assert flag(parser, "--debug") is not None, name
    for name in ("train", "predict", "export"):
        assert flag(subcommands()[name], "--input-size") is not None, name


def test_help_shows_defaults_and_choices(capsys: pytest.CaptureFixture) -> None:
    for argv in (["predict", "--help"], ["train", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        if argv[0] == "predict":
            assert "(default: camvid)" in text and "(default: auto)" in text
            assert "{keep-aspect,squash,none}" in text
        else:
            assert "cityscapes" in text and "mobilenetv2_100" in text and "{paper,original}" in text
            assert "(default: 0.01)" in text


def test_debug_after_the_subcommand(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        main(["predict", str(tmp_path / "nope.png"), "--debug"])
    assert main(["predict", str(tmp_path / "nope.png")]) == 2


def test_export_input_size_and_old_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    import danet.deploy.export

    calls = []
    monkeypatch.setattr(
        danet.deploy.export, "export_onnx", lambda *a, **k: calls.append(a) or Path(a[1])
    )
    assert main(["export", "--onnx", "m.onnx", "--input-size", "64,96"]) == 0
    assert main(["export", "--checkpoint", "camvid", "--onnx", "m.onnx", "--height", "32",
                 "--width", "48"]) == 0  # fmt: skip
    assert [c[1:4] for c in calls] == [("m.onnx", 64, 96), ("m.onnx", 32, 48)]
    assert all(isinstance(c[0], danet.DANet) for c in calls)  # the model, opened once


def test_eval_takes_dataset_and_root_from_the_run(
    camvid_root: Path, tmp_path: Path, small_model: danet.DANet, capsys: pytest.CaptureFixture
) -> None:
    run = danet.save_model(small_model, tmp_path / "run")
    assert main(["eval", "--checkpoint", str(run)]) == 2
    assert "--dataset is required" in capsys.readouterr().err
    settings = {"dataset": "camvid", "data_root": str(camvid_root), "val_split": "train"}
    (run / "run_config.json").write_text(json.dumps(settings))
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(run), "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert (result["dataset"], result["split"], result["images"]) == ("camvid", "train", 4)
    assert main(["eval", "--checkpoint", str(run), "--split", "val", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["images"] == 2
    assert "device: cpu" in capsys.readouterr().out


def test_progress_off_a_terminal_is_sparse_lines(capsys: pytest.CaptureFixture) -> None:
    bar = LineProgress(total=100, desc="train")
    for _ in range(100):
        bar.set_postfix(loss="0.5")
        bar.update(1)
    err = capsys.readouterr().err
    assert "\r" not in err and len(err.splitlines()) == 10
    assert err.splitlines()[-1].startswith("train 100/100 it (100%)")


def test_training_log_off_a_terminal_shows_val_miou(
    camvid_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["train", *TINY, "--data-root", str(camvid_root), "--iters", "2"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in err and "train 2/2" in err
    assert "step 2/2  val mIoU" in out and "device: cpu" in out
    assert main([*args, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "val mIoU" in out  # the final result line stays


def test_predict_prints_the_device(
    tmp_path: Path, small_model: danet.DANet, capsys: pytest.CaptureFixture
) -> None:
    checkpoint = danet.save_model(small_model, tmp_path / "model")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    argv = ["predict", str(tmp_path / "a.png"), "--checkpoint", str(checkpoint)]
    assert main([*argv, "--out", str(tmp_path / "out"), "--device", "auto"]) == 0
    assert "device: cpu" in capsys.readouterr().out
