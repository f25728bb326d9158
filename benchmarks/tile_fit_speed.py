"""Fitted tiles (`networks.tiling.fitted_tile`: each side as short as the same tile count allows) against tiles
of the full automatic side (512 px, as before), one generator call of the shipped model each, side by side.

For each output size: y = a smooth random image + 0.5 n at sigma 0.5, seed 0; the two layouts alternate
--repeats times in one process (the first call of each is a warm-up, not timed); process CPU seconds and wall
seconds per call (median), the tiles and the pixels they cover. Precision as `restore` picks it (auto).

With --whole also one untiled call per round (the image in one tile: more memory). With --quality PHOTO...
instead: each photo measured by --tasks (denoise at sigma_y 0.1, else 0.05; seed 0) and restored by default with
each layout (fitted, full 512, whole): PSNR against the photo, and of each tiled restore against the whole one.

Usage (repository root):  python benchmarks/tile_fit_speed.py [--sizes 768x1024,1504x2000] [--repeats 3] [--whole]
                          python benchmarks/tile_fit_speed.py --quality PHOTO... [--tasks denoise,sr4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ncvsd_cli.checkpoints import load_checkpoint
from ncvsd_cli.networks import tiling
from ncvsd_cli.networks.inference import prepare_for_inference


def timed_call(tiled: tiling.TiledDenoiser, y: torch.Tensor) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one tiled generator call on y (seed 0)."""
    cpu, wall = time.process_time(), time.perf_counter()
    with torch.no_grad():
        tiled(y, 0.5, generator=torch.Generator().manual_seed(0))
    return time.process_time() - cpu, time.perf_counter() - wall


def quality(photos: list[str], tasks: list[str]) -> None:
    """PSNR of default restores with fitted, full-512 and untiled generator calls (module docstring)."""
    from ncvsd_cli import images
    from ncvsd_cli.measurement import degrade
    from ncvsd_cli.metrics import psnr
    from ncvsd_cli.restore import restore_image

    fitted = tiling.fitted_tile
    rules = {"fitted": (fitted, None), "full 512": (lambda length, tile, overlap, multiple=1: min(length, tile), None),
             "whole": (fitted, 4096)}
    for path in photos:
        x = images.load_image(path)[:, :3]
        for task in tasks:
            sigma_y = 0.1 if task == "denoise" else 0.05
            m = degrade(x, task, sigma_y=sigma_y, seed=0)
            outs = {}
            for name, (rule, tile) in rules.items():
                tiling.fitted_tile = rule
                outs[name] = images.to_unit(restore_image(m.y, task, seed=0, sigma_y=sigma_y, tile=tile)[:1].clamp(-1, 1))
            tiling.fitted_tile = fitted
            row = {"photo": path, "task": task, **{k: round(float(psnr(v, images.to_unit(x))[0]), 2)
                                                    for k, v in outs.items()}}
            row.update({f"{k} vs whole": round(float(psnr(outs[k], outs["whole"])[0]), 2) for k in ("fitted", "full 512")})
            print(json.dumps(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="768x1024,1504x2000")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--whole", action="store_true", help="also time one untiled call (more memory)")
    p.add_argument("--quality", nargs="+", help="photos to restore with each layout instead of timing calls")
    p.add_argument("--tasks", default="denoise")
    a = p.parse_args()
    if a.quality:
        quality(a.quality, a.tasks.split(","))
        return
    net, _ = load_checkpoint("builtin64-generator")
    precision = prepare_for_inference(net, "auto", "cpu")
    fitted = tiling.fitted_tile
    layouts = {"fitted": fitted, "full 512": lambda length, tile, overlap, multiple=1: min(length, tile)}
    if a.whole:
        layouts["whole"] = fitted  # with a tile as large as the image: one call
    for size in a.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        g = torch.Generator().manual_seed(0)
        smooth = torch.nn.functional.interpolate(torch.rand(1, 3, h // 32, w // 32, generator=g) * 2 - 1, (h, w),
                                                 mode="bilinear", align_corners=False)
        y = smooth + 0.5 * torch.randn(1, 3, h, w, generator=g)
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in layouts}
        tiles = {}
        for rep in range(a.repeats + 1):
            for name, rule in layouts.items():
                tiling.fitted_tile = rule
                m = int(net.size_multiple)
                tiled = tiling.TiledDenoiser(net, tile=-(-max(h, w) // m) * m if name == "whole" else None)
                tiles[name] = tiled.tiles(h, w, tiled.tile_size(y))
                spent = timed_call(tiled, y)
                if rep:  # the first round warms up
                    times[name].append(spent)
        tiling.fitted_tile = fitted
        row = {"size": size, "precision": precision, "repeats": a.repeats}
        for name in layouts:
            t = tiles[name]
            row[name] = {"tiles": len(t), "tile": [t[0][0].stop - t[0][0].start, t[0][1].stop - t[0][1].start],
                         "pixels_vs_image": round(sum(x[2].numel() for x in t) / (h * w), 2),
                         "cpu_s": round(statistics.median(c for c, _ in times[name]), 2),
                         "wall_s": round(statistics.median(s for _, s in times[name]), 2)}
        row["cpu_ratio_full_over_fitted"] = round(row["full 512"]["cpu_s"] / row["fitted"]["cpu_s"], 2)
        row["wall_ratio_full_over_fitted"] = round(row["full 512"]["wall_s"] / row["fitted"]["wall_s"], 2)
        if a.whole:
            row["wall_ratio_whole_over_fitted"] = round(row["whole"]["wall_s"] / row["fitted"]["wall_s"], 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
