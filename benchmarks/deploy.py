"""Deployment against the fair peer (issue 21): our int8 ONNX against smp's int8 ONNX on the CPU.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/deploy.py`` on a quiet machine (needs
``pip install danet[bench]``); ``--quick`` is a smoke run at a tiny size that writes nothing.

Rows, all at ``--size`` (360x480):

- each bundled model (``--models``, default every one that ships, so ``camvid-os16`` is picked up
  when it is added), exported by ``danet export`` code in fp32 and in int8 (``int8=True`` with the
  default calibration: the bundled CamVid val samples, as ``danet export --int8`` does);
- smp's DeepLabV3+ MobileNetV2 (``encoder_weights=None``, 11 classes: random weights, which is
  fine for timing), exported with the same opset (TorchScript exporter), and quantized as a user of
  onnxruntime would: ``quant_pre_process``, then ``quantize_static`` with QDQ, per-channel QInt8
  weights, QUInt8 activations (min/max), calibrated on the same images normalised the same way.
  onnxruntime's other defaults are kept (``reduce_range=False``; ours uses ``True``). smp needs
  sides divisible by 16, so its graph pads the frame (360 -> 368 rows) and crops the logits back.

All sessions live in one process and run interleaved: ``--rounds`` rounds, each running every
row once (the order rotating by one each round) after ``--warmup`` runs per row, so that a load
that comes and goes hits all rows alike. onnxruntime runs with ``--threads`` intra-op threads
and intra-op spinning off. The table gives the median and the interquartile range per row, and
the ratio of each median to smp int8's (issue 21 asks for <= 1.0x). Writes
``benchmarks/results/deploy.md``, or ``--out`` (not with ``--quick``); ``--models`` also takes
model folders.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from ort_bench import add_common_arguments, command_line, frame, machine_note, ort_session
from torch import nn

import danet
from danet.deploy.export import export_onnx
from danet.deploy.quantize import calibration_files, default_calibration

RESULTS = Path(__file__).parent / "results"
OPSET = inspect.signature(export_onnx).parameters["opset"].default  # the opset danet exports
PEER = "smp DeepLabV3+ MobileNetV2"
BASELINE = f"{PEER} int8"


class Padded(nn.Module):
    """A model that needs sides divisible by ``multiple``, on frames of ``size``: pads the frame
    at the bottom and right with zeros, then crops the logits back to ``size``."""

    def __init__(self, model: nn.Module, size: list[int], multiple: int = 16) -> None:
        super().__init__()
        self.model, self.size = model, size
        # F.pad's order: left, right, top, bottom
        self.pad = (0, -size[1] % multiple, 0, -size[0] % multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not any(self.pad):
            return self.model(x)
        return self.model(F.pad(x, self.pad))[..., : self.size[0], : self.size[1]]


class Frames(CalibrationDataReader):
    """The calibration images as onnxruntime's calibrator wants them, one frame per call."""

    def __init__(self, frames: list[np.ndarray], input_name: str = "input") -> None:
        self.frames, self.input_name = frames, input_name
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter([{self.input_name: f} for f in self.frames])


def export_peer(folder: Path, size: list[int], calibration: list[np.ndarray]) -> dict[str, Path]:
    """smp's DeepLabV3+ MobileNetV2 (random weights) as fp32 and static int8 QDQ ONNX files."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    model = smp.DeepLabV3Plus("mobilenet_v2", encoder_weights=None, classes=11).eval()
    fp32, pre, int8 = folder / "smp.onnx", folder / "smp_pre.onnx", folder / "smp_int8.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False: as danet exports
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(Padded(model, size), (torch.randn(1, 3, *size),), str(fp32),
                          input_names=["input"], output_names=["out"], opset_version=OPSET,
                          dynamo=False)  # fmt: skip
    onnx.checker.check_model(str(fp32))
    quant_pre_process(str(fp32), str(pre))
    quantize_static(
        str(pre),
        str(int8),
        Frames(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
    )
    return {f"{PEER} fp32": fp32, BASELINE: int8}


def export_ours(name: str, folder: Path, size: list[int]) -> dict[str, Path]:
    """A bundled model (or a model folder, named by its last part) as ``danet export`` writes it:
    fp32, and int8 with the default calibration."""
    stem = Path(name).name
    fp32 = export_onnx(name, folder / f"{stem}.onnx", *size)
    int8 = export_onnx(name, folder / f"{stem}_int8.onnx", *size, int8=True)
    return {f"{stem} fp32": fp32, f"{stem} int8": int8}


def time_interleaved(
    files: dict[str, Path], x: np.ndarray, threads: int, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per run of each file's session, the sessions taking turns within each round."""
    sessions = {row: ort_session(path, threads) for row, path in files.items()}
    feeds = {row: {s.get_inputs()[0].name: x} for row, s in sessions.items()}
    for _ in range(warmup):
        for row, session in sessions.items():
            session.run(None, feeds[row])
    times: dict[str, list[float]] = {row: [] for row in sessions}
    order = list(sessions)
    for r in range(rounds):
        for row in order[r % len(order) :] + order[: r % len(order)]:
            start = time.perf_counter()
            sessions[row].run(None, feeds[row])
            times[row].append(time.perf_counter() - start)
    return times


HEADER = (
    "| model | input | ONNX | median | interquartile range | vs smp int8 |\n"
    "|---|---|---|---:|---:|---:|"
)


def table(times: dict[str, list[float]], size: list[int]) -> str:
    """The markdown table: median and quartiles per row, and each median over smp int8's."""
    baseline = statistics.median(times[BASELINE])
    lines = [HEADER]
    for row, secs in times.items():
        model, weights = row.rsplit(" ", 1)
        q1, median, q3 = (1000 * q for q in statistics.quantiles(secs, n=4, method="inclusive"))
        lines.append(
            f"| {model} | {size[0]}x{size[1]} | {weights} | {median:.1f} ms | "
            f"{q1:.1f}-{q3:.1f} ms | {median / 1000 / baseline:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per row")
    parser.add_argument("--rounds", type=int, default=50, help="timed runs per row, interleaved")
    parser.add_argument("--out", type=Path, default=RESULTS / "deploy.md", help="the table's file")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the table gives quartiles)")
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        sys.exit("benchmarks/deploy.py needs segmentation_models_pytorch: pip install danet[bench]")
    if args.quick:
        args.size, args.warmup, args.rounds = args.size or [64, 96], 1, 3
    size = args.size or [360, 480]
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    reference = danet.load(args.models[0])  # whose calibration images and mean/std all rows use
    images = calibration_files(default_calibration(reference))
    calibration = [frame(f, reference.mean, reference.std, size) for f in images]
    with tempfile.TemporaryDirectory() as tmp:
        files: dict[str, Path] = {}
        for name in args.models:
            files.update(export_ours(name, Path(tmp), size))
        files.update(export_peer(Path(tmp), size, calibration))
        times = time_interleaved(files, calibration[0], args.threads, args.warmup, args.rounds)
    versions = {"onnx": onnx.__version__, "segmentation_models_pytorch": smp.__version__,
                "danet": danet.__version__}  # fmt: skip
    result = table(times, size)
    note = (
        f"{machine_note(args.threads, load_before, versions)} {args.warmup} untimed runs per row, "
        f"then {args.rounds} interleaved rounds. The smp model has random weights (timing only); "
        f"its graph pads the frame to sides divisible by 16.\n\nCommand: `{command_line()}`"
    )
    print(result)
    print(note)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"{result}\n\n{note}\n")


if __name__ == "__main__":
    main()
