"""Fused attention (scaled_dot_product_attention, edm2_layers.Block._attention) against the former form that holds the
(HW, HW) weight matrix (written out here as the reference), side by side in one process on this CPU:

  call     one builtin64 generator call at 256 x 256 (float32, channels-last, seed 0), both attention forms
           alternating, --reps times each: fastest and median seconds, and max |difference| of the outputs;
  layer    one attention layer of 128 channels (2 heads) on a 128 x 128 grid (16,384 positions, the bottleneck of a
           1024 x 1024 input): seconds and peak RSS above the start of each form.
Usage (repository root, idle machine):  python benchmarks/attention_speed.py [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch

from ncvsd_cli.bench.memory import RowCost
from ncvsd_cli.networks import edm2_layers
from ncvsd_cli.networks.edm2_layers import Block, normalize

FUSED = Block._attention


def matrix_attention(self: Block, x: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(C/heads)) v with the (HW, HW) weights held explicitly (the former implementation)."""
    b, c, hh, ww = x.shape
    qkv = self.attn_qkv(x).reshape(b, self.num_heads, -1, 3, hh * ww)
    q, k, v = normalize(qkv, dim=2).unbind(3)
    w = torch.einsum("nhcq,nhck->nhqk", q, k / math.sqrt(q.shape[2])).softmax(dim=3)
    return self.attn_proj(torch.einsum("nhqk,nhck->nhcq", w, v).reshape(b, c, hh, ww))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.networks.inference import prepare_for_inference

    net, _ = load_checkpoint("builtin64-generator")
    prepare_for_inference(net, "fp32", "cpu")
    y = (torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    y = y.contiguous(memory_format=torch.channels_last)
    forms = {"matrix": matrix_attention, "fused": FUSED}
    times: dict[str, list[float]] = {k: [] for k in forms}
    outs = {}
    with torch.no_grad():
        for rep in range(a.reps + 1):  # the first round is a warm-up
            for name, fn in forms.items():
                Block._attention = fn
                t0 = time.perf_counter()
                outs[name] = net(y, 0.5, generator=torch.Generator().manual_seed(1))
                if rep:
                    times[name].append(time.perf_counter() - t0)
    Block._attention = FUSED
    print(json.dumps({"part": "call", "size": 256, "reps": a.reps, "threads": torch.get_num_threads(),
                      **{f"{k}_min_s": round(min(v), 4) for k, v in times.items()},
                      **{f"{k}_median_s": round(statistics.median(v), 4) for k, v in times.items()},
                      "max_abs_diff": float((outs["matrix"] - outs["fused"]).abs().max())}), flush=True)
    torch.manual_seed(0)
    layer = Block(128, 128, 64, attention=True, channels_per_head=64).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 128, 128, 128).contiguous(memory_format=torch.channels_last)
    for name, fn in (("fused", FUSED), ("matrix", matrix_attention)):
        with torch.no_grad(), RowCost("cpu") as cost:
            fn(layer, x)
        print(json.dumps({"part": "layer", "form": name, "positions": 128 * 128, "seconds": round(cost.seconds, 2),
                          "peak_rss_above_start_mib": round(cost.peak_mem_mb, 1)}), flush=True)
    edm2_layers.Block._attention = FUSED


if __name__ == "__main__":
    main()
