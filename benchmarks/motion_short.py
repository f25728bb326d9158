"""Short camera shakes: is a short motion path read from the photo worth deconvolving by? (`restore.SHORT_PATH_EXTENT`)

Each of the first --limit photos of PHOTOS (training photos: the choice is made on them) is halved (Lanczos: sharp),
centre-cropped to 256 px, blurred with mirrored edges by a straight line shake of each LENGTHS px (bilinear
splatting; angle 25 + 40 x the photo's index degrees), given noise of std 0.005 on the [0, 1] scale (seed 0, drawn
in order) and saved as a JPEG of quality 90. Its kernel is read as `ncvsd restore` reads it (`restore.motion_notes`,
the short-path rule off), then it is restored (`restore_image`, default sampler, seed 0, noise level read) with that
kernel and with the identity (one centre tap): PSNR against the clean crop (16-px border left out). Writes
OUT/short.csv and OUT/summary.md.

Usage:  python benchmarks/motion_short.py PHOTOS --out OUT [--limit 3] [--first 20]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from blur_estimate import write_csv  # benchmarks/ is the script's folder
from PIL import Image
from scipy import ndimage

from ncvsd_cli import images, restore

LENGTHS = (3, 5, 7, 9, 13)


def line_kernel(length: int, angle: float, size: int = 31) -> np.ndarray:
    """A straight shake of `length` px at `angle` degrees, bilinearly splatted on a size x size grid, summing to 1."""
    k, c = np.zeros((size, size)), size // 2
    a = np.deg2rad(angle)
    for s in np.linspace(-(length - 1) / 2, (length - 1) / 2, 400):
        y, x = c - s * np.sin(a), c + s * np.cos(a)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        for yy, xx, w in ((y0, x0, (1 - (y - y0)) * (1 - (x - x0))), (y0 + 1, x0, (y - y0) * (1 - (x - x0))),
                          (y0, x0 + 1, (1 - (y - y0)) * (x - x0)), (y0 + 1, x0 + 1, (y - y0) * (x - x0))):
            k[yy, xx] += w
    return k / k.sum()


def psnr(a: np.ndarray, b: np.ndarray, border: int = 16) -> float:
    e = ((a - b) ** 2)[border:-border, border:-border].mean()
    return float(10 * np.log10(255**2 / e))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=3)
    p.add_argument("--first", type=int, default=20, help="index of the first photo (sorted by name)")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    restore.SHORT_PATH_EXTENT = 0  # read every path as it is read, to compare
    rng, rows = np.random.default_rng(0), []
    paths = sorted(q for q in a.photos.iterdir() if images.is_listed_image(q.name))[a.first:a.first + a.limit]
    for i, path in enumerate(paths):
        im = Image.open(path).convert("RGB")
        im = im.resize((im.width // 2, im.height // 2), Image.LANCZOS)
        left, top = (im.width - 256) // 2, (im.height - 256) // 2
        clean = np.asarray(im.crop((left, top, left + 256, top + 256)), np.float64) / 255
        for length in LENGTHS:
            k = line_kernel(length, 25 + 40 * i)
            y = np.stack([ndimage.convolve(clean[..., c], k, mode="reflect") for c in range(3)], -1)
            y = y + 0.005 * rng.standard_normal(y.shape)
            buf = io.BytesIO()
            Image.fromarray((np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="JPEG", quality=90)
            d = images.read_image(buf.getvalue())
            params: dict = {}
            (note,) = restore.motion_notes(d.tensor, params, {})
            row = {"photo": path.stem, "length": length, "extent": int(note.split("path within ")[1].split("x")[0]),
                   "input": round(psnr(images.to_uint8(d.tensor)[..., :3].astype(np.float64), clean * 255), 2)}
            for label, kernel in (("read", params["kernel"]), ("identity", np.pad(np.ones((1, 1)), 15))):
                x = restore.restore_image(d.tensor, "deblur-motion", jpeg_sigma=d.jpeg_sigma, seed=0,
                                          params={"kernel": kernel, "kernel_size": kernel.shape[0]})
                row[label] = round(psnr(images.to_uint8(x[:1].clamp(-1, 1)).astype(np.float64), clean * 255), 2)
            rows.append(row)
            print(row, flush=True)
    write_csv(rows, a.out / "short.csv")
    lines = ["| extent read | readings | read − identity, dB: mean | min | max |", "|---|---|---|---|---|"]
    for lo, hi in ((1, 6), (7, 31)):
        d = [r["read"] - r["identity"] for r in rows if lo <= r["extent"] <= hi]
        if d:
            lines.append(f"| {lo}-{hi} | {len(d)} | {np.mean(d):+.2f} | {min(d):+.2f} | {max(d):+.2f} |")
    (a.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
