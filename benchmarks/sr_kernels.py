"""Super-resolution of images shrunk by other resizers: the default operator (bicubic antialiased) against the
operator with the kernel that made the image (`-p kernel=K`, operators/resize.py), on validation photos.

Each image x is shrunk ×4 by K (`sr4` with kernel K: torch `F.interpolate` defaults for the aliased kernels, Pillow
NEAREST, OpenCV INTER_AREA for box), rounded to 8 bits as a saved file would be, then restored with `restore_image`
as `ncvsd restore --task sr4 small.png` does (noise level read from the image, default sampler, seed 0), once with
the default kernel and once with K; bicubic interpolation (`--method classical`) beside them. PSNR and LPIPS-alex
against x, mean over the images of each folder.
Usage:  python benchmarks/sr_kernels.py /tmp/val256 /tmp/valcrops > benchmarks/sr-kernels/results.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import operators
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

KERNELS = ["bicubic", "box", "bilinear-aliased", "bicubic-aliased", "nearest"]


def scores(out: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    a, b = ((out[:1].clamp(-1, 1) + 1) / 2), (x + 1) / 2
    return float(psnr(a, b)), float(lpips_distance(a, b))


def main() -> None:
    print("| set | shrunk with | images | bicubic interpolation | restored as bicubic (default) "
          "| restored with its kernel |")
    print("|---|---|---:|---|---|---|")
    for folder in map(Path, sys.argv[1:]):
        files = sorted(folder.glob("*.png"))
        for kernel in KERNELS:
            rows = []
            for f in files:
                x = torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), np.float32) / 127.5 - 1)
                x = x.permute(2, 0, 1)[None]
                y = operators.create("sr4", tuple(x.shape[1:]), kernel=kernel)(x)
                y = ((y.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1  # an 8-bit file
                row = [scores(restore_image(y, "sr4", method="classical"), x),
                       scores(restore_image(y, "sr4", seed=0), x)]
                if kernel != "bicubic":
                    row.append(scores(restore_image(y, "sr4", seed=0, params={"kernel": kernel}), x))
                rows.append(row)
            cells = [f"{np.mean([r[i][0] for r in rows]):.2f} / {np.mean([r[i][1] for r in rows]):.3f}"
                     for i in range(len(rows[0]))] + ["–"] * (3 - len(rows[0]))
            print(f"| {folder.name} | {kernel} | {len(files)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
