"""Deblurring a photo whose blur does not wrap around: the circular model against boundary "reflect", side by side.

Each photo of VAL (PNG files, e.g. the validation photos' centre squares at 256 px) is blurred the way a camera
blurs, with its edges mirrored (`operators.create(task, ..., boundary="reflect").measure`, sigma_y 0.05,
measurement seed 1), then restored with both models: the Wiener filter and the default sampler (`pnp-gd-warm`,
restoration seed 0, one sample). Writes OUT/rows.csv (psnr, lpips-alex, seconds per row), OUT/summary.md (means
and the time ratio, measured in the same run) and OUT/grid-<task>.jpg (per photo: clean, measured, circular,
reflect). docs/method.md §4.4 ("The image border") explains the model.

Usage:  python benchmarks/blur_boundary.py VAL --out OUT [--tasks deblur-gauss,deblur-motion]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from blur_estimate import write_csv  # benchmarks/ is the script's folder
from PIL import Image

import operators
from ncvsd_cli import images
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

MODELS = ("circular", "reflect")
METHODS = ("wiener", "pnp-gd-warm")


def run(val: Path, out: Path, tasks: list[str]) -> list[dict]:
    rows, tiles = [], {t: [] for t in tasks}
    for path in sorted(val.glob("*.png")):
        x = images.load_image(path)[:, :3]
        for task in tasks:
            op = operators.create(task, tuple(x.shape[1:]), boundary="reflect")
            y = op.measure(x, 0.05, torch.Generator().manual_seed(1)).clamp(-1, 1)
            tiles[task].append([x, y])
            for method in METHODS:
                for model in MODELS:
                    t0 = time.perf_counter()
                    known = {"sigma": op.sigma} if task == "deblur-gauss" else {"seed": op.seed}  # the true kernel
                    est = restore_image(y, task, params={"boundary": model, **known}, method=method,
                                        sigma_y=0.05, seed=0)[:1].clamp(-1, 1)  # the level it was measured at
                    seconds = time.perf_counter() - t0
                    unit, ref = images.to_unit(est), images.to_unit(x)
                    rows.append({"image": path.stem, "task": task, "method": method, "model": model,
                                 "psnr": round(float(psnr(unit, ref)[0]), 3),
                                 "lpips": round(float(lpips_distance(unit, ref)[0]), 4),
                                 "seconds": round(seconds, 2)})
                    print(rows[-1], flush=True)
                    if method == "pnp-gd-warm":
                        tiles[task][-1].append(est)
    for task, per_image in tiles.items():
        grid = torch.cat([torch.cat(row, dim=3) for row in per_image], dim=2)
        Image.fromarray(images.to_uint8(grid)).save(out / f"grid-{task}.jpg", quality=88)
    return rows


def summary(rows: list[dict]) -> str:
    lines = ["| task | method | model | PSNR ↑ | LPIPS ↓ | seconds per image |", "|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["method"], r["model"]), []).append(r)
    for (task, method, model), rs in groups.items():
        mean = {k: sum(r[k] for r in rs) / len(rs) for k in ("psnr", "lpips", "seconds")}
        lines.append(f"| {task} | {method} | {model} | {mean['psnr']:.2f} | {mean['lpips']:.3f} | {mean['seconds']:.1f} |")
    return "\n".join(lines) + f"\n\nMeans over {len({r['image'] for r in rows})} photos; seconds measured in one run.\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("val", type=Path, help="folder of PNG photos (validation photos, never the held-out ones)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tasks", default="deblur-gauss,deblur-motion")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = run(a.val, a.out, a.tasks.split(","))
    write_csv(rows, a.out / "rows.csv")
    (a.out / "summary.md").write_text(summary(rows))
    print(summary(rows))


if __name__ == "__main__":
    main()
