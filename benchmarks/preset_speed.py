"""Side-by-side CPU time of one generator call at 256x256 for two presets (random weights, the shipped inference
path: channels_last, --precision auto via networks/inference.py). Calls are interleaved (a, b, a, b, ...) so that
machine noise hits both alike; prints the median seconds of each and their ratio as one JSON line.
Usage:  python benchmarks/preset_speed.py [--presets builtin64,photos128] [--reps 7] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="builtin64,photos128")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--size", type=int, default=256)
    a = p.parse_args()
    from ncvsd_cli.networks.build import build_network, network_config
    from ncvsd_cli.networks.inference import prepare_for_inference

    torch.manual_seed(0)
    nets, precision = {}, None
    for name in a.presets.split(","):
        nets[name] = build_network(network_config("generator", name)).eval()
        precision = prepare_for_inference(nets[name], "auto", "cpu")
    y = torch.randn(1, 3, a.size, a.size).contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {n: [] for n in nets}
    with torch.no_grad():
        for net in nets.values():
            net(y, 0.2)  # warm-up
        for _ in range(a.reps):
            for n, net in nets.items():
                start = time.perf_counter()
                net(y, 0.2)
                times[n].append(time.perf_counter() - start)
    med = {n: round(statistics.median(t), 3) for n, t in times.items()}
    first, *rest = nets
    print(json.dumps({"size": a.size, "precision": precision, "threads": torch.get_num_threads(), "median_s": med,
                      **{f"ratio_{n}/{first}": round(med[n] / med[first], 2) for n in rest}}))


if __name__ == "__main__":
    main()
