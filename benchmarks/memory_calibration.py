"""Calibration of ncvsd_cli.memory.call_bytes: measured peak resident memory of one call of the shipped generator
(builtin64-generator, float32, channels-last) per input size, against the uncalibrated element count.

Each size runs in a fresh process: load the model, warm it up with a 64 x 64 call (which fills the effective-weight
cache), then measure VmHWM - VmRSS around one call (Linux: the peak is reset through /proc/self/clear_refs).
Prints one JSON line per size and a last line with the least-squares line measured bytes = slope x (4 x elements)
+ intercept over sizes >= 256 (activations only: the weight cache is excluded from both), to compare with
ACTIVATION_FACTOR and CALL_OVERHEAD, and the worst ratio of measured to estimated (< 1: the estimate is safe).
Usage (repository root, idle machine):  python benchmarks/memory_calibration.py [--sizes 128,256,512,768,1024]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time, torch
from ncvsd_cli.bench.memory import RowCost
from ncvsd_cli.checkpoints import load_checkpoint
from ncvsd_cli.networks.inference import prepare_for_inference
b, h, w = (int(v) for v in sys.argv[1:4])
net, _ = load_checkpoint("builtin64-generator")
prepare_for_inference(net, "fp32", "cpu")
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    net(torch.zeros(1, 3, 64, 64).contiguous(memory_format=torch.channels_last), 1.0, generator=g)
    y = (torch.rand(b, 3, h, w, generator=g) * 2 - 1).contiguous(memory_format=torch.channels_last)
    with RowCost("cpu") as cost:
        net(y, 0.5, generator=g)
print(json.dumps({"mem_kind": cost.mem_kind, "peak_mib": cost.peak_mem_mb, "seconds": cost.seconds}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="128,256,512,768,1024")
    p.add_argument("--batch2", type=int, default=256, help="also measure batch 2 at this size (0: skip)")
    a = p.parse_args()
    from ncvsd_cli import memory
    from ncvsd_cli.checkpoints import read_config, resolve_checkpoint

    net = memory.network_shape(read_config(resolve_checkpoint("builtin64-generator")))
    runs = [(1, int(s)) for s in a.sizes.split(",")] + ([(2, a.batch2)] if a.batch2 else [])
    rows, xs, ys = [], [], []
    for b, n in runs:
        out = subprocess.run([sys.executable, "-c", CHILD, str(b), str(n), str(n)], check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        got = json.loads(out)
        measured = got["peak_mib"] * 2**20  # activations only: the warm-up call filled the effective-weight cache
        elements = b * memory.activation_elements(net, n, n)
        estimate = memory.call_bytes(net, (b, 3, n, n), "fp32", device="cpu") - net.parameters * 4
        row = {"batch": b, "size": n, "measured_mib": round(got["peak_mib"], 1), "mem_kind": got["mem_kind"],
               "seconds": round(got["seconds"], 3), "bytes_per_element": round(measured / elements, 3),
               "estimate_mib": round(estimate / 2**20, 1)}
        row["measured_over_estimate"] = round(measured / estimate, 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if n >= 256:
            xs.append(4.0 * elements)
            ys.append(measured)
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(sum((x - mx) ** 2 for x in xs), 1e-9)
    print(json.dumps({"fitted_slope": round(slope, 3), "fitted_intercept_mib": round((my - slope * mx) / 2**20, 1),
                      "activation_factor": memory.ACTIVATION_FACTOR, "call_overhead_mib": memory.CALL_OVERHEAD / 2**20,
                      "worst_measured_over_estimate": max(r["measured_over_estimate"] for r in rows if r["size"] >= 256)}))


if __name__ == "__main__":
    main()
