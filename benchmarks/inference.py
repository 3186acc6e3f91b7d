"""Whole-model inference on the CPU: PyTorch eager, channels_last, torch.compile, onnxruntime fp32/int8.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/inference.py`` on a quiet machine (about ten
minutes on 2 cores, most of it the DANet-R50 at 1024x2048); ``--quick`` is a smoke run at a tiny size.

Models: the bundled ``camvid`` model (MobileNetV2, stride 8) at 360x480, and a randomly
initialised DANet-R50 (19 classes, stride 8) at Cityscapes' 1024x2048. Each row runs in a fresh
process: load the model (or the ONNX file, exported beforehand by ``danet export`` code, int8
calibrated on the bundled CamVid samples), run ``--warmup`` forwards, then time ``--repeats``
forwards of one normalised 1x3xHxW frame with ``--threads`` threads. The table gives the median
latency, its ratio to PyTorch eager on the same model, the process's peak resident set
(``VmHWM``: libraries, model, runtime and activations), and that peak minus the resident set
after the imports (Python, torch, onnxruntime), which is what the model and its run add. Writes ``benchmarks/results/inference.md`` too
(not with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import torch
from peak_memory import proc_mib

import danet
from danet.assets import SAMPLES_DIR
from danet.deploy.export import export_onnx

RESULTS = Path(__file__).parent / "results"
BACKENDS = ("eager", "channels_last", "compile", "ort fp32", "ort int8")
RUNS = {"camvid": (2, 10), "r50": (1, 3)}
"""Warm-up and timed forwards per row, by model (``--warmup``/``--repeats`` override both)."""
CALIBRATION = sorted((SAMPLES_DIR / "camvid" / "val").iterdir())[:2]  # timing only: 2 suffice


def load_runner(backend: str, source: str, threads: int) -> torch.nn.Module:
    """The model that ``backend`` runs: a DANet (eager, channels_last, compiled) or an OnnxModel."""
    if backend.startswith("ort"):
        from danet.deploy.onnx_runtime import OnnxModel

        return OnnxModel(source, threads=threads)
    model = danet.load(source)
    if backend == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    if backend == "compile":
        model = torch.compile(model)
    return model


def measure(
    backend: str, source: str, size: list[int], threads: int, warmup: int, repeats: int
) -> dict:
    """In this (fresh) process: median seconds of ``repeats`` forwards, and the peak RSS."""
    torch.set_num_threads(threads)
    imports = proc_mib("VmRSS")  # Python, torch and onnxruntime, before any model
    runner = load_runner(backend, source, threads)
    x = torch.randn(1, 3, *size)
    if backend == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            runner(x)["out"]
            if i >= warmup:
                times.append(time.perf_counter() - start)
    peak = proc_mib("VmHWM")
    return {"seconds": statistics.median(times), "peak_mib": peak, "model_mib": peak - imports}


def measure_in_subprocess(
    backend: str, source: str, size: list[int], runs: tuple[int, int], args: argparse.Namespace
) -> dict:
    """:func:`measure` in a fresh Python process; ``{"error": ...}`` if that process fails."""
    command = [sys.executable, __file__, "--row", backend, source, f"{size[0]},{size[1]}",
               "--threads", str(args.threads), "--warmup", str(runs[0]),
               "--repeats", str(runs[1])]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:80]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(name: str, folder: Path, quick: bool) -> tuple[str, list[int]]:
    """A checkpoint to time, and its input size: the bundled camvid model, or a random DANet-R50."""
    if name == "camvid":
        return "camvid", ([64, 96] if quick else [360, 480])
    torch.manual_seed(0)
    size = [64, 128] if quick else [1024, 2048]
    model = danet.DANet(num_classes=19, backbone="resnet50", input_size=size)
    return str(danet.save_model(model, folder / "r50")), size


def run(args: argparse.Namespace) -> list[dict]:
    """Every (model, backend) row, each measured in its own process."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            checkpoint, size = prepare(name, Path(tmp), args.quick)
            sources = dict.fromkeys(("eager", "channels_last", "compile"), checkpoint)
            sources["ort fp32"] = str(export_onnx(checkpoint, Path(tmp) / f"{name}.onnx", *size))
            int8 = Path(tmp) / f"{name}_int8.onnx"
            sources["ort int8"] = str(
                export_onnx(checkpoint, int8, *size, int8=True, calibration=CALIBRATION)
            )
            warmup, repeats = RUNS[name]
            runs = (args.warmup or warmup, args.repeats or repeats)
            eager = None
            for backend in args.backends:
                result = measure_in_subprocess(backend, sources[backend], size, runs, args)
                if backend == "eager":
                    eager = result.get("seconds")
                rows.append(
                    {
                        "model": name,
                        "size": size,
                        "backend": backend,
                        "eager": eager,
                        "runs": runs,
                        **result,
                    }  # fmt: skip
                )
                print(table_row(rows[-1]), flush=True)
    return rows


HEADER = (
    "| model | input | backend | median latency | vs eager | peak RSS | peak minus imports |\n"
    "|---|---|---|---:|---:|---:|---:|"
)


def table_row(row: dict) -> str:
    """One markdown table row."""
    input_size = f"{row['size'][0]}x{row['size'][1]}"
    if "error" in row:
        return (
            f"| {row['model']} | {input_size} | {row['backend']} | failed: {row['error']} | | | |"
        )
    ms = 1000 * row["seconds"]
    ratio = f"{row['seconds'] / row['eager']:.2f}x" if row["eager"] else "-"
    return f"| {row['model']} | {input_size} | {row['backend']} | {ms:.0f} ms | {ratio} | {row['peak_mib']:.0f} MiB | {row['model_mib']:.0f} MiB |"


def environment(args: argparse.Namespace, load_before: float) -> str:
    """One line that says what ran where, and how busy the machine was."""
    cpu = platform.processor() or platform.machine()
    for line in (
        Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    ):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"{cpu}, {os.cpu_count()} cores, {args.threads} threads; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}; warm-up + timed runs per row: "
        f"{', '.join(f'{m} {RUNS[m][0]}+{RUNS[m][1]}' for m in args.models)} (unless overridden); "
        f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--models", nargs="+", choices=("camvid", "r50"), default=["camvid", "r50"])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, help="warm-up forwards per row (default: RUNS)")
    parser.add_argument("--repeats", type=int, help="timed forwards per row (default: RUNS)")
    parser.add_argument(
        "--row", nargs=3, metavar=("BACKEND", "SOURCE", "H,W"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.row:
        backend, source, size = args.row
        hw = [int(s) for s in size.split(",")]
        result = measure(backend, source, hw, args.threads, args.warmup, args.repeats)
        print(json.dumps(result))
        return
    load_before = os.getloadavg()[0]
    print(HEADER, flush=True)
    rows = run(args)
    note = environment(args, load_before)
    print(note)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        table = "\n".join([HEADER, *map(table_row, rows)])
        (RESULTS / "inference.md").write_text(f"{table}\n\n{note}\n")


if __name__ == "__main__":
    main()
