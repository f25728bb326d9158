"""Transparency carried through `restore` (`images.uncomposite`, `measurement.output_alpha`) against the alpha merely
attached to the restoration, as a cut-out shows on a dark page.

Each photo of PHOTOS (the first --limit by name) is centre-cropped to --size px (Lanczos: the truth), shrunk 4x
(Pillow bicubic) and cut out by a disk with a soft 3-px rim (alpha 1 inside, 0 outside); the cut-out, composited
on white as `restore` reads it, is restored by sr4 as `ncvsd restore --task sr4` restores a plain PNG (default
sampler, seed 0, noise level read). Its alpha upscaled as the command does, two outputs are compared with the truth
given the same alpha: "carried" (the colour un-composited from white, what restore writes) and "attached" (the
composite on white with the alpha attached). The error is that of the colour as shown, alpha |c - t| (8-bit
levels; the same over any background, which adds (1 - alpha) of itself to both), averaged over the rim (0 < alpha
< 1) and over every visible pixel; "rim_clipped" is the fraction of rim pixels where the restoration is darker than
their opacity allows on white (a channel of c clipped to 0: the model's edge and the bicubic alpha disagree). Writes
OUT/rows.csv, OUT/summary.md and OUT/grid.jpg (per photo: carried, attached, truth, on black).

Usage:  python benchmarks/alpha_fringe.py PHOTOS --out OUT [--limit 6] [--size 384]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from defocus import square  # benchmarks/ is the script's folder
from PIL import Image

from ncvsd_cli import images
from ncvsd_cli.measurement import measurement_from_image, output_alpha
from ncvsd_cli.restore import restore_image

RIM_PX = 3.0


def cut_out(size: int) -> torch.Tensor:
    """A centred disk's opacity (1, 1, size, size) in [0, 1]: 1 within 0.42 size - RIM_PX px of the centre, falling
    linearly to 0 over RIM_PX px, 8-bit rounded (as a PNG stores it)."""
    yy, xx = np.mgrid[:size, :size] + 0.5
    r = np.hypot(yy - size / 2, xx - size / 2)
    a = np.clip((0.42 * size - r) / RIM_PX, 0.0, 1.0)
    return torch.from_numpy(np.round(a * 255) / 255).float()[None, None]


def on_black(path: Path, size: int) -> tuple[dict[str, float], np.ndarray]:
    """The errors of one photo (`carried_rim`, `carried_visible`, `attached_rim`, `attached_visible`) and its row of
    the grid (carried, attached, truth on black; H, 3W, 3 in 8-bit levels)."""
    big = square(path, size)
    truth = np.asarray(big, dtype=np.float64)
    small = images.from_unit(torch.from_numpy(np.asarray(big.resize((size // 4, size // 4), Image.BICUBIC),
                                                         dtype=np.float32) / 255).permute(2, 0, 1)[None])
    alpha = cut_out(size // 4)
    y = small * alpha + (1 - alpha)  # composited on white, as read_image reads the cut-out
    x = restore_image(y, "sr4", seed=0)[:1]
    a_out = output_alpha(alpha, measurement_from_image(y, "sr4").operator())
    rgba = images.uncomposite(x, a_out).astype(np.float64)
    a = rgba[..., 3:] / 255
    carried, attached = rgba[..., :3] * a, images.to_uint8(x).astype(np.float64) * a
    rim, visible = (a[..., 0] > 0) & (a[..., 0] < 1), a[..., 0] > 0
    errors = {f"{name}_{where}": round(float(np.abs(img - truth * a)[mask].mean()), 2)
              for name, img in (("carried", carried), ("attached", attached))
              for where, mask in (("rim", rim), ("visible", visible))}
    clipped = (images.to_unit(x[0]).permute(1, 2, 0).double().numpy() < 1 - a - 0.5 / 255).any(-1)
    errors["rim_clipped"] = round(float(clipped[rim].mean()), 3)
    return errors, np.concatenate([carried, attached, truth * a], axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=6)
    p.add_argument("--size", type=int, default=384, help="output side in px (a multiple of 4)")
    a = p.parse_args()
    files = sorted(f for f in a.photos.iterdir() if images.is_listed_image(f.name))[: a.limit]
    a.out.mkdir(parents=True, exist_ok=True)
    rows, grid = [], []
    for f in files:
        errors, row = on_black(f, a.size)
        rows.append({"photo": f.stem, **errors})
        grid.append(row)
        print(rows[-1], flush=True)
    with open(a.out / "rows.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    Image.fromarray(np.concatenate(grid).round().astype(np.uint8)).save(a.out / "grid.jpg", quality=90)
    keys = [k for k in rows[0] if k != "photo"]
    means = {k: np.mean([r[k] for r in rows]) for k in keys}
    lines = [f"# Transparency through sr4: {len(rows)} photos of {a.photos.name}, {a.size} px, seed 0", "",
             ("Mean absolute error of the colour as shown, alpha |c - t|, 8-bit levels (rim: 0 < alpha < 1; visible: "
              "alpha > 0); rim_clipped: the fraction of rim pixels darker than their opacity allows."), "",
             "| photo | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {r['photo']} | " + " | ".join(f"{r[k]:.3g}" for k in keys) + " |" for r in rows]
    lines += ["| **mean** | " + " | ".join(f"**{means[k]:.3g}**" for k in keys) + " |", ""]
    (a.out / "summary.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
