"""The Gaussian blur width read from a plain photo (`ncvsd_cli.blur_estimate`), and what it does to restoration.

1. Accuracy: each photo of VAL (and of HELDOUT, reported apart and never used to choose anything) is blurred
   with mirrored edges by the deblur-gauss operator at widths 1-4 px (noise sigma_y 0.01 and 0.05, measurement
   seed 1, 8-bit PNG), and by PIL's GaussianBlur(r) saved as JPEG quality 85; the estimate is compared with the
   width.
2. Restoration of VAL photos blurred at WIDTHS (operator, mirrored edges, noise --noise (0.05), 8-bit PNG: what
   a user has) with the default sampler (restoration seed 0), restored at sigma_y 0.05: the kernel read from the
   image against the task's fixed default (sigma 3 px, what `restore` used before) and the true width; beside
   them the blurred input itself and the fully automatic restore (width and noise level read from the image,
   as `ncvsd restore` does a plain photo).

Writes OUT/accuracy.csv, OUT/restore.csv, OUT/summary.md and OUT/grid-<width>.jpg (per photo: clean, then each
of KERNELS: measured, default 3 px, estimated, true, estimated with noise read).

Usage:  python benchmarks/blur_estimate.py VAL --out OUT [--heldout DIR] [--widths 1.5,3] [--noise 0.05]
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import torch
from PIL import Image, ImageFilter

import operators
from ncvsd_cli import images
from ncvsd_cli.blur_estimate import estimate_gaussian_blur
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image


def blurred(x: torch.Tensor, width: float, sigma_y: float) -> torch.Tensor:
    """x blurred the way a camera blurs (mirrored edges; width 0: not blurred), with noise (seed 1), quantised to
    8 bits like a PNG."""
    noise = torch.Generator().manual_seed(1)
    if width:
        op = operators.create("deblur-gauss", tuple(x.shape[1:]), sigma=width, boundary="reflect")
        y = op.measure(x, sigma_y, noise)
    else:
        y = x + sigma_y * torch.randn(x.shape, generator=noise)
    return images.load_image(images.encode_image(y.clamp(-1, 1), "PNG"))


def pil_jpeg(path: Path, radius: float, quality: int = 85) -> torch.Tensor:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").filter(ImageFilter.GaussianBlur(radius)).save(buf, "JPEG", quality=quality)
    return images.load_image(buf.getvalue())


def _reading(y: torch.Tensor) -> float:
    """The estimate in px (nan where there is none: a flat or tiny photo)."""
    width = estimate_gaussian_blur(y)
    return round(width, 3) if width is not None else float("nan")


def accuracy(folder: Path, split: str) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.png")):
        x = images.load_image(path)[:, :3]
        for width in (0.0, 1.0, 2.0, 3.0, 4.0):
            for sigma_y in (0.01, 0.05):
                y = blurred(x, width, sigma_y)
                rows.append({"split": split, "image": path.stem, "blur": "operator", "width": width,
                             "sigma_y": sigma_y, "estimate": _reading(y)})
            if width:
                rows.append({"split": split, "image": path.stem, "blur": "PIL+JPEG85", "width": width, "sigma_y": 0,
                             "estimate": _reading(pil_jpeg(path, width))})
            print(rows[-1], flush=True)
    return rows


#: The restorations compared: (name, restore_image options); None: the blurred input itself.
KERNELS = (("input", None), ("default 3 px", {"params": {"sigma": 3.0}, "sigma_y": 0.05}),
           ("estimated", {"sigma_y": 0.05}), ("true", {"params": {"sigma": None}, "sigma_y": 0.05}),
           ("estimated, noise read", {}))


def restoration(val: Path, widths: list[float], out: Path, noise: float = 0.05) -> list[dict]:
    rows = []
    for width in widths:
        tiles = []
        for path in sorted(val.glob("*.png")):
            x = images.load_image(path)[:, :3]
            y = blurred(x, width, noise)
            row, reading = [x], _reading(y)
            for kernel, options in KERNELS:
                if options is None:
                    est = y
                else:
                    options = {**options, "params": {"sigma": width}} if kernel == "true" else options
                    est = restore_image(y, "deblur-gauss", seed=0, **options)[:1].clamp(-1, 1)
                unit, ref = images.to_unit(est), images.to_unit(x)
                rows.append({"image": path.stem, "width": width, "noise": noise, "kernel": kernel,
                             "estimate": reading if kernel.startswith("estimated") else "",
                             "psnr": round(float(psnr(unit, ref)[0]), 3),
                             "lpips": round(float(lpips_distance(unit, ref)[0]), 4)})
                row.append(est)
                print(rows[-1], flush=True)
            tiles.append(torch.cat(row, dim=3))
        Image.fromarray(images.to_uint8(torch.cat(tiles, dim=2))).save(out / f"grid-{width:g}.jpg", quality=88)
    return rows


def summary(acc: list[dict], rest: list[dict]) -> str:
    lines = ["## Accuracy (estimate, px: mean and range over the photos)", "",
             "| split | blur | sigma_y | " + " | ".join(f"width {w:g}" for w in (0, 1, 2, 3, 4)) + " |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["split"], r["blur"], r["sigma_y"]) for r in acc}, key=lambda k: (k[0] != "validation", k))
    for split, blur, sigma_y in keys:
        cells = []
        for w in (0.0, 1.0, 2.0, 3.0, 4.0):
            e = [r["estimate"] for r in acc if (r["split"], r["blur"], r["sigma_y"], r["width"]) ==
                 (split, blur, sigma_y, w)]
            cells.append(f"{sum(e) / len(e):.2f} ({min(e):.2f}-{max(e):.2f})" if e else "–")
        lines.append(f"| {split} | {blur} | {sigma_y} | " + " | ".join(cells) + " |")
    lines += ["", ("## Restoration of validation photos, default sampler (means over the photos; below input: "
                   "photos whose PSNR is under the blurred input's)"), "",
              "| true width | noise | kernel | PSNR ↑ | LPIPS ↓ | below input |", "|---|---|---|---|---|---|"]
    for width in sorted({r["width"] for r in rest}):
        for kernel, _ in KERNELS:
            rs = [r for r in rest if r["width"] == width and r["kernel"] == kernel]
            below = sum(r["psnr"] < i["psnr"] for r, i in zip(rs, [r for r in rest if r["width"] == width
                                                                     and r["kernel"] == "input"]))
            lines.append(f"| {width:g} | {rs[0]['noise']:g} | {kernel} | {sum(r['psnr'] for r in rs) / len(rs):.2f} | "
                         f"{sum(r['lpips'] for r in rs) / len(rs):.3f} | {below}/{len(rs)} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: Path) -> None:
    """rows (dicts with the same keys) as a CSV file with a header (also used by the other blur benchmarks)."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("val", type=Path, help="folder of validation PNG photos")
    p.add_argument("--heldout", type=Path, help="folder of held-out PNG photos (accuracy only, reported apart)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--widths", default="1.5,3", help="true blur widths (px) of the restoration comparison")
    p.add_argument("--noise", type=float, default=0.05, help="noise std of the restoration comparison's inputs")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    acc = accuracy(a.val, "validation") + (accuracy(a.heldout, "held-out") if a.heldout else [])
    write_csv(acc, a.out / "accuracy.csv")
    rest = restoration(a.val, [float(w) for w in a.widths.split(",")], a.out, a.noise)
    write_csv(rest, a.out / "restore.csv")
    (a.out / "summary.md").write_text(summary(acc, rest))
    print(summary(acc, rest))


if __name__ == "__main__":
    main()
