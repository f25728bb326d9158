"""Noisy photos saved as JPEG: the noise level read on the luma (`estimate_luma_noise_sigma`) against the colour
reading alone, on validation photos.

Each photo of VAL (whole, e.g. 256 px) is blurred by Pillow's GaussianBlur(1.5) for deblur-gauss (its width then
read from the image) or left sharp for denoise, given white RGB noise of std S on the [-1, 1] scale (seed 0),
saved by Pillow as JPEG at quality Q (4:2:0 chroma), decoded as `ncvsd restore` decodes it and restored with the
default sampler (seed 0), the noise level read as for any plain photo. Prints one Markdown row per (task, S, Q):
the input's PSNR, the levels used per photo, and PSNR / LPIPS-alex of the restorations against the clean photos;
writes the JPEGs and outputs to OUT. Run it once with the code before a change (PYTHONPATH=<old worktree>) and
once after to compare.
Usage:  python benchmarks/noisy_jpeg.py VAL OUT [TASK] > rows.md   (TASK: only that task's cases)
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from sr_kernels import listen_for_levels  # benchmarks/ is the script's folder

from ncvsd_cli import images
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

CASES = [("deblur-gauss", 1.5, s) for s in (0.0, 0.03, 0.06)] + [("denoise", 0.0, s) for s in (0.0, 0.03, 0.06)]
QUALITIES = (95, 85, 75)


def as_tensor(pic: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(pic.convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]


def main() -> None:
    val, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    read = listen_for_levels()
    print("| task | noise σ | quality | input PSNR | levels used | PSNR / LPIPS |\n|---|---|---|---|---|---|")
    for task, blur, sigma in [c for c in CASES if len(sys.argv) < 4 or c[0] == sys.argv[3]]:
        for quality in QUALITIES:
            scores, levels, inputs = [], [], []
            for f in sorted(val.glob("*.png")):
                clean = Image.open(f).convert("RGB")
                base = np.asarray(clean.filter(ImageFilter.GaussianBlur(blur)) if blur else clean, np.float64) / 255
                noisy = np.clip(base + np.random.default_rng(0).normal(0, sigma / 2, base.shape), 0, 1)
                buf = io.BytesIO()
                Image.fromarray((noisy * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=quality)
                path = out / f"{f.stem}-{task}-{sigma}-{quality}.jpg"
                path.write_bytes(buf.getvalue())
                decoded = images.read_image(str(path))
                x = restore_image(decoded.tensor, task, jpeg_sigma=decoded.jpeg_sigma, seed=0)
                images.save_image(x[:1], str(path.with_suffix(".out.png")), overwrite=True)
                c, r = as_tensor(clean), ((x[:1].clamp(-1, 1) + 1) / 2).float()
                scores.append((float(psnr(r, c)), float(lpips_distance(r, c))))
                inputs.append(float(psnr(((decoded.tensor + 1) / 2).float(), c)))
                levels.append(read.levels[-1])
            p, lp = np.mean(scores, axis=0)
            print(f"| {task} | {sigma} | {quality} | {np.mean(inputs):.2f} | {' '.join(f'{v:g}' for v in levels)} "
                  f"| {p:.2f} / {lp:.3f} |", flush=True)


if __name__ == "__main__":
    main()
