#!/usr/bin/env bash
# The paper's ablation on CamVid: FCN baseline, PAM only, CAM only, DANet, all on the same recipe
# (configs/camvid.yaml) and the same shorter budget. Resumable: rerun it after a kill.
# Usage: scripts/ablation.sh DATA_ROOT [ITERS]   (runs in the foreground; wrap in nohup)
set -euo pipefail
data=$1; iters=${2:-300}
for attention in none pam cam both; do
  run=runs/ablation_${attention}_${iters}
  if [ -f "$run/eval.json" ]; then continue; fi
  if [ -f "$run/checkpoint.pt" ]; then
    .venv/bin/danet train --resume --out "$run"
  else
    .venv/bin/danet train --config configs/camvid.yaml --data-root "$data" --attention "$attention" \
      --iters "$iters" --eval-every 0 --out "$run"
  fi
  .venv/bin/danet eval --checkpoint "$run" --dataset camvid --data-root "$data" --split val \
    --json "$run/eval.json"
done
