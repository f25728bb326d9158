"""How often a clean photo's texture is read as noise: the level `restore` reads from clean lossless photos, at
their own resolution and downsized as an sr4 input is.

`coarse_luma_noise` (the luma's 2x2 means, where a camera's demosaicing leaves its noise) can read fine texture as
noise where the 4x4 means agree with it (benchmarks/camera-noise/README.md, "A limitation found later"). This reads
every photo of PHOTOS (not in --exclude) clean, as an 8-bit lossless image, in six views: three 256-px crops at the
file's own resolution (centre, top-left, bottom-right) and three downsized views of its centre square (short side
rounded down to a multiple of 4): `ncvsd degrade`'s sr4 operator at sigma_y 0, Pillow's bicubic to a quarter and to
half. Per row (the [-1, 1] scale): the colour reading (`estimate_noise_sigma`), the coarse luma reading where its
test passes (`coarse_luma_noise`, else 0) and the level `restore --task denoise` uses (`camera_noise.restore_level`).
Writes OUT/views.jsonl and OUT/views.md (per view: photos, levels above 0.02 and 0.05 and the largest; the rows
above 0.02). --jpeg Q: each view saved as a JPEG of quality Q (Pillow, 4:2:0) and read as `restore` reads a JPEG
(its quantisation and tables: the luma's readings, `Restorer.measurement`); OUT/views-q<Q>.jsonl, .md.
Usage:  python benchmarks/build_photos.py /tmp/all768 --licences all --short-side 768 --cache /tmp/photo-packages
        python benchmarks/clean_noise_views.py /tmp/all768 OUT [--exclude photos.zip] [--jpeg 85]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from camera_noise import as_tensor, restore_level  # benchmarks/ is the script's folder
from grey_noise import eight_bits
from PIL import Image

from ncvsd_cli.images import IMAGE_SUFFIXES
from ncvsd_cli.measurement import coarse_luma_noise, degrade, estimate_noise_sigma

#: The side of the native-resolution crops.
CROP = 256


def pixels(im: Image.Image) -> torch.Tensor:
    """An 8-bit RGB picture as (1, 3, h, w) in [-1, 1]."""
    return as_tensor(np.asarray(im, dtype=np.float64) / 255).float()


def views(path: Path) -> dict[str, torch.Tensor]:
    """The six views of the photo at `path` (module docstring), 8-bit values."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = min(w, h) // 4 * 4
    square = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    out = {}
    if min(w, h) >= CROP:
        for name, (left, top) in {"centre": ((w - CROP) // 2, (h - CROP) // 2), "top-left": (0, 0),
                                  "bottom-right": (w - CROP, h - CROP)}.items():
            out[name] = pixels(im.crop((left, top, left + CROP, top + CROP)))
    out["sr4 operator"] = eight_bits(degrade(pixels(square), "sr4", sigma_y=0.0).y)
    out["bicubic 1/4"] = pixels(square.resize((s // 4, s // 4), Image.BICUBIC))
    out["bicubic 1/2"] = pixels(square.resize((s // 2, s // 2), Image.BICUBIC))
    return out


def as_jpeg(y: torch.Tensor, quality: int):
    """y (1, 3, h, w) in [-1, 1] saved as an 8-bit JPEG of `quality` (Pillow, 4:2:0) and read back
    (`images.read_image`'s `DecodedImage`)."""
    import io

    from ncvsd_cli.images import read_image, to_unit

    buf = io.BytesIO()
    Image.fromarray((to_unit(y)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
        buf, "JPEG", quality=quality)
    return read_image(buf.getvalue())


def jpeg_level(y: torch.Tensor, quality: int) -> tuple[torch.Tensor, float]:
    """y saved as a JPEG of `quality` and decoded, and the noise level `restore --task denoise` reads from that file."""
    d = as_jpeg(y, quality)
    return d.tensor, restore_level(d.tensor, d)


def read(photos: Path, exclude: Path | None, jpeg: int | None = None) -> list[dict]:
    from ncvsd_cli.bench.datasets import image_folder

    skip = {im.id for im in image_folder(exclude, 256).images} if exclude else set()
    rows = []
    for path in sorted(f for f in photos.iterdir() if f.name.lower().endswith(IMAGE_SUFFIXES)):
        if path.stem in skip:
            continue
        for view, y in views(path).items():
            y, level = jpeg_level(y, jpeg) if jpeg else (y, restore_level(y))
            row = {"photo": path.stem, "view": view, "side": min(y.shape[-2:]), "colour": estimate_noise_sigma(y),
                   "coarse": coarse_luma_noise(y), "level": level}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def summary(rows: list[dict], jpeg: int | None = None) -> str:
    kind = f"JPEG quality {jpeg} (the level read the JPEG way; coarse: the lossless rule)" if jpeg else "8-bit lossless"
    lines = [f"Clean photos, {kind}: the level `restore --task denoise` reads ([-1, 1] scale).", "",
             "| view | photos | level > 0.02 | level > 0.05 | largest |", "|---|---|---|---|---|"]
    for view in dict.fromkeys(r["view"] for r in rows):
        levels = [r["level"] for r in rows if r["view"] == view]
        lines.append(f"| {view} | {len(levels)} | {sum(v > 0.02 for v in levels)} | {sum(v > 0.05 for v in levels)} "
                     f"| {max(levels):.4f} |")
    lines += ["", "Views read above 0.02:", "", "| photo | view | colour | coarse luma | level |", "|---|---|---|---|---|"]
    lines += [f"| {r['photo']} | {r['view']} | {r['colour']:.4f} | {r['coarse']:.4f} | {r['level']:.4f} |"
              for r in sorted(rows, key=lambda r: -r["level"]) if r["level"] > 0.02]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", type=Path, help="folder of photos (build_photos.py's, OUT not ending in .zip)")
    p.add_argument("out", type=Path)
    p.add_argument("--exclude", type=Path, help="photos (folder or zip) to leave out")
    p.add_argument("--jpeg", type=int, metavar="Q", help="read each view as a JPEG of this quality")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = read(a.photos, a.exclude, a.jpeg)
    name = f"views-q{a.jpeg}" if a.jpeg else "views"
    (a.out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = summary(rows, a.jpeg)
    (a.out / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
