"""Biharmonic fill from smoothed edge pixels: PSNR inside the holes versus the smoothing scale, on validation photos.

`sampling.classical.biharmonic` fills a hole from the known pixels smoothed at FILL_SMOOTHING_PER_RADIUS x the hole's
radius (docs/method.md §5); this sweeps that factor (0 = scikit-image's biharmonic on the raw pixels) over the
validation sets of `benchmarks/make_validation_set.py` (never the held-out photos), for the centred box (half the
side) and a random mask (70 % missing), without noise and at sigma_y 0.05 (noise seed = image index).
Usage:  python benchmarks/inpaint_fill.py /tmp/valcrops /tmp/val256 > benchmarks/inpaint-fill/sweep.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import operators
from ncvsd_cli.sampling import classical as C

FACTORS = [0.0, 1 / 64, 1 / 32, 1 / 16, 1 / 8]


def hole_psnr(x: torch.Tensor, task: str, sigma_y: float, seed: int) -> list[float]:
    """PSNR inside the hole (2 = the [-1, 1] range) of the biharmonic fill of x (1, 3, H, W), one per factor."""
    params = {"seed": seed} if task == "inpaint-random" else {}
    op = operators.create(task, tuple(x.shape[1:]), **params)
    y = op.measure(x, sigma_y=sigma_y, generator=torch.Generator().manual_seed(seed))
    hole = op.mask.expand_as(x) == 0
    out = []
    for factor in FACTORS:
        C.FILL_SMOOTHING_PER_RADIUS = factor
        err = (C.biharmonic(None, op, y).x - x)[hole]
        out.append(float(10 * torch.log10(4 / err.pow(2).mean())))
    return out


def main() -> None:
    print("| set | task | sigma_y | images | " + " | ".join(f"factor {f:.4g}" for f in FACTORS) + " |")
    print("|---|---|---|---:|" + "---:|" * len(FACTORS))
    for folder in map(Path, sys.argv[1:]):
        files = sorted(folder.glob("*.png"))
        images = [torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), np.float32) / 127.5 - 1)
                  .permute(2, 0, 1)[None] for f in files]
        for task in ("inpaint-box", "inpaint-random"):
            for sigma_y in (0.0, 0.05):
                rows = np.array([hole_psnr(x, task, sigma_y, i) for i, x in enumerate(images)])
                cells = " | ".join(f"{v:.2f}" for v in rows.mean(0))
                print(f"| {folder.name} | {task} | {sigma_y} | {len(files)} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
