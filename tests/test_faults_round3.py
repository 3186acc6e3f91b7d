"""Faults, round three (issue #23): never overwrite what the user has, never trust a lying file,
bound every allocation. The numbers in the section titles are the issue's cases.

A full disk is simulated by a PNG writer that writes part of a file and then raises ENOSPC; the
signals are sent with os.kill to a training in a subprocess.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

import danet
from danet.cli import main
from danet.data import DataError
from danet.data.folder import read_classes
from danet.metrics import ConfusionMatrix
from danet.predict import collect_inputs

TINY = [
    "--dataset", "camvid", "--backbone", "mobilenetv2_100", "--pretrained", "none",
    "--batch-size", "2", "--crop-size", "32", "--workers", "0", "--seed", "3",
]  # fmt: skip


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and stderr of ``danet argv`` (argparse's own exits included)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.strip()


def one_line(err: str) -> str:
    """The one error line of stderr (warnings and progress lines aside), with no traceback."""
    lines = [
        line
        for line in err.splitlines()
        if line.strip() and not line.startswith(("danet: warning", "predict ", "train "))
    ]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _png(path: Path, size: tuple[int, int] = (40, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _edit_config(folder: Path, **changes: object) -> Path:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


# 1: a predict rerun on a full disk keeps the earlier outputs and names the file ----------------


def test_full_disk_during_a_predict_rerun_keeps_the_earlier_outputs(
    checkpoint: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    image, out = _png(tmp_path / "in" / "a.png"), tmp_path / "out"
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]
    assert run(argv, capsys)[0] == 0
    before = _contents(out)

    def full_disk(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        with open(fp, "wb") as f:  # a part of the file, then the disk is full
            f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    code, err = run(argv, capsys)
    assert code == 2
    assert one_line(err) == f"danet predict: error: No space left on device: {out / 'a_label.png'}"
    assert _contents(out) == before  # nothing lost, no temp file left


# 2, 3: --out over a model folder, for train and convert ---------------------------------------


def test_train_refuses_an_out_that_holds_a_model(
    checkpoint: Path, camvid_root: Path, tmp_path: Path, capsys
) -> None:
    before = _contents(checkpoint)
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
    code, err = run(argv, capsys)
    assert code == 2
    line = one_line(err)
    assert str(checkpoint) in line and "--overwrite" in line and "config.json" in line, line
    assert _contents(checkpoint) == before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    code, err = run(argv[:-4] + ["--out", str(notes), "--iters", "1"], capsys)
    assert code == 2 and "--overwrite" in one_line(err)
    file_out = tmp_path / "file"
    file_out.write_text("mine")
    code, err = run(argv[:-4] + ["--out", str(file_out), "--iters", "1"], capsys)
    assert code == 2 and one_line(err).endswith(
        f"--out {file_out}: is a file; give a folder for the run"
    )
    assert file_out.read_text() == "mine"


def test_train_overwrite_replaces_the_model_folder(
    checkpoint: Path, camvid_root: Path, capsys
) -> None:
    old = (checkpoint / "model.safetensors").read_bytes()
    argv = ["train", *TINY, "--data-root", str(camvid_root), "--out", str(checkpoint),
            "--iters", "1", "--val-split", "", "--quiet", "--overwrite"]  # fmt: skip
    assert run(argv, capsys)[0] == 0
    assert (checkpoint / "model.safetensors").read_bytes() != old
    assert (checkpoint / "checkpoint.pt").is_file()


def test_convert_refuses_an_out_that_holds_anything(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    src = tmp_path / "src.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, src)
    before = _contents(checkpoint)
    code, err = run(["convert", str(src), "--out", str(checkpoint)], capsys)
    assert code == 2
    line = one_line(err)
    assert f"--out {checkpoint}: already holds config.json, model.safetensors" in line, line
    assert "--overwrite" in line
    assert _contents(checkpoint) == before
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    torch.save({"step": 1}, run_folder / "checkpoint.pt")
    code, err = run(["convert", str(src), "--out", str(run_folder), "--overwrite"], capsys)
    assert code == 2 and "holds a training run (checkpoint.pt)" in one_line(err)
    file_out = tmp_path / "model.safetensors"
    file_out.write_text("mine")
    code, err = run(["convert", str(src), "--out", str(file_out)], capsys)
    assert code == 2
    assert one_line(err).endswith(f"--out {file_out}: is a file; give a folder for the model")
    assert file_out.read_text() == "mine"


# 4: outputs never land on inputs -------------------------------------------------------------


def test_predict_into_its_input_folder_never_overwrites_an_input(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "photos"
    _png(folder / "a.png")
    taken = _png(folder / "a_label.png", (30, 30))  # the user's own photo
    before = taken.read_bytes()
    argv = ["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(folder)]
    code, err = run(argv, capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(f"danet predict: error: {taken}: an input that the output for "), line
    assert "--out" in line
    assert taken.read_bytes() == before and not (folder / "a_color.png").exists()


def test_predict_never_reads_its_own_output_folder(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _png(folder / "a.png")
    out = folder / "predictions"
    _png(out / "a_color.png")  # an earlier run's outputs, inside the folder searched
    _png(out / "a_overlay.png")
    assert [item.path for item in collect_inputs([folder], out)] == [folder / "a.png"]


# 5, 8: the pixel budget on the size the model runs at, a cap on sliding windows ---------------


@pytest.mark.parametrize("size", [(2, 400), (1, 1600)])
def test_thin_images_are_refused_by_the_size_they_run_at(
    checkpoint: Path, tmp_path: Path, capsys, size: tuple[int, int]
) -> None:
    image = _png(tmp_path / "thin.png", size)  # 800 or 1600 pixels as decoded
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"),
            "--max-pixels", "100000", "--quiet"]  # fmt: skip
    code, err = run(argv, capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith(
        f"danet predict: error: {image}: this {size[1]}x{size[0]} image would run"
    )
    assert "over the pixel budget of 100000" in line and "--max-pixels" in line


def test_sliding_windows_are_capped_before_any_runs() -> None:
    from danet.inference import MAX_WINDOWS, predict_probs

    class Counting(nn.Module):
        calls = 0

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            Counting.calls += 1
            return {"out": x.new_zeros(x.shape[0], 2, *x.shape[2:])}

    x = torch.zeros(1, 3, 1200, 1200)
    with pytest.raises(ValueError, match=rf"--sliding-window: .* more than the {MAX_WINDOWS}"):
        predict_probs(Counting(), x, sliding_window=True, input_size=[32, 32])
    assert Counting.calls == 0
    assert (
        predict_probs(Counting(), x[..., :96, :96], sliding_window=True, input_size=[32, 32]).shape[
            1
        ]
        == 2
    )


# 6, 12, 18: an untrusted config.json is bounded and checked -----------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_size": [6000, 8000]}, "input_size must be H,W"),
        ({"input_size": [0, 0]}, "input_size must be H,W"),
        ({"palette": [[300, 0, 0]] + [[0, 0, 0]] * 10}, "palette must be [R, G, B] colours of integers 0-255, not [300, 0, 0]"),
        ({"class_names": ["x" * 3_000_000] + ["y"] * 10}, "class name 0 is 3000000 characters long"),
    ],
)  # fmt: skip
def test_lying_config_json_is_refused_naming_it(
    checkpoint: Path, tmp_path: Path, capsys, changes: dict, message: str
) -> None:
    _edit_config(checkpoint, **changes)
    with pytest.raises(ValueError, match="config.json") as info:
        danet.load(checkpoint)
    assert message in str(info.value) and len(str(info.value)) < 400
    image = _png(tmp_path / "a.png")
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    code, err = run(argv, capsys)
    assert code == 2 and message in one_line(err) and len(err) < 500


@pytest.mark.parametrize(
    ("text", "message"),
    [(b'{"num_classes": 11, "backbone": "mobilenetv2_\xff"}', "not UTF-8 text (byte 45)"),
     (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply")],
)  # fmt: skip
def test_unreadable_config_json_is_one_line(
    checkpoint: Path, tmp_path: Path, capsys, text: bytes, message: str
) -> None:
    (checkpoint / "config.json").write_bytes(text)
    image = str(_png(tmp_path / "a.png"))
    code, err = run(["predict", image, "--checkpoint", str(checkpoint)], capsys)
    assert code == 2
    assert one_line(err) == f"danet predict: error: {checkpoint / 'config.json'}: {message}" + (
        "; expected JSON" if "UTF-8" in message else " to be a danet file"
    )


def test_long_class_names_in_classes_txt_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("road\n" + "x" * 3_000_000 + "\n")
    with pytest.raises(
        DataError, match=r"classes.txt: class 1 is named by 3000000 characters"
    ) as info:
        read_classes(path)
    assert len(str(info.value)) < 200


# 7, 18: convert sources are bounded by their size and named when they are not checkpoints ------


def test_convert_refuses_a_source_that_inflates_before_loading_it(
    tmp_path: Path, monkeypatch
) -> None:
    from danet.convert import read_checkpoint

    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": {"w": torch.zeros(2_000_000)}}, plain)  # 8 MB of zeros
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 200_000

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load ran on a source that inflates")

    monkeypatch.setattr(torch, "load", no_load)
    with pytest.raises(
        ValueError, match=r"bomb.pth: its entries inflate to \d+ bytes from a \d+-byte"
    ):
        read_checkpoint(bomb)


def test_a_text_file_given_to_convert_is_named(tmp_path: Path, capsys) -> None:
    src = tmp_path / "notes.pth"
    src.write_text("these are not weights\n")
    code, err = run(["convert", str(src), "--out", str(tmp_path / "m")], capsys)
    assert code == 2
    assert one_line(err).startswith(
        f"danet convert: error: {src}: not a PyTorch checkpoint (it is text)"
    )


# 9: weights that are not finite ---------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_file(
    checkpoint: Path, tmp_path: Path, capsys, value: float
) -> None:
    path = checkpoint / "model.safetensors"
    state = load_file(path)
    name = "head.classifier.1.weight"
    state[name] = torch.full_like(state[name], value)
    save_file(state, path, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=rf"{path}: weight {name} holds NaN or infinite values"):
        danet.load(checkpoint)
    image = _png(tmp_path / "a.png")
    argv = ["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    code, err = run(argv, capsys)
    assert code == 2 and f"{path}: weight {name}" in one_line(err)
    assert not (tmp_path / "o" / "a_label.png").exists()


# 10, 11, 12, 13, 18: lying ONNX metadata ------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from danet.export import export_onnx

    model = danet.DANet(num_classes=11, backbone="mobilenetv2_100", input_size=[32, 32]).eval()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    stale = path.with_name(".model.onnx.k1ll3d.tmp")  # 17: a killed export's temp file
    stale.write_bytes(b"\0" * 1000)
    export_onnx(model, path)
    assert not stale.exists()
    return path


def _with_metadata(src: Path, dst: Path, **changes: str) -> Path:
    proto = onnx.load(str(src))
    onnx.helper.set_model_props(
        proto, {**{p.key: p.value for p in proto.metadata_props}, **changes}
    )
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"class_names": json.dumps([f"c{k}" for k in range(5)]),
          "palette": json.dumps([[0, 0, 0]] * 5)},
         "the graph outputs 11 classes but its metadata names 5"),
        ({"std": "[0, 0, 0]"}, "metadata 'std' must be 3 numbers > 0"),
        ({"palette": json.dumps([[0, 0, 300]] * 11)}, "palette must be [R, G, B] colours of integers 0-255"),
        ({"mean": "[0.5, 0.5"}, "metadata 'mean': not valid JSON"),
        ({"mean": "[1, 2, 3, 4]"}, "metadata 'mean' must be 3 finite numbers"),
        ({"input_size": "[0, 0]"}, "metadata: input_size must be H,W"),
        ({"config": "[" * 100_000}, "metadata 'config': JSON nested too deeply"),
    ],
)  # fmt: skip
def test_lying_onnx_metadata_is_refused_naming_the_file(
    onnx_file: Path, tmp_path: Path, capsys, changes: dict[str, str], message: str
) -> None:
    from danet.onnx_runtime import OnnxModel

    path = _with_metadata(onnx_file, tmp_path / "lying.onnx", **changes)
    with pytest.raises(ValueError, match=str(path)) as info:
        OnnxModel(path)
    assert message in str(info.value)
    image = _png(tmp_path / "a.png")
    code, err = run(["predict", str(image), "--checkpoint", str(path), "--backend", "onnxruntime",
                     "--out", str(tmp_path / "o")], capsys)  # fmt: skip
    assert code == 2 and message in one_line(err)


def test_predictions_outside_the_classes_are_refused_by_the_confusion_matrix() -> None:
    matrix = ConfusionMatrix(5)
    with pytest.raises(ValueError, match=r"predicted labels must lie in 0..4, not 0..7"):
        matrix.update(torch.tensor([0, 7]), torch.tensor([0, 1]))
    assert int(matrix.mat.sum()) == 0


# 14, 15, 18: flags are bounded and named ------------------------------------------------------


@pytest.mark.parametrize("size", ["0,0", "1,1", "-5,-5", "1,2,3", "8,8", "100000,100000"])
@pytest.mark.parametrize("command", ["predict", "export", "train", "convert"])
def test_bad_input_sizes_are_refused_naming_the_flag(
    capsys, tmp_path: Path, command: str, size: str
) -> None:
    argv = {
        "predict": ["predict", "a.png"],
        "export": ["export", "--onnx", str(tmp_path / "m.onnx")],
        "train": ["train", "--data-root", str(tmp_path)],
        "convert": ["convert", "src.pth", "--out", str(tmp_path / "m")],
    }[command]
    code, err = run([*argv, f"--input-size={size}"], capsys)
    assert code == 2
    line = one_line(err)
    assert f"argument --input-size: '{size}'" in line, line
    assert "give H,W (or N): two integers >= 32" in line or "two integers at most" in line, line


def test_input_size_and_height_width_must_agree(tmp_path: Path, capsys) -> None:
    argv = ["export", "--onnx", str(tmp_path / "m.onnx"), "--input-size", "64,96", "--height", "32"]
    code, err = run(argv, capsys)
    assert code == 2
    assert one_line(err).endswith("--input-size 64,96 and --height 32 disagree; give --input-size "
                                  "or --height/--width")  # fmt: skip
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--crop-size", "100000", "--crop-size must be an integer >= 1 or H,W"),
     ("--seed", str(10**20), "--seed must be an integer from 0 to 4294967295")],
)  # fmt: skip
def test_huge_crop_and_seed_are_one_line(
    camvid_root: Path, tmp_path: Path, capsys, flag: str, value: str, message: str
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
    code, err = run(argv, capsys)
    assert code == 2 and message in one_line(err)


# 16: SIGINT and SIGTERM during training -------------------------------------------------------


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
    line = one_line(err)
    assert f"{sig.name} at step " in line and f"saved {out / 'checkpoint.pt'}" in line, line
    assert line.endswith(f"resume with: danet train --out {out} --resume"), line
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    logged = [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert state["step"] == logged[-1] and f"step {state['step']} of 10000" in line


# 17: temp files of killed commands are removed by the next command that writes there ----------


def test_predict_removes_stale_temp_files_but_not_a_live_one(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:
    from danet.checkpoint import remove_stale_temp_files

    image, out = _png(tmp_path / "a.png"), tmp_path / "out"
    out.mkdir()
    stale = out / ".a_color.png.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 1000)
    live = out / ".b_color.png.wr1t1ng.tmp"
    live.write_bytes(b"\0")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as atomic_write holds it while writing
    try:
        assert remove_stale_temp_files(out, ("*_color.png",)) == [stale]
        stale.write_bytes(b"\0")
        argv = [
            "predict",
            str(image),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--quiet",
        ]
        assert run(argv, capsys)[0] == 0
        assert not stale.exists() and live.exists()
    finally:
        os.close(fd)


def test_convert_removes_stale_temp_files_and_takes_a_folder_holding_only_them(
    tmp_path: Path,
) -> None:
    from danet.convert import check_out

    out = tmp_path / "m"
    out.mkdir()
    stale = out / ".model.safetensors.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 1000)
    check_out(out, overwrite=False)
    assert not stale.exists()


# 19, 20: a symlinked subfolder is reported; skipped inputs leave the progress count -----------


def test_a_symlinked_subfolder_is_reported(tmp_path: Path, capsys) -> None:
    _png(tmp_path / "elsewhere" / "b.png")
    folder = tmp_path / "photos"
    _png(folder / "a.png")
    (folder / "linked").symlink_to(tmp_path / "elsewhere")
    assert [item.path for item in collect_inputs([folder])] == [folder / "a.png"]
    err = capsys.readouterr().err
    assert f"danet: warning: {folder / 'linked'}: a symlinked folder, not searched" in err


@pytest.mark.parametrize("bad", ["0_bad.png", "z_bad.png"])
def test_progress_leaves_out_skipped_inputs(
    checkpoint: Path, tmp_path: Path, capsys, bad: str
) -> None:
    folder = tmp_path / "in"
    _png(folder / "good.png")
    (folder / bad).write_bytes(b"not an image")
    argv = ["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    code, err = run(argv, capsys)
    assert code == 0
    progress = [line for line in err.splitlines() if line.startswith("predict ")]
    assert progress[-1].startswith("predict 1/1 img (100%)"), err
