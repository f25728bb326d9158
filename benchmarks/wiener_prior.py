"""The Wiener baseline's prior: fitted to each image (`classical.fitted_power`) against the fixed power laws
1/|f|^2 and 1/|f|^3, with the true kernel and noise; optionally (--warm) the default sampler warm-started from the
e = 2 and e = 3 estimates. Photos: each file's centre square resized to 256 px (Lanczos), blurred with mirrored
edges by a Gaussian (2.5 px), a disk (radius 4) and a 15-px horizontal line, Gaussian noise, 8-bit rounding.
Prints one JSON line per case (PSNR on [0, 1]; with --warm also LPIPS-alex).
Usage:  python benchmarks/wiener_prior.py PHOTO... [--noise 0.01 0.03] [--warm] [--seed 2] > rows.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import convolve

import operators
from ncvsd_cli.restore import restore_image
from ncvsd_cli.sampling import classical


def gaussian(s: float) -> np.ndarray:
    r = int(np.ceil(4 * s))
    g = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * s * s))
    return np.outer(g, g) / np.outer(g, g).sum()


def disk(radius: float, supersample: int = 8) -> np.ndarray:
    r = int(np.ceil(radius))
    n = 2 * r + 1
    yy, xx = (np.mgrid[0:n * supersample, 0:n * supersample] + 0.5) / supersample - r - 0.5
    m = (xx**2 + yy**2 <= radius**2).astype(float).reshape(n, supersample, n, supersample).mean((1, 3))
    return m / m.sum()


def line(length: int = 15) -> np.ndarray:
    k = np.zeros((length, length))
    k[length // 2] = 1
    return k / k.sum()


BLURS = {"gauss2.5": (gaussian(2.5), "deblur-gauss", {"sigma": 2.5}),
         "disc4": (disk(4), "deblur-defocus", {"radius": 4}),
         "line15": (line(15), "deblur-kernel", {"kernel": line(15)})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", nargs="+", type=Path)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.01, 0.03], help="noise std on [0, 1]")
    ap.add_argument("--warm", action="store_true", help="also the default sampler from the e = 2 / e = 3 starts")
    ap.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()
    rng, real = np.random.default_rng(args.seed), classical.wiener
    lpips = None
    if args.warm:
        from ncvsd_cli.metrics import LPIPS

        lpips = LPIPS()
    for path in args.photos:
        im = Image.open(path).convert("RGB")
        w, h = im.size
        s = min(w, h)
        box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
        clean = np.asarray(im.crop(box).resize((256, 256), Image.LANCZOS)) / 255.0
        padded = np.pad(clean, ((32, 32), (32, 32), (0, 0)), mode="reflect")
        x = torch.from_numpy(clean).permute(2, 0, 1)[None].float()
        for name, (k, task, params) in BLURS.items():
            blurred = np.stack([convolve(padded[..., c], k, mode="reflect") for c in range(3)], -1)[32:-32, 32:-32]
            for noise in args.noise:
                y = np.round(np.clip(blurred + rng.normal(0, noise, blurred.shape), 0, 1) * 255) / 255
                yt = torch.from_numpy(y * 2 - 1).float().permute(2, 0, 1)[None]
                row = {"file": path.name, "blur": name, "noise": noise}
                for tag, prior in (("e2", {"prior": "power-law", "exponent": 2.0}),
                                   ("e3", {"prior": "power-law", "exponent": 3.0}), ("fit", {"prior": "fitted"})):
                    classical.wiener = lambda *a, prior=prior, **kw: real(*a, **{**kw, **prior})
                    for method in ("wiener", *(["pnp-gd-warm"] if args.warm and tag != "fit" else [])):
                        out = (restore_image(yt, task, method=method, sigma_y=2 * noise, params=params, seed=0)[:1]
                               .clamp(-1, 1) + 1) / 2
                        mse = float(((out - x) ** 2).mean())
                        key = tag if method == "wiener" else f"default-{tag}"
                        row[key] = round(10 * np.log10(1 / mse), 3)
                        if lpips is not None and method != "wiener":
                            row[f"{key}-lpips"] = round(float(lpips(out, x)), 4)
                classical.wiener = real
                blur = operators.create(task, (3, 256, 256), boundary="reflect", **params)  # as restore builds it
                row["fitted_exponent"] = classical.fitted_power(blur, yt, 2 * noise)[1]
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
