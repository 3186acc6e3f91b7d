"""danet train under faults (issue #23): --out over a model folder, huge crops and seeds,
SIGINT/SIGTERM save and print the resume command, predictions range-checked by the confusion
matrix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line, contents

from danet.training.metrics import ConfusionMatrix

TINY = [
    "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained", "none",
    "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--seed", "3",
]  # fmt: skip


def test_train_refuses_an_out_that_holds_a_model(
    checkpoint: Path, camvid_root: Path, tmp_path: Path, cli
) -> None:
    before = contents(checkpoint)
    argv = [
        "train",
        *TINY,
        "--data-root",
        str(camvid_root),
        "--out",
        str(checkpoint),
        "--iters",
        "1",
    ]
    code, _, err = cli(argv)
    assert code == 2
    line = assert_one_line(err)
    assert str(checkpoint) in line and "--overwrite" in line and "config.json" in line, line
    assert contents(checkpoint) == before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    code, _, err = cli(argv[:-4] + ["--out", str(notes), "--iters", "1"])
    assert code == 2 and "--overwrite" in assert_one_line(err)
    file_out = tmp_path / "file"
    file_out.write_text("mine")
    code, _, err = cli(argv[:-4] + ["--out", str(file_out), "--iters", "1"])
    assert code == 2 and assert_one_line(err).endswith(
        f"--out {file_out}: is a file; give a folder for the run"
    )
    assert file_out.read_text() == "mine"


def test_train_overwrite_replaces_the_model_folder(
    checkpoint: Path, camvid_root: Path, cli
) -> None:
    old = (checkpoint / "model.safetensors").read_bytes()
    argv = ["train", *TINY, "--data-root", str(camvid_root), "--out", str(checkpoint),
            "--iters", "1", "--val-split", "", "--quiet", "--overwrite"]  # fmt: skip
    assert cli(argv).code == 0
    assert (checkpoint / "model.safetensors").read_bytes() != old
    assert (checkpoint / "checkpoint.pt").is_file()


def test_predictions_outside_the_classes_are_refused_by_the_confusion_matrix() -> None:
    matrix = ConfusionMatrix(5)
    with pytest.raises(ValueError, match=r"predicted labels must lie in 0..4, not 0..7"):
        matrix.update(torch.tensor([0, 7]), torch.tensor([0, 1]))
    assert int(matrix.mat.sum()) == 0


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--crop-size", "100000", "--crop-size must be an integer >= 1 or H,W"),
     ("--seed", str(10**20), "--seed must be an integer from 0 to 4294967295")],
)  # fmt: skip
def test_huge_crop_and_seed_are_one_line(
    camvid_root: Path, tmp_path: Path, cli, flag: str, value: str, message: str
) -> None:
    argv = [
        "train",
        *TINY,
        "--data-root",
        str(camvid_root),
        "--out",
        str(tmp_path / "r"),
        flag,
        value,
    ]
    code, _, err = cli(argv)
    assert code == 2 and message in assert_one_line(err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_training_saves_and_says_how_to_resume(
    camvid_root: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "danet", "train", *TINY, "--data-root", str(camvid_root),
            "--out", str(out), "--iters", "10000", "--checkpoint-every", "10000", "--quiet"]  # fmt: skip
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.2)
    os.kill(process.pid, sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    line = assert_one_line(err)
    assert f"{sig.name} at step " in line and f"saved {out / 'checkpoint.pt'}" in line, line
    assert line.endswith(f"resume with: danet train --out {out} --resume"), line
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    logged = [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert state["step"] == logged[-1] and f"step {state['step']} of 10000" in line
