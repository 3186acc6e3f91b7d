"""Start-up of ``danet predict`` with an ``.onnx`` file, against a hand-written onnxruntime script.

Both write the labels of one image as a PNG: the hand-written script (onnxruntime + numpy +
Pillow, no danet) resizes the image to the model's input size, runs it, takes the argmax and
saves a palette PNG; ``danet predict IMAGE --checkpoint MODEL.onnx`` does its whole job (label,
colour and overlay PNGs). Each is timed as a fresh process (Python's start, the imports, the
session, the inference, the PNGs), interleaved, ``--runs`` times; the medians and their ratio are
printed and, with ``--out``, written as a Markdown record. One more ``danet predict`` under
``python -X importtime`` lists whether torch or timm were imported (they must not be).

    python benchmarks/onnx_startup.py --out benchmarks/results/onnx_startup.md

Without ``--onnx``, the bundled ``camvid`` model is exported as int8 first (that takes torch, and
is not timed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = """
import json, sys
import numpy as np
import onnxruntime as ort
from PIL import Image

model, image, out = sys.argv[1:4]
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[4])
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
mean, std = np.array(json.loads(meta["mean"])), np.array(json.loads(meta["std"]))
height, width = json.loads(meta["input_size"])
rgb = Image.open(image).convert("RGB")
x = np.asarray(rgb.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0
x = ((x - mean) / std).astype(np.float32).transpose(2, 0, 1)[None]
logits = session.run(None, {session.get_inputs()[0].name: x})[0]
labels = Image.fromarray(logits[0].argmax(0).astype(np.uint8), "P").resize(rgb.size, Image.NEAREST)
labels.putpalette(np.array(json.loads(meta["palette"]), dtype=np.uint8).ravel().tolist())
labels.save(out)
"""

SAMPLE = Path(__file__).resolve().parents[1] / "src/danet/samples/camvid/val/0016E5_08049.jpg"


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``command`` as a fresh process (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def heavy_imports(command: list[str], env: dict[str, str]) -> list[str]:
    """Which of torch, timm and torchvision ``command`` (a ``python -m ...``) imports."""
    done = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]], env=env, check=True, capture_output=True
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.decode().splitlines()}
    return sorted(names & {"torch", "timm", "torchvision"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", help="the .onnx file (default: the bundled camvid, int8)")
    parser.add_argument("--image", default=str(SAMPLE), help="the image to segment")
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs of each")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--out", help="write the Markdown record here")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        onnx = args.onnx
        if onnx is None:
            onnx = str(folder / "camvid_int8.onnx")
            export = [sys.executable, "-m", "danet", "export", "--checkpoint", "camvid"]
            subprocess.run([*export, "--onnx", onnx, "--int8", "--quiet"], env=env, check=True)
        script = folder / "baseline.py"
        script.write_text(BASELINE)
        baseline = [sys.executable, str(script), onnx, args.image, str(folder / "label.png")]
        baseline.append(str(args.threads))
        danet = [sys.executable, "-m", "danet", "predict", args.image, "--checkpoint", onnx]
        danet += ["--out", str(folder / "predictions"), "--quiet"]
        times: dict[str, list[float]] = {"baseline": [], "danet": []}
        for _ in range(args.runs):
            times["baseline"].append(timed(baseline, env))
            times["danet"].append(timed(danet, env))
        imported = heavy_imports(danet, env)
    base, ours = (statistics.median(times[k]) for k in ("baseline", "danet"))
    lines = [
        "# Start-up of `danet predict` with an `.onnx` file",
        "",
        f"Command: `python benchmarks/onnx_startup.py --runs {args.runs} --threads {args.threads}"
        + (f" --onnx {args.onnx}`" if args.onnx else "` (the bundled camvid, exported as int8)"),
        f"Image: `{Path(args.image).name}`; machine: {platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, Python {platform.python_version()}.",
        "",
        "| | median wall time (s) | runs (s) |",
        "|---|---:|---|",
        f"| hand-written onnxruntime + numpy + Pillow, one label PNG | {base:.3f} | "
        + ", ".join(f"{t:.3f}" for t in times["baseline"])
        + " |",
        f"| `danet predict IMAGE --checkpoint MODEL.onnx` (label, colour, overlay PNGs) | "
        f"{ours:.3f} | " + ", ".join(f"{t:.3f}" for t in times["danet"]) + " |",
        "",
        f"Ratio: **{ours / base:.2f}x** (target: at most 2.0x). torch/timm/torchvision imported "
        f"by `danet predict`: {', '.join(imported) or 'none'} (`python -X importtime`).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
