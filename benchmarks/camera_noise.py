"""How `restore --task denoise` reads and removes camera-like noise (correlated by demosaicing), on photos.

Each clean photo (sRGB, [0, 1]) goes through a simulated camera: linear light, an RGGB Bayer mosaic,
Poisson-Gaussian sensor noise of variance a * signal + b (seed 1), OpenCV's edge-aware demosaicing
(COLOR_BayerBG2RGB_EA on 16 bits), sRGB gamma, 8 bits. The reference is the same pipeline without noise. Per photo
and noise level: the actual error std ("true", [-1, 1] scale), the level read by `measurement.estimate_noise_sigma`
("read"; "read_clean": the noise-free pipeline's reading), and the default denoiser (`restore_image`, seed 0) at
the level read, half of it and the true level: PSNR / LPIPS-alex against the reference and against the scene.
Writes OUT/rows.jsonl, OUT/summary.md and OUT/<photo>-a<a>.png (reference, noisy, at read, at half read, at true).
Needs OpenCV (`pip install opencv-python-headless`); not a dependency of ncvsd.
Usage:  python benchmarks/camera_noise.py VAL_DIR OUT   (VAL_DIR: benchmarks/make_validation_set.py's photos)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ncvsd_cli.images import from_unit, save_image, to_unit
from ncvsd_cli.measurement import estimate_noise_sigma
from ncvsd_cli.metrics import lpips_distance, psnr

#: (a, b) of the sensor noise variance a * signal + b on linear [0, 1] values.
LEVELS = [(0.002, 4e-6), (0.008, 1.6e-5)]


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def as_tensor(srgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) in [0, 1] -> (1, 3, H, W) in [-1, 1]."""
    return from_unit(torch.from_numpy(srgb.transpose(2, 0, 1)).float()[None])


def camera(linear: np.ndarray, a: float, b: float, rng: np.random.Generator | None) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1]: mosaic, noise (none when rng is None), demosaic, gamma, 8 bits."""
    import cv2

    raw = np.empty(linear.shape[:2])
    raw[0::2, 0::2], raw[0::2, 1::2] = linear[0::2, 0::2, 0], linear[0::2, 1::2, 1]  # R G
    raw[1::2, 0::2], raw[1::2, 1::2] = linear[1::2, 0::2, 1], linear[1::2, 1::2, 2]  # G B
    if rng is not None:
        raw = raw + np.sqrt(a * np.clip(raw, 0, None) + b) * rng.standard_normal(raw.shape)
    raw16 = (np.clip(raw, 0, 1) * 65535).round().astype(np.uint16)
    rgb = cv2.cvtColor(raw16, cv2.COLOR_BayerBG2RGB_EA).astype(np.float64) / 65535  # OpenCV's BG = our RGGB
    return as_tensor(np.round(linear_to_srgb(rgb) * 255) / 255)


def scores(x: torch.Tensor, ref: torch.Tensor) -> list[float]:
    """[PSNR dB, LPIPS-alex] of x against ref, both in [-1, 1]."""
    x, ref = to_unit(x.clamp(-1, 1)), to_unit(ref)
    return [round(float(psnr(x, ref)), 2), round(float(lpips_distance(x, ref)), 4)]


def main() -> None:
    from ncvsd_cli.restore import restore_image

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("val", type=Path)
    p.add_argument("out", type=Path)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in sorted(a.val.glob("*.png")):
        x = np.asarray(Image.open(path).convert("RGB")) / 255.0
        scene, linear = as_tensor(x), srgb_to_linear(x)
        ref = camera(linear, 0, 0, None)
        for level_a, level_b in LEVELS:
            y = camera(linear, level_a, level_b, np.random.default_rng(1))
            true, read = float((y - ref).std()), estimate_noise_sigma(y)
            row = {"photo": path.stem, "a": level_a, "b": level_b, "true": round(true, 4), "read": round(read, 4),
                   "read_clean": round(estimate_noise_sigma(ref), 4), "input": scores(y, ref),
                   "input_vs_scene": scores(y, scene)}
            outs = []
            for name, level in (("at_read", read), ("at_half_read", read / 2), ("at_true", true)):
                out = restore_image(y, "denoise", sigma_y=max(level, 1e-3), seed=0)[:1]
                row[name], row[f"{name}_vs_scene"] = scores(out, ref), scores(out, scene)
                outs.append(out)
            save_image(torch.cat([ref, y, *outs], 3), a.out / f"{path.stem}-a{level_a}.png")
            print(json.dumps(row), flush=True)
            rows.append(row)
    (a.out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = ["| photo | a | true | read | input PSNR / LPIPS | at read | at true |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['photo']} | {r['a']} | {r['true']} | {r['read']} | {r['input'][0]} / {r['input'][1]} | "
              f"{r['at_read'][0]} / {r['at_read'][1]} | {r['at_true'][0]} / {r['at_true'][1]} |" for r in rows]
    (a.out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
