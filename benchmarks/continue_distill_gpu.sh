#!/usr/bin/env bash
# Continues the shipped default generator's NCVSD distillation on one GPU for $T_DISTILL (--init-generator: the
# earlier run's state.pt did not survive its machine), against the shipped teacher. Every 45 s the newest
# sigma_rel 0.05 EMA snapshot is exported as fp16 into $OUT, so a run cut off early still returns a model; at the
# end $OUT holds the last 0.05 and 0.10 EMAs, the 0.05 EMA two snapshots earlier, the log and the last previews.
# Run from the repository root; needs torch, typer, scikit-image, safetensors, pyyaml, tqdm, pillow, scipy.
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
T_DISTILL=${T_DISTILL:-450s}; GAN_KIMG=${GAN_KIMG:-20}; BATCH=${BATCH:-128}; INIT=${INIT:-builtin64-generator}
newest() { ls "$R"/d/snapshots/*-"$1".safetensors 2>/dev/null | sort | tail -"${2:-1}" | head -1; }
python3 -m ncvsd_cli distill --teacher builtin64-teacher --init-generator "$INIT" --data builtin \
  --out "$R/d" --batch "$BATCH" --precision bf16 --duration "$T_DISTILL" --snapshot 45s --g-lr-scale 0.1 \
  --d-lr-scale 0.1 --rampup-kimg 5 --gan-warmup-kimg "$GAN_KIMG" --quiet &
pid=$!; last=""
while kill -0 $pid 2>/dev/null; do
  sleep 10; g=$(newest 0.050)
  if [ -n "$g" ] && [ "$g" != "$last" ]; then export_fp16 "$g" "$OUT/generator-0.050.safetensors"; last=$g; fi
  cp "$R/d/log.jsonl" "$OUT/distill-log.jsonl" 2>/dev/null
done
wait $pid; echo "distill exit status $?"
export_fp16 "$(newest 0.050)" "$OUT/generator-0.050.safetensors"
export_fp16 "$(newest 0.100)" "$OUT/generator-0.100.safetensors"
export_fp16 "$(newest 0.050 3)" "$OUT/generator-earlier-0.050.safetensors"
echo "exported: $(newest 0.050) $(newest 0.100) $(newest 0.050 3)"
cp "$R/d/log.jsonl" "$OUT/distill-log.jsonl"
p=$(ls "$R"/d/previews/*nfe1.png | sort | tail -1); cp "$p" "$OUT/preview-nfe1.png"
p=$(ls "$R"/d/previews/*nfe4.png | sort | tail -1); cp "$p" "$OUT/preview-nfe4.png"
ls -la "$OUT"
