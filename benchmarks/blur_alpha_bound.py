"""The power-law slope bound of the blur-width fit (`ncvsd_cli.blur_estimate._NUISANCE_BOUNDS`, alpha) on JPEGs.

A Gaussian-blurred photo saved as JPEG was read "unblurred" (width 0) or far too narrow: the fit's refinement ran
the spectrum's slope alpha to its bound 6, where a sharp image with a steep spectrum and JPEG's falling error floor
mimics the blur. Natural images' power spectra fall as f^-alpha with alpha about 2 (1.4-4 is the fit's own start
grid). This script reads the width of the `builtin` training photos (centre 256-px crops of rocket, both
stereo_motorcycle views, camera, brick, grass; the held-out astronaut, coffee and chelsea are not used; sharp and
blurred by the deblur-gauss operator, mirrored edges, widths 1-4 px, noise 0.02, seed 0) saved as PNG and as JPEG
at qualities 60-95, with the upper bound on alpha at 6 (before) and 4 (now), and writes OUT/summary.md.

Usage:  python benchmarks/blur_alpha_bound.py --out benchmarks/blur-alpha-bound
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch
from PIL import Image

import operators
from ncvsd_cli import blur_estimate, images
from ncvsd_cli.training.data import builtin_photo

#: `builtin` training photos (held-out ones excluded): 6 views.
TRAINING = ("rocket", "stereo_motorcycle", "camera", "brick", "grass")
WIDTHS = (0.0, 1.0, 2.0, 3.0, 4.0)
CODINGS = ("png", 60, 75, 85, 95)


def encoded(x: torch.Tensor, coding) -> torch.Tensor:
    """x as the file a user has: 8-bit PNG, or JPEG of that quality, decoded again."""
    buf = io.BytesIO()
    Image.fromarray(images.to_uint8(x)).save(buf, format="PNG" if coding == "png" else "JPEG",
                                             **({} if coding == "png" else {"quality": coding}))
    return images.read_image(buf.getvalue()).tensor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    for bound in (6.0, 4.0):
        blur_estimate._NUISANCE_BOUNDS[0] = (0.5, bound)
        for name, photo in [(n, v) for n in TRAINING for v in builtin_photo(n)]:
            x = images.from_unit(torch.from_numpy(photo.copy()).permute(2, 0, 1)[None].float() / 255)
            x = images.centre_crop(x, 256)
            for width in WIDTHS:
                y = x if not width else operators.create("deblur-gauss", tuple(x.shape[1:]), sigma=width,
                                                         boundary="reflect").measure(
                    x, 0.02, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
                for coding in CODINGS:
                    rows.append((bound, name, width, coding, blur_estimate.estimate_gaussian_blur(encoded(y, coding))))
                print(bound, name, width, [f"{r[-1]:.2f}" for r in rows[-len(CODINGS):]], flush=True)
    lines = ["# Blur width read from PNG / JPEG photos, alpha bound 6 (before) vs 4 (now)", "",
             ("`builtin` training photos, centre 256-px crops (rocket, stereo_motorcycle x2, camera, brick, grass; "
              "held-out ones not used); deblur-gauss, mirrored edges, noise 0.02, seed 0. Cells: mean (min-max) over "
              "the 6 views of the width read, px."), "",
             "| alpha bound | true width | " + " | ".join(f"{c}" if c == "png" else f"JPEG q{c}" for c in CODINGS)
             + " |", "|---|---|" + "---|" * len(CODINGS)]
    for bound in (6.0, 4.0):
        for width in WIDTHS:
            cells = []
            for coding in CODINGS:
                got = [r[-1] for r in rows if r[0] == bound and r[2] == width and r[3] == coding]
                cells.append(f"{sum(got) / len(got):.2f} ({min(got):.2f}-{max(got):.2f})")
            lines.append(f"| {bound:g} | {width:g} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
