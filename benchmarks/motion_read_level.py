"""The noise level a photo is deblurred at with a motion kernel read from it (`restore.shake_level`): a kernel read
is inexact, and its error, (k_read - k) * x, is noise to the likelihood too (0.7x the level read, as a known blur is
restored at, sharpened it into ripples).

Each photo's centre square at 256 px (`defocus.square`) is blurred with mirrored edges by a random-trajectory kernel
(the deblur-motion operator's, intensity 0.5, seed 200 + the photo's index + the kernel's size) of each --sizes px,
noise --noise on [-1, 1] (seed 1), 8-bit; its kernel is read in the 31-px square (`read_motion_kernel`, checked),
once (cached as OUT/<photo>-<size>.npz), and the photo restored with it (default sampler, seed 0) at each --levels
value: a number is sigma_y given, "true" the true kernel given (restored at 0.7x the level read, as a kernel given
is). Scores: PSNR, PSNR at the
best whole-pixel shift within 3 px (a kernel is read up to a shift: `motion_estimate.aligned_psnr`), LPIPS-alex;
"input" rows score the blurred photo. Rows go to OUT/rows.jsonl as they are measured; a rerun skips those done.
Usage: python benchmarks/motion_read_level.py DIR OUT [--stride 13] [--start 0] [--sizes 17,25,31]
       [--levels 0.015,0.02] [--noise 0.02]
       python benchmarks/motion_read_level.py ROWS.jsonl OUT --summary 0.015,0.02   (a table of the rows, no run)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from defocus import _png, square
from motion_estimate import aligned_psnr, blurred

from ncvsd_cli import images
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.motion_estimate import (
    MAX_TAPS_PER_SIDE,
    MIN_HALF_AGREEMENT,
    kernel_similarity,
    read_motion_kernel,
)
from ncvsd_cli.restore import restore_image
from operators.motion_kernel import motion_kernel


def summary(paths: list[Path], old: str, new: str) -> str:
    """Markdown: per reading `restore` takes (not `refused`: spread like noise, or its halves disagreeing), the
    input's and levels `old` / `new`'s PSNR at the best shift and LPIPS-alex, then their means and wins."""
    cases: dict[tuple, dict] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            cases.setdefault((r["image"], r["size"]), {})[r["sigma"]] = r
    lines = [f"| photo | shake px | similarity | agreement | input | {old} | {new} |", "|---|---:|---:|---:|---|---|---|"]
    pairs = []
    for (image, size), by in sorted(cases.items()):
        if not {"input", old, new} <= set(by) or by[old].get("refused"):
            continue
        a, b, x = by[old], by[new], by["input"]
        pairs.append((x["apsnr"], x["lpips"], a["apsnr"], a["lpips"], b["apsnr"], b["lpips"]))
        agreement = "-" if a["agr"] < 0 else f"{a['agr']:.2f}"
        lines.append(f"| {image} | {size} | {a['sim']:.2f} | {agreement} | {x['apsnr']:.2f} / {x['lpips']:.3f} | "
                     f"{a['apsnr']:.2f} / {a['lpips']:.3f} | {b['apsnr']:.2f} / {b['lpips']:.3f} |")
    m = np.mean(pairs, axis=0) if pairs else np.zeros(6)
    wins = sum(p[4] > p[2] for p in pairs), sum(p[5] < p[3] for p in pairs)
    lines.append(f"| mean of {len(pairs)} | | | | {m[0]:.2f} / {m[1]:.3f} | {m[2]:.2f} / {m[3]:.3f} | "
                 f"{m[4]:.2f} / {m[5]:.3f} |")
    return "\n".join(lines) + f"\n\n{new} over {old}: PSNR higher in {wins[0]}, LPIPS lower in {wins[1]} of {len(pairs)}.\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--stride", type=int, default=13, help="every Nth photo in name order")
    ap.add_argument("--start", type=int, default=0, help="skip the first N of those")
    ap.add_argument("--sizes", default="17,25,31")
    ap.add_argument("--levels", default="0.015,0.02", help="sigma_y values and/or 'true'")
    ap.add_argument("--noise", type=float, default=0.02)
    ap.add_argument("--summary", metavar="OLD,NEW", help="print the table of OUT/rows.jsonl (and DIR's, if it is a "
                    "rows file) comparing two levels, and measure nothing")
    a = ap.parse_args()
    if a.summary:
        old, new = a.summary.split(",")
        print(summary([p for p in (a.folder, a.out / "rows.jsonl") if p.suffix == ".jsonl" and p.exists()], old, new))
        return
    a.out.mkdir(parents=True, exist_ok=True)
    rows = a.out / "rows.jsonl"
    done = {(r["image"], r["size"], r["sigma"]) for r in map(json.loads, rows.read_text().splitlines())
            } if rows.exists() else set()
    paths = sorted(p for p in a.folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".webp"))[::a.stride]
    for index, path in enumerate(paths):
        if index < a.start:
            continue
        x = images.load_image(_png(square(path)))[:, :3]
        ref = images.to_unit(x)
        for size in map(int, a.sizes.split(",")):
            k = motion_kernel(size, 0.5, np.random.default_rng(200 + index + size))
            y = blurred(x, k, a.noise)
            cached = a.out / f"{path.stem}-{size}.npz"
            if not cached.exists():
                r = read_motion_kernel(y, 31)
                np.savez(cached, k=r.kernel, agr=-1 if r.agreement is None else r.agreement, ext=r.extent)
            z = np.load(cached)
            agreement, taps = float(z["agr"]), int((z["k"] > 0).sum())
            refused = 0 <= agreement < MIN_HALF_AGREEMENT or taps > MAX_TAPS_PER_SIDE * z["k"].shape[0]
            for level in ["input", *a.levels.split(",")]:
                if (path.stem, size, level) in done:
                    continue
                start = time.time()
                if level == "input":
                    est = y
                elif level == "true":
                    est = restore_image(y, "deblur-motion", seed=0, params={"kernel": k, "kernel_size": size})
                else:
                    est = restore_image(y, "deblur-motion", seed=0, params={"kernel": z["k"], "kernel_size": 31},
                                        sigma_y=float(level))
                unit = images.to_unit(est[:1].clamp(-1, 1))
                row = {"image": path.stem, "size": size, "sigma": level,
                       "sim": round(kernel_similarity(z["k"], k), 3), "agr": round(agreement, 3),
                       "ext": int(z["ext"]), "refused": bool(refused), "psnr": round(float(psnr(unit, ref)[0]), 2),
                       "apsnr": round(aligned_psnr(unit, ref), 2), "lpips": round(float(lpips_distance(unit, ref)[0]), 4),
                       "sec": round(time.time() - start, 1)}
                print(row, flush=True)
                with open(rows, "a") as fh:
                    fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
