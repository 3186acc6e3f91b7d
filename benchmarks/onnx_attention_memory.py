"""Peak memory and time against N: PyTorch, the naive dynamic ONNX graph, the Scan graph.

The bundled ``camvid`` model runs one frame of height 360 and growing width (N = 45 x W/8 feature
positions, up to about 40,000) three ways: in PyTorch, in onnxruntime on the dynamic-size graph
that danet exported before (the naive N x N position attention), and on the one it exports now (a
``Scan`` over query blocks, :mod:`danet.model.onnx_attention`). Each case runs in a fresh process
and reports its peak resident set (imports, weights and the run together) and the time of its
second run. The naive graph is skipped where its N x N float32 matrices (four at once, as
measured) would pass ``--naive-gib``, so that it cannot take the (shared) machine down. The peak
is the process's ``VmHWM``, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over ``exec`` from the
parent, which holds torch and the exported graphs.

Three more tables: ``danet predict`` on a 360x3840 panorama (eight sample frames side by side)
with each backend; the int8 latency at 360x480 of the dynamic graph against the fixed-size one;
and the fp32 latency at 360x480 of the naive dynamic graph against Scan graphs of several block
sizes (each table's graphs interleaved in one process). Writes
``benchmarks/results/onnx_attention_memory.md`` (not with ``--quick``, a smoke run at tiny sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from ort_bench import command_line, machine_note, ort_session
from peak_memory import proc_mib
from PIL import Image

import danet
from danet.deploy.export import DYNAMIC_AXES, export_onnx
from danet.model import onnx_attention
from danet.model.attention import PositionAttention

RESULTS = Path(__file__).parent / "results"
HEIGHT = 360
WIDTHS = [480, 960, 1920, 3840, 5760, 7112]  # N = 2700, 5400, 10800, 21600, 32400, 40005
CASES = ["pytorch", "onnx naive", "onnx scan"]
NAIVE_MATRICES = 4  # N x N float32 matrices the naive graph held at once (8.7 GiB at N = 21,600)
BLOCKS = [128, 256, 512, 1024]  # query rows per Scan iteration; danet's is 256


def export_naive(model: danet.DANet, path: Path) -> Path:
    """The dynamic-size graph as danet wrote it before the Scan form: the naive N x N attention."""
    for module in model.modules():
        if isinstance(module, PositionAttention):
            module.impl = "naive"

    class Out(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)["out"]

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dynamo=False and the tracer's notes, as export_onnx
        torch.onnx.export(Out().eval(), (torch.randn(1, 3, 64, 64),), str(path),
                          input_names=["input"], output_names=["out"], opset_version=17,
                          dynamic_axes={"input": DYNAMIC_AXES, "out": DYNAMIC_AXES},
                          dynamo=False)  # fmt: skip
    for module in model.modules():
        if isinstance(module, PositionAttention):
            module.impl = "auto"
    return path


def child(case: str, graph: str, height: int, width: int, threads: int) -> None:
    """One case in this process: print its peak memory and the time of its second run as JSON."""
    torch.set_num_threads(threads)
    x = torch.randn(1, 3, height, width)
    if case == "pytorch":
        model = danet.load("camvid").eval()

        def run() -> None:
            with torch.no_grad():
                model(x, heads=("out",))

    else:
        session = ort_session(graph, threads)

        def run() -> None:
            session.run(None, {"input": x.numpy()})

    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    peak = proc_mib("VmHWM")
    print(json.dumps({"peak_mib": peak, "seconds": seconds[-1]}))


def predict_child(backend: str, image: str, out: str, threads: int) -> None:
    """``danet predict`` in this process; print its peak memory as JSON."""
    from danet.cli import main as danet_main

    torch.set_num_threads(threads)
    code = danet_main(["predict", image, "--checkpoint", "camvid", "--backend", backend,
                       "--out", out, "--quiet"])  # fmt: skip
    peak = proc_mib("VmHWM")
    print(json.dumps({"peak_mib": peak, "code": code}))


def in_subprocess(args: list[str], env: dict[str, str] | None = None) -> dict:
    """This script with ``args`` in a fresh process; its JSON line, or ``{"failed": stderr}``."""
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"failed": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return json.loads(lines[-1])


def memory_table(graphs: dict[str, Path], widths: list[int], threads: int, naive_gib: float) -> str:
    lines = [
        "| input | N | PyTorch peak | naive graph peak | Scan graph peak | PyTorch time | "
        "naive time | Scan time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for width in widths:
        height = HEIGHT
        n = -(-height // 8) * -(-width // 8)  # feature positions at output stride 8
        results = {}
        for case in CASES:
            if case == "onnx naive" and NAIVE_MATRICES * n * n * 4 > naive_gib * 2**30:
                results[case] = {"skipped": True}
                continue
            graph = str(graphs.get(case, ""))
            results[case] = in_subprocess(
                ["--child", case, graph, str(height), str(width), str(threads)]
            )
            print(f"  {height}x{width} {case}: {results[case]}", file=sys.stderr)

        def mib(r: dict) -> str:
            return "skipped" if "skipped" in r else r.get("failed") or f"{r['peak_mib']:.0f} MiB"

        def secs(r: dict) -> str:
            return "-" if "peak_mib" not in r else f"{r['seconds']:.2f} s"

        cells = [results[c] for c in CASES]
        lines.append(
            f"| {height}x{width} | {n} | " + " | ".join(mib(r) for r in cells) + " | "
            + " | ".join(secs(r) for r in cells) + " |"
        )  # fmt: skip
    return "\n".join(lines)


def panorama(folder: Path, frames: int) -> Path:
    """``frames`` bundled CamVid samples side by side (360 x 480 * frames)."""
    from danet import assets
    from danet.data.io import list_images

    files = list_images(assets.samples_dir("camvid") / "val")
    images = [np.asarray(Image.open(f).convert("RGB")) for f in (files * frames)[:frames]]
    path = folder / "panorama.png"
    Image.fromarray(np.concatenate(images, axis=1)).save(path)
    return path


def predict_table(folder: Path, frames: int, threads: int) -> str:
    image = panorama(folder, frames)
    env = {"XDG_CACHE_HOME": str(folder / "cache")}
    warm = ["--predict-child", "onnxruntime", str(image), str(folder / "warm"), str(threads)]
    in_subprocess(warm, env)  # exports the dynamic graph into the cache, as a first run does
    peaks = {}
    for backend in ("torch", "onnxruntime"):
        args = ["--predict-child", backend, str(image), str(folder / backend), str(threads)]
        peaks[backend] = in_subprocess(args, env)
    labels = [np.asarray(Image.open(folder / b / "panorama_label.png")) for b in peaks]
    agree = (labels[0] == labels[1]).mean()
    torch_mib, ort_mib = peaks["torch"]["peak_mib"], peaks["onnxruntime"]["peak_mib"]
    ratio = ort_mib / torch_mib
    return (
        f"| `danet predict` on a 360x{480 * frames} panorama | peak memory |\n|---|---:|\n"
        f"| --backend torch | {torch_mib:.0f} MiB |\n"
        f"| --backend onnxruntime (cached dynamic graph) | {ort_mib:.0f} MiB ({ratio:.2f}x) |\n\n"
        f"Labels agree on {100 * agree:.4f}% of pixels."
    )


def interleaved(files: dict[str, Path], threads: int, rounds: int, title: str) -> str:
    """Median and quartiles of each graph at 360x480, run in turn ``rounds`` times, against the
    first graph's median."""
    sessions = {name: ort_session(path, threads) for name, path in files.items()}
    x = np.random.default_rng(0).standard_normal((1, 3, 360, 480)).astype(np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        for _ in range(3):
            session.run(None, {"input": x})
    for _ in range(rounds):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {"input": x})
            times[name].append(time.perf_counter() - start)
    base = statistics.median(next(iter(times.values())))
    lines = [f"| {title} | median | interquartile range | vs first row |", "|---|---:|---:|---:|"]
    for name, secs in times.items():
        q1, median, q3 = (1000 * q for q in statistics.quantiles(secs, n=4, method="inclusive"))
        lines.append(
            f"| {name} | {median:.1f} ms | {q1:.1f}-{q3:.1f} ms | {median / 1000 / base:.2f}x |"
        )
    return "\n".join(lines)


def int8_table(model: danet.DANet, folder: Path, threads: int, rounds: int) -> str:
    """The int8 graphs at 360x480: fixed-size (what danet export --int8 writes) and dynamic."""
    files = {
        "fixed-size int8": export_onnx(model, folder / "fixed_int8.onnx", int8=True),
        "dynamic int8 (Scan)": export_onnx(
            model, folder / "dynamic_int8.onnx", int8=True, dynamic=True
        ),
    }
    return interleaved(files, threads, rounds, "int8 graph, 360x480")


def block_table(model: danet.DANet, folder: Path, threads: int, rounds: int) -> str:
    """The fp32 dynamic graphs at 360x480: naive, and Scan graphs of several block sizes."""
    files = {"naive dynamic fp32": folder / "naive.onnx"}
    default = onnx_attention.QUERY_BLOCK
    try:
        for rows in BLOCKS:
            onnx_attention.QUERY_BLOCK = rows  # read when the attention is traced
            path = export_onnx(model, folder / f"scan{rows}.onnx", dynamic=True)
            files[f"Scan fp32, {rows}-row blocks"] = path
    finally:
        onnx_attention.QUERY_BLOCK = default
    return interleaved(files, threads, rounds, "dynamic graph, 360x480")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        case, graph, height, width, threads = sys.argv[2:7]
        return child(case, graph, int(height), int(width), int(threads))
    if sys.argv[1:2] == ["--predict-child"]:
        backend, image, out, threads = sys.argv[2:6]
        return predict_child(backend, image, out, int(threads))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", nargs="+", type=int, default=WIDTHS, help="at height 360")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--naive-gib", type=float, default=8.0,
                        help="skip the naive graph where its N x N matrices would pass this")  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=20, help="timed runs of the latency tables, interleaved"
    )
    parser.add_argument("--models", nargs="+", default=["camvid"], help="only camvid is run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no file")
    args = parser.parse_args()
    global HEIGHT
    if args.quick:
        HEIGHT, args.widths = 64, [64, 128]
    load_before = os.getloadavg()[0]
    model = danet.load("camvid").eval()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        graphs = {
            "onnx naive": export_naive(model, folder / "naive.onnx"),
            "onnx scan": export_onnx(model, folder / "scan.onnx", dynamic=True),
        }
        tables = [memory_table(graphs, args.widths, args.threads, args.naive_gib)]
        if not args.quick:
            tables.append(predict_table(folder, 8, args.threads))
            tables.append(int8_table(model, folder, args.threads, args.rounds))
            tables.append(block_table(model, folder, args.threads, args.rounds))
    versions = {"onnx": onnx.__version__, "danet": danet.__version__}
    note = (
        f"{machine_note(args.threads, load_before, versions)} Peak memory is each case's "
        "resident high-water mark (VmHWM) in a fresh process (imports and weights included); time is the second of two "
        f"runs. The naive graph is skipped where {NAIVE_MATRICES} N x N float32 matrices would pass "
        f"{args.naive_gib:g} GiB. "
        "The machine was shared with other jobs (a training run and other sessions) while this "
        f"ran, so times are noisy.\n\nCommand: `{command_line()}`"
    )
    result = "\n\n".join(tables)
    print(result)
    print(note)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "onnx_attention_memory.md").write_text(f"{result}\n\n{note}\n")


if __name__ == "__main__":
    main()
