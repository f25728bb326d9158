"""Regenerates benchmarks/default-model/{restore-sr4-astronaut,samples-nfe1,samples-nfe4}.png with the default model.

Runs the README's Quick start through the real CLI (so the reported restore time is what a user waits), a bicubic
baseline, and `ncvsd sample` at 1 and 4 steps; prints wall time, peak RSS and PSNR/LPIPS-alex as one JSON line.
Usage (repository root, idle machine for a meaningful time):  python benchmarks/default_model_figures.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "default-model"


def ncvsd(*args: str) -> float:
    """Run `ncvsd ARGS` (this interpreter's package); returns its wall time in seconds; raises on failure."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ncvsd_cli", *args, "--quiet"], check=True)
    return time.perf_counter() - start


def titled_row(images: list, titles: list[str], path: Path) -> None:
    """Save images (H, W, 3 uint8 arrays of one size) side by side with a title above each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = images[0].shape[:2]
    fig, axes = plt.subplots(1, len(images), figsize=(len(images) * w / 100, h / 100 + 0.25), dpi=100)
    for ax, im, title in zip(axes, images, titles, strict=True):
        ax.imshow(im, interpolation="nearest")
        ax.set_title(title, fontsize=8, loc="left")
        ax.axis("off")
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - 0.25 / (h / 100 + 0.25), wspace=0.02)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    import numpy as np
    import torch

    from ncvsd_cli.images import example_path, load_image, to_uint8, to_unit
    from ncvsd_cli.metrics import compute_all

    tmp = Path(tempfile.mkdtemp(prefix="ncvsd-figures-"))
    truth_path = example_path("astronaut")
    meas = tmp / "astronaut_x4.png"
    ncvsd("degrade", "--task", "sr4", str(truth_path), "-o", str(meas))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = ncvsd("restore", str(meas), "-o", str(tmp / "pnp.png"))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ncvsd("restore", str(meas), "--method", "bicubic", "-o", str(tmp / "bicubic.png"))
    paper_seconds = ncvsd("restore", str(meas), "--method", "pnp-gd", "-o", str(tmp / "paper.png"))
    truth = load_image(str(truth_path))
    result = {"restore_seconds": round(seconds, 1), "paper_pnp_gd_seconds": round(paper_seconds, 1),
              "restore_peak_rss_mb": round(peak_mb),
              "rss_before_mb": round(before / 1024), "threads": torch.get_num_threads()}
    images, titles = [to_uint8(truth)], ["ground truth"]
    small = to_uint8(load_image(str(meas)))
    images.append(np.repeat(np.repeat(small, 4, axis=0), 4, axis=1))
    titles.append(f"measurement (sr4, {small.shape[1]}x{small.shape[0]})")
    for name, label in (("bicubic", "bicubic"), ("paper", "PnP-GD (paper), 49 NFE"),
                        ("pnp", "default: PnP-GD warm, 10 NFE")):
        x = load_image(str(tmp / f"{name}.png"))
        m = {k: float(v) for k, v in compute_all(to_unit(x), to_unit(truth)).items()}
        result[name] = {"psnr": round(m["psnr"], 2), "lpips_alex": round(m["lpips-alex"], 3)}
        images.append(to_uint8(x))
        titles.append(f"{label}  PSNR {m['psnr']:.1f}  LPIPS {m['lpips-alex']:.3f}")
    titled_row(images, titles, OUT / "restore-sr4-astronaut.png")
    for nfe in (1, 4):
        ncvsd("sample", "--nfe", str(nfe), "--seeds", "0-15", "-o", str(OUT / f"samples-nfe{nfe}.png"),
              "--overwrite")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
