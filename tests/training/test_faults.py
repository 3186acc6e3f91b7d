"""Faults and hostile input: full disks, read-only folders, bad numbers, tampered checkpoints,
killed runs and images over the pixel budget, each ending in one line that names the culprit.

The full-disk and read-only cases use real tmpfs mounts when the tests run as root, and are
skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import assert_one_line, random_png
from PIL import Image

import danet
from danet.cli import main
from danet.data import DataError
from danet.model.checkpoint import read_training_state, save_training_state
from danet.training.config import TrainConfig
from danet.training.runfolder import (
    LOCK_NAME,
    RunFolderBusy,
    append_row,
    has_row,
    locked,
    read_rows,
    truncate_log,
)

TINY = [
    "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained", "none",
    "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--seed", "3",
]  # fmt: skip


def train_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", *TINY, "--data-root", str(root), "--out", str(out), *extra]


def steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_rows(run_dir / "metrics.jsonl") if "loss" in r]


@contextmanager
def _mounted_tmpfs(path: Path, options: str) -> Iterator[Path]:
    """``path`` as a small tmpfs mounted with ``options`` (the test skips if it cannot be)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True,
                       capture_output=True)  # fmt: skip
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        pytest.skip(f"cannot mount a tmpfs -o {options} here ({err})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)  # even if a file is open


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real small file system (tmpfs, 64 KiB for a start; remount to resize)."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount, which needs root")
    with _mounted_tmpfs(tmp_path / "tiny", "size=64k") as path:
        yield path


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write in: a read-only tmpfs as root, a chmod 555 folder otherwise."""
    path = tmp_path / "ro"
    if os.geteuid() != 0:
        path.mkdir()
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    with _mounted_tmpfs(path, "ro,size=64k") as path:
        yield path


# 1 and 7: numbers and YAML types are checked at the boundary --------------------------------


def test_yaml_values_are_converted_as_the_cli_converts_them(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("crop_size: 128\npretrained: none\nbatch_size: '8'\nbase_size: 64x96\n")
    cfg = TrainConfig.from_file(recipe)
    assert cfg.crop_size == [128, 128] and cfg.base_size == [64, 96]
    assert cfg.pretrained is None and cfg.batch_size == 8
    recipe.write_text("pretrained: null\n")
    assert TrainConfig.from_file(recipe).pretrained is None
    for text, key in [("iters: 3.5", "iters"), ("batch_size: -1", "batch_size"),
                      ("crop_size: [0, 4]", "crop_size"), ("eval_scales: [.inf]", "eval_scales"),
                      ("amp: maybe", "amp"), ("workers: [2]", "workers")]:  # fmt: skip
        recipe.write_text(text + "\n")
        with pytest.raises(ValueError, match=f"r.yaml: {key} must be"):
            TrainConfig.from_file(recipe)


def test_negative_batch_size_is_refused_before_anything_is_allocated() -> None:
    # never run through `danet train` without the check: it allocated until the OOM killer came
    # the library names the field; the CLI (test below) names the flag
    with pytest.raises(ValueError, match="^batch_size must be an integer >= 1, not -1$"):
        TrainConfig().merge({"batch_size": -1})
    with pytest.raises(ValueError, match="^batch_size must be"):
        TrainConfig(batch_size=-1)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--batch-size", "0", "--iters", "2"], "--batch-size"),
        (["--checkpoint-every", "0", "--iters", "2"], "--checkpoint-every"),
        (["--crop-size", "0", "--iters", "2"], "--crop-size"),
        (["--iters", "0"], "--iters"),
        (["--iters", "-5"], "--iters"),
        (["--epochs", "0"], "--epochs"),
    ],
)
def test_nonsense_numbers_are_refused_naming_the_flag(
    camvid_root: Path, tmp_path: Path, cli, flags: list[str], named: str
) -> None:
    code, _, err = cli(train_args(camvid_root, tmp_path / "r", *flags))
    assert code == 2 and assert_one_line(err).startswith(f"danet train: error: {named} must be"), (
        err
    )
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


EVAL = ["eval", "--checkpoint", "m", "--dataset", "camvid", "--data-root", "."]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        ([*EVAL, "--scales", "0"], "--scales"),
        ([*EVAL, "--scales", "1", "inf"], "--scales"),
        (["predict", "a.png", "--scales", "nan"], "--scales"),
        (["predict", "a.png", "--batch-size", "-1"], "--batch-size"),
        (["export", "--onnx", "x.onnx", "--height", "0"], "--height"),
        (["export", "--onnx", "x.onnx", "--width", "-3"], "--width"),
        (["export", "--onnx", "x.onnx", "--opset", "99"], "--opset"),
    ],
)
def test_bad_numeric_flags_of_eval_predict_export(cli, argv: list[str], named: str) -> None:
    code, _, err = cli(argv)
    assert code == 2 and f"argument {named}" in err, err


# 2: metrics.jsonl appends are all-or-nothing; resume skips a torn last line -------------------


def test_metrics_append_on_a_real_full_disk_leaves_no_torn_line(tmpfs: Path) -> None:
    from danet.training.loop import _log  # what training appends its rows with

    log = tmpfs / "metrics.jsonl"
    _log(tmpfs, {"step": 1, "loss": 1.0, "pad": "x" * 4000})  # most of one 4 KiB page
    before = log.read_bytes()
    with open(tmpfs / "filler", "wb", buffering=0) as f:  # fill every other page
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass
    with pytest.raises(OSError, match="No space left on device") as caught:
        _log(tmpfs, {"step": 2, "loss": 0.5, "pad": "y" * 3000})  # needs a new page
    assert log.read_bytes() == before  # not a byte of the failed row is left
    assert caught.value.filename == str(log)
    assert [r["step"] for r in read_rows(log)] == [1]


def test_resume_skips_a_torn_last_line_and_json_errors_name_the_file(
    camvid_root: Path, tmp_path: Path, cli
) -> None:
    out = tmp_path / "r"
    assert cli(train_args(camvid_root, out, "--iters", "3", "--val-split", "")).code == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "loss": 0.12')  # what a full disk left before this fix
    code, _, err = cli(["train", "--resume", "--out", str(out), "--iters", "4"])
    assert code == 0, err
    assert "metrics.jsonl: skipping its torn last line" in err
    assert steps(out) == [1, 2, 3, 4]
    rows = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join([rows[0], "{oops", *rows[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not valid JSON"):
        read_rows(out / "metrics.jsonl")


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant}: not strict JSON")


def test_non_finite_numbers_are_logged_as_null_and_read_back(tmp_path: Path) -> None:
    from danet.training.curves import plot_curves

    run = tmp_path / "r"
    run.mkdir()
    log = run / "metrics.jsonl"
    append_row(log, {"step": 1, "loss": 0.5, "grad_norm": math.inf, "lr": 0.01, "sec": 0.1})
    append_row(log, {"step": 2, "val_miou": math.nan, "val_pixel_acc": 0.5, "pam_lift": -math.inf})
    with open(log, "a") as f:  # a null where a number is plotted
        f.write('{"step": 3, "loss": null, "grad_norm": 1.0, "lr": 0.01, "sec": 0.1}\n')
    append_row(log, {"step": 4, "val_miou": 0.25, "val_pixel_acc": 0.5, "pam_lift": 1.5})
    lines = [json.loads(line, parse_constant=_refuse) for line in log.read_text().splitlines()]
    assert lines[0]["grad_norm"] is None and lines[0]["loss"] == 0.5
    assert lines[1]["val_miou"] is None and lines[1]["pam_lift"] is None
    # the readers: the rows, resume's look for a validation, curves.png, resume's truncation
    rows = read_rows(log)
    assert math.isnan(rows[0]["grad_norm"]) and math.isnan(rows[2]["loss"])
    assert math.isnan(rows[1]["val_miou"]) and rows[3]["val_miou"] == 0.25
    assert has_row(log, 2, "val_miou")
    assert plot_curves(run).stat().st_size > 0
    truncate_log(run, 2)
    assert [json.loads(line, parse_constant=_refuse) for line in log.read_text().splitlines()] == (
        lines[:2]
    )


def test_full_disk_during_training_then_resume_on_a_real_tmpfs(
    camvid_root: Path, tmpfs: Path, cli
) -> None:
    model = danet.DANet(num_classes=11, backbone="mobilenetv2_100")
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    # checkpoint.pt (weights + momentum, ~2x) and model.safetensors (~1x) fit once, with room
    # for the logs; the second checkpoint's temp file beside the first does not
    subprocess.run(["mount", "-o", f"remount,size={int(3.5 * weights)}", str(tmpfs)], check=True)
    out = tmpfs / "r"
    argv = train_args(camvid_root, out, "--iters", "4", "--checkpoint-every", "2",
                      "--val-split", "", "--crop-size", "64")  # fmt: skip
    code, _, err = cli(argv)
    assert code == 2
    assert (
        assert_one_line(err)
        == f"danet train: error: No space left on device: {out / 'checkpoint.pt'}"
    )
    assert read_training_state(out / "checkpoint.pt")["step"] == 2  # the previous one, whole
    assert not list(out.glob(".*.danet-tmp"))
    subprocess.run(["mount", "-o", f"remount,size={8 * weights}", str(tmpfs)], check=True)
    code, _, err = cli(["train", "--resume", "--out", str(out)])
    assert code == 0, err
    assert read_training_state(out / "checkpoint.pt")["step"] == 4
    assert steps(out) == [1, 2, 3, 4]


# 3: a DataError in a DataLoader worker is one line --------------------------------------------


def test_bad_training_data_under_workers_is_one_line(
    camvid_root: Path, tmp_path: Path, cli
) -> None:
    for image in (camvid_root / "train").iterdir():
        image.write_bytes(b"not a png")
    argv = train_args(camvid_root, tmp_path / "r", "--iters", "2", "--workers", "1")
    code, _, err = cli(argv)
    line = assert_one_line(err)
    assert code == 2 and "not an image file" in line and "seq_00" in line, err
    assert "DataLoader worker" not in err


# 4: OSError and RuntimeError are one line with exit status 2 ---------------------------------


def test_unwritable_folders_are_one_line(
    read_only: Path, checkpoint: Path, camvid_root: Path, tmp_path: Path, cli, monkeypatch
) -> None:
    import danet.training.loop

    image = str(random_png(tmp_path / "a.png"))
    eval_json = ["eval", "--checkpoint", str(checkpoint), "--dataset", "camvid",
                 "--data-root", str(camvid_root), "--json", str(read_only / "e.json")]  # fmt: skip
    commands = [
        ["predict", image, "--checkpoint", str(checkpoint), "--out", str(read_only / "p")],
        ["attention", image, "--checkpoint", str(checkpoint), "--out", str(read_only / "a")],
        eval_json,
        ["export", "--checkpoint", str(checkpoint), "--onnx", str(read_only / "m.onnx")],
        ["demo", "--checkpoint", str(checkpoint), "--out", str(read_only / "d")],
        train_args(camvid_root, read_only / "t", "--iters", "1"),
    ]

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated before checking that --json can be written")

    monkeypatch.setattr(danet.training.loop, "evaluate", no_evaluation)
    for argv in commands:
        code, _, err = cli(argv)
        line = assert_one_line(err)
        assert code == 2, (argv, err)
        assert "Read-only file system" in line or "Permission denied" in line, line
        assert str(read_only) in line, line


def test_eval_json_pointing_at_a_folder(checkpoint: Path, camvid_root: Path, tmp_path: Path,
                                        cli) -> None:  # fmt: skip
    code, _, err = cli(["eval", "--checkpoint", str(checkpoint), "--dataset", "camvid",
                        "--data-root", str(camvid_root), "--json", str(tmp_path)])  # fmt: skip
    assert code == 2 and assert_one_line(err).endswith(f"is a folder; give a file name: {tmp_path}")


def test_nan_loss_is_one_line(camvid_root: Path, tmp_path: Path, cli, monkeypatch) -> None:
    import danet.training.loop

    class PoisonedLoss(danet.training.loop.DANetLoss):
        def forward(self, *args, **kwargs):
            total, parts = super().forward(*args, **kwargs)
            return total * float("nan"), parts

    monkeypatch.setattr(danet.training.loop, "DANetLoss", PoisonedLoss)
    code, _, err = cli(train_args(camvid_root, tmp_path / "r", "--iters", "2"))
    assert code == 2 and "loss is nan at step 1" in assert_one_line(err)


@pytest.mark.parametrize("device", ["junk", "cuda", "cuda:7"])
def test_bad_device_is_one_line(checkpoint: Path, tmp_path: Path, cli, device: str) -> None:
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has the GPUs asked for")
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    image = str(random_png(tmp_path / "a.png"))
    code, _, err = cli(["predict", image, "--checkpoint", str(checkpoint), "--device", device,
                        "--out", str(tmp_path / "p")])  # fmt: skip
    assert code == 2 and f"--device {device}" in assert_one_line(err).replace("'", "")


def test_bad_device_in_training_is_one_line(camvid_root: Path, tmp_path: Path, cli) -> None:
    code, _, err = cli(train_args(camvid_root, tmp_path / "r", "--iters", "1", "--device", "junk"))
    assert code == 2 and "--device 'junk' is not a device" in assert_one_line(err)


def test_tampered_checkpoint_on_resume_is_one_line(camvid_root: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "r"
    assert cli(train_args(camvid_root, out, "--iters", "2", "--val-split", "")).code == 0
    path = out / "checkpoint.pt"
    good = read_training_state(path)
    head = "head.classifier.1.weight"
    tamperings = {
        "run_config": {**good["run_config"], "batch_size": 0},
        "model": {**good["model"], head: torch.zeros(3, 3)},
        "step": "seven",
        "optimizer": {"state": {}, "param_groups": []},
    }
    for key, value in tamperings.items():
        save_training_state(path, {**good, key: value})
        code, _, err = cli(["train", "--resume", "--out", str(out), "--iters", "3"])
        assert code == 2 and str(path) in assert_one_line(err), (key, err)
    path.write_bytes(path.read_bytes()[:5000])  # cut short
    code, _, err = cli(["train", "--resume", "--out", str(out)])
    assert code == 2 and "not a loadable danet checkpoint" in assert_one_line(err)


@pytest.mark.parametrize("weights", [[1.0], {"w": [1.0]}])
def test_training_state_whose_model_is_not_tensors_is_named(tmp_path: Path, weights) -> None:
    path = tmp_path / "checkpoint.pt"
    save_training_state(path, {"model": weights, "config": {}})
    with pytest.raises(
        ValueError, match=re.escape(f"{path}: its 'model' is not a dict of tensors")
    ):
        danet.load(path)  # load() and train --resume both read it with read_training_state


# 5: memory for untrusted inputs is bounded --------------------------------------------------

_HUGE_CONFIG = """
import json, resource, sys
import danet
import danet.model.checkpoint  # loads torch before the cap (a bare `import danet` is lazy)
folder = sys.argv[1]
config = json.load(open(folder + "/config.json"))
config.update(num_classes=20_000_000, class_names=None, palette=None)
json.dump(config, open(folder + "/config.json", "w"))
vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) << 10
resource.setrlimit(resource.RLIMIT_AS, (vm + (2 << 30), vm + (2 << 30)))  # 2 GB more at most
try:
    danet.load(folder)
except ValueError as err:
    print(err)
"""


def test_config_is_checked_against_the_weights_before_building(checkpoint: Path) -> None:
    # 20M classes would allocate 6.4 GB per classifier; the config is checked on the meta device
    proc = subprocess.run([sys.executable, "-c", _HUGE_CONFIG, str(checkpoint)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "model.safetensors" in proc.stdout and "(20000000" in proc.stdout, proc.stdout


def test_images_over_the_pixel_budget_are_refused_before_decoding(
    checkpoint: Path, tmp_path: Path, cli
) -> None:
    big = tmp_path / "big.png"
    Image.new("L", (5000, 4000)).save(big)  # 20 MP: under Pillow's bomb limit, over the budget
    with pytest.raises(DataError, match=r"5000x4000 image \(20000000 pixels\) is over the pixel"):
        danet.data.read_image(big)
    small = str(random_png(tmp_path / "a.png", (40, 60)))
    argv = ["predict", small, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "p")]
    code, _, err = cli([*argv, "--max-pixels", "1000"])
    assert code == 2 and "over the pixel budget of 1000" in assert_one_line(err)
    # the flag raises the budget, which also bounds the size the model runs at: 64x96
    assert cli([*argv, "--max-pixels", "6144"]).code == 0


def test_batches_hold_at_most_the_pixel_budget() -> None:
    from danet.inference.files import _batches

    frames = [(f"f{i}", np.zeros((64, 64, 3), np.uint8)) for i in range(5)]
    sizes = [len(b) for b in _batches(iter(frames), batch_size=4, max_pixels=2 * 64 * 64)]
    assert sizes == [2, 2, 1]
    sizes = [len(b) for b in _batches(iter(frames), batch_size=4, max_pixels=100)]
    assert sizes == [1, 1, 1, 1, 1]  # a large image goes alone


# 6: a lock on the run folder ---------------------------------------------------------------


def test_second_run_into_a_locked_folder_fails_with_one_line(
    camvid_root: Path, tmp_path: Path, cli
) -> None:
    out = tmp_path / "r"
    with locked(out):  # what a running `danet train --out r` holds
        code, _, err = cli(train_args(camvid_root, out, "--iters", "1"))
    assert code == 2 and "another danet train is running in this folder" in assert_one_line(err)
    assert not (out / "metrics.jsonl").exists()


def test_a_finished_run_leaves_no_lock_file(camvid_root: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "r"
    assert cli(train_args(camvid_root, out, "--iters", "1", "--val-split", "")).code == 0
    assert (out / "metrics.jsonl").is_file() and not (out / LOCK_NAME).exists()


def test_a_lock_file_removed_by_a_finishing_run_is_not_held(tmp_path: Path) -> None:
    out = tmp_path / "r"
    with locked(out):
        assert (out / LOCK_NAME).is_file()
    assert not out.exists()  # created here and left empty
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with locked(out):
        with pytest.raises(RunFolderBusy):
            with locked(out):
                pass
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# 7: --resume with flags ---------------------------------------------------------------------


def test_resume_extends_a_finished_run_and_refuses_what_it_cannot_honour(
    camvid_root: Path, tmp_path: Path, cli
) -> None:
    out = tmp_path / "r"
    first = train_args(camvid_root, out, "--iters", "3", "--val-split", "")
    assert cli(first).code == 0
    code, _, err = cli([*first, "--resume"])  # the same command again: nothing to do
    assert code == 0 and steps(out) == [1, 2, 3], err
    code, _, err = cli(["train", "--resume", "--out", str(out), "--iters", "2"])
    assert code == 2 and "already did 3 iterations" in assert_one_line(err)
    code, _, err = cli(["train", "--resume", "--out", str(out), "--lr", "0.5"])
    assert code == 2 and assert_one_line(err).startswith(
        "danet train: error: --lr 0.5: a resumed run"
    )
    code, _, err = cli(["train", "--resume", "--out", str(out), "--iters", "5"])
    assert code == 0, err
    assert steps(out) == [1, 2, 3, 4, 5]
    state = read_training_state(out / "checkpoint.pt")
    assert state["step"] == 5 and state["run_config"]["iters"] == 5


# 8: a truncated video says how many frames it gave -------------------------------------------


def test_truncated_video_reports_frames_read_against_promised(
    checkpoint: Path, tmp_path: Path, cli
) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (48, 32))
    rng = np.random.default_rng(0)
    for _ in range(10):
        writer.write(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    writer.release()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, _, err = cli(["predict", str(path), "--checkpoint", str(checkpoint), "--out",
                        str(tmp_path / "p")])  # fmt: skip
    assert code == 0
    read = len(list((tmp_path / "p").glob("clip_*_label.png")))
    assert 0 < read < 10
    assert f"clip.avi: read {read} of the 10 frames its header promises" in err


# 9: a kill during validation ----------------------------------------------------------------


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, nothing catches it."""


def test_resume_redoes_a_validation_whose_row_is_missing(
    camvid_root: Path, tmp_path: Path, cli, monkeypatch
) -> None:
    import danet.training.loop

    real_evaluate = danet.training.loop.evaluate

    def killed(*args, **kwargs):
        raise _Killed

    out = tmp_path / "r"
    monkeypatch.setattr(danet.training.loop, "evaluate", killed)
    with pytest.raises(_Killed):
        main(train_args(camvid_root, out, "--iters", "2"))
    assert read_training_state(out / "checkpoint.pt")["step"] == 2  # saved, then killed
    assert not [r for r in read_rows(out / "metrics.jsonl") if "val_miou" in r]
    monkeypatch.setattr(danet.training.loop, "evaluate", real_evaluate)
    code, _, err = cli(["train", "--resume", "--out", str(out)])
    assert code == 0, err
    rows = [r for r in read_rows(out / "metrics.jsonl") if "val_miou" in r]
    assert [r["step"] for r in rows] == [2]


# 10: stale temp files of killed saves ------------------------------------------------------


def test_stale_temp_files_are_removed_on_start_and_on_resume(
    camvid_root: Path, tmp_path: Path, cli
) -> None:
    out = tmp_path / "r"
    out.mkdir()
    stale = [
        out / ".checkpoint.pt.k1ll3d00.danet-tmp",
        out / ".model.safetensors.abc00000.danet-tmp",
    ]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    keep = out / ".notes.tmp"  # not a temp file of the run's
    keep.write_text("mine")
    assert cli(train_args(camvid_root, out, "--iters", "1", "--val-split", "")).code == 0
    assert not any(p.exists() for p in stale) and keep.exists()
    stale[0].write_bytes(b"\0" * 1000)
    assert cli(["train", "--resume", "--out", str(out)]).code == 0
    assert not stale[0].exists()
    json.loads((out / "run_config.json").read_text())  # written atomically as well


def test_curves_put_one_validation_point_on_a_sensible_axis() -> None:
    from danet.training.curves import draw_curves

    rows = [{"step": s, "loss": 1.0 / s} for s in range(1, 21)]
    rows.append({"step": 20, "val_miou": 0.42, "pam_lift": 2.0})
    fig = draw_curves(rows)
    miou = fig.axes[1]
    assert miou.get_xlim()[0] == 0 and 20 <= miou.get_xlim()[1] <= 21
    assert miou.get_ylim() == (0, 100)
    assert [t.get_text() for t in miou.texts] == ["42.0"]
    assert all(ax.get_xlim()[0] == 0 for ax in fig.axes[:5])
