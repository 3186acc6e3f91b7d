"""Does ``danet eval`` score what ``danet predict`` writes? On 1920x1080 frames (CamVid frames cropped
to 16:9 and enlarged, masks with nearest neighbours) laid out as a ``folder`` dataset, the mIoU
``danet eval`` reports is compared with the mIoU of ``danet predict``'s label PNGs, at one scale
and with ``--scales 0.75 1.0 --flip``, for each checkpoint given.

    python benchmarks/eval_predict_agreement.py CAMVID_ROOT --frames 4 \\
        --checkpoint camvid --checkpoint model_int8.onnx --out benchmarks/results/eval_predict.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from danet.data.camvid import CamVid
from danet.training.metrics import ConfusionMatrix

VIEWS = {"one scale": [], "--scales 0.75 1.0 --flip": ["--scales", "0.75", "1.0", "--flip"]}


def make_frames(camvid: Path, count: int, root: Path) -> None:
    """``count`` val frames of ``camvid`` (SegNet layout) as 1920x1080 ``folder`` data."""
    (root / "images" / "val").mkdir(parents=True)
    (root / "masks" / "val").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(CamVid.class_names) + "\n")
    frames = sorted((camvid / "val").glob("*.png"))
    for path in frames[:: max(1, len(frames) // count)][:count]:
        box = (0, 45, 480, 315)  # 480x270: 16:9
        image = Image.open(path).convert("RGB").crop(box).resize((1920, 1080), Image.BICUBIC)
        mask = Image.open(camvid / "valannot" / path.name).crop(box)
        labels = np.asarray(mask.resize((1920, 1080), Image.NEAREST)).copy()
        labels[labels >= len(CamVid.class_names)] = 255
        image.save(root / "images" / "val" / path.name)
        Image.fromarray(labels).save(root / "masks" / "val" / path.name)


def png_miou(out: Path, root: Path) -> float:
    """The mIoU of the label PNGs in ``out`` against the masks of ``root``."""
    matrix = ConfusionMatrix(len(CamVid.class_names))
    for mask in sorted((root / "masks" / "val").glob("*.png")):
        labels = np.asarray(Image.open(out / f"{mask.stem}_label.png"))
        matrix.update(labels, np.asarray(Image.open(mask)))
    return float(matrix.compute()["miou"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("camvid", type=Path, help="CamVid in the SegNet layout (val, valannot)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--checkpoint", action="append", default=None)
    parser.add_argument("--out", help="write the Markdown record here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "frames"
        make_frames(args.camvid, args.frames, root)
        for checkpoint in args.checkpoint or ["camvid"]:
            for label, views in VIEWS.items():
                common = ["--checkpoint", checkpoint, *views, "--quiet"]
                out, report = Path(tmp) / "predictions", Path(tmp) / "eval.json"
                danet = [sys.executable, "-m", "danet"]
                subprocess.run(
                    [*danet, "predict", str(root / "images" / "val"), "--out", str(out), *common],
                    check=True,
                )
                subprocess.run(
                    [*danet, "eval", "--dataset", "folder", "--data-root", str(root)]
                    + ["--json", str(report), *common],
                    check=True,
                    capture_output=True,
                )
                evaluated = json.loads(report.read_text())["miou"]
                predicted = png_miou(out, root)
                rows.append((checkpoint, label, evaluated, predicted))
    lines = [
        "# `danet eval` against `danet predict`'s label PNGs",
        "",
        f"Command: `python benchmarks/eval_predict_agreement.py CAMVID --frames {args.frames}"
        + "".join(f" --checkpoint {c}" for c in args.checkpoint or ["camvid"])
        + "`; CamVid val frames cropped to 16:9 and enlarged to 1920x1080 (the masks by nearest"
        " neighbour), a `folder` dataset.",
        "",
        "| checkpoint | views | eval mIoU | mIoU of predict's PNGs | difference |",
        "|---|---|---:|---:|---:|",
    ]
    for checkpoint, label, evaluated, predicted in rows:
        lines.append(
            f"| {Path(checkpoint).name} | {label} | {100 * evaluated:.4f} | {100 * predicted:.4f}"
            f" | {abs(evaluated - predicted):.6f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
