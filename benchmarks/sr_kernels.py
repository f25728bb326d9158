"""Super-resolution of images shrunk by other resizers: the default operator (bicubic antialiased) against the
operator with the kernel that made the image (`-p kernel=K`, operators/resize.py), on validation photos.

Each image x is shrunk ×4 by K (`sr4` with kernel K: torch `F.interpolate` defaults for the aliased kernels, Pillow
NEAREST, OpenCV INTER_AREA for box), rounded to 8 bits as a saved file would be, then restored with `restore_image`
as `ncvsd restore --task sr4 small.png` does (noise level read from the image, default sampler, seed 0), once with
the default kernel and once with K; bicubic interpolation (`--method classical`, with either operator: the nearest
kernels sample off the pixel centres) beside them. PSNR and LPIPS-alex against x, mean over the images of each
folder; σ_y: the mean noise level read from the small images (the 8-bit rounding alone reads as 0.01, the floor).
Usage:  python benchmarks/sr_kernels.py /tmp/val256 /tmp/valcrops > benchmarks/sr-kernels/results.md
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import operators
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

KERNELS = ["bicubic", "box", "bilinear-aliased", "bicubic-aliased", "nearest", "nearest-floor"]


def scores(out: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    a, b = ((out[:1].clamp(-1, 1) + 1) / 2), (x + 1) / 2
    return float(psnr(a, b)), float(lpips_distance(a, b))


class LevelsRead(logging.Handler):
    """Collects the noise levels `restore_image` reports reading (logger "ncvsd.restore")."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.levels: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"noise level sigma_y ([0-9.]+)", record.getMessage())
        if found:
            self.levels.append(float(found.group(1)))


def listen_for_levels() -> LevelsRead:
    """A LevelsRead attached to the logger "ncvsd.restore" (at INFO level)."""
    log = logging.getLogger("ncvsd.restore")
    log.setLevel(logging.INFO)
    log.addHandler(read := LevelsRead())
    return read


def main() -> None:
    read = listen_for_levels()
    print("| set | shrunk with | images | σ_y read | bicubic interpolation | restored as bicubic (default) "
          "| bicubic interpolation at its kernel's points | restored with its kernel |")
    print("|---|---|---:|---:|---|---|---|---|")
    for folder in map(Path, sys.argv[1:]):
        files = sorted(folder.glob("*.png"))
        for kernel in KERNELS:
            rows, read.levels = [], []
            for f in files:
                x = torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), np.float32) / 127.5 - 1)
                x = x.permute(2, 0, 1)[None]
                y = operators.create("sr4", tuple(x.shape[1:]), kernel=kernel)(x)
                y = ((y.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1  # an 8-bit file
                row = [scores(restore_image(y, "sr4", method="classical"), x),
                       scores(restore_image(y, "sr4", seed=0), x)]
                if kernel != "bicubic":
                    row += [scores(restore_image(y, "sr4", method="classical", params={"kernel": kernel}), x),
                            scores(restore_image(y, "sr4", seed=0, params={"kernel": kernel}), x)]
                rows.append(row)
            cells = [f"{np.mean([r[i][0] for r in rows]):.2f} / {np.mean([r[i][1] for r in rows]):.3f}"
                     for i in range(len(rows[0]))] + ["–"] * (4 - len(rows[0]))
            print(f"| {folder.name} | {kernel} | {len(files)} | {np.mean(read.levels):.4f} | "
                  + " | ".join(cells) + " |", flush=True)

if __name__ == "__main__":
    main()
