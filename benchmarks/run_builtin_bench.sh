#!/usr/bin/env bash
# The committed builtin benchmark (benchmarks/builtin-64/): the shipped default model on the held-out photos,
# all five paper tasks, the PnP-GD NFE sweep, DPS and DAPS-style (teacher, 1000 NFE) and the classical baselines.
# 2 CPU processes (torchrun shards the images; one thread each). About 50 minutes on a 2-core CPU.
# BENCH_OUT: the output folder (default benchmarks/builtin-64, where the first default model's run lies).
set -euo pipefail
cd "$(dirname "$0")/.."
OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 -m ncvsd_cli bench --dataset builtin \
  --tasks sr4,inpaint-box,deblur-gauss,deblur-motion,phase-retrieval --nfe 1,2,3,4,10,25,49 \
  --methods pnp-gd,pnp-gd-warm,dps,daps,classical --baseline-nfe 1000 --limit 3 --seed 0 --precision fp32 --out "${BENCH_OUT:-benchmarks/builtin-64}" "$@"
