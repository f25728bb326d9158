"""Regenerates benchmarks/default-model/{restore-sr4-astronaut,restore-inpaint-box-astronaut,samples-nfe1,samples-nfe4,
samples-teacher-nfe63}.png.

Runs the README's Quick start (sr4) and box inpainting of the same image through the real CLI (so the reported
restore time is what a user waits) with the default model, the classical baseline (bicubic, biharmonic), the paper's
PnP-GD, and `ncvsd sample` at 1 and 4 steps and `--teacher` (63 calls); prints wall time, peak RSS and
PSNR/LPIPS-alex as one JSON line.
Usage (repository root, idle machine for a meaningful time):  python benchmarks/default_model_figures.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "default-model"


def ncvsd(*args: str) -> tuple[float, float]:
    """Run `ncvsd ARGS` (this interpreter's package); returns (wall time s, peak RSS MB of that process); raises
    CalledProcessError on failure."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "ncvsd_cli", *args, "--quiet"]
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage; Unix only, ru_maxrss in KiB on Linux
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def titled_row(images: list, titles: list[str], path: Path) -> None:
    """Save images (H, W, 3 uint8 arrays of one size) side by side with a title above each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = images[0].shape[:2]
    top = 0.15 * (1 + max(t.count("\n") for t in titles))  # inches of title space
    fig, axes = plt.subplots(1, len(images), figsize=(len(images) * w / 100, h / 100 + top), dpi=100)
    for ax, im, title in zip(axes, images, titles, strict=True):
        ax.imshow(im, interpolation="nearest")
        ax.set_title(title, fontsize=8, loc="left")
        ax.axis("off")
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - top / (h / 100 + top), wspace=0.02)
    fig.savefig(path)
    plt.close(fig)


def restore_row(task: str, baseline: str, tmp: Path) -> dict:
    """Degrade the bundled astronaut with `task`, restore it by the default, `baseline` and the paper's PnP-GD;
    save OUT/restore-<task>-astronaut.png; return times (s), peak RSS of the default restore (MB) and metrics."""
    import numpy as np

    from ncvsd_cli.images import example_path, load_image, to_uint8, to_unit
    from ncvsd_cli.metrics import compute_all
    from ncvsd_cli.sampling.presets import task_settings

    truth_path = example_path("astronaut")
    meas = tmp / f"astronaut_{task}.png"
    ncvsd("degrade", "--task", task, str(truth_path), "-o", str(meas))
    seconds, peak_mb = ncvsd("restore", "--task", task, str(meas), "-o", str(tmp / f"{task}-pnp.png"))
    ncvsd("restore", "--task", task, str(meas), "--method", baseline, "-o", str(tmp / f"{task}-{baseline}.png"))
    paper_seconds, _ = ncvsd("restore", "--task", task, str(meas), "--method", "pnp-gd",
                          "-o", str(tmp / f"{task}-paper.png"))
    warm = task_settings(task, warm=True)
    truth = load_image(str(truth_path))
    result = {"restore_seconds": round(seconds, 1), "paper_pnp_gd_seconds": round(paper_seconds, 1),
              "restore_peak_rss_mb": round(peak_mb)}
    images, titles = [to_uint8(truth)], ["ground truth\n(held-out photo)"]
    shown = to_uint8(load_image(str(meas)))
    factor = truth.shape[-1] // shown.shape[1]
    images.append(np.repeat(np.repeat(shown, factor, axis=0), factor, axis=1))
    titles.append(f"measurement\n({task}, {shown.shape[1]}x{shown.shape[0]})")
    for name, label in ((baseline, baseline), ("paper", "PnP-GD (paper), 49 NFE"),
                        ("pnp", f"default: PnP-GD warm, {warm['steps'] - 1} NFE")):
        x = load_image(str(tmp / f"{task}-{name}.png"))
        m = {k: float(v) for k, v in compute_all(to_unit(x), to_unit(truth)).items()}
        result[name] = {"psnr": round(m["psnr"], 2), "lpips_alex": round(m["lpips-alex"], 3)}
        images.append(to_uint8(x))
        titles.append(f"{label}\nPSNR {m['psnr']:.1f}  LPIPS-alex {m['lpips-alex']:.3f}")
    titled_row(images, titles, OUT / f"restore-{task}-astronaut.png")
    return result


def main() -> None:
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="ncvsd-figures-"))
    result = {"threads": torch.get_num_threads(), "sr4": restore_row("sr4", "bicubic", tmp),
              "inpaint-box": restore_row("inpaint-box", "biharmonic", tmp)}
    for nfe in (1, 4):
        ncvsd("sample", "--nfe", str(nfe), "--seeds", "0-15", "-o", str(OUT / f"samples-nfe{nfe}.png"),
              "--overwrite")
    ncvsd("sample", "--teacher", "--seeds", "0-15", "-o", str(OUT / "samples-teacher-nfe63.png"), "--overwrite")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
