"""sr4 of JPEG thumbnails: what the coding's luma and chroma errors each cost the restoration.

Each photo of PHOTOS (training photos: the finding chooses nothing, and held-out photos stay unseen) is cropped
to its centre 256 px, measured by sr4 without noise, rounded to 8 bits, saved as a JPEG (Pillow, 4:2:0 chroma) at
each quality and decoded as `restore` decodes it. Four inputs are restored with the default sampler (restoration seed 0, the
level read from the image with the file's quantisation floor, as for any plain photo): the decoded JPEG; the
lossless thumbnail with the JPEG's chroma (Cb, Cr) only; with the JPEG's luma only; and the lossless thumbnail
itself. Writes OUT/rows.csv and OUT/summary.md (means over the photos: PSNR and LPIPS-alex against the clean crop).

Usage:  python benchmarks/jpeg_chroma.py PHOTOS --out OUT [--limit 8] [--qualities 60,80]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from blur_estimate import write_csv  # benchmarks/ is the script's folder
from jpeg_inputs import as_jpeg
from kornia.color import rgb_to_ycbcr, ycbcr_to_rgb

from ncvsd_cli import images
from ncvsd_cli.measurement import degrade
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

VARIANTS = ("JPEG", "JPEG chroma only", "JPEG luma only")


def swap_chroma(luma_from: torch.Tensor, chroma_from: torch.Tensor) -> torch.Tensor:
    """The image (1, 3, H, W) in [-1, 1] with the luma (Y) of `luma_from` and the chroma (Cb, Cr) of `chroma_from`
    (clipped to the RGB cube, as a decoded file is)."""
    a, b = rgb_to_ycbcr(images.to_unit(luma_from)), rgb_to_ycbcr(images.to_unit(chroma_from))
    return ycbcr_to_rgb(torch.cat([a[:, :1], b[:, 1:]], 1)) * 2 - 1


def scores(out: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """PSNR (dB) and LPIPS-alex of a restoration (1, 3, H, W) in about [-1, 1] against the clean crop."""
    o, c = images.to_unit(out.clamp(-1, 1)), images.to_unit(clean)
    return {"psnr": round(float(psnr(o, c)[0]), 3), "lpips": round(float(lpips_distance(o, c)[0]), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=8, help="photos, spread evenly over the sorted folder")
    p.add_argument("--qualities", default="60,80")
    a = p.parse_args()
    files = sorted(f for f in a.photos.iterdir() if images.is_listed_image(f.name))
    files = files[:: max(1, len(files) // a.limit)][: a.limit]
    rows = []
    for f in files:
        clean = images.centre_crop(images.load_image(f)[:, :3], 256)
        y = ((degrade(clean, "sr4", sigma_y=0.0, seed=0).y.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1  # 8 bits
        rows.append({"photo": f.stem, "quality": "lossless", "input": "PNG",
                     **scores(restore_image(y, "sr4", seed=0)[:1], clean)})
        print(rows[-1], flush=True)
        for q in (int(v) for v in a.qualities.split(",")):
            decoded = as_jpeg(y, q)
            jpeg = decoded.tensor[:, :3]
            inputs = dict(zip(VARIANTS, (jpeg, swap_chroma(y, jpeg), swap_chroma(jpeg, y))))
            for name, inp in inputs.items():
                out = restore_image(inp, "sr4", seed=0, jpeg_sigma=decoded.jpeg_sigma)[:1]
                rows.append({"photo": f.stem, "quality": q, "input": name, **scores(out, clean)})
                print(rows[-1], flush=True)
    write_outputs(rows, a.out, f"{len(files)} photos of {a.photos.name}")


def write_outputs(rows: list[dict], out: Path, photos: str) -> None:
    """OUT/rows.csv and OUT/summary.md (means per quality and input) of `main`'s rows; also printed."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "rows.csv")
    title = f"# sr4 of JPEG thumbnails (256-px crops of {photos}, seed 0): PSNR / LPIPS-alex of the restoration, means"
    lines = [title, "", "| quality | input | PSNR | LPIPS |", "|---|---|---|---|"]
    for key in dict.fromkeys((r["quality"], r["input"]) for r in rows):
        sel = [r for r in rows if (r["quality"], r["input"]) == key]
        lines.append(f"| {key[0]} | {key[1]} | {np.mean([r['psnr'] for r in sel]):.2f} | "
                     f"{np.mean([r['lpips'] for r in sel]):.3f} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
