#!/usr/bin/env bash
# Trains the shipped default model (builtin64 teacher, then NCVSD distillation) on one GPU in about 4.5 minutes,
# then exports both EMA (sigma_rel 0.05) snapshots as fp16 safetensors into $OUT (default ./default-model).
# Run from the repository root; needs torch, typer, scikit-image, safetensors, pyyaml, tqdm, pillow, scipy.
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
T_TEACHER=${T_TEACHER:-110s}; T_DISTILL=${T_DISTILL:-120s}
timeout 160 python3 -m ncvsd_cli train --data builtin --arch builtin64 --out "$R/t" --batch 256 \
  --precision bf16 --duration "$T_TEACHER" --snapshot 30s --quiet
t=$(ls "$R"/t/snapshots/*-0.050.safetensors | sort | tail -1); echo "teacher snapshot: $t"
export_fp16 "$t" "$OUT/builtin64-teacher.safetensors"; cp "$R/t/log.jsonl" "$OUT/teacher-log.jsonl"
timeout 170 python3 -m ncvsd_cli distill --teacher "$R/t" --data builtin --out "$R/d" --batch 128 --precision bf16 \
  --duration "$T_DISTILL" --snapshot 30s --g-lr-scale 0.1 --d-lr-scale 0.1 --rampup-kimg 5 --gan-warmup-kimg 15 --quiet
g=$(ls "$R"/d/snapshots/*-0.050.safetensors | sort | tail -1); echo "generator snapshot: $g"
export_fp16 "$g" "$OUT/builtin64-generator.safetensors"; cp "$R/d/log.jsonl" "$OUT/distill-log.jsonl"
p=$(ls "$R"/d/previews/*nfe1.png | sort | tail -1); cp "$p" "$OUT/preview-nfe1.png"
p=$(ls "$R"/d/previews/*nfe4.png | sort | tail -1); cp "$p" "$OUT/preview-nfe4.png"
ls -la "$OUT"
