"""Lossy WebP floor sweep (validation photos only): each photo of VAL blurred by Pillow's GaussianBlur(2), saved
as WebP at quality 60 and 90, restored by the default sampler (seed 0, the true width 2) at fixed noise levels.
Prints per quality the WebP error std, the colour and coarse-luma noise readings, then per level the PSNR per
photo and the mean PSNR / LPIPS-alex; writes the outputs to OUT.
Usage:  python benchmarks/webp_floor.py VAL OUT > benchmarks/noisy-jpeg/webp-floor.md
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from ncvsd_cli.measurement import estimate_luma_noise_sigma, estimate_noise_sigma
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

LEVELS = (0.01, 0.015, 0.025, 0.035)


def tensor(pic: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(pic.convert("RGB"), np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


def main() -> None:
    val, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for quality in (60, 90):
        res: dict = {}
        for f in sorted(val.glob("*.png")):
            clean = Image.open(f).convert("RGB")
            blurred, buf = clean.filter(ImageFilter.GaussianBlur(2)), io.BytesIO()
            blurred.save(buf, "WEBP", quality=quality)
            y, x = tensor(Image.open(io.BytesIO(buf.getvalue()))), (tensor(clean) + 1) / 2
            res.setdefault("err", []).append(float((y - tensor(blurred)).std()))
            res.setdefault("read", []).append(estimate_noise_sigma(y))
            res.setdefault("luma", []).append(estimate_luma_noise_sigma(y, coarse=True))
            for level in LEVELS:
                o = ((restore_image(y, "deblur-gauss", seed=0, sigma_y=level, params={"sigma": 2.0})[:1]
                      .clamp(-1, 1) + 1) / 2).float()
                res.setdefault(level, []).append((float(psnr(o, x)), float(lpips_distance(o, x))))
                Image.fromarray((o[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
                    out / f"{f.stem}-q{quality}-{level}.png")
        print(quality, *(f"{k} {np.round(res.pop(k), 4)}" for k in ("err", "read", "luma")), flush=True)
        for level, v in res.items():
            print(quality, level, [round(a, 2) for a, _ in v],
                  f"{np.mean([a for a, _ in v]):.2f} / {np.mean([b for _, b in v]):.3f}", flush=True)


if __name__ == "__main__":
    main()
