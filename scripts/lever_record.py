"""Record a finished lever run in results/levers/NAME.json: its recipe, its last validation row
(mIoU and every attention figure, reach included) and, if given, its `danet eval --json` output
(per-class IoU).

Usage: python scripts/lever_record.py RUN NAME [EVAL_JSON]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEYS = ("train_split", "val_split", "iters", "seed", "init_weights", "attention", "cam_variant",
        "pam_scale", "affinity_target", "affinity_exclude_radius", "class_weighting", "pixel_sampler",
        "ohem_threshold", "ohem_min_kept", "decoder",
        "grad_clip_norm", "precision", "loss_weights", "lr", "crop_size", "batch_size")  # fmt: skip


def main() -> None:
    run, name = Path(sys.argv[1]), sys.argv[2]
    config = json.loads((run / "run_config.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val_miou" in r]
    record = {
        "run": str(run),
        "config": {k: config.get(k) for k in KEYS},
        "validations": val,
        "val": val[-1],
    }
    if len(sys.argv) > 3:
        evaluated = json.loads(Path(sys.argv[3]).read_text())
        record["per_class_iou"] = dict(
            zip(evaluated["class_names"], evaluated["per_class_iou"], strict=True)
        )
    out = Path("results/levers") / f"{name}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
