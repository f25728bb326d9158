"""How far the lossy outputs `encode_image` writes lie from the restoration they hold, per format and chroma
subsampling: each photo of PHOTOS (training photos; first --limit by name) centre-cropped to --size px (Lanczos),
and its sr4 restoration (`restore_image`, default sampler, seed 0, from the crop downscaled 4x bicubically and
saved as PNG), encoded as JPEG at quality 95 (4:2:0, Pillow's default, and 4:4:4), AVIF and HEIC at 90 (4:2:0 and
4:4:4) and WebP at 95 (4:2:0 only), decoded: mean file size and PSNR against the image encoded (RGB, and on
the chroma: Cb / Cr of Pillow's YCbCr).

Usage:  python benchmarks/output_coding.py PHOTOS [--limit 12] [--size 256] [--restored 6] > benchmarks/output-coding.md
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from defocus import square  # benchmarks/ is the script's folder
from PIL import Image

from ncvsd_cli import images
from ncvsd_cli.restore import restore_image

CODINGS = {
    "JPEG 95 4:2:0": ("JPEG", {"quality": 95, "subsampling": 2}),
    "JPEG 95 4:4:4": ("JPEG", {"quality": 95, "subsampling": 0}),
    "AVIF 90 4:2:0": ("AVIF", {"quality": 90, "subsampling": "4:2:0"}),
    "AVIF 90 4:4:4": ("AVIF", {"quality": 90, "subsampling": "4:4:4"}),
    "HEIC 90 4:2:0": ("HEIF", {"quality": 90, "chroma": 420}),
    "HEIC 90 4:4:4": ("HEIF", {"quality": 90, "chroma": 444}),
    "WebP 95 4:2:0": ("WEBP", {"quality": 95}),
}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(float) - b.astype(float)) ** 2), 1e-12)))


def coded(pixels: np.ndarray, fmt: str, options: dict) -> tuple[int, np.ndarray]:
    """(bytes, decoded RGB uint8) of `pixels` (H, W, 3 uint8) encoded by Pillow with `options`."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **options)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return len(buf.getvalue()), np.asarray(im.convert("RGB"))


def row(pixels: np.ndarray, name: str) -> tuple[int, float, float]:
    """(size, RGB PSNR, chroma PSNR) of `pixels` through the coding `name`."""
    size, back = coded(pixels, *CODINGS[name])
    ycc = lambda x: np.asarray(Image.fromarray(x).convert("YCbCr"))[..., 1:]
    return size, _psnr(pixels, back), _psnr(ycc(pixels), ycc(back))


def sr4_restoration(photo: Image.Image, seed: int = 0) -> np.ndarray:
    """The default sr4 restoration (seed) of the photo downscaled 4x bicubically, as uint8 RGB."""
    low = photo.resize((photo.width // 4, photo.height // 4), Image.BICUBIC)
    buf = io.BytesIO()
    low.save(buf, format="PNG")
    out = restore_image(images.load_image(buf.getvalue()), "sr4", seed=seed)[:1]
    return images.to_uint8(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("photos", type=Path)
    p.add_argument("--limit", type=int, default=12, help="photos (first by name)")
    p.add_argument("--size", type=int, default=256, help="crop side (px)")
    p.add_argument("--restored", type=int, default=6, help="of them also restored (sr4) and coded")
    args = p.parse_args()
    images.open_plugins()
    paths = sorted(f for f in args.photos.iterdir() if images.is_listed_image(f.name))[: args.limit]
    sets = {"photos": [], "sr4 restorations": []}
    for i, path in enumerate(paths):
        photo = square(path, args.size)
        sets["photos"].append(np.asarray(photo))
        if i < args.restored:
            sets["sr4 restorations"].append(sr4_restoration(photo))
    print(f"# Lossy outputs against the image they hold ({args.photos.name}, first {len(paths)} by name, "
          f"{args.size} px)\n")
    for title, arrays in sets.items():
        print(f"## {title} ({len(arrays)})\n\n| coding | size (KiB) | PSNR RGB (dB) | PSNR chroma (dB) |\n|---|---|---|---|")
        for name in CODINGS:
            r = np.array([row(a, name) for a in arrays])
            print(f"| {name} | {r[:, 0].mean() / 1024:.1f} | {r[:, 1].mean():.2f} | {r[:, 2].mean():.2f} |")
        print()


if __name__ == "__main__":
    main()
