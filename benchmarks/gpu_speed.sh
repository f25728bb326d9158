#!/usr/bin/env bash
# Restore speed on a lent GPU (a few minutes): ffhq256-xs generator and teacher with random weights, sr4 at 256 px,
# default (10 NFE) and paper (49 NFE) PnP-GD at batch 1, 8, 32 in fp32 and bf16, DPS / DAPS per-NFE cost, peak
# GPU memory; writes $RESULTS/results.jsonl and $RESULTS/summary.md (default benchmarks/gpu-speed); then `ncvsd bench`
# batch 1 vs 15 (benchmarks/bench_batching.py, $RESULTS/bench-batching).
# CPU check of the script itself:  bash benchmarks/gpu_speed.sh --device cpu --tiny
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
RESULTS=${RESULTS:-benchmarks/gpu-speed}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
python3 benchmarks/gpu_speed.py --out "$RESULTS" "$@"
# `ncvsd bench` one image per call vs --batch-size 15 (shipped checkpoints, builtin crops; skipped with --tiny)
if [[ " $* " != *" --tiny "* ]]; then
  python3 benchmarks/bench_batching.py --batch 15 --limit 15 --out "$RESULTS/bench-batching"  # cuda when available
fi
