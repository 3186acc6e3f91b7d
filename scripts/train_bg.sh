#!/usr/bin/env bash
# Start or resume a training run in the background, logging to RUN.log.
# Usage: scripts/train_bg.sh RUN [danet train flags...]   (the flags matter only on the first start)
set -euo pipefail
run=$1; shift
mkdir -p "$(dirname "$run")"
if [ -f "$run/checkpoint.pt" ]; then
  set -- --resume
fi
nohup env OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" .venv/bin/danet train --out "$run" "$@" >>"$run.log" 2>&1 &
echo "started pid $! -> $run.log"
