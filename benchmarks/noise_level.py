"""The noise level of a plain photo read from the image (`restore.noise_level_bounds`), against the preset's 0.05.

Each photo of VAL (and of HELDOUT, reported apart and never used to choose anything) is degraded the way a user's
photo is (deblur-gauss 2 px and deblur-motion with kernel seed 1, both with mirrored edges; sr4), with measurement
noise 0 and 0.02 (seed 1) and quantised to 8 bits like a PNG, then restored with the default sampler (restoration
seed 0) at sigma_y 0.05 (what `restore` assumed before) and at the level read from the image (the default now:
within 0.01-0.05), with the true operator, and for deblur-gauss also with the blur width read from the image (what
a plain photo gets by default). The levels read at noise 0, 0.02 and 0.05 are written too.

Writes OUT/rows.csv, OUT/readings.csv, OUT/summary.md and OUT/grid-<set>-<case>.jpg (per photo and noise: clean,
measured, 0.05, estimated).

Usage:  python benchmarks/noise_level.py VAL --out OUT [--heldout DIR] [--cases deblur-gauss,deblur-motion,sr4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from blur_estimate import write_csv  # benchmarks/ is the script's folder

import operators
from ncvsd_cli import images
from ncvsd_cli.measurement import estimate_noise_sigma
from ncvsd_cli.metrics import lpips_distance, psnr
from ncvsd_cli.restore import restore_image

#: Each case: the task, the operator a user's photo is degraded with, and the parameters `restore` is given.
CASES = {
    "deblur-gauss": ("deblur-gauss", {"sigma": 2.0, "boundary": "reflect"}, {"sigma": 2.0, "boundary": "reflect"}),
    "deblur-gauss-width-read": ("deblur-gauss", {"sigma": 2.0, "boundary": "reflect"}, {"boundary": "reflect"}),
    "deblur-motion": ("deblur-motion", {"seed": 1, "boundary": "reflect"}, {"seed": 1, "boundary": "reflect"}),
    "sr4": ("sr4", {}, {}),
    "denoise": ("denoise", {}, {}),
}
NOISE = (0.0, 0.02)


def measured(x: torch.Tensor, case: str, noise: float) -> torch.Tensor:
    """x degraded as in `case` with noise std `noise` (seed 1), quantised to 8 bits."""
    task, degrade, _ = CASES[case]
    op = operators.create(task, tuple(x.shape[1:]), **degrade)
    y = op.measure(x, noise, torch.Generator().manual_seed(1)).clamp(-1, 1)
    return (images.to_unit(y) * 255).round() / 127.5 - 1


def readings(folder: Path, name: str, cases: list[str]) -> list[dict]:
    """The level `estimate_noise_sigma` reads from every degraded photo at noise 0, 0.02 and 0.05."""
    return [{"set": name, "image": path.stem, "case": case, "noise": noise,
             "read": round(estimate_noise_sigma(measured(images.load_image(path)[:, :3], case, noise)), 4)}
            for path in sorted(folder.glob("*.png")) for case in cases for noise in (0.0, 0.02, 0.05)]


def run_cases(folder: Path, name: str, cases: list[str], out: Path, variants, restorers) -> list[dict]:
    """Every photo of `folder` degraded by `variants(x, case)`, which yields (fields, y): the row's fields naming the
    variant and the degraded image (a tensor, or a `DecodedImage`), restored by each (label, restore) of
    `restorers`, restore(y, task, params) -> (estimate in [-1, 1], extra row fields). One row per restoration
    (PSNR, LPIPS, seconds) and OUT/grid-<name>-<case>.jpg (per photo and variant: clean, degraded, restorations).
    Also used by jpeg_inputs.py."""
    rows = []
    for case in cases:
        task, _, params = CASES[case]
        tiles = []
        for path in sorted(folder.glob("*.png")):
            x = images.load_image(path)[:, :3]
            ref = images.to_unit(x)
            for fields, y in variants(x, case):
                pixels = getattr(y, "tensor", y)
                tile = [x, torch.nn.functional.interpolate(pixels, size=x.shape[-2:]) if task == "sr4" else pixels]
                for label, restore in restorers:
                    start = time.perf_counter()
                    est, extra = restore(y, task, params)
                    seconds = extra.pop("seconds", time.perf_counter() - start)  # a reused result: its own time
                    unit = images.to_unit(est)
                    rows.append({"set": name, "image": path.stem, "case": case, **fields, "sigma_y": label, **extra,
                                 "psnr": round(float(psnr(unit, ref)[0]), 3),
                                 "lpips": round(float(lpips_distance(unit, ref)[0]), 4), "seconds": round(seconds, 1)})
                    print(rows[-1], flush=True)
                    tile.append(est)
                tiles.append(tile)
        grid = torch.cat([torch.cat(t, dim=-1) for t in tiles], dim=-2)
        images.save_image(grid, out / f"grid-{name}-{case}.jpg")
    return rows


def run(folder: Path, name: str, cases: list[str], out: Path) -> list[dict]:
    def variants(x, case):
        return [({"noise": noise}, measured(x, case, noise)) for noise in NOISE]

    def at(sigma_y):
        return lambda y, task, params: (restore_image(y, task, params=params, sigma_y=sigma_y, seed=0)[:1]
                                        .clamp(-1, 1), {})

    return run_cases(folder, name, cases, out, variants, [("0.05", at(0.05)), ("estimated", at(None))])


def summary(rows: list[dict], title: str = "# Noise level read from a plain photo vs the preset's 0.05 (default "
            "sampler, seed 0; mean of the photos)", group: str = "noise",
            settings: tuple[str, str] = ("0.05", "estimated")) -> str:
    """Markdown table of the mean PSNR, LPIPS and seconds per (set, case, rows[group]) for the two `sigma_y`
    settings side by side (also used by jpeg_inputs.py)."""
    header = (f"| set | case | {group} | " + " | ".join(f"{m} {s}" for m in ("PSNR", "LPIPS", "seconds")
                                                          for s in settings) + " |")
    lines = [title, "", header, "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["set"], r["case"], r[group]) for r in rows}, key=lambda k: (k[0] != "validation", k[1:]))
    for key in keys:
        cells = []
        for metric in ("psnr", "lpips", "seconds"):
            for setting in settings:
                vals = [r[metric] for r in rows if (r["set"], r["case"], r[group]) == key
                        and r["sigma_y"] == setting]
                cells.append(f"{sum(vals) / len(vals):.{4 if metric == 'lpips' else 2}f}")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def photo_benchmark_args(doc: str, cases: str, readings_only: bool = False,
                         **options: str) -> tuple[argparse.Namespace, list[tuple[Path, str]]]:
    """Parse the arguments the photo benchmarks share: VAL, --out (made here), --heldout, --cases (default `cases`),
    --NAME for each of `options` (its default) and --readings-only if `readings_only`. Returns them and the (folder,
    set name) pairs to run: validation, then held-out (also used by jpeg_inputs.py and noise_estimator.py)."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("val", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--heldout", type=Path)
    p.add_argument("--cases", default=cases)
    for name, default in options.items():
        p.add_argument(f"--{name}", default=default)
    if readings_only:
        p.add_argument("--readings-only", action="store_true", help="write readings.csv alone (no restoration)")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    return a, [(a.val, "validation")] + ([(a.heldout, "held-out")] if a.heldout else [])


def main() -> None:
    a, sets = photo_benchmark_args(__doc__, "deblur-gauss,deblur-gauss-width-read,deblur-motion,sr4")
    cases = a.cases.split(",")
    write_csv([r for folder, name in sets for r in readings(folder, name, cases)], a.out / "readings.csv")
    rows = [r for folder, name in sets for r in run(folder, name, cases, a.out)]
    write_csv(rows, a.out / "rows.csv")
    (a.out / "summary.md").write_text(summary(rows))
    print(summary(rows))


if __name__ == "__main__":
    main()
