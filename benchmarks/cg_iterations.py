"""Conjugate-gradient iterations of the reflect-boundary blur (operators/blur.py CG_ITERATIONS), measured.

PHOTO is blurred by deblur-motion with mirrored edges (sigma_y 0.05, 0.01 and 0.002; measurement seed 1) and
restored (seed 0) by Wiener, Tikhonov and the default sampler (which starts from Wiener's estimate), and at
sigma_y 0.05 also by the paper's `pnp-gd` from noise, each with the current CG settings and those before
(BEFORE). Every solve's iterations are recorded, with the picture's PSNR / LPIPS and the seconds.
Writes OUT/summary.md.

Usage:  python benchmarks/cg_iterations.py PHOTO --out OUT
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import operators
import operators.blur as blur
from ncvsd_cli import images
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

#: The settings before the tolerances were tightened: (CG_ITERATIONS, CG_TOLERANCE, CG_SOLVE_ITERATIONS,
#: CG_SOLVE_TOLERANCE); CG_TOLERANCE_BROAD was then CG_TOLERANCE.
BEFORE = (40, 1e-4, 100, 1e-4)
calls: list[tuple[int, bool]] = []
_solve = blur.CircularBlur._solve


def _counting_solve(self, *args, **kwargs):
    out = _solve(self, *args, **kwargs)
    calls.append((self._cg_iterations, bool(self.cg_converged)))
    return out


def _settings() -> tuple:
    return blur.CG_ITERATIONS, blur.CG_TOLERANCE, blur.CG_SOLVE_ITERATIONS, blur.CG_SOLVE_TOLERANCE


def _apply(settings: tuple) -> None:
    blur.CG_ITERATIONS, blur.CG_TOLERANCE, blur.CG_SOLVE_ITERATIONS, blur.CG_SOLVE_TOLERANCE = settings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photo", type=Path)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    blur.CircularBlur._solve = _counting_solve
    current = _settings()
    x = images.load_image(a.photo)[:, :3]
    ref = images.to_unit(x)
    lines = [f"# CG iterations, reflect boundary ({a.photo.name}, {x.shape[-1]}x{x.shape[-2]}, deblur-motion)", "",
             f"Settings (CG_ITERATIONS, CG_TOLERANCE, CG_SOLVE_ITERATIONS, CG_SOLVE_TOLERANCE): now {current}, "
             f"before {BEFORE}; seconds measured in one run.", "",
             "| run | settings | solves | iterations per solve | solves at the cap | PSNR | LPIPS | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for sigma_y in (0.05, 0.01, 0.002):
        op = operators.create("deblur-motion", tuple(x.shape[1:]), boundary="reflect")
        y = op.measure(x, sigma_y, torch.Generator().manual_seed(1))
        methods = (["pnp-gd"] if sigma_y == 0.05 else []) + ["wiener", "tikhonov", "pnp-gd-warm"]
        for method in methods:
            for name, settings in (("now", current), ("before", BEFORE)):
                _apply(settings)
                calls.clear()
                start = time.perf_counter()
                est = restore_image(y, "deblur-motion", params={"boundary": "reflect", "seed": op.seed},
                                    method=method, seed=0,
                                    sigma_y=sigma_y)[:1].clamp(-1, 1)
                seconds = time.perf_counter() - start
                its = [i for i, _ in calls]
                unit = images.to_unit(est)
                lines.append(f"| {method}, σ_y {sigma_y} | {name} | {len(calls)} | {min(its)}-{max(its)} (total "
                             f"{sum(its)}) | {sum(1 for _, ok in calls if not ok)} | {float(psnr(unit, ref)[0]):.2f} | "
                             f"{float(lpips_distance(unit, ref)[0]):.3f} | {seconds:.1f} |")
                print(lines[-1], flush=True)
    _apply(current)
    (a.out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
