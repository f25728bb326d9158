"""Sweep one setting of a teacher baseline (DAPS's r_scale, DPS's zeta) on the validation photos.

Each photo of VAL (PNG), resized to 64 px, is measured for each of --tasks (sigma_y 0.05, measurement seed 1) and
restored by --method with the shipped teacher (--nfe teacher calls: DAPS as levels x 5 ODE steps, DPS as steps;
sampler seed 0, one sample) for each value of --param. Writes OUT/rows.json and prints the mean LPIPS-alex and PSNR
per value. docs/method.md §5 records the DAPS r_scale run (about 45 minutes on a 2-core CPU for 3 photos, 3 tasks,
3 values at 500 NFE; `benchmarks/daps-r-scale/`); a DPS zeta run takes about 4 minutes a row there (1000 steps).

Usage:  python benchmarks/baseline_sweep.py VAL --out OUT [--method daps] [--param r_scale] [--values 1,0.5,0.25]
        [--nfe 500] [--tasks sr4,deblur-gauss,inpaint-box]
        python benchmarks/baseline_sweep.py VAL --out OUT --method dps --param zeta --values 1,0.5 --nfe 1000
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
from ncvsd_cli.sampling import teacher_baselines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("val", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--method", choices=("daps", "dps"), default="daps")
    p.add_argument("--param", default="r_scale", help="A keyword of the method's function (r_scale, zeta, ...).")
    p.add_argument("--values", default="1,0.5,0.25")
    p.add_argument("--nfe", type=int, default=500)
    p.add_argument("--tasks", default="sr4,deblur-gauss,inpaint-box")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    teacher, _ = load_checkpoint("builtin64-teacher")
    teacher = teacher.float().eval()
    budget = {"levels": a.nfe // 5, "ode_steps": 5} if a.method == "daps" else {"steps": a.nfe}
    sampler = getattr(teacher_baselines, a.method)
    rows = []
    for path in sorted(a.val.glob("*.png")):
        x = torch.nn.functional.interpolate(images.load_image(path)[:, :3], size=(64, 64), mode="bicubic",
                                            antialias=True).clamp(-1, 1)
        for task in a.tasks.split(","):
            op = operators.create(task, (3, 64, 64))
            y = op.measure(x, 0.05, torch.Generator().manual_seed(1))
            for v in (float(s) for s in a.values.split(",")):
                out = sampler(teacher, op, y, None, generator=torch.Generator().manual_seed(0),
                              **{a.param: v}, **budget).x.clamp(-1, 1)
                unit, ref = images.to_unit(out), images.to_unit(x)
                rows.append({"image": path.stem, "task": task, a.param: v, "psnr": float(psnr(unit, ref)[0]),
                             "lpips": float(lpips_distance(unit, ref)[0])})
                print(rows[-1], flush=True)
    (a.out / "rows.json").write_text(json.dumps(rows, indent=1))
    for v in sorted({row[a.param] for row in rows}, reverse=True):
        sel = [row for row in rows if row[a.param] == v]
        print(f"{a.param} {v}: LPIPS {sum(r['lpips'] for r in sel) / len(sel):.3f}, "
              f"PSNR {sum(r['psnr'] for r in sel) / len(sel):.2f}")


if __name__ == "__main__":
    main()
