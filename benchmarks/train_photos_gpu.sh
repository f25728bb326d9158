#!/usr/bin/env bash
# Trains the photo model on one GPU in about 8 minutes: a photos128 teacher on the `photos` set ($DATA, built by
# benchmarks/build_photos.py and carried to the machine), then NCVSD distillation of the generator. Every 10 s the
# newest sigma_rel 0.05 EMA snapshots are exported as fp16 safetensors and packed, with the logs and the last
# previews, into $OUT/result.tar.part-NN (15 MiB pieces: the device returns at most 8 files of 16 MiB), so a run cut
# off early still returns a model. Reassemble with:  cat OUT/result.tar.part-* | tar xf - -C DIR
# Resumes: each phase records the seconds it has run ($RUNS/<phase>.secs); run the script again on the same machine
# and a cut phase continues from its state.pt for the time left, a finished one is skipped.
# Schedules for runs this short (an estimate from FLOPs, not measured: ~50 kimg teacher, ~10 kimg distillation in
# 210 s each on an H200): learning-rate warm-ups of 5 and 2 kimg, the GAN term on after 3 kimg (RAMPUP_T,
# RAMPUP_D, GAN_WARMUP override them); both EMAs of the generator (sigma_rel 0.05, 0.10 as -ema10) are exported.
# TINY=1: the CPU rehearsal (tiny preset, a 6-photo set built here from the packages, seconds of training).
# Then, if time is left (EVAL=1, default off with TINY), benchmarks/heldout_bars.py on the final pair.
# Usage (repository root):  DATA=photos.zip bash benchmarks/train_photos_gpu.sh
set -uo pipefail
OUT=${OUT:-photos-model}; RUNS=${RUNS:-/tmp/ncvsd-photos-runs}
source "$(dirname "$0")/gpu_common.sh"
if [ "${TINY:-0}" = 1 ]; then
  PRESET=${PRESET:-tiny}; T_TEACHER=${T_TEACHER:-25}; T_DISTILL=${T_DISTILL:-25}; SNAP=${SNAP:-8s}
  BATCH_T=${BATCH_T:-8}; BATCH_D=${BATCH_D:-4}; PREC=${PREC:-fp32}; DEVICE=${DEVICE:-cpu}
  DATA=${DATA:-$R/tiny-photos}; EVAL_RES=${EVAL_RES:-32}; GAN_WARMUP=${GAN_WARMUP:-0}
  [ -e "$DATA" ] || python3 benchmarks/build_photos.py "$DATA" --cache "${PHOTO_CACHE:-/tmp/photo-packages}" \
    --limit 6 --short-side 48 || exit 1
else
  PRESET=${PRESET:-photos128}; T_TEACHER=${T_TEACHER:-210}; T_DISTILL=${T_DISTILL:-210}; SNAP=${SNAP:-30s}
  BATCH_T=${BATCH_T:-128}; BATCH_D=${BATCH_D:-64}; PREC=${PREC:-bf16}; DEVICE=${DEVICE:-auto}
  DATA=${DATA:-photos.zip}; EVAL_RES=${EVAL_RES:-256}
fi
[ -e "$DATA" ] || { echo "no photos set at $DATA: build it with benchmarks/build_photos.py and carry it"; exit 2; }
S="$R/stage"; mkdir -p "$S"
echo "preset $PRESET, data $DATA, teacher ${T_TEACHER}s batch $BATCH_T, distill ${T_DISTILL}s batch $BATCH_D"

newest() { ls "$R/$1"/snapshots/*-"${3:-0.050}".safetensors 2>/dev/null | sort | tail -1; }
pack() {  # stage -> $OUT/result.tar.part-NN, replacing the previous pieces
  rm -rf "$R/pack" && mkdir -p "$R/pack" && tar cf - -C "$S" . | split -b 15m -d - "$R/pack/result.tar.part-" \
    && rm -f "$OUT"/result.tar.part-* && mv "$R/pack"/* "$OUT"/
}
export_newest() {  # PHASE NAME: newest EMA snapshots of the phase -> fp16 in the stage (when they changed):
  local snap ema suffix  # sigma_rel 0.05 (and for the generator also 0.10, -ema10: the last distilled default's)
  for ema in 0.050 $([ "$2" = generator ] && echo 0.100); do
    suffix=$([ "$ema" = 0.100 ] && echo -ema10); snap=$(newest "$1" "$2" "$ema")
    if [ -n "$snap" ] && [ "$snap" != "$(cat "$R/$1$suffix.exported" 2>/dev/null)" ]; then
      export_fp16 "$snap" "$S/$PRESET-$2$suffix.safetensors" && echo "$snap" > "$R/$1$suffix.exported" \
        && echo "exported $snap"
    fi
  done
  cp "$R/$1/log.jsonl" "$S/$2-log.jsonl" 2>/dev/null
  for n in 1 4; do p=$(ls "$R/$1"/previews/*nfe$n.png 2>/dev/null | sort | tail -1); [ -n "$p" ] && cp "$p" "$S/preview-nfe$n.png"; done
  return 0
}
run_phase() {  # PHASE NAME SECONDS COMMAND...: run COMMAND (with --duration/--resume added) for the time left
  local phase=$1 name=$2 budget=$3; shift 3
  [ -e "$R/$phase.done" ] && { echo "$phase already done"; return 0; }
  local before left start resume=() status
  before=$(cat "$R/$phase.secs" 2>/dev/null || echo 0); left=$((budget - before))
  if [ "$left" -lt 15 ]; then touch "$R/$phase.done"; echo "$phase: no time left"; return 0; fi
  if [ -e "$R/$phase/state.pt" ]; then resume=(--resume); else rm -rf "${R:?}/$phase"; fi
  echo "$phase: ${left}s ${resume[*]}"; start=$(date +%s)
  timeout $((left + 120)) "$@" --out "$R/$phase" --duration "${left}s" "${resume[@]}" --quiet &
  local pid=$!
  while kill -0 $pid 2>/dev/null; do
    sleep 10; echo $((before + $(date +%s) - start)) > "$R/$phase.secs"; export_newest "$phase" "$name"; pack
  done
  wait $pid; status=$?; echo "$phase exit status $status after $(($(date +%s) - start))s"
  echo $((before + $(date +%s) - start)) > "$R/$phase.secs"
  export_newest "$phase" "$name"; pack
  [ $status -eq 0 ] && touch "$R/$phase.done"
  return $status
}

run_phase t teacher "$T_TEACHER" python3 -m ncvsd_cli train --data "$DATA" --arch "$PRESET" --batch "$BATCH_T" \
  --precision "$PREC" --device "$DEVICE" --snapshot "$SNAP" --rampup-kimg "${RAMPUP_T:-5}" || exit 1
run_phase d generator "$T_DISTILL" python3 -m ncvsd_cli distill --teacher "$R/t" --data "$DATA" --batch "$BATCH_D" \
  --precision "$PREC" --device "$DEVICE" --snapshot "$SNAP" --g-lr-scale 0.1 --d-lr-scale 0.1 \
  --rampup-kimg "${RAMPUP_D:-2}" --gan-warmup-kimg "${GAN_WARMUP:-3}" || exit 1
python3 - "$S" <<'EOF' > "$S/summary.json"
import json, sys
from pathlib import Path
s = Path(sys.argv[1])
rows = {p.stem: [json.loads(l) for l in p.read_text().splitlines() if l.strip()][-1] for p in s.glob("*-log.jsonl")}
print(json.dumps({"files": sorted(f.name for f in s.iterdir()), "last_log": rows}, indent=1))
EOF
pack; cat "$S/summary.json"; ls -la "$OUT"
# Evaluation (not selection) of the final pair on the held-out photos at 256 px, only with the time left before
# $EVAL_DEADLINE seconds since the start (the device call's limit); its tables join the packed result.
left=$(( ${EVAL_DEADLINE:-570} - SECONDS ))
if [ "${EVAL:-$([ "${TINY:-0}" = 1 ] && echo 0 || echo 1)}" = 1 ] && [ "$left" -gt 45 ] \
    && [ -e "$S/$PRESET-generator.safetensors" ] && [ -e "$S/$PRESET-teacher.safetensors" ]; then
  echo "held-out bars: ${left}s left"
  timeout "$left" python3 benchmarks/heldout_bars.py --out "$R/heldout" --device "$DEVICE" --resolution "$EVAL_RES" \
    --checkpoint "$S/$PRESET-generator.safetensors" --teacher "$S/$PRESET-teacher.safetensors" \
    && mkdir -p "$S/heldout" && cp "$R/heldout"/bars.* "$S/heldout/" \
    && for d in "$R/heldout"/*/; do cp "$d/summary.md" "$S/heldout/$(basename "$d")-summary.md"; done \
    && pack && echo "held-out bars packed" && cat "$S/heldout/bars.md" \
    || echo "held-out bars did not finish (the model is packed; run heldout_bars.py later)"
fi
