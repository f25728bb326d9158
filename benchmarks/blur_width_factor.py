"""How a wrong Gaussian blur width costs a restoration: too wide against too narrow, and the width as read.

Each photo of PHOTOS (the first --limit, in name order, as 256-px squares as `ncvsd bench` reads them) is blurred by
the deblur-gauss operator (sigma --width px, mirrored edges as a camera's photo has), given white noise of std
--noise (the [-1, 1] scale, seed 0) and saved as an 8-bit PNG and a JPEG of quality 85 (Pillow, 4:2:0), each read as
`restore` reads it. Each file is restored by `restore_image` (default sampler, seed 0, noise level read from the
file) with the width set to --factors x the truth, and with the width `restore` reads (`blur_estimate.read_blur`,
through the JPEG's coding) alone and x --shrink. PSNR / LPIPS-alex against the clean photo ->
OUT/rows.csv (one row per photo, file and width) and OUT/summary.md (means per file kind and width).
Usage:  python benchmarks/blur_width_factor.py PHOTOS OUT [--limit 10] [--width 2] [--noise 0.02]
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ncvsd_cli import images
from ncvsd_cli.blur_estimate import read_blur
from ncvsd_cli.measurement import degrade
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image


def files(y: torch.Tensor) -> dict[str, images.DecodedImage]:
    """y (1, 3, h, w) in [-1, 1] as an 8-bit PNG and a quality-85 JPEG, decoded as `restore` decodes them."""
    rgb = Image.fromarray((images.to_unit(y.clamp(-1, 1))[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    out = {}
    for kind, kwargs in (("png", {"format": "PNG"}), ("jpeg85", {"format": "JPEG", "quality": 85})):
        buf = io.BytesIO()
        rgb.save(buf, **kwargs)
        out[kind] = images.read_image(buf.getvalue())
    return out


def scores(x: torch.Tensor, d: images.DecodedImage, sigma: float) -> tuple[float, float]:
    out = restore_image(d.tensor, "deblur-gauss", params={"sigma": round(sigma, 2)}, seed=0,
                        jpeg_sigma=d.jpeg_sigma, jpeg_coding=d.jpeg_coding)[:1].clamp(-1, 1)
    a, b = images.to_unit(out), images.to_unit(x)
    return float(psnr(a, b)), float(lpips_distance(a, b))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--width", type=float, default=2.0)
    p.add_argument("--noise", type=float, default=0.02)
    p.add_argument("--factors", default="0.8,0.9,1.0,1.1,1.2")
    p.add_argument("--shrink", type=float, default=0.9)
    a = p.parse_args()
    from ncvsd_cli.bench.datasets import image_folder

    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for im in image_folder(a.photos, 256).images[: a.limit]:
        x = im.load()
        y = degrade(x, "deblur-gauss", sigma_y=a.noise, params={"sigma": a.width, "boundary": "reflect"}).y
        for kind, d in files(y).items():
            read = read_blur(d.tensor, coding=d.jpeg_coding).width
            widths = {f"{f} x truth": float(f) * a.width for f in a.factors.split(",")}
            widths.update({"read": read, f"read x {a.shrink}": a.shrink * read})
            for name, sigma in widths.items():
                p_, l_ = scores(x, d, max(sigma, 0.3))
                row = {"photo": im.id, "file": kind, "width": name, "sigma": round(sigma, 3), "psnr": round(p_, 3),
                       "lpips": round(l_, 4)}
                print(row, flush=True)
                rows.append(row)
    with open(a.out / "rows.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [f"deblur-gauss {a.width} px, noise {a.noise}, {len({r['photo'] for r in rows})} photos, seed 0: means",
             "", "| file | width | sigma | PSNR | LPIPS |", "|---|---|---|---|---|"]
    for kind in dict.fromkeys(r["file"] for r in rows):
        for name in dict.fromkeys(r["width"] for r in rows):
            rs = [r for r in rows if r["file"] == kind and r["width"] == name]
            lines.append(f"| {kind} | {name} | {np.mean([r['sigma'] for r in rs]):.2f} | "
                         f"{np.mean([r['psnr'] for r in rs]):.2f} | {np.mean([r['lpips'] for r in rs]):.4f} |")
    (a.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
