"""Choose the DAPS-style baseline's coupling r_k = r_scale * sigma_k on validation photos (never the held-out ones).

Each photo of VAL (PNG), resized to 64 px, is measured for sr4, deblur-gauss and inpaint-box (sigma_y 0.05,
measurement seed 1) and restored by `daps` with the shipped teacher (100 levels x 5 ODE steps = 500 NFE, sampler
seed 0, one sample) for each r_scale. Writes OUT/rows.json and prints the mean LPIPS-alex and PSNR per r_scale
(docs/method.md §5 records the run that chose 0.5). About 45 minutes on a 2-core CPU for 3 photos.

Usage:  python benchmarks/daps_r_scale.py VAL --out OUT [--r-scales 1,0.5,0.25] [--levels 100]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import operators
from ncvsd_cli import images
from ncvsd_cli.checkpoints import load_checkpoint
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.sampling.teacher_baselines import daps

TASKS = ("sr4", "deblur-gauss", "inpaint-box")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("val", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--r-scales", default="1,0.5,0.25")
    p.add_argument("--levels", type=int, default=100)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    teacher, _ = load_checkpoint("builtin64-teacher")
    teacher = teacher.float().eval()
    rows = []
    for path in sorted(a.val.glob("*.png")):
        x = torch.nn.functional.interpolate(images.load_image(path)[:, :3], size=(64, 64), mode="bicubic",
                                            antialias=True).clamp(-1, 1)
        for task in TASKS:
            op = operators.create(task, (3, 64, 64))
            y = op.measure(x, 0.05, torch.Generator().manual_seed(1))
            for r in (float(v) for v in a.r_scales.split(",")):
                out = daps(teacher, op, y, None, generator=torch.Generator().manual_seed(0), r_scale=r,
                           levels=a.levels, ode_steps=5).x.clamp(-1, 1)
                unit, ref = images.to_unit(out), images.to_unit(x)
                rows.append({"image": path.stem, "task": task, "r": r, "psnr": float(psnr(unit, ref)[0]),
                             "lpips": float(lpips_distance(unit, ref)[0])})
                print(rows[-1], flush=True)
    (a.out / "rows.json").write_text(json.dumps(rows, indent=1))
    for r in sorted({row["r"] for row in rows}, reverse=True):
        v = [row for row in rows if row["r"] == r]
        print(f"r_scale {r}: LPIPS {sum(x['lpips'] for x in v) / len(v):.3f}, PSNR {sum(x['psnr'] for x in v) / len(v):.2f}")


if __name__ == "__main__":
    main()
