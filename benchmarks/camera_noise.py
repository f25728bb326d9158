"""How `restore --task denoise` reads and removes camera-like noise (correlated by demosaicing), on photos.

Each clean photo (sRGB, [0, 1]) goes through a simulated camera: linear light, an RGGB Bayer mosaic,
Poisson-Gaussian sensor noise of variance a * signal + b (seed 1), OpenCV's edge-aware demosaicing
(COLOR_BayerBG2RGB_EA on 16 bits), sRGB gamma, 8 bits (a lossless file). The reference is the same pipeline without
noise. Per photo and noise level: the actual error std ("true", [-1, 1] scale), the colour reading
`measurement.estimate_noise_sigma` ("colour": all that `restore` read before camera noise was also read on the
luma), the level `restore` uses for a plain image ("read", `Restorer.measurement`), and the default denoiser
(`restore_image`, seed 0) at the colour reading, at the level read and at the true level: PSNR / LPIPS-alex
against the reference and against the scene. Writes OUT/rows.jsonl, OUT/summary.md and OUT/<photo>-a<a>.png
(reference, noisy, at the colour reading, at the level read, at the true level).
--readings PHOTOS (a folder or zip, e.g. build_photos.py's; 256-px squares as `ncvsd bench` reads them, one in
--every from index --start in name order): readings at a = 0, 0.001, 0.002, 0.004, 0.008 -> OUT/readings-all-photos
or OUT/readings-every<K>-from<S>[-denoise] (.jsonl, .md); with --denoise also the default denoiser at the colour
reading (unrounded; restore rounded it to steps of 0.0025), the level read and the true level at a = 0.002 and
0.008 (mean PSNR / LPIPS-alex against the reference).
Needs OpenCV (`pip install opencv-python-headless`); not a dependency of ncvsd.
Usage:  python benchmarks/camera_noise.py VAL_DIR OUT   (VAL_DIR: benchmarks/make_validation_set.py's photos)
        python benchmarks/camera_noise.py --readings photos.zip --every 4 --start 1 --denoise OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

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


#: OpenCV's demosaicing codes by name (its BG pattern is our RGGB): edge-aware (the default), bilinear, VNG.
DEMOSAIC = {"ea": "COLOR_BayerBG2RGB_EA", "bilinear": "COLOR_BayerBG2RGB", "vng": "COLOR_BayerBG2RGB_VNG"}


def camera(linear: np.ndarray, a: float, b: float, rng: np.random.Generator | None,
           demosaic: str = "ea") -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1]: mosaic, noise (none when rng is None), demosaic (`DEMOSAIC`; on 16 bits, but
    OpenCV's VNG takes 8 bits only: its raw is coded with gamma 2.2 in 8 bits, as a small sensor's output), sRGB
    gamma, 8 bits."""
    import cv2

    raw = np.empty(linear.shape[:2])
    raw[0::2, 0::2], raw[0::2, 1::2] = linear[0::2, 0::2, 0], linear[0::2, 1::2, 1]  # R G
    raw[1::2, 0::2], raw[1::2, 1::2] = linear[1::2, 0::2, 1], linear[1::2, 1::2, 2]  # G B
    if rng is not None:
        raw = raw + np.sqrt(a * np.clip(raw, 0, None) + b) * rng.standard_normal(raw.shape)
    code = getattr(cv2, DEMOSAIC[demosaic])
    if demosaic == "vng":
        raw8 = (np.clip(raw, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8)
        rgb = (cv2.cvtColor(raw8, code).astype(np.float64) / 255) ** 2.2
    else:
        rgb = cv2.cvtColor((np.clip(raw, 0, 1) * 65535).round().astype(np.uint16), code).astype(np.float64) / 65535
    return as_tensor(np.round(linear_to_srgb(rgb) * 255) / 255)


def scores(x: torch.Tensor, ref: torch.Tensor) -> list[float]:
    """[PSNR dB, LPIPS-alex] of x against ref, both in [-1, 1]."""
    x, ref = to_unit(x.clamp(-1, 1)), to_unit(ref)
    return [round(float(psnr(x, ref)), 2), round(float(lpips_distance(x, ref)), 4)]


#: Sensor noise of the readings-only run (a = 0: the noise-free pipeline).
READ_LEVELS = [(0.0, 0.0), (0.001, 2e-6), *LEVELS[:1], (0.004, 8e-6), *LEVELS[1:]]


def restore_level(y: torch.Tensor, decoded: Any = None) -> float:
    """The noise level `ncvsd restore --task denoise` uses for y as a plain lossless image, or as the file
    `decoded` (`images.read_image`'s: its lossy coding) that y was read from."""
    from ncvsd_cli.restore import RestoreOptions, Restorer

    coding = {} if decoded is None else {"jpeg_sigma": decoded.jpeg_sigma, "jpeg_coding": decoded.jpeg_coding}
    return Restorer.from_options(RestoreOptions(task="denoise").validate(), load=False, quiet=True).measurement(
        y, "denoise", **coding).sigma_y


def denoised(y: torch.Tensor, ref: torch.Tensor, levels: dict[str, float]) -> dict[str, list[float]]:
    """Scores against ref of the default denoiser (seed 0) at each named level (a level seen before: run once)."""
    from ncvsd_cli.restore import restore_image

    done: dict[float, list[float]] = {}
    for level in levels.values():
        if level not in done:
            done[level] = scores(restore_image(y, "denoise", sigma_y=max(level, 1e-3), seed=0)[:1], ref)
    return {f"at_{name}": done[level] for name, level in levels.items()}


def readings(photos: Path, every: int, start: int, out: Path, denoise: bool = False) -> None:
    """Readings on 256-px squares of every `every`-th photo from `start`: OUT/readings.jsonl and readings.md;
    denoise: at LEVELS also denoised at the colour reading (before), the level read (now) and the true level."""
    from ncvsd_cli.bench.datasets import image_folder
    from ncvsd_cli.measurement import estimate_luma_noise_sigma

    rows = []
    for im in image_folder(photos, 256).images[start::every]:
        linear = srgb_to_linear(to_unit(im.load()).squeeze(0).permute(1, 2, 0).double().numpy())
        ref = camera(linear, 0, 0, None)
        for a, b in READ_LEVELS:
            y = camera(linear, a, b, np.random.default_rng(1)) if a else ref
            row = {"photo": im.id, "a": a, "true": float((y - ref).std()), "colour": estimate_noise_sigma(y),
                   "luma2": estimate_luma_noise_sigma(y, coarse=True), "luma4": estimate_luma_noise_sigma(y, scale=4),
                   "read": restore_level(y)}
            if denoise and (a, b) in LEVELS:
                row.update(denoised(y, ref, {"colour": row["colour"], "read": row["read"], "true": row["true"]}))
            print(json.dumps(row), flush=True)
            rows.append(row)
    stem = "readings-" + ("all-photos" if (every, start) == (1, 0) else f"every{every}-from{start}") + \
        ("-denoise" if denoise else "")
    (out / f"{stem}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    which = "all" if (every, start) == (1, 0) else f"one in {every} from index {start}"
    lines = [f"{len(rows) // len(READ_LEVELS)} photos of {photos.name} ({which}), 256 px.", "",
             "| a | median true | median colour / read | read within 0.7-1.5x true | under 0.5x | max read |",
             "|---|---|---|---|---|---|"]
    for a, _ in READ_LEVELS:
        rs = [r for r in rows if r["a"] == a]
        true, colour, read = (float(np.median([r[k] for r in rs])) for k in ("true", "colour", "read"))
        ratio = [r["read"] / r["true"] for r in rs] if a else []
        within, under = (f"{sum(map(ok, ratio))}/{len(ratio)}" if a else "-"
                         for ok in (lambda q: 0.7 <= q <= 1.5, lambda q: q < 0.5))
        lines.append(f"| {a} | {true:.4f} | {colour:.4f} / {read:.4f} | {within} | {under} | "
                     f"{max(r['read'] for r in rs):.4f} |")
    if denoise:
        lines += ["", "Denoised (mean PSNR dB / LPIPS-alex against the noise-free pipeline):", "",
                  "| a | at the colour reading (before, unrounded) | at the level read (now) | at the true level |",
                  "|---|---|---|---|"]
        for a, _ in LEVELS:
            rs = [r for r in rows if r["a"] == a]
            cells = [f"{np.mean([r[k][0] for r in rs]):.2f} / {np.mean([r[k][1] for r in rs]):.3f}"
                     for k in ("at_colour", "at_read", "at_true")]
            lines.append(f"| {a} | {' | '.join(cells)} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    from ncvsd_cli.restore import restore_image

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("val", type=Path, nargs="?")
    p.add_argument("out", type=Path)
    p.add_argument("--readings", type=Path, help="photos (folder or zip): readings only")
    p.add_argument("--every", type=int, default=1, help="with --readings: one photo in this many")
    p.add_argument("--start", type=int, default=0, help="with --readings: index of the first photo")
    p.add_argument("--denoise", action="store_true", help="with --readings: also denoise at LEVELS")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.readings:
        readings(a.readings, a.every, a.start, a.out, a.denoise)
        return
    if a.val is None:
        p.error("give VAL_DIR (validation photos) or --readings PHOTOS")
    rows = []
    for path in sorted(a.val.glob("*.png")):
        x = np.asarray(Image.open(path).convert("RGB")) / 255.0
        scene, linear = as_tensor(x), srgb_to_linear(x)
        ref = camera(linear, 0, 0, None)
        for level_a, level_b in LEVELS:
            y = camera(linear, level_a, level_b, np.random.default_rng(1))
            true, colour, read = float((y - ref).std()), estimate_noise_sigma(y), restore_level(y)
            row = {"photo": path.stem, "a": level_a, "b": level_b, "true": round(true, 4), "colour": round(colour, 4),
                   "read": round(read, 4), "read_clean": round(restore_level(ref), 4), "input": scores(y, ref),
                   "input_vs_scene": scores(y, scene)}
            outs = []
            for name, level in (("at_colour", colour), ("at_read", read), ("at_true", true)):
                out = restore_image(y, "denoise", sigma_y=max(level, 1e-3), seed=0)[:1]
                row[name], row[f"{name}_vs_scene"] = scores(out, ref), scores(out, scene)
                outs.append(out)
            save_image(torch.cat([ref, y, *outs], 3), a.out / f"{path.stem}-a{level_a}.png")
            print(json.dumps(row), flush=True)
            rows.append(row)
    (a.out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = ["| photo | a | true | colour / read | input PSNR / LPIPS | at colour | at read | at true |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['photo']} | {r['a']} | {r['true']} | {r['colour']} / {r['read']} | {r['input'][0]} / "
              f"{r['input'][1]} | {r['at_colour'][0]} / {r['at_colour'][1]} | {r['at_read'][0]} / {r['at_read'][1]} | "
              f"{r['at_true'][0]} / {r['at_true'][1]} |" for r in rows]
    (a.out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
