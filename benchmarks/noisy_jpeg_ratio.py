"""The 4x4 / 2x2 luma-reading bound for denoising a lossy file (`measurement.LOSSY_DENOISE_SCALE_RATIO`).

Photos: six views of scikit-image's training photos (`ncvsd_cli.training.data.BUILTIN_TRAIN`: rocket, both
stereo_motorcycle views, hubble_deep_field, immunohistochemistry, retina; never the held-out or validation photos),
centre square resized to 256 px. Noise: white, std 0-0.08 on the [-1, 1] scale, seed 0, then JPEG quality 75 / 85 /
90. Per file: the luma readings (finest, 2x2 and 4x4 means) and their ratio, the level `restore --task denoise`
takes with the bound 1.4 (before) and 2.0 (now), and the PSNR (dB, against the clean photo) of the default
denoiser's one sample at each level (restoration seed 0).
Usage:  python benchmarks/noisy_jpeg_ratio.py > benchmarks/noisy-jpeg/ratio.md
"""

from __future__ import annotations

import io

import numpy as np
import skimage.data
import torch
from PIL import Image
from skimage.transform import resize

from ncvsd_cli import images, measurement
from ncvsd_cli.metrics import psnr
from ncvsd_cli.restore import RestoreOptions, Restorer, restore_image


def photos() -> dict[str, np.ndarray]:
    raw = {"rocket": skimage.data.rocket(), "moto-left": skimage.data.stereo_motorcycle()[0],
           "moto-right": skimage.data.stereo_motorcycle()[1], "hubble": skimage.data.hubble_deep_field(),
           "immuno": skimage.data.immunohistochemistry(), "retina": skimage.data.retina()}
    out = {}
    for name, im in raw.items():
        h, w = im.shape[:2]
        s = min(h, w)
        out[name] = resize(im[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s, :3], (256, 256),
                           anti_aliasing=True)
    return out


def level(restorer: Restorer, y: torch.Tensor, jpeg_sigma: float | None, bound: float) -> float:
    saved = measurement.LOSSY_DENOISE_SCALE_RATIO
    measurement.LOSSY_DENOISE_SCALE_RATIO = bound
    try:
        return float(restorer.measurement(y, "denoise", jpeg_sigma=jpeg_sigma).sigma_y)
    finally:
        measurement.LOSSY_DENOISE_SCALE_RATIO = saved


def main() -> None:
    rng = np.random.default_rng(0)
    restorer = Restorer.from_options(RestoreOptions(task="denoise").validate(), load=False)
    print("| photo | noise | quality | fine | 2x2 | 4x4 | ratio | level before | level now | PSNR input | PSNR before "
          "| PSNR now |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    gains = []
    for name, x in photos().items():
        clean = torch.from_numpy(x.transpose(2, 0, 1)).float()[None] * 2 - 1  # the [-1, 1] scale
        for sigma in (0.0, 0.03, 0.05, 0.08):
            noisy = np.clip(x + rng.normal(0, sigma / 2, x.shape), 0, 1)
            for quality in (75, 85, 90):
                buf = io.BytesIO()
                Image.fromarray((noisy * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=quality)
                d = images.read_image(buf.getvalue())
                y = d.tensor[None] if d.tensor.dim() == 3 else d.tensor
                fine, c2, c4 = (measurement.estimate_luma_noise_sigma(y, **k) for k in ({}, {"coarse": True},
                                                                                       {"scale": 4}))
                before, now = (level(restorer, y, d.jpeg_sigma, b) for b in (1.4, 2.0))
                scores = {}
                for lv in {before, now}:
                    out = restore_image(y, "denoise", sigma_y=lv, seed=0).clamp(-1, 1)
                    scores[lv] = psnr(images.to_unit(out), images.to_unit(clean)).item()
                inp = psnr(images.to_unit(y), images.to_unit(clean)).item()
                gains.append((sigma, scores[now] - scores[before]))
                print(f"| {name} | {sigma} | {quality} | {fine:.4f} | {c2:.4f} | {c4:.4f} | {c4 / max(c2, 1e-6):.2f} "
                      f"| {before:.4f} | {now:.4f} | {inp:.2f} | {scores[before]:.2f} | {scores[now]:.2f} |",
                      flush=True)
    for sigma in (0.0, 0.03, 0.05, 0.08):
        g = [d for s, d in gains if s == sigma]
        print(f"\nNoise {sigma}: PSNR now - before, mean {np.mean(g):+.2f} dB, range {min(g):+.2f} to {max(g):+.2f} "
              f"({sum(v != 0 for v in g)} of {len(g)} files changed).")


if __name__ == "__main__":
    main()
