"""The camera-noise reading checked on photos it was not chosen on, other demosaicing, and the file's resolution.

`coarse_luma_noise`'s test (the luma's 4x4-means reading at most 1.4x its 2x2-means one) was chosen on the 106
`photos` training photos at 256 px with OpenCV's edge-aware demosaicing (`camera_noise.py --readings`). This runs
the same simulated camera (`camera_noise.camera`: linear light, RGGB mosaic, Poisson-Gaussian noise a*signal + b,
seed 1, demosaic, sRGB gamma, 8 bits, lossless) on every photo of PHOTOS not in --exclude (e.g. the 68 CC-BY-SA /
GPL photos of `build_photos.py --licences all`, never trained on nor used for the rule), in two views: the whole
photo as a 256-px square (as `ncvsd bench` reads it; downscaling packs texture into every pixel) and its centre
512-px crop at the file's own resolution (photos with a short side under 512 px have none); with three demosaicing
methods (`camera_noise.DEMOSAIC`: ea, bilinear, vng) at a = 0 (clean), 0.002 and 0.008. Per row: the true error
std, the colour reading, the 2x2 and 4x4 luma readings and the level `restore --task denoise` uses (the [-1, 1]
scale). Writes OUT/check.jsonl and OUT/check.md (per view and method: readings within 0.7-1.5x the true std, under
0.5x, over 1.5x; clean photos read above their colour reading by more than restore's 0.0025 rounding).
Needs OpenCV (`pip install opencv-python-headless`); not a dependency of ncvsd.
Usage:  python benchmarks/build_photos.py /tmp/all768 --licences all --short-side 768 --cache /tmp/photo-packages
        python benchmarks/camera_noise_check.py /tmp/all768 OUT --exclude ~/.cache/ncvsd/photos.zip
(--exclude: the training set as `build_photos.py` makes it by default, the photos the rule was chosen on.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from camera_noise import DEMOSAIC, LEVELS, camera, restore_level, srgb_to_linear

from ncvsd_cli.images import centre_crop, to_unit
from ncvsd_cli.measurement import estimate_luma_noise_sigma, estimate_noise_sigma

#: Sensor noise (a, b): clean, then the two levels of `camera_noise.LEVELS`.
CHECK_LEVELS = [(0.0, 0.0), *LEVELS]
#: Side of the native-resolution centre crop.
CROP = 512


def views(path: Path) -> dict:
    """{'whole256': the 256-px square bench reads, 'crop512': the centre CROP-px crop at the file's resolution (when
    its short side reaches it)}, (1, 3, h, w) in [-1, 1]."""
    from ncvsd_cli.bench.datasets import image_folder
    from ncvsd_cli.images import load_image

    out = {"whole256": image_folder(path, 256).images[0].load()}
    full = load_image(str(path))
    if min(full.shape[-2:]) >= CROP:
        out["crop512"] = centre_crop(full, CROP)
    return out


def check(photos: Path, exclude: Path | None, out: Path) -> list[dict]:
    from ncvsd_cli.bench.datasets import image_folder
    from ncvsd_cli.images import IMAGE_SUFFIXES

    skip = {im.id for im in image_folder(exclude, 256).images} if exclude else set()
    rows = []
    for path in sorted(f for f in photos.iterdir() if f.name.lower().endswith(IMAGE_SUFFIXES)):
        if path.stem in skip:
            continue
        for view, x in views(path).items():
            linear = srgb_to_linear(to_unit(x).squeeze(0).permute(1, 2, 0).double().numpy())
            for demosaic in DEMOSAIC:
                ref = camera(linear, 0, 0, None, demosaic)
                for a, b in CHECK_LEVELS:
                    y = camera(linear, a, b, np.random.default_rng(1), demosaic) if a else ref
                    row = {"photo": path.stem, "view": view, "demosaic": demosaic, "a": a,
                           "true": float((y - ref).std()), "colour": estimate_noise_sigma(y),
                           "luma2": estimate_luma_noise_sigma(y, coarse=True),
                           "luma4": estimate_luma_noise_sigma(y, scale=4), "read": restore_level(y)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    (out / "check.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def summary(rows: list[dict]) -> str:
    lines = [f"{len({r['photo'] for r in rows})} photos; readings of the level restore uses against the true std.",
             "", ("| view | demosaic | photos | a | within 0.7-1.5x | under 0.5x | over 1.5x | colour alone within |"
                  " 4x4 test passed | clean: read > colour + 0.0025 |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for view in ("whole256", "crop512"):
        for demosaic in DEMOSAIC:
            rs = [r for r in rows if r["view"] == view and r["demosaic"] == demosaic]
            if not rs:
                continue
            clean = [r for r in rs if not r["a"]]
            raised = f"{sum(r['read'] > r['colour'] + 0.0025 for r in clean)}/{len(clean)}"
            for a, _ in CHECK_LEVELS[1:]:
                noisy = [r for r in rs if r["a"] == a]
                read, colour = ([r[k] / r["true"] for r in noisy] for k in ("read", "colour"))
                passed = sum(r["luma4"] <= 1.4 * r["luma2"] for r in noisy)
                lines.append(f"| {view} | {demosaic} | {len(noisy)} | {a} | {sum(0.7 <= q <= 1.5 for q in read)} | "
                             f"{sum(q < 0.5 for q in read)} | {sum(q > 1.5 for q in read)} | "
                             f"{sum(0.7 <= q <= 1.5 for q in colour)} | {passed} | {raised} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", type=Path, help="folder of photos (build_photos.py's, OUT not ending in .zip)")
    p.add_argument("out", type=Path)
    p.add_argument("--exclude", type=Path, help="photos (folder or zip) to leave out: those the rule was chosen on")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    text = summary(check(a.photos, a.exclude, a.out))
    (a.out / "check.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
