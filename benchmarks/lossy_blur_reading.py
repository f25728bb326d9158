"""The blur read from JPEGs (`ncvsd_cli.blur_estimate.read_blur`) with and without the file's coding modelled
(`coding=images.jpeg_coding(...)`, the spectrum passed through the file's own quantisation: `CodingGain`).

Each photo of PHOTOS (training photos: the reading's choices are made on them; `--val` once, reported apart) is
centre-cropped to --size px (default SIZE) (Lanczos), blurred with mirrored edges by the deblur-gauss / deblur-defocus operator
(BLURS; "none": unblurred), given independent Gaussian noise of each --noise std in each channel (seed: the photo's
index) and saved as a JPEG of each --qualities (Pillow, 4:2:0), then read both ways as `restore` reads (the Gaussian
and the disk fit): the Gaussian's width for "gauss" and "none", the disk's radius for "disk" ("coded_model": the
coding's model was read). A reading is "off" outside 0.7-1.3x the truth (an unblurred one:
above 1 px). Writes OUT/readings.csv and OUT/summary.md (means, counts off and seconds per reading).

With --restore N, the first N photos of PHOTOS with noise 0.04 at quality 75 and each of RESTORED's blurs are also
restored as `ncvsd restore` restores a plain JPEG (default sampler, seed 0, noise level and blur read), the blur read
without and with the coding: PSNR / LPIPS-alex against the unblurred crop, in OUT/restore.csv and the summary, and
OUT/grid-restore.jpg (per photo and blur: clean, JPEG, read plainly, read through the coding).

Usage:  python benchmarks/lossy_blur_reading.py PHOTOS --out OUT [--val DIR] [--limit N] [--noise 0.02,0.04]
        [--qualities 75,95] [--restore N] [--size 256]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
from blur_estimate import write_csv  # benchmarks/ is the script's folder
from defocus import square
from jpeg_chroma import scores
from PIL import Image

import operators
from ncvsd_cli import images
from ncvsd_cli.blur_estimate import read_blur
from ncvsd_cli.restore import restore_image

SIZE = 256
RESTORED = [("gauss", 2.0), ("disk", 5.0)]
BLURS = [("none", 0.0), ("gauss", 1.0), ("gauss", 2.0), ("gauss", 3.0), ("disk", 2.0), ("disk", 5.0), ("disk", 8.0)]


def crop(path: Path, size: int = SIZE) -> torch.Tensor:
    """The photo's centre square at `size` px (Lanczos, `defocus.square`), (1, 3, size, size) in [-1, 1]."""
    pixels = np.asarray(square(path, size), dtype=np.float32) / 255
    return images.from_unit(torch.from_numpy(pixels).permute(2, 0, 1)[None])


def jpeg_bytes(x: torch.Tensor, kind: str, amount: float, noise: float, quality: int, seed: int) -> bytes:
    """x blurred (mirrored edges), plus noise (`seed`), saved as a JPEG of `quality` (Pillow, 4:2:0)."""
    if kind != "none":
        task, param = ("deblur-gauss", "sigma") if kind == "gauss" else ("deblur-defocus", "radius")
        x = operators.create(task, tuple(x.shape[1:]), boundary="reflect", **{param: amount})(x)
    y = (x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(-1, 1)
    pixels = (images.to_unit(y)[0].permute(1, 2, 0) * 255).round().byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def degraded_files(folder: Path, limit: int | None, noises: list[float], qualities: list[int],
                   blurs: list[tuple[str, float]], size: int = SIZE):
    """Yields (photo's stem, noise, quality, blur kind, amount, file bytes) for the first `limit` photos of `folder`
    (by name) and each noise, quality (`jpeg_bytes`; 0: a PNG of the quality-100 JPEG, nearly lossless) and blur."""
    paths = sorted(p for p in folder.iterdir() if images.is_listed_image(p.name))[:limit]
    for index, path in enumerate(paths):
        x = crop(path, size)
        for noise in noises:
            for quality in qualities:
                for kind, amount in blurs:
                    data = jpeg_bytes(x, kind, amount, noise, quality or 100, index)
                    if not quality:
                        buf = io.BytesIO()
                        Image.open(io.BytesIO(data)).save(buf, format="PNG")
                        data = buf.getvalue()
                    yield path.stem, noise, quality, kind, amount, data


def readings(folder: Path, name: str, limit: int | None, noises: list[float], qualities: list[int],
             size: int = SIZE) -> list[dict]:
    """One row per photo, noise, quality and blur: the reading without and with the coding, and their seconds."""
    rows = []
    for stem, noise, quality, kind, amount, data in degraded_files(folder, limit, noises, qualities, BLURS, size):
        y, row = images.load_image(data), {"set": name, "photo": stem, "noise": noise, "quality": quality,
                                           "blur": kind, "truth": amount}
        for label, coding in (("plain", None), ("coded", images.jpeg_coding(data))):
            start = time.perf_counter()
            r = read_blur(y, coding=coding)  # with the disk fit, as `restore` reads
            row[label] = round(r.radius if kind == "disk" else r.width, 3)
            row[f"{label}_s"] = round(time.perf_counter() - start, 3)
        row["coded_model"] = int(r.coded)
        rows.append(row)
    return rows


def restorations(folder: Path, count: int, out: Path, size: int = SIZE) -> list[dict]:
    """One row per photo, blur and way of reading (PSNR / LPIPS of the restoration); writes OUT/grid-restore.jpg."""
    rows, tiles = [], []
    paths = sorted(p for p in folder.iterdir() if images.is_listed_image(p.name))[:count]
    for index, path in enumerate(paths):
        x = crop(path, size)
        for kind, amount in RESTORED:
            decoded = images.read_image(jpeg_bytes(x, kind, amount, 0.04, 75, index))
            task = "deblur-gauss" if kind == "gauss" else "deblur-defocus"
            tile = [x, decoded.tensor]
            for label, coding in (("plain", None), ("coded", decoded.jpeg_coding)):
                est = restore_image(decoded.tensor, task, seed=0, jpeg_sigma=decoded.jpeg_sigma,
                                    jpeg_coding=coding)[:1].clamp(-1, 1)
                rows.append({"photo": path.stem, "blur": kind, "truth": amount, "reading": label, **scores(est, x)})
                tile.append(est)
                print(rows[-1], flush=True)
            tiles.append(torch.cat(tile, dim=3))
    Image.fromarray(images.to_uint8(torch.cat(tiles, dim=2))).save(out / "grid-restore.jpg", quality=90)
    return rows


def restore_summary(rows: list[dict]) -> str:
    """Markdown: mean PSNR / LPIPS per blur and way of reading."""
    lines = ["## Restorations (noise 0.04, quality 75, default sampler, seed 0)", "",
             "| blur | truth | reading | PSNR | LPIPS | photos |", "|---|---|---|---|---|---|"]
    for kind, amount in RESTORED:
        for label in ("plain", "coded"):
            sel = [r for r in rows if (r["blur"], r["truth"], r["reading"]) == (kind, amount, label)]
            if sel:
                lines.append(f"| {kind} | {amount:g} | {label} | {np.mean([r['psnr'] for r in sel]):.2f} | "
                             f"{np.mean([r['lpips'] for r in sel]):.3f} | {len(sel)} |")
    return "\n".join(lines) + "\n"


def off(value: float, truth: float) -> bool:
    """A reading outside 0.7-1.3x the truth (an unblurred image's: above 1 px)."""
    return value > 1.0 if truth == 0 else not 0.7 * truth <= value <= 1.3 * truth


def summary(rows: list[dict]) -> str:
    """Markdown tables per set: mean reading and count off, plain vs coded, per noise, quality and blur."""
    lines = []
    for name in dict.fromkeys(r["set"] for r in rows):
        lines += [f"## {name}", "", ("| noise | quality | blur | truth | plain mean | plain off | coded mean "
                                     "| coded off | coded model | plain s | coded s |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            if r["set"] == name:
                groups.setdefault((r["noise"], r["quality"], r["blur"], r["truth"]), []).append(r)
        for (noise, quality, kind, truth), group in groups.items():
            mean = {key: np.mean([r[key] for r in group]) for key in ("plain", "coded", "plain_s", "coded_s")}
            count = {key: f"{sum(off(r[key], truth) for r in group)}/{len(group)}" for key in ("plain", "coded")}
            lines.append(f"| {noise:g} | {quality} | {kind} | {truth:g} | {mean['plain']:.2f} | {count['plain']} "
                         f"| {mean['coded']:.2f} | {count['coded']} | {sum(int(r['coded_model']) for r in group)} "
                         f"| {mean['plain_s']:.2f} | {mean['coded_s']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", type=Path, help="folder of training photos")
    p.add_argument("--val", type=Path, help="folder of validation photos (reported apart)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, help="photos per folder (first by name)")
    p.add_argument("--noise", default="0.04", help="noise stds on the [-1, 1] scale, comma-separated")
    p.add_argument("--qualities", default="75", help="JPEG qualities, comma-separated")
    p.add_argument("--size", type=int, default=SIZE, help="crop side (px)")
    p.add_argument("--restore", type=int, default=0, help="photos also restored both ways (noise 0.04, quality 75)")
    args = p.parse_args()
    noises, qualities = [float(v) for v in args.noise.split(",")], [int(v) for v in args.qualities.split(",")]
    rows = readings(args.photos, "training", args.limit, noises, qualities, args.size)
    if args.val:
        rows += readings(args.val, "validation", args.limit, noises, qualities, args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "readings.csv")
    text = summary(rows)
    if args.restore:
        restored = restorations(args.photos, args.restore, args.out, args.size)
        write_csv(restored, args.out / "restore.csv")
        text += "\n" + restore_summary(restored)
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
