"""Defocus blur (a uniform disk): how its radius reads from a plain photo, whether deblur-gauss tells it from a
Gaussian blur, and what restoring it with the disk gains over the Gaussian fit.

1. Reading (`--read DIR`, any photos; the estimator is fitted to nothing, so the training photos serve, and the
   deblur-gauss note's thresholds were chosen on them): each photo's centre square at 256 px (Lanczos), blurred
   with mirrored edges by a disk of radius 2 / 4 / 6 / 8 px (the deblur-defocus operator), by a Gaussian of 1 / 2 /
   3 px (deblur-gauss operator) and by PIL's GaussianBlur(1.5 / 3), or not at all, plus noise 0.005 or 0.02
   (seed 1), 8-bit; and, as a real lens is no perfect disk, radius 4 px then a 1-px Gaussian ("soft disk"), and
   radius 4 px saved as JPEG quality 85; the radius and width read, the disk's evidence per periodogram value, and
   which other blur model `restore` would name (`better_blur_model`).
2. Restoration (VAL, 256-px validation photos): blurred by a disk of RADII px (mirrored edges, noise 0.02, seed 1,
   8-bit; with --soft S then a Gaussian of S px), restored with the default sampler (seed 0) as `ncvsd restore`
   does a plain photo (noise level read):
   --task deblur-gauss (width read: what a user had), --task deblur-defocus (radius read) and with the true radius;
   beside them the input and the classical baseline with the radius read. PSNR / LPIPS-alex against the photo.

Writes OUT/reading.csv, OUT/restore.csv, OUT/summary.md and OUT/grid-r<radius>.jpg (per photo: clean, input,
then each restoration in the table's order).

Usage:  python benchmarks/defocus.py --out OUT [--read DIR] [--val DIR] [--radii 3,6] [--limit N]
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
from ncvsd_cli.blur_estimate import read_blur
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import better_blur_model, restore_image

SIZE = 256
BLURS = [("none", 0.0)] + [("disk", r) for r in (2.0, 4.0, 6.0, 8.0)] + [("gauss", s) for s in (1.0, 2.0, 3.0)] \
    + [("PIL", s) for s in (1.5, 3.0)] + [("soft disk", 4.0), ("disk JPEG85", 4.0)]


def square(path: Path, size: int = SIZE) -> Image.Image:
    im = Image.open(path).convert("RGB")
    s = min(im.size)
    left, top = (im.width - s) // 2, (im.height - s) // 2
    return im.crop((left, top, left + s, top + s)).resize((size, size), Image.LANCZOS)


def degraded(im: Image.Image, kind: str, amount: float, noise: float, soft: float = 0.0) -> torch.Tensor:
    """im blurred (mirrored edges; a disk then a Gaussian of `soft` px) plus noise (seed 1), quantised to 8 bits
    like a PNG (like a JPEG of quality 85 for "disk JPEG85")."""
    if kind == "PIL":
        im = im.filter(ImageFilter.GaussianBlur(amount))
    x = images.load_image(_png(im))
    blur = lambda task, **p: operators.create(task, tuple(x.shape[1:]), boundary="reflect", **p)
    if kind == "gauss":
        x = blur("deblur-gauss", sigma=amount)(x)
    elif kind != "none" and kind != "PIL":
        x = blur("deblur-defocus", radius=amount)(x)
        soft = 1.0 if kind == "soft disk" else soft
        x = blur("deblur-gauss", sigma=soft)(x) if soft else x
    y = x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    png = images.encode_image(y.clamp(-1, 1), "PNG")
    if kind == "disk JPEG85":
        buf = io.BytesIO()
        Image.open(io.BytesIO(png)).save(buf, "JPEG", quality=85)
        png = buf.getvalue()
    return images.load_image(png)


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def reading(folder: Path, limit: int | None) -> list[dict]:
    rows = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))[:limit]:
        im = square(path)
        for kind, amount in BLURS:
            for noise in (0.005, 0.02):
                r = read_blur(degraded(im, kind, amount, noise))
                rows.append({"image": path.stem, "blur": kind, "amount": amount, "noise": noise,
                             "radius_read": r.radius, "width_read": round(r.width, 3),
                             "nats_per_value": round(r.defocus_nats / r.frequencies, 5),
                             "better_model": better_blur_model(r) or ""})
                print(rows[-1], flush=True)
    return rows


#: Restorations compared: (name, task, params); None: no restoration (the input).
KERNELS = (("input", None, None), ("deblur-gauss, width read", "deblur-gauss", {}),
           ("deblur-defocus, radius read", "deblur-defocus", {}), ("deblur-defocus, true radius", "deblur-defocus",
                                                                   "true"),
           ("classical, radius read", "deblur-defocus", {"method": "classical"}))


def restoration(val: Path, radii: list[float], out: Path, soft: float = 0.0) -> list[dict]:
    rows = []
    for radius in radii:
        tiles = []
        for path in sorted(val.glob("*.png")):
            x = images.load_image(path)[:, :3]
            y = degraded(square(path, x.shape[-1]), "disk", radius, 0.02, soft)
            row = [x]
            for name, task, options in KERNELS:
                if task is None:
                    est = y
                else:
                    opts = {"params": {"radius": radius}} if options == "true" else dict(options)
                    est = restore_image(y, task, seed=0, **opts)[:1].clamp(-1, 1)
                unit, ref = images.to_unit(est), images.to_unit(x)
                rows.append({"image": path.stem, "radius": radius, "soft": soft, "restoration": name,
                             "psnr": round(float(psnr(unit, ref)[0]), 3),
                             "lpips": round(float(lpips_distance(unit, ref)[0]), 4)})
                row.append(est)
                print(rows[-1], flush=True)
            tiles.append(torch.cat(row, dim=3))
        name = f"grid-r{radius:g}" + (f"-soft{soft:g}" if soft else "") + ".jpg"
        Image.fromarray(images.to_uint8(torch.cat(tiles, dim=2))).save(out / name, quality=88)
    return rows


def _mean_range(values: list[float]) -> str:
    return f"{sum(values) / len(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def summary(read: list[dict], rest: list[dict]) -> str:
    lines = []
    if read:
        lines += ["## Reading (mean and range over the photos; both noise levels)", "",
                  ("| blur | radius read | width read | disk evidence per value | deblur-gauss notes defocus | "
                   "deblur-defocus notes a Gaussian |"), "|---|---|---|---|---|---|"]
        for kind, amount in BLURS:
            sel = [r for r in read if (r["blur"], r["amount"]) == (kind, amount)]
            per = [r["nats_per_value"] for r in sel]
            noted = lambda task, sel=sel: f"{sum(r['better_model'] == task for r in sel)}/{len(sel)}"
            lines.append(f"| {kind} {amount:g} | {_mean_range([r['radius_read'] for r in sel])} | "
                         f"{_mean_range([r['width_read'] for r in sel])} | {min(per):.4f} to {max(per):.4f} | "
                         f"{noted('deblur-defocus')} | {noted('deblur-gauss')} |")
    if rest:
        lines += ["", "## Restoration of the validation photos (PSNR dB / LPIPS-alex, means over the photos)", "",
                  "| disk radius (then a Gaussian of) | " + " | ".join(k[0] for k in KERNELS) + " |",
                  "|---" * (len(KERNELS) + 1) + "|"]
        for radius, soft in sorted({(r["radius"], r["soft"]) for r in rest}):
            cells = []
            for name, _, _ in KERNELS:
                sel = [r for r in rest if (r["radius"], r["soft"], r["restoration"]) == (radius, soft, name)]
                psnr_mean, lpips_mean = (sum(r[k] for r in sel) / len(sel) for k in ("psnr", "lpips"))
                cells.append(f"{psnr_mean:.2f} / {lpips_mean:.3f}")
            lines.append(f"| {radius:g}" + (f" (then {soft:g} px)" if soft else "") + " | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _typed(row: dict) -> dict:
    """A CSV row with numbers back from text."""
    def value(v: str):
        try:
            return float(v)
        except ValueError:
            return v
    return {k: value(v) for k, v in row.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--read", type=Path, help="photos for the reading table (any: the estimator fits nothing)")
    ap.add_argument("--val", type=Path, help="256-px validation photos (benchmarks/make_validation_set.py --whole)")
    ap.add_argument("--radii", default="3,6")
    ap.add_argument("--limit", type=int, help="at most this many photos of --read")
    ap.add_argument("--soft", type=float, default=0.0, help="restoration: a Gaussian of this std (px) after the disk")
    ap.add_argument("--append", action="store_true", help="add to OUT's CSV files (e.g. another --soft) and "
                    "summarise them all")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    read = reading(args.read, args.limit) if args.read else []
    rest = restoration(args.val, [float(r) for r in args.radii.split(",")], args.out, args.soft) if args.val else []
    for name, rows in (("reading", read), ("restore", rest)):
        path = args.out / f"{name}.csv"
        old = []
        if args.append and path.exists():
            with open(path, newline="") as fh:
                old = list(csv.DictReader(fh))
        if rows:
            with open(path, "w" if not old else "a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                if not old:
                    w.writeheader()
                w.writerows(rows)
        rows[:0] = [_typed(r) for r in old]
    (args.out / "summary.md").write_text(summary(read, rest))
    print(summary(read, rest))


if __name__ == "__main__":
    main()
