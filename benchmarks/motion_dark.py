"""Camera shake read from underexposed photos: the reading with and without the low-contrast luma scaling
(`ncvsd_cli.motion_estimate.MIN_CONTRAST`, MAX_STRETCH).

Eight of scikit-image's photos (astronaut, coffee, chelsea, rocket, camera, immunohistochemistry,
hubble_deep_field, retina; centre squares at 256 px, Lanczos), exposed at EXPOSURES (the [0, 1] image times the
factor: 1.0, 0.3, 0.12), blurred with mirrored edges by a random-trajectory kernel of 21 px (the deblur-motion
operator's, seed 100 + the photo's index) plus noise 0.01 on the [-1, 1] scale (seed 1), 8-bit; read in the default
31-px square as `restore` does, with the scaling (MIN_CONTRAST as shipped) and without it (MIN_CONTRAST 0).
Similarity: `kernel_similarity` with the true kernel (1 = the same path); reliable: taken by `restore`.

Writes OUT/reading.csv and OUT/summary.md.   Usage:  python benchmarks/motion_dark.py --out OUT
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from motion_estimate import blurred, true_kernel
from PIL import Image

import ncvsd_cli.motion_estimate as motion

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "hubble_deep_field", "retina"]
EXPOSURES = (1.0, 0.3, 0.12)


def photo(name: str) -> torch.Tensor:
    import skimage.data

    im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    s = min(im.size)
    left, top = (im.width - s) // 2, (im.height - s) // 2
    im = im.crop((left, top, left + s, top + s)).resize((256, 256), Image.LANCZOS)
    return torch.from_numpy(np.array(im)).permute(2, 0, 1).float()[None] / 127.5 - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    shipped, rows = motion.MIN_CONTRAST, []
    for i, name in enumerate(PHOTOS):
        x, kernel = photo(name), true_kernel(21, i)
        for exposure in EXPOSURES:
            y = blurred((x + 1) * exposure - 1, kernel, 0.01)
            for scaled in (False, True):
                motion.MIN_CONTRAST = shipped if scaled else 0.0
                r = motion.read_motion_kernel(y)
                rows.append({"photo": name, "exposure": exposure, "scaled": scaled,
                             "similarity": round(motion.kernel_similarity(kernel, r.kernel), 3),
                             "extent": r.extent, "reliable": r.reliable})
                print(rows[-1], flush=True)
    motion.MIN_CONTRAST = shipped
    with open(out / "reading.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| exposure | luma scaling | similarity (mean) | reliable |", "|---:|---|---:|---:|"]
    for exposure in EXPOSURES:
        for scaled in (False, True):
            sel = [r for r in rows if r["exposure"] == exposure and r["scaled"] == scaled]
            lines.append(f"| {exposure} | {'on' if scaled else 'off'} | "
                         f"{np.mean([r['similarity'] for r in sel]):.3f} | "
                         f"{sum(r['reliable'] for r in sel)} / {len(sel)} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
