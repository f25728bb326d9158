"""Tiled generator calls with the shipped model (builtin64-generator, float32, channels-last, CPU).

Parts (each prints JSON lines; `--part all` runs the first three):
  agreement  one generator call on the bundled astronaut (256 x 256, y = x + 0.5 n, sigma 0.5, seed 0) untiled and
             tiled (tile 128 and 192, default overlap tile/4), and a whole default sr4 restore of the same image
             (measurement seed 0, sigma_y 0.05, sample seed 0) with the untiled and the tile-128 generator:
             max / mean |difference|, and PSNR of each restore against the truth.
  scaling    one tiled call (tile --tile, default 256) per output size 256 .. 2048, each in a fresh process:
             wall and process CPU seconds (CPU time is steadier on a shared machine, with OMP_NUM_THREADS=1) and
             peak RSS above the loaded model (VmHWM - VmRSS), with the number of tiles; with
             --max-tiles K only the first K tiles run and the time is scaled by tiles / K ("extrapolated").
  big        the 4096 x 4096 sr4 case within the memory budget: one tiled generator call (automatic tile for the
             default 4 GiB call budget) plus one exact sr4 likelihood step at 4096 x 4096, seconds and peak RSS of
             the whole process (VmHWM), and the extrapolation
             to a default 10-NFE restore (10 x (call + step)), labelled as such.
Usage (repository root, idle machine):  python benchmarks/tiling_bench.py --part agreement|scaling|big|all
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import torch


def load_generator():
    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.networks.inference import prepare_for_inference

    net, config = load_checkpoint("builtin64-generator")
    prepare_for_inference(net, "fp32", "cpu")
    return net, config


def diff(a: torch.Tensor, b: torch.Tensor) -> dict:
    d = (a - b).abs()
    return {"max_abs_diff": round(float(d.max()), 5), "mean_abs_diff": round(float(d.mean()), 5)}


def psnr(x: torch.Tensor, truth: torch.Tensor) -> float:
    mse = float(((x.clamp(-1, 1) - truth) / 2).pow(2).mean())
    return round(10 * math.log10(1 / mse), 2)


def agreement() -> None:
    from ncvsd_cli.images import example_path, load_image
    from ncvsd_cli.measurement import degrade
    from ncvsd_cli.networks.tiling import TiledDenoiser
    from ncvsd_cli.restore import RestoreOptions, Restorer

    net, _ = load_generator()
    truth = load_image(str(example_path("astronaut")))
    y = truth + 0.5 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = net(y, 0.5, generator=torch.Generator().manual_seed(1))
        for tile in (128, 192):
            tiled = TiledDenoiser(net, tile=tile)(y, 0.5, generator=torch.Generator().manual_seed(1))
            print(json.dumps({"part": "agreement", "what": "one generator call", "size": 256, "tile": tile,
                              "overlap": tile // 4, **diff(tiled, full)}), flush=True)
    restorer = Restorer.from_options(RestoreOptions(task="sr4", seed=0, precision="fp32").validate())
    m = degrade(truth, "sr4", sigma_y=0.05, seed=0)
    results = {}
    for name, model in (("untiled", restorer.model), ("tile128", TiledDenoiser(restorer.model, tile=128))):
        restorer.model = model
        t0 = time.perf_counter()
        (res,) = list(restorer.run([m]))
        if res.error:
            raise SystemExit(res.error)
        results[name] = (res.samples, time.perf_counter() - t0)
    (a, ta), (b, tb) = results["untiled"], results["tile128"]
    print(json.dumps({"part": "agreement", "what": f"default sr4 restore ({restorer.method.name}, {res.nfe} NFE)",
                      "size": 256, "tile": 128,
                      "overlap": 32, **diff(b, a), "psnr_untiled": psnr(a, truth), "psnr_tiled": psnr(b, truth),
                      "seconds_untiled": round(ta, 2), "seconds_tiled": round(tb, 2)}), flush=True)


SCALING_CHILD = r"""
import json, sys, time, torch
sys.path.insert(0, "benchmarks")
from tiling_bench import FirstTiles, load_generator
from ncvsd_cli.bench.memory import RowCost
from ncvsd_cli.networks.tiling import TiledDenoiser
n, tile, max_tiles = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
net, _ = load_generator()
tiled = TiledDenoiser(net, tile=tile)
count = len(tiled.tiles(n, n, tile))
ran = min(count, max_tiles) if max_tiles > 0 else count
call = tiled if ran == count else FirstTiles(tiled, ran)
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    net(torch.zeros(1, 3, 64, 64), 1.0, generator=g)  # fills the effective-weight cache
    y = torch.rand(1, 3, n, n, generator=g) * 2 - 1
    cpu0 = time.process_time()
    with RowCost("cpu") as cost:
        call(y, 0.5, generator=g)
    cpu = time.process_time() - cpu0
print(json.dumps({"size": n, "tile": tile, "tiles": count, "tiles_run": ran, "threads": torch.get_num_threads(),
                  "seconds": round(cost.seconds * count / ran, 2), "cpu_seconds": round(cpu * count / ran, 2),
                  "extrapolated": ran < count,
                  "peak_rss_above_model_mib": round(cost.peak_mem_mb, 1), "mem_kind": cost.mem_kind}))
"""


def scaling(tile: int, sizes: list[int], max_tiles: int = 0) -> None:
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", SCALING_CHILD, str(n), str(tile), str(max_tiles)], check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        row = json.loads(out)
        row["us_per_pixel"] = round(row["seconds"] / n**2 * 1e6, 2)
        rows.append(row)
        print(json.dumps({"part": "scaling", **row}), flush=True)
    if len(rows) > 1:  # least-squares exponent of time ~ pixels^k
        xs = [math.log(r["size"] ** 2) for r in rows]
        fit = {}
        for key in ("seconds", "cpu_seconds"):
            ys = [math.log(r[key]) for r in rows]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            fit[key] = round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs), 3)
        print(json.dumps({"part": "scaling", "time_exponent_in_pixels": fit["seconds"],
                          "cpu_time_exponent_in_pixels": fit["cpu_seconds"]}), flush=True)


class FirstTiles:
    """A TiledDenoiser that runs only its first `count` tiles (timing a sample of a call that is too long to run
    whole here); the unvisited pixels come out as 0."""

    def __init__(self, tiled, count: int) -> None:
        self.tiled, self.count = tiled, count
        self.all_tiles = tiled.tiles

    def __call__(self, y, sigma, generator=None):
        self.tiled.tiles = lambda h, w, t: self.all_tiles(h, w, t)[:self.count]
        try:
            return self.tiled(y, sigma, generator=generator).nan_to_num(0.0, 0.0, 0.0)
        finally:
            del self.tiled.tiles


def big(n: int, tile: int | None, max_tiles: int) -> None:
    import operators
    from ncvsd_cli import memory
    from ncvsd_cli.bench.memory import RowCost, _status_kb
    from ncvsd_cli.networks.tiling import TiledDenoiser

    net, config = load_generator()
    tiled = TiledDenoiser(net, tile=tile)
    g = torch.Generator().manual_seed(0)
    shape = memory.network_shape(config)
    x = torch.rand(1, 3, n, n, generator=g) * 2 - 1
    chosen = tiled.tile_size(x)
    count = len(tiled.tiles(n, n, chosen))
    ran = min(count, max_tiles) if max_tiles > 0 else count
    call_fn = tiled if ran == count else FirstTiles(tiled, ran)
    with RowCost("cpu") as whole, torch.no_grad():
        t0 = time.perf_counter()
        op = operators.create("sr4", (3, n, n)).float()
        build = time.perf_counter() - t0
        y = op.measure(x, 0.05, g)
        t0 = time.perf_counter()
        x0 = call_fn(op.pseudo_inverse(y), 0.5, generator=g)
        call = (time.perf_counter() - t0) * count / ran
        t0 = time.perf_counter()
        op.likelihood_sample(x0, y, 0.5, 0.05, g)
        step = time.perf_counter() - t0
    print(json.dumps({
        "part": "big", "size": n, "tile": chosen, "tiles": count, "tiles_run": ran,
        "call_budget_gib": memory.DEFAULT_CALL_BUDGET / 2**30, "operator_build_s": round(build, 1),
        "generator_call_s": round(call, 1), "likelihood_step_s": round(step, 2),
        "peak_rss_gib": round((_status_kb("VmHWM") or 0) / 2**20, 2),
        "peak_above_model_gib": round(whole.peak_mem_mb / 2**10, 2),
        "estimated_restore_gib": round(memory.restore_bytes(shape, (1, 3, n, n), chosen) / 2**30, 2),
        "extrapolated_10nfe_restore_s": round(build + 10 * (call + step), 0),
        "note": ("extrapolated: 10 x (one generator call + one likelihood step) + operator build, not a measured "
                 "restore" + ("" if ran == count else f"; the call's time is {count}/{ran} x that of its first "
                              f"{ran} tiles, its memory is that of the whole-image buffers plus one tile call")),
    }), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", default="all", choices=["agreement", "scaling", "big", "all"])
    p.add_argument("--tile", type=int, default=256, help="tile side for 'scaling' (and 'big' if given there)")
    p.add_argument("--sizes", default="256,512,1024,2048")
    p.add_argument("--max-tiles", type=int, default=0, help="'scaling': run at most this many tiles per call and "
                   "scale the time by tiles / tiles run (0: all; marked 'extrapolated')")
    p.add_argument("--big-size", type=int, default=4096)
    p.add_argument("--big-tile", type=int, default=None, help="tile side for 'big' (default: automatic)")
    p.add_argument("--big-max-tiles", type=int, default=0, help="run only this many tiles of the big call and "
                   "extrapolate its time (0: all)")
    a = p.parse_args()
    if a.part in ("agreement", "all"):
        agreement()
    if a.part in ("scaling", "all"):
        scaling(a.tile, [int(s) for s in a.sizes.split(",")], a.max_tiles)
    if a.part in ("big", "all"):
        big(a.big_size, a.big_tile, a.big_max_tiles)


if __name__ == "__main__":
    main()
