"""No command writes over what it reads, or replaces a special file: eval, inspect and export
refuse their own inputs as outputs in one line, and write into /dev/stdout or a FIFO in place."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import assert_one_line, random_png


def _eval(checkpoint: Path, root: Path, out: str, command: str = "eval") -> list[str]:
    argv = [command, "--checkpoint", str(checkpoint), "--dataset", "camvid", "--data-root"]
    return [*argv, str(root), "--split", "val", "--json", out, "--quiet", "--device", "cpu"]


@pytest.mark.parametrize("command", ["eval", "inspect"])
def test_json_onto_the_checkpoints_config_is_refused(
    cli, checkpoint: Path, camvid_root: Path, command: str
) -> None:
    config = checkpoint / "config.json"
    before = config.read_bytes()
    code, _, err = cli(_eval(checkpoint, camvid_root, str(config), command))
    assert code == 2
    assert_one_line(err, str(config), "is an input of this command")
    assert config.read_bytes() == before


def test_json_onto_a_mask_of_the_dataset_is_refused_before_the_evaluation(
    cli, checkpoint: Path, camvid_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import danet.training.evaluate

    monkeypatch.setattr(danet.training.evaluate, "evaluate", lambda *a, **k: pytest.fail("ran"))
    mask = camvid_root / "valannot" / "seq_000.png"
    link = camvid_root.parent / "alias.json"
    link.symlink_to(mask)
    before = mask.read_bytes()
    for target in (mask, link):
        code, _, err = cli(_eval(checkpoint, camvid_root, str(target)))
        assert code == 2
        assert_one_line(err, str(target), "is an input of this command")
    assert mask.read_bytes() == before and link.is_symlink()


def test_json_onto_a_symlink_to_stdout_reaches_stdout(
    cli, checkpoint: Path, camvid_root: Path, tmp_path: Path
) -> None:
    link = tmp_path / "stdout.json"
    link.symlink_to("/proc/self/fd/1")
    code, out, err = cli(_eval(checkpoint, camvid_root, str(link)))
    assert code == 0, err
    assert link.is_symlink() and "miou" in json.loads(out[out.index("{") :])


def test_json_onto_a_fifo_without_a_reader_is_refused_and_the_fifo_kept(
    cli, checkpoint: Path, camvid_root: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    code, _, err = cli(_eval(checkpoint, camvid_root, str(fifo)))
    assert code == 2
    assert_one_line(err, str(fifo), "no process reads")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_export_onto_the_models_weights_is_refused(cli, checkpoint: Path) -> None:
    weights = checkpoint / "model.safetensors"
    before = weights.read_bytes()
    argv = ["export", "--checkpoint", str(checkpoint), "--onnx", str(weights), "--quiet"]
    code, _, err = cli([*argv, "--device", "cpu"])
    assert code == 2
    assert_one_line(err, str(weights), "is an input of this command")
    assert weights.read_bytes() == before


def test_export_onto_a_calibration_image_is_refused(cli, checkpoint: Path, tmp_path: Path) -> None:
    image = random_png(tmp_path / "calib" / "x.png")
    before = image.read_bytes()
    argv = ["export", "--checkpoint", str(checkpoint), "--int8", "--calibration", str(image)]
    code, _, err = cli([*argv, "--onnx", str(image), "--quiet", "--device", "cpu"])
    assert code == 2
    assert_one_line(err, str(image), "is an input of this command")
    assert image.read_bytes() == before


def test_export_onto_dev_null_writes_in_place(cli, checkpoint: Path) -> None:
    before = os.stat("/dev/null")
    argv = ["export", "--checkpoint", str(checkpoint), "--onnx", "/dev/null", "--quiet"]
    code, _, err = cli([*argv, "--device", "cpu"])
    assert code == 0, err
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_attention_out_with_a_non_utf8_name_prints_it_and_exits_0(
    checkpoint: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    image = random_png(tmp_path / "a.png", (64, 96))
    out = os.fsencode(tmp_path) + b"/maps_\xff\xfe"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    argv = [sys.executable, "-m", "danet", "attention", str(image), "--checkpoint",
            str(checkpoint), "--out", out, "--device", "cpu"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out + b"/cam_channels.png" in result.stdout
    assert os.path.isfile(out + b"/cam_channels.png")
