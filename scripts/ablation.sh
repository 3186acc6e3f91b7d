#!/usr/bin/env bash
# The paper's ablation on CamVid: FCN baseline, PAM only, CAM only, DANet, all on the same recipe
# (configs/camvid.yaml) and the same shorter budget. Resumable: rerun it after a kill.
# Usage: scripts/ablation.sh DATA_ROOT [ITERS] [SEED] [VARIANTS...]   (foreground; wrap in nohup)
#   VARIANTS default to "none pam cam both"; seed 0 runs go to runs/ablation_<variant>_<iters>,
#   other seeds to runs/ablation_<variant>_<iters>_seed<SEED>. Each eval JSON (with the attention
#   diagnostics) is copied to results/ablation/<run>.json.
set -euo pipefail
data=$1; iters=${2:-300}; seed=${3:-0}
shift $(($# < 3 ? $# : 3))
variants=${*:-none pam cam both}
suffix=""; if [ "$seed" != 0 ]; then suffix="_seed$seed"; fi
for attention in $variants; do
  run=runs/ablation_${attention}_${iters}${suffix}
  if [ -f "$run/eval.json" ]; then continue; fi
  if [ -f "$run/checkpoint.pt" ]; then
    .venv/bin/danet train --resume --out "$run"
  else
    .venv/bin/danet train --config configs/camvid.yaml --data-root "$data" --attention "$attention" \
      --iters "$iters" --eval-every 0 --seed "$seed" --out "$run"
  fi
  .venv/bin/danet eval --checkpoint "$run" --dataset camvid --data-root "$data" --split val \
    --diagnostics --json "$run/eval.json"
  mkdir -p results/ablation && cp "$run/eval.json" "results/ablation/$(basename "$run").json"
done
