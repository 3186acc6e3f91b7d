"""Print the ablation as a markdown table from finished runs (their eval.json and metrics.jsonl).

Usage: python scripts/ablation_table.py runs/ablation_none_300 runs/ablation_pam_300 ...
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import danet

NAMES = {"none": "FCN baseline", "pam": "PAM only", "cam": "CAM only", "both": "DANet (PAM + CAM)"}


def row(run: Path) -> str:
    """One table row: variant, seed, parameters, val mIoU, pixel accuracy, median step time."""
    config = json.loads((run / "run_config.json").read_text())
    result = json.loads((run / "eval.json").read_text())
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    seconds = [s["sec"] for s in steps if "sec" in s][-100:]
    params = sum(p.numel() for p in danet.load(run).parameters()) / 1e6
    return (
        f"| {NAMES[config['attention']]} | {config['seed']} | {params:.2f} M "
        f"| **{100 * result['miou']:.2f}** | {100 * result['pixel_acc']:.2f} "
        f"| {statistics.median(seconds):.2f} s |"
    )


def main(runs: list[str]) -> None:
    """Print the header and one row per run."""
    print("| variant | seed | params | val mIoU | pixel acc | s/step (median, last 100) |")
    print("|---|---:|---:|---:|---:|---:|")
    for run in runs:
        print(row(Path(run)))


if __name__ == "__main__":
    main(sys.argv[1:])
