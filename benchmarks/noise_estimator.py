"""The noise level of a plain photo read by the patch-covariance estimator (`measurement.estimate_noise_sigma`,
Chen, Zhu & Heng 2015), blurs restored at 0.7x it, blurs and super-resolution within 0.01-0.2 (now), against the median
of the finest diagonal Haar details / 0.6745 that it replaced, used as read within 0.01-0.05 (before).

Readings: each photo of VAL and HELDOUT degraded as in noise_level.py's cases, with white noise of every level of
READ_NOISE (seed 1; 8 bits), read by both estimators -> OUT/readings.csv and the mean absolute error per case and
level in OUT/summary.md (the truth: the noise added and the 8-bit rounding, QUANT, as independent errors).
Restorations (--cases, at the levels of NOISE): each degraded photo restored with the default sampler (restoration
seed 0) at the level `restore` uses before and now (read, within the bounds); where both give the same level it is
run once. OUT/rows.csv, OUT/summary.md, OUT/grid-<set>-<case>.jpg (per photo and noise: clean, measured, before,
now). HELDOUT is reported apart and never used to choose anything.

Usage:  python benchmarks/noise_estimator.py VAL --heldout DIR --out OUT [--cases ...] [--readings-only]
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from blur_estimate import write_csv  # benchmarks/ is the script's folder
from noise_level import CASES, measured, photo_benchmark_args, run_cases, summary

from ncvsd_cli import images, measurement, restore
from ncvsd_cli.restore import RestoreOptions, Restorer, restore_image

READ_NOISE = {"denoise": (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)}  # the others: up to 0.05, the blurs' and sr4's cap
NOISE = {"denoise": (0.01, 0.02, 0.05, 0.1), "sr4": (0.0, 0.02, 0.08, 0.15)}  # the blurs: 0.02, 0.08, 0.15
SETTINGS = ("Haar", "patches")  # the readings
RULES = {"before": (SETTINGS[0], 0.05, 1.0), "now": (SETTINGS[1], restore.NOISE_CAP, restore.BLUR_NOISE_SCALE)}
QUANT = 2 / 255 / 12**0.5  # std of rounding to 8 bits on the [-1, 1] scale


def haar_sigma(y: torch.Tensor, clipped: torch.Tensor | None = None) -> float:
    """The estimator replaced: median(|HH|)/0.6745 of the finest diagonal Haar details, mean over channels
    (`clipped`, `estimate_noise_sigma`'s, is ignored: it read every pixel)."""
    z = images.centre_crop(y[0], measurement.NOISE_WINDOW).double()
    h, w = z.shape[-2] // 2 * 2, z.shape[-1] // 2 * 2
    if h == 0 or w == 0:
        return 0.0
    z = z[:, :h, :w]
    hh = (z[:, 0::2, 0::2] - z[:, 0::2, 1::2] - z[:, 1::2, 0::2] + z[:, 1::2, 1::2]) / 2
    return float(hh.abs().flatten(1).median(dim=1).values.mean() / 0.6745)


ESTIMATORS = dict(zip(SETTINGS, (haar_sigma, measurement.estimate_noise_sigma)))


@contextmanager
def reading_with(estimator, cap: float, blur_scale: float):
    """Inside the block `restore` reads the noise level with `estimator`, restores a blur at `blur_scale` times it
    and caps blurs and super-resolution at `cap`."""
    saved = measurement.estimate_noise_sigma, restore.NOISE_CAP, restore.BLUR_NOISE_SCALE
    measurement.estimate_noise_sigma, restore.NOISE_CAP, restore.BLUR_NOISE_SCALE = estimator, cap, blur_scale
    try:
        yield
    finally:
        measurement.estimate_noise_sigma, restore.NOISE_CAP, restore.BLUR_NOISE_SCALE = saved


def readings(folder: Path, name: str) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.png")):
        x = images.load_image(path)[:, :3]
        for case in CASES:
            for noise in READ_NOISE.get(case, (0.0, 0.01, 0.02, 0.05)):
                y = measured(x, case, noise)
                rows.append({"set": name, "image": path.stem, "case": case, "noise": noise,
                             **{label: round(f(y), 4) for label, f in ESTIMATORS.items()}})
    return rows


def readings_summary(rows: list[dict]) -> str:
    title = ("# Noise level read from degraded photos (mean over the photos; error against the noise added and "
             f"the 8-bit rounding, sqrt(noise^2 + {QUANT:.4f}^2))")
    header = "| set | case | noise | " + " | ".join(f"{s} mean | {s} mean abs error" for s in SETTINGS) + " |"
    lines = [title, "", header, "|---|---|---|---|---|---|---|"]
    for key in sorted({(r["set"], r["case"], r["noise"]) for r in rows}, key=lambda k: (k[0] != "validation", k)):
        sel = [r for r in rows if (r["set"], r["case"], r["noise"]) == key]
        truth = math.hypot(key[2], QUANT)
        cells = [f"{sum(r[s] for r in sel) / len(sel):.4f} | {sum(abs(r[s] - truth) for r in sel) / len(sel):.4f}"
                 for s in SETTINGS]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(folder: Path, name: str, cases: list[str], out: Path) -> list[dict]:
    done: dict[tuple[int, float], tuple] = {}  # (id(input), level) -> (input, estimate, seconds): run once

    def variants(x, case):
        return [({"noise": noise}, measured(x, case, noise)) for noise in NOISE.get(case, (0.02, 0.08, 0.15))]

    def read_by(rule: str):
        estimator, cap, blur_scale = RULES[rule]

        def restore_at_level(y, task, params):
            probe = Restorer.from_options(RestoreOptions(task=task, params=params).validate(), load=False)
            with reading_with(ESTIMATORS[estimator], cap, blur_scale):
                level = float(probe.measurement(y, task).sigma_y)
            key = (id(y), level)
            if key not in done:
                start = time.perf_counter()
                est = restore_image(y, task, params=params, sigma_y=level, seed=0)[:1]
                done[key] = (y, est.clamp(-1, 1), time.perf_counter() - start)  # y: its id stays its own
            _, est, seconds = done[key]
            return est, {"level": level, "seconds": seconds}
        return restore_at_level

    return run_cases(folder, name, cases, out, variants, [(rule, read_by(rule)) for rule in RULES])


def main() -> None:
    a, sets = photo_benchmark_args(__doc__, "denoise,sr4,deblur-gauss-width-read,deblur-motion", readings_only=True)
    read = [r for folder, name in sets for r in readings(folder, name)]
    write_csv(read, a.out / "readings.csv")
    text = readings_summary(read)
    if not a.readings_only:
        rows = [r for folder, name in sets for r in run(folder, name, a.cases.split(","), a.out)]
        write_csv(rows, a.out / "rows.csv")
        title = ("# Plain photos restored at the noise level read before (Haar, cap 0.05) and now (patches, blurs at "
                 f"{restore.BLUR_NOISE_SCALE}x, cap {restore.NOISE_CAP}) (default sampler, seed 0; mean of the photos)")
        text = summary(rows, title=title, settings=tuple(RULES)) + "\n" + text
    (a.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
