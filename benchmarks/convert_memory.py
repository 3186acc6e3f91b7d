"""Whole-image inference of the converted DANet-R101s at 1024x2048 on the CPU: peak memory, O(N)
position attention (``impl="auto"``, blocked here) against the authors' N x N form (``"naive"``).

Run: ``.venv/bin/python benchmarks/convert_memory.py`` (about 8 GiB free memory for the naive rows;
``--size 256,512`` for a smoke run).

The models are the architectures ``danet convert`` builds, with random weights (memory and time do
not depend on the values): mmsegmentation's DANet R-101-D8 (Cityscapes, 19 classes, auxiliary
head) and the authors' DANet101 (multi-grid layer4, ``align_corners=True``). Each case runs in a
fresh process: one warm-up forward at a small size, then one forward at the full size, under
``torch.no_grad()``. Peak memory is the rise of the resident set's high-water mark (VmHWM, reset
through /proc/self/clear_refs just before the call) over the resident set just before it: real
process memory, allocator and library buffers included, weights excluded.

Writes ``benchmarks/results/convert_memory.md`` (the table it prints).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch
from peak_memory import peak_rise

from danet import DANet, PositionAttention
from danet.model.efficient_attention import fits_one_block

RESULTS = Path(__file__).parent / "results"
THREADS = 2
MODELS = {
    "mmseg DANet R-101-D8": dict(backbone="resnet101c", aux_head=True),
    "authors' DANet101": dict(backbone="resnet101", multi_grid=[1, 2, 4], align_corners=True),
}
IMPLS = ("auto", "naive")


def measure(model_name: str, impl: str, height: int, width: int) -> dict[str, float]:
    """In this (fresh) process: peak extra resident memory and seconds of one forward."""
    torch.set_num_threads(THREADS)
    model = DANet(num_classes=19, cam_variant="original", **MODELS[model_name]).eval()
    for module in model.modules():
        if isinstance(module, PositionAttention):
            module.impl = impl
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))  # load kernels and thread pools first
        x = torch.randn(1, 3, height, width)
        with peak_rise() as measured:
            model(x)
    return measured


def in_subprocess(model_name: str, impl: str, height: int, width: int) -> dict[str, float]:
    args = [sys.executable, __file__, "--measure", model_name, impl, f"{height},{width}"]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:  # e.g. killed for memory: report it in the table
        return {"peak_mib": float("nan"), "seconds": float("nan"), "error": done.returncode}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict], height: int, width: int) -> str:
    n = -(-height // 8) * -(-width // 8)
    lines = [
        f"Whole image {height}x{width} (feature map N = {n} positions), batch 1, {THREADS} threads, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "",
        "| model | position attention | peak extra memory | forward time |",
        "| --- | --- | ---: | ---: |",
    ]
    auto = "auto: naive here (N x N fits one block)" if fits_one_block(1, n, n) else "O(N), blocked"
    for row in rows:
        impl = {"auto": auto, "naive": "naive N x N"}[row["impl"]]
        if "error" in row:
            lines.append(f"| {row['model']} | {impl} | failed (exit {row['error']}) | |")
            continue
        lines.append(
            f"| {row['model']} | {impl} | {row['peak_mib'] / 1024:.2f} GiB | {row['seconds']:.1f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024,2048", help="H,W of the image")
    parser.add_argument(
        "--measure", nargs=3, metavar=("MODEL", "IMPL", "SIZE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.measure:
        model_name, impl, size = args.measure
        height, width = (int(v) for v in size.split(","))
        print(json.dumps(measure(model_name, impl, height, width)))
        return
    height, width = (int(v) for v in args.size.split(","))
    rows = []
    for model_name in MODELS:
        for impl in IMPLS:
            rows.append(
                {
                    "model": model_name,
                    "impl": impl,
                    **in_subprocess(model_name, impl, height, width),
                }
            )
            print(rows[-1], file=sys.stderr)
    text = table(rows, height, width)
    print(text)
    if (height, width) == (1024, 2048):
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "convert_memory.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
