"""The steepest-edge check of the blur reading (`ncvsd_cli.blur_estimate.edge_limit`): how often it changes a
reading, and whether for the better.

Each photo of PHOTOS is centre-cropped to --size px (Lanczos: sharp), blurred with mirrored edges by the deblur-gauss
/ deblur-defocus operator (BLURS; "none": unblurred), given independent Gaussian noise of each --noise std (the
[-1, 1] scale) in each channel (seed: the photo's index) and saved as "PNG" (quality 0: a quality-100 JPEG, 4:2:0,
re-saved as PNG; nearly lossless) or a JPEG of each --qualities
(Pillow, 4:2:0), then read as `restore` reads (with the disk fit; a JPEG through its coding too), without and with
the edge check. A reading is "off" outside 0.7-1.3x the truth (an unblurred one: above 1 px). Writes
OUT/readings.csv and OUT/summary.md (mean reading and count off per condition, without / with the check, and how
many readings the check capped).

With --edges, only the check's own statistic: `edge_width` at the true blur (a disk: half its radius) over the
photos, EDGE_BLURS, noise 0 / 0.08 / 0.16 and PNG / JPEG 90 / 50, as the ratio edge width / blur (sharp photos: the
width), with the luma noise that gates it; writes OUT/edges.csv and OUT/edges.md (fast: no spectrum fits).

Usage:  python benchmarks/blur_edges.py PHOTOS --out OUT [--limit N] [--noise 0,0.08] [--qualities 0,90,75] [--edges]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from blur_estimate import write_csv  # benchmarks/ is the script's folder
from lossy_blur_reading import degraded_files, off

from ncvsd_cli import blur_estimate, images

BLURS = [("none", 0.0), ("gauss", 1.0), ("gauss", 2.0), ("gauss", 3.0), ("gauss", 5.0), ("disk", 3.0), ("disk", 6.0)]
_fits = blur_estimate._fits
_memo: dict = {}


def _memo_fits(spectrum, defocus, coded):  # both readings of one file share their (slow) spectrum fits
    key = (float(spectrum.p.sum()), len(spectrum.p), defocus, coded is None)
    if key not in _memo:
        _memo[key] = _fits(spectrum, defocus, coded)
    return _memo[key]


blur_estimate._fits = _memo_fits


def readings(folder: Path, limit: int | None, noises: list[float], qualities: list[int], size: int) -> list[dict]:
    rows = []
    for stem, noise, quality, kind, amount, data in degraded_files(folder, limit, noises, qualities, BLURS, size):
        coding = images.jpeg_coding(data) if quality else None
        y, row = images.load_image(data), {"photo": stem, "noise": noise, "quality": quality, "blur": kind,
                                           "truth": amount}
        _memo.clear()
        for label, edges in (("off", False), ("on", True)):
            r = blur_estimate.read_blur(y, coding=coding, edges=edges)
            row[label] = round(r.radius if kind == "disk" else r.width, 3)
        row["capped"] = int(r.radius_capped if kind == "disk" else r.capped)
        rows.append(row)
        print(row, flush=True)
    return rows


EDGE_BLURS = [("none", 0.0), ("gauss", 1.0), ("gauss", 2.0), ("gauss", 3.0), ("gauss", 4.0), ("gauss", 6.0),
              ("disk", 4.0), ("disk", 8.0)]


def edge_rows(folder: Path, limit: int | None, size: int) -> list[dict]:
    rows = []
    for stem, noise, quality, kind, amount, data in degraded_files(folder, limit, [0.0, 0.08, 0.16], [0, 90, 50],
                                                                   EDGE_BLURS, size):
        y = images.load_image(data)
        std = amount / 2 if kind == "disk" else amount
        seen = blur_estimate.edge_width(y, std)
        rows.append({"photo": stem, "noise": noise, "quality": quality, "blur": kind, "truth": amount,
                     "luma_noise": round(blur_estimate._luma_noise(y[0].double().mean(0).numpy()), 4),
                     "edge_width": None if seen is None else round(seen, 3),
                     "limit": round(blur_estimate.edge_limit(y, std), 3)})
    return rows


def edge_summary(rows: list[dict]) -> str:
    lines = [("| noise | blur | truth | edge width / blur (sharp: width): min | median | max | no evidence | "
             "limit under the blur |"), "|---|---|---|---|---|---|---|---|"]
    for noise in (0.0, 0.08, 0.16):
        for kind, amount in EDGE_BLURS:
            sel = [r for r in rows if (r["noise"], r["blur"], r["truth"]) == (noise, kind, amount)]
            std = amount / 2 if kind == "disk" else amount
            v = [r["edge_width"] / (std or 1) for r in sel if r["edge_width"] is not None]
            under = sum(r["limit"] < std for r in sel)
            stats = f"{min(v):.2f} | {np.median(v):.2f} | {max(v):.2f}" if v else "- | - | -"
            lines.append(f"| {noise:g} | {kind} | {amount:g} | {stats} | {len(sel) - len(v)}/{len(sel)} | "
                         f"{under}/{len(sel)} |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> str:
    lines = ["| noise | quality | blur | truth | mean without | off without | mean with | off with | capped |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["noise"], r["quality"], r["blur"], r["truth"]), []).append(r)
    for (noise, quality, kind, truth), group in groups.items():
        mean = {k: np.mean([r[k] for r in group]) for k in ("off", "on")}
        bad = {k: f"{sum(off(r[k], truth) for r in group)}/{len(group)}" for k in ("off", "on")}
        lines.append(f"| {noise:g} | {quality or 'PNG'} | {kind} | {truth:g} | {mean['off']:.2f} | {bad['off']} | "
                     f"{mean['on']:.2f} | {bad['on']} | {sum(r['capped'] for r in group)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--noise", default="0,0.08")
    p.add_argument("--qualities", default="0,90,75", help="JPEG qualities; 0: PNG")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--edges", action="store_true", help="only the edge statistic (fast)")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.edges:
        rows = edge_rows(a.photos, a.limit, a.size)
        write_csv(rows, a.out / "edges.csv")
        (a.out / "edges.md").write_text(edge_summary(rows))
        print(edge_summary(rows))
        return
    rows = readings(a.photos, a.limit, [float(v) for v in a.noise.split(",")],
                    [int(v) for v in a.qualities.split(",")], a.size)
    write_csv(rows, a.out / "readings.csv")
    (a.out / "summary.md").write_text(summary(rows))
    print(summary(rows))


if __name__ == "__main__":
    main()
