"""The colour test of a JPEG's luma noise readings: strong noise keeps colour through the file's coding, texture has little.

A JPEG's coding strips most of a noise's colour, so `restore` reads a JPEG's noise on its luma: at the pixel scale
("fine") and on the 2x2 means ("coarse", where the 4x4 means agree, `coarse_luma_is_noise`). Clean fine texture
(grass, gravel, fur, trees) read 0.1-0.49 there (`clean_noise_views.py --jpeg 85`) and was smeared. Noise strong
enough to read that high keeps colour through the coding, texture of light does not: `measurement.coded_colour_backs`
keeps a luma reading only where the colour reading on the 2x2 means ("cells") is at least CODED_COLOUR_RATIO x what
white noise of that level keeps through the same tables (`coded_noise_colour`).

For every photo of PHOTOS, four views (`clean_noise_views.views`: 256-px crops at the file's resolution, centre,
top-left, bottom-right, and the sr4 operator's quarter-size input), each under every CASES entry: clean, white RGB
noise of a std (seed 0), or the simulated camera of `camera_noise.camera` (edge-aware demosaicing, seed 1) at
`camera_noise.LEVELS`, saved as a JPEG of a quality (Pillow, 4:2:0) and decoded. Per row (the [-1, 1] scale): the true
error std, the colour reading, cells, fine, coarse, "c4" (the 4x4 reading) and "level", what `restore --task denoise`
of the code that ran reads (`camera_noise.restore_level`). The summary (OUT/jpeg-colour.md) gives per case, for the
training photos (--train) and the others apart, the levels of the rule without the colour test ("before": the colour
reading, fine, coarse where the 4x4 test passes, `LOSSY_DENOISE_SCALE_RATIO`) and with it ("now": the same readings
through `coded_colour_backs`' rule): clean views read above 0.05 and 0.1; noisy ones within 0.7-1.5x the true std,
over 1.5x and under 0.7x; and how many rows' recorded level agrees with each rule (rows made before the test carry the
"before" level, later ones the "now" level). Needs OpenCV (`pip install opencv-python-headless`) for the camera.
Usage:  python benchmarks/build_photos.py /tmp/all768 --licences all --short-side 768 --cache /tmp/photo-packages
        python benchmarks/jpeg_colour_test.py /tmp/all768 OUT --shard 0/2   (and --shard 1/2 in parallel)
        python benchmarks/jpeg_colour_test.py OUT --train ~/.cache/ncvsd/photos.zip --summary OUT/rows-*.jsonl
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from camera_colour_test import read_rows, shard_files, shard_parser  # benchmarks/ is the script's folder
from camera_noise import LEVELS, camera, restore_level, srgb_to_linear
from clean_noise_views import as_jpeg, views
from PIL import Image

from ncvsd_cli import images
from ncvsd_cli import measurement as M

#: (kind, level, JPEG quality): level is the white noise's std, or the index into camera_noise.LEVELS.
CASES = [("clean", 0, 75), ("clean", 0, 85), ("clean", 0, 95), ("white", 0.03, 85), ("white", 0.06, 85),
         ("white", 0.1, 85), ("white", 0.05, 75), ("white", 0.05, 95), ("camera", 0, 85), ("camera", 1, 85),
         ("camera", 1, 95)]
#: The views read (`clean_noise_views.views`' names).
VIEWS = ("centre", "top-left", "bottom-right", "sr4 operator")


def rows_for(path: Path) -> list[dict]:
    """The rows of one photo (module docstring)."""
    rows = []
    for view, clean in ((v, y) for v, y in views(path).items() if v in VIEWS):
        linear = srgb_to_linear(images.to_unit(clean)[0].permute(1, 2, 0).double().numpy())
        for kind, level, quality in CASES:
            if kind == "white":
                noise = level * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
                y = (images.to_unit((clean + noise).clamp(-1, 1)) * 255).round() / 127.5 - 1
                reference = clean
            else:
                y = clean if kind == "clean" else camera(linear, *LEVELS[level], np.random.default_rng(1))
                reference = clean if kind == "clean" else camera(linear, 0, 0, None)
            d = as_jpeg(y, quality)
            z = d.tensor
            rows.append({"photo": path.stem, "view": view, "kind": kind, "lev": level, "q": quality,
                         "true": float((y - reference).std()), "colour": M.estimate_noise_sigma(z),
                         "cells": M.cell_colour(z),
                         "fine": M.estimate_luma_noise_sigma(z), "coarse": M.estimate_luma_noise_sigma(z, coarse=True),
                         "c4": M.estimate_luma_noise_sigma(z, scale=4), "level": restore_level(z, d)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


#: --chroma: (demosaicing, camera_noise.LEVELS index) x chroma blur (px, in-camera noise reduction) x subsampling
#: (Pillow's: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0) x quality, on each photo's centre crop.
CHROMA_CAMERAS, CHROMA_BLURS, SUBSAMPLINGS, CHROMA_QUALITIES = (("ea", 1), ("vng", 0), ("vng", 1)), (0, 2), (0, 1, 2), (85, 95)


def chroma_rows_for(path: Path) -> list[dict]:
    """--chroma rows of one photo: camera noise whose colour a camera's pipeline smoothed (VNG) or removed (chroma
    blurred in YCbCr), JPEG at each subsampling; the level `restore --task denoise` reads with the file's coding
    ("level") and without it ("without": no colour test)."""
    from PIL import ImageFilter

    from ncvsd_cli.restore import RestoreOptions, Restorer

    restorer = Restorer.from_options(RestoreOptions(task="denoise").validate(), load=False, quiet=True)
    clean = views(path).get("centre")
    if clean is None:
        return []
    linear = srgb_to_linear(images.to_unit(clean)[0].permute(1, 2, 0).double().numpy())
    rows = []
    for demosaic, level in CHROMA_CAMERAS:
        y = camera(linear, *LEVELS[level], np.random.default_rng(1), demosaic=demosaic)
        true = float((y - camera(linear, 0, 0, None, demosaic=demosaic)).std())
        rgb = Image.fromarray((images.to_unit(y)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        for blur in CHROMA_BLURS:
            luma, cb, cr = rgb.convert("YCbCr").split()
            im = Image.merge("YCbCr", (luma, *(c.filter(ImageFilter.GaussianBlur(blur)) for c in (cb, cr)))).convert(
                "RGB") if blur else rgb
            for sub in SUBSAMPLINGS:
                for quality in CHROMA_QUALITIES:
                    buf = io.BytesIO()
                    im.save(buf, "JPEG", quality=quality, subsampling=sub)
                    d = images.read_image(buf.getvalue())
                    level_of = [restorer.measurement(d.tensor, "denoise", jpeg_sigma=d.jpeg_sigma, jpeg_coding=c).sigma_y
                                for c in (d.jpeg_coding, None)]
                    rows.append({"photo": path.stem, "demosaic": demosaic, "lev": level, "blur": blur, "sub": sub,
                                 "q": quality, "true": true, "level": level_of[0], "without": level_of[1]})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def chroma_summary(rows: list[dict]) -> str:
    """--chroma rows: per case, the levels within 0.7-1.5x / under 0.7x the true std without and with the test."""
    head = "| demosaicing | a | chroma blur | subsampling | quality | views | median true | largest without | 0.7-1.5x |"
    out = [(f"{len(rows)} rows, {len({r['photo'] for r in rows})} photos (centre crops): camera noise through a "
            "JPEG, `restore --task denoise` without the colour test / with it."), "",
           head + " under 0.7x |", "|---|---|---|---|---|---|---|---|---|---|"]
    for case in dict.fromkeys((r["demosaic"], r["lev"], r["blur"], r["sub"], r["q"]) for r in rows):
        rs = [r for r in rows if (r["demosaic"], r["lev"], r["blur"], r["sub"], r["q"]) == case]
        within, under = ([sum(ok(r[k] / r["true"]) for r in rs) for k in ("without", "level")]
                         for ok in (lambda q: 0.7 <= q <= 1.5, lambda q: q < 0.7))
        out.append(f"| {case[0]} | {LEVELS[case[1]][0]} | {case[2]} | {('4:4:4', '4:2:2', '4:2:0')[case[3]]} | "
                   f"{case[4]} | {len(rs)} | {np.median([r['true'] for r in rs]):.3f} | "
                   f"{max(r['without'] for r in rs):.3f} | {within[0]} / {within[1]} | {under[0]} / {under[1]} |")
    return "\n".join(out) + "\n"


def rule_levels(r: dict, codings: dict[int, images.JpegCoding]) -> tuple[float, float]:
    """(before, now): the level `restore --task denoise` takes from a row's readings without and with the colour
    test (`coded_colour_backs`' rule on the recorded cells), rounded to NOISE_STEP as restore rounds it."""
    from ncvsd_cli.restore import NOISE_STEP

    coarse_ok = 0 < r["coarse"] and 0 < r["c4"] <= M.LOSSY_DENOISE_SCALE_RATIO * r["coarse"]  # c4 0: too small
    levels = [v for v in [r["fine"]] + ([r["coarse"]] if coarse_ok else []) if v > r["colour"]]
    backed = [v for v in levels if v < M.CODED_COLOUR_MIN_LEVEL
              or r["cells"] >= M.CODED_COLOUR_RATIO * M.coded_noise_colour(codings[r["q"]], v)]
    return tuple(round(round(max([r["colour"], *vs]) / NOISE_STEP) * NOISE_STEP, 4) for vs in (levels, backed))


def summary(rows: list[dict], train: set[str]) -> str:
    codings = {q: as_jpeg(torch.zeros(1, 3, 16, 16), q).jpeg_coding for q in {r["q"] for r in rows}}
    for r in rows:
        r["before"], r["now"] = rule_levels(r, codings)
    agree = {k: sum(abs(r["level"] - r[k]) < 1e-6 for r in rows) for k in ("before", "now")}
    out = [(f"{len(rows)} rows, {len({r['photo'] for r in rows})} photos; the recorded level equals the rule before "
            f"in {agree['before']}, now in {agree['now']}."), "",
           "Clean JPEGs (levels read, before / now):", "",
           "| photos | quality | views | > 0.05 | > 0.1 | largest |", "|---|---|---|---|---|---|"]
    parts = (("training", True), ("others", False))
    cases = list(dict.fromkeys((r["kind"], r["lev"], r["q"]) for r in rows))
    for part, keep in parts:
        for kind, lev, q in (c for c in cases if c[0] == "clean"):
            rs = [r for r in rows if (r["kind"], r["lev"], r["q"]) == (kind, lev, q) and (r["photo"] in train) == keep]
            if not rs:
                continue
            cells = [f"{sum(r[k] > t for r in rs)}" for t in (0.05, 0.1) for k in ("before", "now")]
            out.append(f"| {part} | {q} | {len(rs)} | {cells[0]} / {cells[1]} | {cells[2]} / {cells[3]} | "
                       f"{max(r['before'] for r in rs):.3f} / {max(r['now'] for r in rs):.3f} |")
    out += ["", "Noisy JPEGs (level / true std, before / now; camera: a = camera_noise.LEVELS[level]):", "",
            "| photos | noise | quality | views | median true | 0.7-1.5x | over 1.5x | under 0.7x |",
            "|---|---|---|---|---|---|---|---|"]
    for part, keep in parts:
        for kind, lev, q in (c for c in cases if c[0] != "clean"):
            rs = [r for r in rows if (r["kind"], r["lev"], r["q"]) == (kind, lev, q) and (r["photo"] in train) == keep]
            if not rs:
                continue
            counts = [f"{sum(lo <= r['before'] / r['true'] < hi for r in rs)} / "
                      f"{sum(lo <= r['now'] / r['true'] < hi for r in rs)}" for lo, hi in ((0.7, 1.5), (1.5, 1e9), (0, 0.7))]
            name = f"white {lev}" if kind == "white" else f"camera a={LEVELS[lev][0]}"
            out.append(f"| {part} | {name} | {q} | {len(rs)} | {np.median([r['true'] for r in rs]):.3f} | "
                       f"{' | '.join(counts)} |")
    out += ["", "Clean views still read above 0.05 now:", "",
            "| photo | view | quality | cells | fine | coarse | c4 | before | now |", "|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['photo']} | {r['view']} | {r['q']} | {r['cells']:.4f} | {r['fine']:.4f} | {r['coarse']:.4f} | "
            f"{r['c4']:.4f} | {r['before']:.4f} | {r['now']:.4f} |"
            for r in sorted(rows, key=lambda r: -r["now"]) if r["kind"] == "clean" and r["now"] > 0.05]
    return "\n".join(out) + "\n"


def main() -> None:
    p = shard_parser(__doc__)
    p.add_argument("--chroma", action="store_true", help="camera noise with smoothed colour (rows-chroma-I.jsonl)")
    a = p.parse_args()
    from ncvsd_cli.bench.datasets import image_folder

    a.out.mkdir(parents=True, exist_ok=True)
    if not a.summary:
        first, files = shard_files(a.photos, a.shard)
        rows = [r for f in files for r in (chroma_rows_for(f) if a.chroma else rows_for(f))]
        (a.out / f"rows-{'chroma-' if a.chroma else ''}{first}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return
    train = {im.id for im in image_folder(a.train, 256).images} if a.train else set()
    rows = read_rows(a.summary)
    text = chroma_summary(rows) if a.chroma else summary(rows, train)
    (a.out / ("camera-chroma.md" if a.chroma else "jpeg-colour.md")).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
