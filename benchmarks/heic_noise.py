"""Noisy photos stored as HEIC: the noise level `restore` reads from them, and the restoration it gives.

Each validation photo of VAL (a folder of PNGs; the thresholds are not chosen here) is degraded with seed 0,
rounded to 8 bits, coded as a HEIC by pillow-heif (or as a JPEG by Pillow, for comparison) at each quality and
restored exactly as `ncvsd restore` restores the file (`images.read_image`, then `restore_image` with its
`jpeg_sigma`; level and blur width read from the image; restoration seed 0). Cases: denoise at noise 0.05 and 0.1;
deblur-gauss of a 1.5-px Gaussian with noise 0.03 (levels on the [-1, 1] scale). Writes OUT/rows.csv (photo, case,
format, quality, level taken: the sigma_y restored at, PSNR, LPIPS-alex) and prints the means per case and format. Run it on two versions
of the code (PYTHONPATH=...) to compare them.

Usage:  python benchmarks/heic_noise.py VAL --out OUT [--qualities 60,90] [--formats heic,jpeg]
"""

from __future__ import annotations

import argparse
import io
import logging
import re
from pathlib import Path

import numpy as np
import torch
from blur_estimate import write_csv  # benchmarks/ is the script's folder
from PIL import Image

from ncvsd_cli import images
from ncvsd_cli.measurement import degrade
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

CASES = {"denoise 0.05": ("denoise", 0.05, {}), "denoise 0.1": ("denoise", 0.1, {}),
         "deblur-gauss 1.5 px, 0.03": ("deblur-gauss", 0.03, {"sigma": 1.5})}


class Levels(logging.Handler):
    """Keeps the noise level of the last "estimated noise level sigma_y S" note of `restore_image`."""

    level: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"estimated noise level sigma_y ([0-9.]+)", record.getMessage())
        if found:
            self.level = float(found.group(1))


def coded(y: torch.Tensor, fmt: str, quality: int) -> bytes:
    """y (1, 3, H, W) in [-1, 1], rounded to 8 bits, as the bytes of a HEIC or JPEG file of `quality`."""
    pic = Image.fromarray(images.to_uint8(y))
    buf = io.BytesIO()
    if fmt == "heic":
        import pillow_heif

        pillow_heif.from_pillow(pic).save(buf, quality=quality)
    else:
        pic.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("val", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--qualities", default="60,90")
    p.add_argument("--formats", default="heic,jpeg")
    a = p.parse_args()
    levels = Levels()
    logger = logging.getLogger("ncvsd.restore")
    logger.addHandler(levels)
    logger.setLevel(logging.INFO)
    rows = []
    for f in sorted(a.val.glob("*.png")):
        clean = images.load_image(f)[:, :3]
        for case, (task, sigma_y, params) in CASES.items():
            y = degrade(clean, task, sigma_y=sigma_y, seed=0, params=params).y.clamp(-1, 1)
            for fmt in a.formats.split(","):
                for quality in (int(q) for q in a.qualities.split(",")):
                    d = images.read_image(coded(y, fmt, quality))
                    levels.level = None
                    out = restore_image(d.tensor, task, seed=0, jpeg_sigma=d.jpeg_sigma, jpeg_coding=d.jpeg_coding)
                    o, c = images.to_unit(out[:1].clamp(-1, 1)), images.to_unit(clean)
                    rows.append({"photo": f.stem, "case": case, "format": fmt, "quality": quality,
                                 "level_taken": levels.level, "psnr": round(float(psnr(o, c)[0]), 3),
                                 "lpips": round(float(lpips_distance(o, c)[0]), 4)})
                    print(rows[-1], flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, a.out / "rows.csv")
    print("\n| case | format | quality | level taken | PSNR | LPIPS |\n|---|---|---|---|---|---|")
    for key in dict.fromkeys((r["case"], r["format"], r["quality"]) for r in rows):
        sel = [r for r in rows if (r["case"], r["format"], r["quality"]) == key]
        print(f"| {key[0]} | {key[1]} | {key[2]} | {np.mean([r['level_taken'] for r in sel]):.4f} | "
              f"{np.mean([r['psnr'] for r in sel]):.2f} | {np.mean([r['lpips'] for r in sel]):.3f} |")


if __name__ == "__main__":
    main()
