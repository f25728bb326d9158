"""Camera shake read from the photo alone (`ncvsd_cli.motion_estimate`): how well the kernel reads, and what
restoring with it gains over the Gaussian fit a user had before (deblur-motion refused plain photos).

1. Reading (`--read DIR`, any photos; the estimator fits no data, and its settings were chosen on the training
   photos): each photo's centre square at 256 px (Lanczos), blurred with mirrored edges by a random-trajectory
   kernel (the deblur-motion operator's, intensity 0.5, seed 100 + the photo's index) of 11 / 21 / 31 px, plus
   noise 0.01 or 0.04 on the [-1, 1] scale (seed 1), 8-bit; the 21-px blur also saved as JPEG quality 85; and the
   photo unblurred. Read in the default 31-px square (`restore`'s reading); similarity: the largest normalised
   cross-correlation with the true kernel over all shifts (1 = the same path; an unblurred photo's true kernel
   is one tap), extent, taps, whether `restore` takes it (reliable: not spread like noise and, for a path of
   16 px or more, its halves agree: `halves_agreement`, given as agreement), seconds on this CPU (the check
   included).
2. Restoration (VAL, 256-px validation photos): blurred by a kernel of SIZES px (mirrored edges, noise 0.02,
   seed 1, 8-bit), restored with the default sampler (seed 0) as `ncvsd restore` does a plain photo (noise level
   read): --task deblur-gauss (width read: what a user had), --task deblur-motion (kernel read), the true kernel,
   and the classical baseline (Wiener) with the kernel read. PSNR, PSNR at the best whole-pixel shift within 3 px
   (a kernel is read up to a shift, which moves the restored image; 4-px border left out) and LPIPS-alex.

Writes OUT/reading.csv, OUT/restore.csv, OUT/summary.md and OUT/grid-k<size>.jpg (per photo: clean, input, then
each restoration in the table's order) and OUT/kernels-k<size>.png (per photo: true kernel, kernel read).

Usage:  python benchmarks/motion_estimate.py --out OUT [--read DIR] [--val DIR] [--sizes 15,25] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path

import numpy as np
import torch
from defocus import _mean_range, _png, square
from PIL import Image

import operators
from ncvsd_cli import images
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.motion_estimate import MOTION_READ_SIZE, kernel_similarity, read_motion_kernel
from ncvsd_cli.restore import restore_image
from operators.motion_kernel import motion_kernel

#: (name, kernel size (1: unblurred), noise, JPEG quality or 0)
READ_CASES = [("none", 1, 0.01, 0)] + [(f"{s} px", s, n, 0) for s in (11, 21, 31) for n in (0.01, 0.04)] \
    + [("21 px JPEG85", 21, 0.01, 85)]


def true_kernel(size: int, index: int) -> np.ndarray:
    return motion_kernel(size, 0.5, np.random.default_rng(100 + index)) if size > 1 else np.ones((1, 1))


def blurred(x: torch.Tensor, kernel: np.ndarray, noise: float, quality: int = 0) -> torch.Tensor:
    """x blurred by `kernel` (mirrored edges) plus noise (seed 1), coded as an 8-bit PNG (JPEG of `quality`)."""
    y = operators.create("deblur-kernel", tuple(x.shape[1:]), kernel=kernel, boundary="reflect")(x)
    y = y + noise * torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    data = images.encode_image(y.clamp(-1, 1), "PNG")
    if quality:
        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).save(buf, "JPEG", quality=quality)
        data = buf.getvalue()
    return images.load_image(data)


def reading(folder: Path, limit: int | None) -> list[dict]:
    rows = []
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))[:limit]
    for index, path in enumerate(paths):
        x = images.load_image(_png(square(path)))
        for name, size, noise, quality in READ_CASES:
            k = true_kernel(size, index)
            y = blurred(x, k, noise, quality)
            start = time.perf_counter()
            r = read_motion_kernel(y, MOTION_READ_SIZE)
            rows.append({"image": path.stem, "case": name, "noise": noise,
                         "similarity": round(kernel_similarity(r.kernel, k), 4), "extent": r.extent, "taps": r.taps,
                         "reliable": int(r.reliable),
                         "agreement": "" if r.agreement is None else round(r.agreement, 4),
                         "seconds": round(time.perf_counter() - start, 2)})
            print(rows[-1], flush=True)
    return rows


#: Restorations compared: (name, task, options); None: the input. "true": the true kernel.
RESTORATIONS = (("input", None, None), ("deblur-gauss, width read", "deblur-gauss", {}),
                ("deblur-motion, kernel read", "deblur-motion", {}), ("true kernel", "deblur-motion", "true"),
                ("Wiener, kernel read", "deblur-motion", {"method": "wiener"}))


def aligned_psnr(est: torch.Tensor, ref: torch.Tensor, reach: int = 3, border: int = 4) -> float:
    """PSNR (on [0, 1]) at the best whole-pixel shift of est within `reach`, `border` px left out."""
    inner = (..., slice(border, -border), slice(border, -border))
    return max(float(psnr(torch.roll(est, (dy, dx), dims=(2, 3))[inner], ref[inner])[0])
               for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1))


def restoration(val: Path, sizes: list[int], out: Path) -> list[dict]:
    rows = []
    for size in sizes:
        tiles, kernels = [], []
        for index, path in enumerate(sorted(val.glob("*.png"))):
            x = images.load_image(path)[:, :3]
            k = true_kernel(size, index)
            y = blurred(x, k, 0.02)
            row, read = [x], read_motion_kernel(y, MOTION_READ_SIZE).kernel
            for name, task, options in RESTORATIONS:
                refused = ""
                if task is None:
                    est = y
                else:
                    opts = {"params": {"kernel": k, "kernel_size": size}} if options == "true" else dict(options)
                    try:
                        est = restore_image(y, task, seed=0, **opts)[:1].clamp(-1, 1)
                    except ValueError as exc:  # a reading refused as noise: the input stands in, and it is counted
                        if "no motion-blur kernel could be read" not in str(exc):
                            raise
                        est, refused = y, str(exc)
                unit, ref = images.to_unit(est), images.to_unit(x)
                rows.append({"image": path.stem, "size": size, "restoration": name,
                             "psnr": round(float(psnr(unit, ref)[0]), 3),
                             "psnr_aligned": round(aligned_psnr(unit, ref), 3),
                             "lpips": round(float(lpips_distance(unit, ref)[0]), 4), "refused": refused})
                row.append(est)
                print(rows[-1], flush=True)
            tiles.append(torch.cat(row, dim=3))
            pad = (MOTION_READ_SIZE - size) // 2
            kernels.append(np.concatenate([np.pad(k / k.max(), pad), read / read.max()], axis=1))
        Image.fromarray(images.to_uint8(torch.cat(tiles, dim=2))).save(out / f"grid-k{size}.jpg", quality=88)
        sheet = (np.concatenate(kernels, axis=0) * 255).astype(np.uint8)
        Image.fromarray(sheet).resize((sheet.shape[1] * 4, sheet.shape[0] * 4), Image.NEAREST).save(
            out / f"kernels-k{size}.png")
    return rows


def _rows(path: Path) -> list[dict]:
    """A CSV this script wrote earlier (numbers as floats), or [] when there is none."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def summary(read: list[dict], rest: list[dict]) -> str:
    lines = []
    if read:
        lines += ["## Reading (mean and range over the photos)", "",
                  "| blur | noise | similarity | extent px | taps | reliable | seconds |", "|---" * 7 + "|"]
        for name, _, noise, _ in READ_CASES:
            sel = [r for r in read if (r["case"], r["noise"]) == (name, noise)]
            lines.append(f"| {name} | {noise:g} | {_mean_range([r['similarity'] for r in sel])} | "
                         f"{_mean_range([r['extent'] for r in sel])} | {_mean_range([r['taps'] for r in sel])} | "
                         f"{sum(int(r['reliable']) for r in sel)}/{len(sel)} | "
                         f"{_mean_range([r['seconds'] for r in sel])} |")
    if rest:
        lines += ["", "## Restoration of the validation photos (PSNR / aligned PSNR dB / LPIPS-alex, means)", "",
                  "| kernel px | " + " | ".join(k[0] for k in RESTORATIONS) + " |",
                  "|---" * (len(RESTORATIONS) + 1) + "|"]
        for size in sorted({r["size"] for r in rest}):
            cells = []
            for name, _, _ in RESTORATIONS:
                sel = [r for r in rest if (r["size"], r["restoration"]) == (size, name)]
                means = [sum(r[k] for r in sel) / len(sel) for k in ("psnr", "psnr_aligned", "lpips")]
                refused = sum(bool(r.get("refused")) for r in sel)  # older CSVs: none
                cells.append(f"{means[0]:.2f} / {means[1]:.2f} / {means[2]:.3f}"
                             + (f" ({refused} refused: the input counted)" if refused else ""))
            lines.append(f"| {size:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--read", type=Path, help="photos for the reading table (any: the estimator fits nothing)")
    ap.add_argument("--val", type=Path, help="256-px validation photos (benchmarks/make_validation_set.py --whole)")
    ap.add_argument("--sizes", default="15,25", help="restoration: kernel sizes (px)")
    ap.add_argument("--limit", type=int, help="at most this many photos of --read")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    read = reading(args.read, args.limit) if args.read else []
    rest = restoration(args.val, [int(s) for s in args.sizes.split(",")], args.out) if args.val else []
    for name, rows in (("reading", read), ("restore", rest)):
        if rows:
            with open(args.out / f"{name}.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
    read, rest = read or _rows(args.out / "reading.csv"), rest or _rows(args.out / "restore.csv")  # the part not rerun
    (args.out / "summary.md").write_text(summary(read, rest))
    print(summary(read, rest))


if __name__ == "__main__":
    main()
