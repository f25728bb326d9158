"""The noise floor of lossy sources, swept on validation photos only: each photo of VAL blurred by Pillow's
GaussianBlur(2), stored lossily (KIND webp: WebP at quality 60 and 90; palette: an adaptive 256-colour palette, as
GIF and palette PNG store it; avif: AVIF at quality 60 and 90 (Pillow); heic: HEIC at quality 60 and 90, coded by
pillow-heif), decoded, and deblurred by the default sampler (seed 0, the true width 2) at fixed
noise levels. Prints per variant the coding error's std, the colour and coarse-luma noise readings, then per level
the PSNR per photo and the mean PSNR / LPIPS-alex; writes the outputs to OUT.
Usage:  python benchmarks/lossy_floor.py VAL OUT webp > benchmarks/noisy-jpeg/webp-floor.md
        python benchmarks/lossy_floor.py VAL OUT palette > benchmarks/noisy-jpeg/palette-floor.md
        python benchmarks/lossy_floor.py VAL OUT avif (then heic) > benchmarks/noisy-jpeg/heif-floor.md
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from ncvsd_cli.measurement import estimate_luma_noise_sigma, estimate_noise_sigma
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

LEVELS = {"webp": (0.01, 0.015, 0.025, 0.035), "palette": (0.015, 0.025, 0.035, 0.05),
          "avif": (0.01, 0.015, 0.025, 0.035), "heic": (0.01, 0.015, 0.025, 0.035)}
VARIANTS = {"webp": ("quality 60", "quality 90"), "palette": ("adaptive 256",), "avif": ("quality 60", "quality 90"),
            "heic": ("quality 60", "quality 90")}


def stored(pic: Image.Image, variant: str, kind: str = "webp") -> Image.Image:
    """`pic` after lossy storage: WebP / AVIF / HEIC at the variant's quality, or an adaptive 256-colour palette."""
    if variant.startswith("quality"):
        buf, quality = io.BytesIO(), int(variant.split()[1])
        if kind == "heic":
            import pillow_heif

            pillow_heif.from_pillow(pic).save(buf, quality=quality)
            return pillow_heif.open_heif(io.BytesIO(buf.getvalue())).to_pillow()
        pic.save(buf, kind.upper(), quality=quality)
        return Image.open(io.BytesIO(buf.getvalue()))
    return pic.convert("P", palette=Image.ADAPTIVE, colors=256)


def tensor(pic: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(pic.convert("RGB"), np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


def main() -> None:
    val, out, kind = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    for variant in VARIANTS[kind]:
        res: dict = {}
        for f in sorted(val.glob("*.png")):
            clean = Image.open(f).convert("RGB")
            blurred = clean.filter(ImageFilter.GaussianBlur(2))
            y, x = tensor(stored(blurred, variant, kind)), (tensor(clean) + 1) / 2
            res.setdefault("err", []).append(float((y - tensor(blurred)).std()))
            res.setdefault("read", []).append(estimate_noise_sigma(y))
            res.setdefault("luma", []).append(estimate_luma_noise_sigma(y, coarse=True))
            for level in LEVELS[kind]:
                o = ((restore_image(y, "deblur-gauss", seed=0, sigma_y=level, params={"sigma": 2.0})[:1]
                      .clamp(-1, 1) + 1) / 2).float()
                res.setdefault(level, []).append((float(psnr(o, x)), float(lpips_distance(o, x))))
                Image.fromarray((o[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
                    out / f"{f.stem}-{kind}-{variant.replace(' ', '')}-{level}.png")
        print(variant, *(f"{k} {np.round(res.pop(k), 4)}" for k in ("err", "read", "luma")), flush=True)
        for level, v in res.items():
            print(variant, level, [round(a, 2) for a, _ in v],
                  f"{np.mean([a for a, _ in v]):.2f} / {np.mean([b for _, b in v]):.3f}", flush=True)

if __name__ == "__main__":
    main()
