"""Training end to end on a tiny CamVid tree: CLI, resume after SIGKILL, faults, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import danet
from danet.cli import main
from danet.data import build_dataset
from danet.model.checkpoint import read_training_state, save_training_state
from danet.model.segment import predict_labels
from danet.training.config import TrainConfig
from danet.training.loop import TrainingDiverged, clip_to_norm, train

TINY = [
    "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained", "none",
    "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--seed", "3",
]  # fmt: skip


def losses(run: Path) -> dict[int, float]:
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def danet_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "danet", *args]


def test_short_run_trains_and_evaluates(camvid_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", *TINY, "--data-root", str(camvid_root), "--iters", "3", "--out", str(run)]
    assert main(args) == 0
    for name in (
        "checkpoint.pt",
        "model.safetensors",
        "config.json",
        "metrics.jsonl",
        "curves.png",
    ):
        assert (run / name).is_file(), name
    assert sorted(losses(run)) == [1, 2, 3]
    assert read_training_state(run / "checkpoint.pt")["step"] == 3
    # a run folder is accepted wherever a checkpoint is
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(run), "--dataset", "camvid",
                 "--data-root", str(camvid_root), "--json", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert 0.0 <= result["miou"] <= 1.0 and len(result["per_class_iou"]) == 11
    assert result["class_names"][0] == "sky" and result["split"] == "val"
    # starting over an existing run is refused instead of overwriting it
    assert main(args) == 2


def test_eval_matches_hand_computation(camvid_root: Path, tmp_path: Path, small_model) -> None:
    danet.save_model(small_model, tmp_path / "m")
    out = tmp_path / "eval.json"
    argv = ["eval", "--checkpoint", str(tmp_path / "m"), "--dataset", "camvid",
            "--data-root", str(camvid_root), "--scales", "0.75", "1.0", "--flip",
            "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    inter, union = np.zeros(11), np.zeros(11)
    correct = total = 0
    model = danet.load(tmp_path / "m")  # as eval loads it (channels_last on the CPU)
    for image, mask in build_dataset("camvid", camvid_root, "val"):
        pred = predict_labels(model, [image], scales=(0.75, 1.0), flip=True)[0]  # as predict
        valid = mask != 255
        correct += int((pred[valid] == mask[valid]).sum())
        total += int(valid.sum())
        for c in range(11):
            p, t = (pred == c) & valid, (mask == c) & valid
            inter[c] += (p & t).sum()
            union[c] += (p | t).sum()
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    absent = [np.nan if v is None else v for v in result["per_class_iou"]]  # strict JSON: null
    np.testing.assert_allclose(absent, iou, rtol=1e-9)
    assert result["miou"] == pytest.approx(np.nanmean(iou))
    assert result["pixel_acc"] == pytest.approx(correct / total)
    assert result["scales"] == [0.75, 1.0] and result["flip"] is True


def test_sigkill_then_resume_continues_the_same_curve(camvid_root: Path, tmp_path: Path) -> None:
    common = [*TINY, "--data-root", str(camvid_root), "--val-split", "", "--iters", "8"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(danet_cmd("train", *common, "--out", str(straight)), check=True)
    proc = subprocess.Popen(
        danet_cmd("train", *common, "--checkpoint-every", "3", "--out", str(killed)),
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed / "metrics.jsonl").exists() and len(losses(killed)) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = read_training_state(killed / "checkpoint.pt")  # not corrupted
    assert 3 <= state["step"] < 8
    subprocess.run(danet_cmd("train", "--resume", "--out", str(killed)), check=True)
    assert read_training_state(killed / "checkpoint.pt")["step"] == 8
    expected, got = losses(straight), losses(killed)
    assert sorted(got) == list(range(1, 9))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-6), step


def _train_with_loss_times(
    factor: float, camvid_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **changes
) -> None:
    """Train 5 tiny steps (checkpoints every 2) with the loss of step 3 multiplied by ``factor``."""
    import danet.training.loop

    class PoisonedLoss(danet.training.loop.DANetLoss):
        calls = 0

        def forward(self, *args, **kwargs):
            total, parts = super().forward(*args, **kwargs)
            PoisonedLoss.calls += 1
            return (total * factor if PoisonedLoss.calls == 3 else total), parts

    monkeypatch.setattr(danet.training.loop, "DANetLoss", PoisonedLoss)
    train(TrainConfig(
        dataset="camvid", data_root=str(camvid_root), val_split="", out=str(tmp_path / "run"),
        pretrained=None, crop_size=[32, 32], batch_size=2, workers=0, iters=5,
        checkpoint_every=2, **changes,
    ))  # fmt: skip


def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    camvid_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TrainingDiverged, match="at step 3"):
        _train_with_loss_times(float("nan"), camvid_root, tmp_path, monkeypatch)
    assert read_training_state(tmp_path / "run" / "checkpoint.pt")["step"] == 2


def test_overflowing_gradients_stop_naming_a_tensor(
    camvid_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a finite loss whose gradients overflow float32 norms
    with pytest.raises(TrainingDiverged, match=r"at step 3 .*first non-finite gradient: \w"):
        _train_with_loss_times(1e30, camvid_root, tmp_path, monkeypatch, grad_clip_norm=10.0)
    assert read_training_state(tmp_path / "run" / "checkpoint.pt")["step"] == 2


def test_full_disk_during_save_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_training_state(path, {"model": {"w": torch.ones(3)}, "config": {}, "step": 7})

    def full_disk(obj, f):
        f.write(b"\x80\x02partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left") as caught:
        save_training_state(path, {"model": {"w": torch.zeros(3)}, "config": {}, "step": 8})
    assert caught.value.filename == str(path)  # the checkpoint, not its temp file
    assert read_training_state(path)["step"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": _Evil(marker)}, evil)
    with pytest.raises(ValueError, match="refuses"):
        danet.load(evil)
    assert main(["eval", "--checkpoint", str(evil), "--dataset", "camvid",
                 "--data-root", str(tmp_path)]) == 2  # fmt: skip
    assert not marker.exists()


@pytest.mark.skipif(
    torch.__version__ < "2.6",
    reason="torchrun under torch 2.5.1 hangs now and then after training ends (gloo teardown)",
)
def test_torchrun_two_processes_on_cpu(camvid_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "danet", "train", *TINY, "--data-root", str(camvid_root), "--iters", "2",
           "--batch-size", "1", "--out", str(run)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_training_state(run / "checkpoint.pt")["step"] == 2
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]  # logged once, by rank 0
    assert any("val_miou" in r for r in rows)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_to_norm_matches_torch(max_norm: float) -> None:
    """The loop clips with the norm it has already taken, as nn.utils.clip_grad_norm_ would."""
    torch.manual_seed(0)
    ours = [torch.randn(3, 4), torch.randn(7)]
    theirs = [torch.nn.Parameter(torch.zeros_like(g)) for g in ours]
    for p, g in zip(theirs, ours, strict=True):
        p.grad = g.clone()
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in ours]))
    clip_to_norm(ours, total.item(), max_norm)
    torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    for p, g in zip(theirs, ours, strict=True):
        torch.testing.assert_close(g, p.grad)
    after = torch.linalg.vector_norm(torch.cat([g.flatten() for g in ours])).item()
    assert after <= max_norm + 1e-4 and (max_norm < total.item()) == (after < total.item() - 1e-4)


def test_a_run_shorter_than_eval_every_validates_on_a_sample_and_says_so(
    camvid_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import danet.training.loop

    monkeypatch.setattr(danet.training.loop, "VAL_SAMPLE", 1)  # the tiny tree has 2 val images
    run = tmp_path / "run"
    args = ["train", *TINY, "--data-root", str(camvid_root), "--out", str(run), "--quiet"]
    assert main([*args, "--iters", "2", "--eval-every", "5"]) == 0
    out = capsys.readouterr().out
    assert "validation: on 1 of the 2 'val' images" in out and "eval_every (5)" in out
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_images"] for r in rows if "val_miou" in r] == [1]
    # a run as long as eval_every validates on the whole split, without the line
    assert main([*args, "--iters", "2", "--eval-every", "2", "--overwrite"]) == 0
    assert "validation: on" not in capsys.readouterr().out
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_images"] for r in rows if "val_miou" in r] == [2]
