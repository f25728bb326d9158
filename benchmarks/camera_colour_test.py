"""The colour test of the camera-noise reading: camera noise has colour at the 2x2 cells' scale, texture little.

`coarse_luma_noise` reads a lossless colour photo's noise on its luma's 2x2 means where the 4x4 means agree; clean
crops of grass, gravel or a stone wall at a photo's own resolution pass that test and read 0.08-0.49
(`clean_noise_views.py`). Each 2x2 cell of a Bayer mosaic takes its red, green and blue from sensor sites of its own,
so camera noise shows in the colour reading of the 2x2 means (`measurement.noise_sigma_on_means(y, 2)`, "colour2")
about as much as in the luma's ("l2"), while a photo's fine texture is mostly one of light. For every photo of PHOTOS
with a short side of 256 px or more, three 256-px crops at the file's resolution (centre, top-left, bottom-right),
clean (8 bits) and through the simulated camera of `camera_noise.camera` (seed 1) at a = 0.002 and 0.008 with each
demosaicing method of `camera_noise.DEMOSAIC`: the true error std, the colour reading, colour2, the luma readings at
1x1, 2x2 and 4x4 ("l1", "l2", "l4", the [-1, 1] scale) and "coarse", the 2x2 luma reading where the 4x4 test passes
(else 0); --white: white RGB noise of each std of WHITE (seed 1) instead. The summary (OUT/colour-test.md) splits
the photos into those of --train (the training photos the 4x4 test was chosen on; CAMERA_COLOUR_RATIO and
WHITE_COLOUR_RATIO were set on all of these rows, with margins, and the split shows each part apart) and the others: colour2 / l2 where the 4x4 reading raised the level, colour / colour2 where the tests pass,
the clean crops it raised, and the level read against the true std without and with the colour tests.
Needs OpenCV (`pip install opencv-python-headless`); not a dependency of ncvsd.
Usage:  python benchmarks/build_photos.py /tmp/all768 --licences all --short-side 768 --cache /tmp/photo-packages
        python benchmarks/camera_colour_test.py /tmp/all768 OUT --train ~/.cache/ncvsd/photos.zip
        (in parallel: --shard 0/2 and --shard 1/2, [--white], then OUT --train ... --summary OUT/rows-*.jsonl)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from camera_noise import DEMOSAIC, camera, srgb_to_linear  # benchmarks/ is the script's folder
from clean_noise_views import pixels
from grey_noise import eight_bits
from PIL import Image

from ncvsd_cli import measurement as M

CROPS = ("centre", "top-left", "bottom-right")
SIDE = 256
LEVELS = (0.002, 0.008)  # a; b = a / 500
#: Stds of the white RGB noise of --white (the [-1, 1] scale).
WHITE = (0.02, 0.05, 0.1, 0.2)


def rows_for(path: Path, white: bool = False) -> list[dict]:
    """The rows of one photo (module docstring); white: white RGB noise of each WHITE std instead of the camera."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    if min(w, h) < SIDE:
        return []
    corners = {"centre": ((w - SIDE) // 2, (h - SIDE) // 2), "top-left": (0, 0), "bottom-right": (w - SIDE, h - SIDE)}
    rows = []
    for view, (left, top) in corners.items():
        crop = im.crop((left, top, left + SIDE, top + SIDE))
        linear = srgb_to_linear(np.asarray(crop, dtype=np.float64) / 255)
        cases = [("white", s) for s in WHITE] if white else [("clean", 0.0)] + [(d, a) for d in DEMOSAIC for a in LEVELS]
        clean = eight_bits(pixels(crop))
        for demosaic, a in cases:
            if white:
                noise = torch.from_numpy(np.random.default_rng(1).normal(0, a, clean.shape)).float()
                y = eight_bits(clean + noise)
                true = float((y - clean).std())
            elif a:
                y = camera(linear, a, a / 500, np.random.default_rng(1), demosaic)
                true = float((y - camera(linear, 0, 0, None, demosaic)).std())
            else:
                y, true = clean, 0.0
            l2 = M.estimate_luma_noise_sigma(y, coarse=True)
            row = {"photo": path.stem, "view": view, "demosaic": demosaic, "a": a, "true": true,
                   "colour": M.estimate_noise_sigma(y), "colour2": M.noise_sigma_on_means(y, 2),
                   "l1": M.estimate_luma_noise_sigma(y), "l2": l2, "l4": M.estimate_luma_noise_sigma(y, scale=4),
                   "coarse": l2 if M.coarse_luma_is_noise(y, l2) else 0.0}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _quantiles(values: list[float]) -> str:
    return " / ".join(f"{q:.3f}" for q in np.quantile(values, [0, 0.01, 0.05, 0.5, 1])) if values else "-"


def summary(rows: list[dict], train: set[str]) -> str:
    ratio = M.CAMERA_COLOUR_RATIO
    raised = [r for r in rows if r["coarse"] > r["colour"] + 0.005]  # where the 2x2 luma reading set the level
    title = f"Colour test (CAMERA_COLOUR_RATIO = {ratio}): {len({r['photo'] for r in rows})} photos, {len(rows)} rows."
    what = ("colour2 / l2 where the 4x4 test passed and raised the level above the colour reading (quantiles 0 / 1 / "
            "5 / 50 / 100 %):")
    out = [title, "", what, "", "| photos | demosaic | rows | colour2 / l2 |", "|---|---|---|---|"]
    for part, keep in (("training", True), ("others", False)):
        for demosaic in DEMOSAIC:
            v = [r["colour2"] / r["l2"] for r in raised if r["a"] and r["demosaic"] == demosaic
                 and (r["photo"] in train) == keep]
            out.append(f"| {part} | {demosaic} | {len(v)} | {_quantiles(v)} |")
    over = ("colour / colour2 where the 4x4 and colour tests pass and l2 is above the colour reading (quantiles 0 / 1 /"
            f" 5 / 50 / 100 %; white noise, read by the colour reading, from WHITE_COLOUR_RATIO = {M.WHITE_COLOUR_RATIO}):")
    out += ["", over, "", "| noise | rows | colour / colour2 |", "|---|---|---|"]
    for demosaic in ("white", *DEMOSAIC):
        for a in sorted({r["a"] for r in rows if r["demosaic"] == demosaic}):
            v = [r["colour"] / max(r["colour2"], 1e-6) for r in rows if r["demosaic"] == demosaic and r["a"] == a
                 and r["coarse"] > r["colour"] and r["colour2"] >= ratio * r["l2"]]
            out.append(f"| {demosaic} {a} | {len(v)} | {_quantiles(v)} |")
    out += ["", "Clean crops whose level the 4x4 test raised:", "",
            "| photo | part | view | colour | l2 | colour2 / l2 | refused |", "|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in raised if not r["a"]), key=lambda r: -r["l2"]):
        out.append(f"| {r['photo']} | {'training' if r['photo'] in train else 'others'} | {r['view']} | "
                   f"{r['colour']:.4f} | {r['l2']:.4f} | {r['colour2'] / r['l2']:.3f} | {r['colour2'] < ratio * r['l2']} |")
    level = (f"Level read (the larger of the colour reading and coarse; with the tests, coarse only where colour2 >= "
             f"{ratio} l2 and colour < {M.WHITE_COLOUR_RATIO} colour2) against the true std:")
    out += ["", level, "",
            "| photos | demosaic | a | rows | within 0.7-1.5x: without / with | under 0.5x: without / with |",
            "|---|---|---|---|---|---|"]
    for part, keep in (("training", True), ("others", False)):
        for demosaic in ("white", *DEMOSAIC):
            for a in sorted({r["a"] for r in rows if r["demosaic"] == demosaic}):
                rs = [r for r in rows if r["demosaic"] == demosaic and r["a"] == a and (r["photo"] in train) == keep]
                if not rs:
                    continue
                without = [max(r["colour"], r["coarse"]) / r["true"] for r in rs]
                tested = [max(r["colour"], r["coarse"] if r["colour2"] >= ratio * r["l2"]
                              and r["colour"] < M.WHITE_COLOUR_RATIO * r["colour2"] else 0.0) / r["true"] for r in rs]
                within = [sum(0.7 <= q <= 1.5 for q in v) for v in (without, tested)]
                under = [sum(q < 0.5 for q in v) for v in (without, tested)]
                out.append(f"| {part} | {demosaic} | {a} | {len(rs)} | {within[0]} / {within[1]} | "
                           f"{under[0]} / {under[1]} |")
    return "\n".join(out) + "\n"


def shard_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments of a photo benchmark read in shards and summarised apart: PHOTOS OUT, --train, --summary,
    --shard (`shard_files`)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", type=Path, nargs="?", help="folder of photos (build_photos.py's, not a zip)")
    p.add_argument("out", type=Path)
    p.add_argument("--train", type=Path, help="the training photos (folder or zip): reported apart")
    p.add_argument("--summary", type=Path, nargs="+", help="summarise these rows files instead of reading photos")
    p.add_argument("--shard", default="0/1", help="I/N: read every N-th photo from the I-th (rows-I.jsonl)")
    return p


def shard_files(photos: Path, shard: str) -> tuple[int, list[Path]]:
    """(I, the photos of PHOTOS read by shard "I/N": every N-th from the I-th, sorted by name)."""
    from ncvsd_cli.images import IMAGE_SUFFIXES

    first, every = (int(v) for v in shard.split("/"))
    return first, sorted(f for f in photos.iterdir() if f.name.lower().endswith(IMAGE_SUFFIXES))[first::every]


def read_rows(files: list[Path]) -> list[dict]:
    """The rows of jsonl files."""
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


def main() -> None:
    p = shard_parser(__doc__)
    p.add_argument("--white", action="store_true", help="white RGB noise instead of the camera (rows-white-I.jsonl)")
    a = p.parse_args()
    from ncvsd_cli.bench.datasets import image_folder

    train = {im.id for im in image_folder(a.train, 256).images} if a.train else set()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.summary:
        rows = read_rows(a.summary)
    else:
        first, files = shard_files(a.photos, a.shard)
        rows = [r for f in files for r in rows_for(f, a.white)]
        (a.out / f"rows-{'white-' if a.white else ''}{first}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = summary(rows, train)
    (a.out / "colour-test.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
