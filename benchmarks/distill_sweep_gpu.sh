#!/usr/bin/env bash
# Distils the shipped teacher afresh with up to two settings side by side on one GPU (the 64 px networks leave an
# H100/H200 mostly idle), for $T_DISTILL each, and returns fp16 generators for CPU-side model selection with
# benchmarks/select_generator.py. Meant for a GPU run: the shipped generator collapsed onto grey
# textures as distillation went on at G/D learning-rate scale 0.1 (10x the paper's 0.01), and the analytic toy
# (tests/test_ncvsd_toy.py) shows the mode-weight bias growing with training at a high G:score LR ratio.
#   SWEEP="name=flags;name=flags" (default: lr03 and lr01 = G/D LR scales 0.03 and 0.01, GAN from 20 kimg).
# Every 15 s the newest sigma_rel 0.05 EMA of each run is exported to $OUT/<name>-last.safetensors (a run cut off by
# the device limit still returns a model); at the end also <name>-last-0.100 and <name>-mid (the 0.05 EMA halfway),
# plus logs-previews.tar.gz: at most 7 files, each under 16 MB. Run from the repository root; keep T_DISTILL about
# 90 s under the device's per-command limit (600 s) for start-up and the final exports.
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
T_DISTILL=${T_DISTILL:-480s}; BATCH=${BATCH:-128}; GAN_KIMG=${GAN_KIMG:-20}
SWEEP=${SWEEP:-"lr03=--g-lr-scale 0.03 --d-lr-scale 0.03;lr01=--g-lr-scale 0.01 --d-lr-scale 0.01"}
IFS=';' read -r -a specs <<< "$SWEEP"
snaps() { ls "$R/$1"/snapshots/*-"$2".safetensors 2>/dev/null | sort; }
pids=(); names=()
for spec in "${specs[@]}"; do
  name=${spec%%=*}; flags=${spec#*=}; names+=("$name")
  # shellcheck disable=SC2086  # $flags is a list of CLI flags
  python3 -m ncvsd_cli distill --teacher builtin64-teacher --data builtin --out "$R/$name" --batch "$BATCH" \
    --precision bf16 --duration "$T_DISTILL" --snapshot 60s --rampup-kimg 5 --gan-warmup-kimg "$GAN_KIMG" \
    --quiet $flags > "$R/$name.stdout" 2>&1 &
  pids+=($!)
done
declare -A last
while kill -0 "${pids[@]}" 2>/dev/null; do
  sleep 15
  for name in "${names[@]}"; do
    g=$(snaps "$name" 0.050 | tail -1)
    if [ -n "$g" ] && [ "$g" != "${last[$name]:-}" ]; then export_fp16 "$g" "$OUT/$name-last.safetensors"; last[$name]=$g; fi
  done
done
for i in "${!pids[@]}"; do wait "${pids[$i]}"; echo "${names[$i]}: distill exit status $?"; done
for name in "${names[@]}"; do
  mapfile -t all < <(snaps "$name" 0.050)
  [ "${#all[@]}" -gt 0 ] || { echo "$name: no snapshot"; tail -5 "$R/$name.stdout"; continue; }
  export_fp16 "${all[-1]}" "$OUT/$name-last.safetensors"
  export_fp16 "${all[$(( ${#all[@]} / 2 ))]}" "$OUT/$name-mid.safetensors"
  export_fp16 "$(snaps "$name" 0.100 | tail -1)" "$OUT/$name-last-0.100.safetensors"
  echo "$name: exported ${all[-1]##*/} and ${all[$(( ${#all[@]} / 2 ))]##*/} (+0.100)"
done
tar -czf "$OUT/logs-previews.tar.gz" -C "$R" $(for n in "${names[@]}"; do echo "$n/log.jsonl $n/previews $n.stdout"; done)
ls -la "$OUT"
