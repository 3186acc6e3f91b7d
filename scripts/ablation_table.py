"""Print the ablation as a markdown table from finished runs' eval JSON (results/ablation/*.json,
or runs' eval.json) and, where present, their metrics.jsonl (step times).

Runs of one variant (several seeds) share a row: mean val mIoU, each seed's mIoU, the attention
diagnostics averaged over seeds (from ``danet eval --diagnostics``), and the median step time.
Usage: python scripts/ablation_table.py results/ablation/*_300*.json   (or run folders)
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import danet

NAMES = {"none": "FCN baseline", "pam": "PAM only", "cam": "CAM only", "both": "DANet (PAM + CAM)"}
DIAGNOSTICS = (
    "pam_far_same_mass",
    "pam_local_mass",
    "pam_lift",
    "pam_gamma",
    "pam_term_ratio",
    "cam_max_weight",
    "cam_gamma",
)


def _read(path: Path) -> dict | None:
    """One run's config, eval JSON and step times; None (with a note) when it has not finished."""
    run = path if path.is_dir() else Path("runs") / path.stem
    eval_json = path / "eval.json" if path.is_dir() else path
    if not eval_json.is_file():
        print(f"skipping {path}: no eval.json (not finished)", file=sys.stderr)
        return None
    result = json.loads(eval_json.read_text())
    config = (
        json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    )
    name = re.fullmatch(r"ablation_(none|pam|cam|both)_\d+(?:_seed(\d+))?", path.stem)
    if not config and name:  # no run folder: the JSON's name says variant and seed
        config = {"attention": name[1]}
    elif not config:  # the checkpoint named in it
        config = danet.load(result["checkpoint"]).config
    rows = (run / "metrics.jsonl").read_text().splitlines() if run.is_dir() else []
    seconds = [r["sec"] for r in map(json.loads, rows) if "sec" in r]
    if run.is_dir():
        seed = json.loads((run / "run_config.json").read_text())["seed"]
    else:
        seed = int(name[2] or 0) if name else 0
    return {"config": config, "seed": seed, "result": result, "seconds": seconds, "run": run}


def _cell(values: list[float], digits: int = 2) -> str:
    return f"{statistics.mean(values):.{digits}f}" if values else "—"


def main(paths: list[str]) -> None:
    """Print the header and one row per variant, in the order FCN, PAM, CAM, DANet."""
    by_variant: dict[str, list[dict]] = defaultdict(list)
    for path in map(Path, paths):
        read = _read(path)
        if read is not None:
            by_variant[read["config"].get("attention", "both")].append(read)
    head = "| variant | val mIoU (mean ± sd) | per seed | lowest class IoU | "
    print(head + " | ".join(DIAGNOSTICS) + " | s/step (median) |")
    print("|---|---:|---|---:|" + "---:|" * len(DIAGNOSTICS) + "---:|")
    for attention in (a for a in NAMES if a in by_variant):
        runs = sorted(by_variant[attention], key=lambda r: r["seed"])
        mious = [100 * r["result"]["miou"] for r in runs]
        seeds = ", ".join(f"{m:.2f} (seed {r['seed']})" for r, m in zip(runs, mious, strict=True))
        spread = statistics.stdev(mious) if len(mious) > 1 else 0.0
        diag = [
            _cell(
                [r["result"]["attention"][k] for r in runs if k in r["result"].get("attention", {})]
            )
            for k in DIAGNOSTICS
        ]
        lowest = min(min(r["result"]["per_class_iou"]) for r in runs)
        seconds = [s for r in runs for s in r["seconds"]]
        step = f"{statistics.median(seconds):.2f} s" if seconds else "—"
        print(
            f"| {NAMES[attention]} | **{statistics.mean(mious):.2f}** ± {spread:.2f} | {seeds} | "
            f"{100 * lowest:.1f} | " + " | ".join(diag) + f" | {step} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
