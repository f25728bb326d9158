"""Long camera shakes read from the photo (`ncvsd_cli/motion_estimate.py`): does the agreement of the kernels read
on the photo's halves (`halves_agreement`) tell a wrong reading, and does reading again in a 63-px square, where
the 31-px reading fills its square (what `restore` does by default), restore better?

1. Reading (`--read DIR`, training photos: the threshold is chosen here): each photo's centre square at 256 px,
   blurred with mirrored edges by a random-trajectory kernel (the deblur-motion operator's, intensity 0.5, seed
   100 + the photo's index) of 11 / 21 / 31 / 45 / 61 px, noise 0.01 or 0.04 on [-1, 1] (seed 1), 8-bit; read in
   the 31-px square and, for kernels over 31 px, the 63-px one, unchecked; then the agreement of its halves
   (always computed here). similarity: the largest normalised cross-correlation with the true kernel over shifts.
2. Restoration (`--val DIR`, the 256-px validation photos): kernels of 21 / 31 / 45 / 61 px, seeds 100 + index and
   110 + index, noise 0.02 (seed 1), 8-bit; restored (default sampler, seed 0, as `restore` does a plain photo,
   the noise level read) with the 31-px reading; where that fills its square (extent >= 29), also with the 63-px
   reading (checked). PSNR, PSNR at the best whole-pixel shift within 3 px, LPIPS-alex, for the input too.

Writes OUT/reading.csv, OUT/restore.csv, OUT/restore63.csv and OUT/<photo>-k<size>-s<seed>[-r63].png (clean, input,
restored). Each row is written as it is measured; a rerun appends.
Usage:  python benchmarks/motion_long_shakes.py --out OUT [--read DIR] [--val DIR] [--limit N] [--sizes 21,45]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch
from defocus import _png, square
from motion_estimate import aligned_psnr, blurred, true_kernel
from PIL import Image

from ncvsd_cli import images
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.motion_estimate import halves_agreement, kernel_similarity, read_motion_kernel
from ncvsd_cli.restore import restore_image


class Rows:
    """A CSV written row by row (appended to on a rerun)."""

    def __init__(self, path: Path, fields: list[str]):
        self.path, self.fields = path, fields
        if not path.exists():
            self.add(None)

    def add(self, row: dict | None) -> None:
        """Appends `row` (None: the header)."""
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields)
            writer.writeheader() if row is None else writer.writerow(row)
        if row is not None:
            print(row, flush=True)


def reading(folder: Path, out: Path, limit: int | None, sizes: list[int]) -> None:
    rows = Rows(out / "reading.csv", ["image", "size", "noise", "read", "similarity", "extent", "taps", "noisy",
                                      "agreement"])
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))[:limit]
    for index, path in enumerate(paths):
        x = images.load_image(_png(square(path)))
        for size in sizes:
            k = true_kernel(size, index)
            for noise in (0.01, 0.04):
                y = blurred(x, k, noise)
                for read in (31, 63) if size > 31 else (31,):
                    r = read_motion_kernel(y, read, check=False)
                    rows.add({"image": path.stem, "size": size, "noise": noise, "read": read,
                              "similarity": round(kernel_similarity(r.kernel, k), 4), "extent": r.extent,
                              "taps": r.taps, "noisy": int(r.noisy),
                              "agreement": _rounded(halves_agreement(y, r.kernel))})


def _rounded(agreement: float | None) -> float | str:
    return "" if agreement is None else round(agreement, 4)  # "": the halves too small to check


def scores(est: torch.Tensor, x: torch.Tensor) -> dict:
    unit, ref = images.to_unit(est), images.to_unit(x)
    return {"psnr": round(float(psnr(unit, ref)[0]), 2), "psnr_aligned": round(aligned_psnr(unit, ref), 2),
            "lpips": round(float(lpips_distance(unit, ref)[0]), 4)}


def _restored(y: torch.Tensor, kernel) -> torch.Tensor:
    """The default sampler's restoration (seed 0) of y with `kernel`, as a plain photo; one sample on [-1, 1]."""
    params = {"kernel": kernel, "kernel_size": kernel.shape[0]}
    return restore_image(y, "deblur-motion", seed=0, params=params)[:1].clamp(-1, 1)


def _save(path: Path, *tiles: torch.Tensor) -> None:
    Image.fromarray(images.to_uint8(torch.cat(tiles, dim=3))).save(path)


def restoration(val: Path, out: Path, sizes: list[int]) -> None:
    fields = ["image", "size", "seed", "similarity", "extent", "taps", "agreement", "psnr", "psnr_aligned", "lpips"]
    rows = Rows(out / "restore.csv", fields + [f"input_{k}" for k in ("psnr", "psnr_aligned", "lpips")])
    rows63 = Rows(out / "restore63.csv", fields + ["noisy", "similarity31"])
    for seed in (0, 10):
        for index, path in enumerate(sorted(val.glob("*.png"))):
            x = images.load_image(path)[:, :3]
            for size in sizes:
                k = true_kernel(size, index + seed)
                y = blurred(x, k, 0.02)
                r = read_motion_kernel(y, 31, check=False)
                est = _restored(y, r.kernel)
                row = {"image": path.stem, "size": size, "seed": seed,
                       "similarity": round(kernel_similarity(r.kernel, k), 4), "extent": r.extent, "taps": r.taps,
                       "agreement": _rounded(halves_agreement(y, r.kernel))}
                rows.add({**row, **scores(est, x), **{f"input_{k}": v for k, v in scores(y, x).items()}})
                name = f"{path.stem}-k{size}-s{seed}"
                _save(out / f"{name}.png", x, y, est)
                if r.extent < 29:
                    continue
                r63 = read_motion_kernel(y, 63)
                est = _restored(y, r63.kernel)
                rows63.add({**row, "similarity": round(kernel_similarity(r63.kernel, k), 4), "extent": r63.extent,
                            "taps": r63.taps, "agreement": _rounded(r63.agreement), **scores(est, x),
                            "noisy": int(r63.noisy), "similarity31": row["similarity"]})
                _save(out / f"{name}-r63.png", x, y, est)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--read", type=Path, help="photos for the reading table (training photos)")
    ap.add_argument("--val", type=Path, help="256-px validation photos (benchmarks/make_validation_set.py --whole)")
    ap.add_argument("--limit", type=int, help="at most this many photos of --read")
    ap.add_argument("--sizes", help="kernel sizes (px; default 11,21,31,45,61 for --read, 21,31,45,61 for --val)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [int(v) for v in args.sizes.split(",")] if args.sizes else None
    if args.read:
        reading(args.read, args.out, args.limit, sizes or [11, 21, 31, 45, 61])
    if args.val:
        restoration(args.val, args.out, sizes or [21, 31, 45, 61])


if __name__ == "__main__":
    main()
