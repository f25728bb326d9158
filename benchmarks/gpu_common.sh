# Sourced by the GPU training scripts: run-directory setup, the shipped checkpoints on the import path, and
# export_fp16 SRC DST (reload a snapshot and write it atomically as fp16, halving the shipped size).
OUT=${OUT:-default-model}; R=${RUNS:-/tmp/ncvsd-runs}
mkdir -p "$OUT" "$R" /tmp/pp && ln -sfn "$PWD/checkpoints" /tmp/pp/ncvsd_checkpoints
export PYTHONPATH="$PWD:/tmp/pp" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
export_fp16() {
  python3 -c "import sys, torch; from ncvsd_cli.checkpoints import load_checkpoint as l, save_checkpoint as s
m, c = l(sys.argv[1]); s(m, sys.argv[2], c, dtype=torch.float16)" "$1" "$2.tmp.safetensors" && mv "$2.tmp.safetensors" "$2"
}
