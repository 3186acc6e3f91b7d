"""Print the ablation as a markdown table from finished runs (their eval.json and metrics.jsonl).

Runs of one variant (several seeds) share a row: mean val mIoU, each seed's mIoU, and the median
step time over all their steps (robust to the odd step slowed by another job on the machine).
Usage: python scripts/ablation_table.py runs/ablation_*_300*
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import danet

NAMES = {"none": "FCN baseline", "pam": "PAM only", "cam": "CAM only", "both": "DANet (PAM + CAM)"}


def _read(run: Path) -> tuple[str, int, float, list[float]]:
    config = json.loads((run / "run_config.json").read_text())
    miou = json.loads((run / "eval.json").read_text())["miou"]
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return config["attention"], config["seed"], miou, [s["sec"] for s in steps if "sec" in s]


def main(runs: list[str]) -> None:
    """Print the header and one row per variant, in the order FCN, PAM, CAM, DANet."""
    by_variant: dict[str, list[tuple[int, float, list[float]]]] = defaultdict(list)
    folders: dict[str, Path] = {}
    for run in map(Path, runs):
        if not (run / "eval.json").is_file():
            print(f"skipping {run}: no eval.json (not finished)", file=sys.stderr)
            continue
        attention, seed, miou, seconds = _read(run)
        by_variant[attention].append((seed, miou, seconds))
        folders[attention] = run
    print("| variant | params | val mIoU (mean ± sd) | per seed | s/step (median) |")
    print("|---|---:|---:|---|---:|")
    for attention in (a for a in NAMES if a in by_variant):
        results = sorted(by_variant[attention])
        mious = [100 * miou for _, miou, _ in results]
        seeds = ", ".join(
            f"{m:.2f} (seed {seed})" for (seed, _, _), m in zip(results, mious, strict=True)
        )
        seconds = statistics.median(s for *_, secs in results for s in secs)
        spread = statistics.stdev(mious) if len(mious) > 1 else 0.0
        params = sum(p.numel() for p in danet.load(folders[attention]).parameters()) / 1e6
        print(
            f"| {NAMES[attention]} | {params:.2f} M | **{statistics.mean(mious):.2f}** ± {spread:.2f} "
            f"| {seeds} | {seconds:.2f} s |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
