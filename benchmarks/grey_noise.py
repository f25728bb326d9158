"""The noise level of grey photos: read on all patches (Chen et al., as colour photos are; before) and again on the
weakly textured patches only (Liu et al.; now, `measurement.estimate_noise_sigma`), and what the level does to a
plain grey photo denoised with the default settings.

Readings: each photo of VAL and HELDOUT, in colour and as grey (BT.601 luma, 8 bits), at 256 px and resized to
64 px (antialiased bicubic), with white noise of each READ_NOISE level (seed 1) -> OUT/grey-readings.csv and the
mean absolute error per set, size and level in OUT/grey.md (the truth: the noise and the 8-bit rounding). Restorations:
each grey photo at 256 px with noise DENOISE_NOISE, `restore_image(task="denoise")` by the RULES (restoration seed
0): PSNR and LPIPS-alex of the output and of the noisy input; OUT/grey-<set>-<photo>.png: the first photo at the
highest level: clean, noisy, then one per rule. Validation only: the FACTORS sweep of the level the grey
measurement is sampled at (noise known), which chose restore.GREY_NOISE_SCALE. HELDOUT is reported apart and chose
nothing.

Usage:  python benchmarks/grey_noise.py VAL --heldout DIR --out OUT
"""

from __future__ import annotations

import argparse
import math
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from blur_estimate import write_csv  # benchmarks/ is the script's folder

from ncvsd_cli import images, measurement, restore
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

READ_NOISE = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
DENOISE_NOISE = (0.01, 0.02, 0.05)
QUANT = 2 / 255 / 12**0.5  # std of rounding to 8 bits on the [-1, 1] scale


def eight_bits(x: torch.Tensor) -> torch.Tensor:
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1


def grey(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(images.LUMA_WEIGHTS).view(1, 3, 1, 1)
    return eight_bits((x * w).sum(1, keepdim=True)).expand(-1, 3, -1, -1).contiguous()


def unit_psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(psnr(images.to_unit(x), images.to_unit(ref)))


def unit_lpips(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(lpips_distance(images.to_unit(x), images.to_unit(ref))[0])


def before(y: torch.Tensor) -> float:
    """Chen et al. on all patches of the distinct channels (the reading before the weak-texture selection)."""
    z = measurement.distinct_channels(images.centre_crop(y[0], measurement.NOISE_WINDOW).double())
    c, h, w = z.shape
    p = next(p for p in range(7, 0, -1) if (h - p + 1) * (w - p + 1) >= 20 * c * p * p)  # the rule before
    stride = max(1, math.ceil(math.sqrt((h - p + 1) * (w - p + 1) / measurement.NOISE_MAX_PATCHES)))
    return math.sqrt(measurement._noise_variance(F.unfold(z[None], p, stride=stride)[0]))


# The levels restorations are run at: the reading before (all patches), the weak-texture reading, and that reading
# with the grey measurement sampled at restore.GREY_NOISE_SCALE times it (now).
RULES = (("before", "before", False), ("read", "now", False), ("now", "now", True))
FACTORS = (1.0, 1.25, 1.5, 1.75)  # the sweep that chose GREY_NOISE_SCALE (validation only)


@contextmanager
def grey_scale(on: bool):
    saved = restore.GREY_NOISE_TASKS
    restore.GREY_NOISE_TASKS = saved if on else frozenset()
    try:
        yield
    finally:
        restore.GREY_NOISE_TASKS = saved


def denoise_grey(y: torch.Tensor, level: float, scaled: bool) -> torch.Tensor:
    """One channel in, one out (a grey photo, as `ncvsd restore` reads and writes it), as (1, 3, H, W)."""
    with grey_scale(scaled):
        est = restore_image(y[:, :1], "denoise", sigma_y=level, seed=0)[:1].clamp(-1, 1)
    return est.expand(-1, 3, -1, -1)


def readings(folder: Path, name: str, out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    rows, restored, swept, pictures = [], [], [], []
    gen = torch.Generator().manual_seed(1)
    first = min(p.stem for p in folder.glob("*.png"))
    for path in sorted(folder.glob("*.png")):
        x = images.load_image(path)[:, :3]
        for size in (x.shape[-1], 64):
            xs = x if size == x.shape[-1] else F.interpolate(x, size=(size, size), mode="bicubic",
                                                             antialias=True).clamp(-1, 1)
            for colour, clean in (("colour", eight_bits(xs)), ("grey", grey(xs))):
                for noise in READ_NOISE:
                    n = torch.randn(clean.shape[-3:], generator=gen)
                    n = n[:1].expand_as(n) if colour == "grey" else n
                    y = eight_bits(clean + noise * n[None])
                    read = {"before": round(before(y), 4), "now": round(measurement.estimate_noise_sigma(y), 4)}
                    rows.append({"set": name, "image": path.stem, "size": size, "colour": colour, "noise": noise,
                                 **read})
                    if colour != "grey" or size != x.shape[-1]:
                        continue
                    if name == "validation" and noise > 0:
                        for f in FACTORS:
                            est = denoise_grey(y, round(noise * f, 4), False)
                            swept.append({"image": path.stem, "noise": noise, "factor": f,
                                          "psnr": unit_psnr(est, clean), "lpips": unit_lpips(est, clean)})
                    if noise not in DENOISE_NOISE:
                        continue
                    picture = noise == DENOISE_NOISE[-1] and path.stem == first
                    pictures += [clean[:1], y] if picture else []
                    row = {"set": name, "image": path.stem, "noise": noise, "input_psnr": unit_psnr(y, clean),
                           "input_lpips": unit_lpips(y, clean)}
                    for rule, reading, scaled in RULES:
                        est = denoise_grey(y, read[reading], scaled)
                        row |= {f"{rule}_level": read[reading] * (restore.GREY_NOISE_SCALE if scaled else 1),
                                f"{rule}_psnr": unit_psnr(est, clean), f"{rule}_lpips": unit_lpips(est, clean)}
                        pictures += [est] if picture else []
                    restored.append(row)
    images.save_image(images.make_grid(torch.cat(pictures), ncols=5), out / f"grey-{name}-{first}.png")
    return rows, restored, swept


def report(rows: list[dict], restored: list[dict], swept: list[dict]) -> str:
    lines = ["# Grey photos' noise level: all patches (before) and weakly textured patches (now)", "",
             f"Mean over the photos; error against sqrt(noise^2 + {QUANT:.4f}^2) (8-bit rounding). Seed 1.", "",
             "| set | size | colour | noise | before mean | before error | now mean | now error |",
             "|---|---|---|---|---|---|---|---|"]
    for key in sorted({(r["set"], r["size"], r["colour"], r["noise"]) for r in rows},
                      key=lambda k: (k[0] != "validation", -k[1], k[2], k[3])):
        sel = [r for r in rows if (r["set"], r["size"], r["colour"], r["noise"]) == key]
        truth = math.hypot(key[3], QUANT)
        cells = [f"{sum(r[s] for r in sel) / len(sel):.4f} | {sum(abs(r[s] - truth) for r in sel) / len(sel):.4f}"
                 for s in ("before", "now")]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(cells) + " |")
    lines += ["", "## Grey validation photos denoised at the true level times a factor (mean of the photos)", "",
              "| noise | " + " | ".join(f"x{f:g}: PSNR, LPIPS" for f in FACTORS) + " |",
              "|---|" + "---|" * len(FACTORS)]
    for noise in sorted({r["noise"] for r in swept}):
        cells = []
        for f in FACTORS:
            sel = [r for r in swept if (r["noise"], r["factor"]) == (noise, f)]
            cells.append(f"{sum(r['psnr'] for r in sel) / len(sel):.2f}, {sum(r['lpips'] for r in sel) / len(sel):.4f}")
        lines.append(f"| {noise} | " + " | ".join(cells) + " |")
    lines += ["", ("## Grey photos (full size) denoised (default denoiser, restoration seed 0): at the level read "
                   "before,"),
              f"read now, and read now x{restore.GREY_NOISE_SCALE} (the grey scale; now)", "",
              "| set | image | noise | input PSNR, LPIPS | " + " | ".join(f"{r}: level, PSNR, LPIPS" for r, *_ in RULES)
              + " |", "|---|---|---|---|" + "---|" * len(RULES)]
    for r in restored:
        cells = [f"{r[f'{k}_level']:.3f}, {r[f'{k}_psnr']:.2f}, {r[f'{k}_lpips']:.4f}" for k, *_ in RULES]
        lines.append(f"| {r['set']} | {r['image']} | {r['noise']} | {r['input_psnr']:.2f}, {r['input_lpips']:.4f} | "
                     + " | ".join(cells) + " |")
    for name in ("validation", "held-out"):
        sel = [r for r in restored if r["set"] == name]
        for noise in DENOISE_NOISE:
            part = [r for r in sel if r["noise"] == noise]
            if part:
                cells = [f"{sum(r[f'{k}_psnr'] for r in part) / len(part):.2f}, "
                         f"{sum(r[f'{k}_lpips'] for r in part) / len(part):.4f}" for k, *_ in RULES]
                lines.append(f"| {name} | mean | {noise} | | " + " | ".join(f"-, {c}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("val", type=Path)
    ap.add_argument("--heldout", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows, restored, swept = [], [], []
    for folder, name in ((a.val, "validation"), (a.heldout, "held-out")):
        r, d, f = readings(folder, name, a.out)
        rows, restored, swept = rows + r, restored + d, swept + f
    write_csv(rows, a.out / "grey-readings.csv")
    text = report(rows, restored, swept)
    (a.out / "grey.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
