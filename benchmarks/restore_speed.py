"""Side-by-side wall time of the README's restore (256x256 astronaut, sr4, default settings) per --precision.

Each precision runs REPS times, interleaved (fp32, bf16, fp32, bf16, ...) so that machine noise hits both alike;
every run goes through the real CLI in a fresh process, so model loading is included. Prints one JSON line per run
and a summary line (median seconds per precision, their ratio, PSNR / LPIPS-alex of each output against the truth).
Usage (repository root, idle machine):  python benchmarks/restore_speed.py [--reps 3] [--precisions fp32,bf16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--precisions", default="fp32,bf16")
    a = p.parse_args()
    from ncvsd_cli.images import example_path, load_image, to_unit
    from ncvsd_cli.metrics import compute_all

    tmp = Path(tempfile.mkdtemp(prefix="ncvsd-speed-"))
    truth_path = example_path("astronaut")
    meas = tmp / "astronaut_x4.png"
    cli = [sys.executable, "-m", "ncvsd_cli"]
    subprocess.run([*cli, "degrade", "--task", "sr4", str(truth_path), "-o", str(meas), "-q"], check=True)
    truth = to_unit(load_image(str(truth_path)))
    precisions = a.precisions.split(",")
    times: dict[str, list[float]] = {q: [] for q in precisions}
    quality = {}
    for rep in range(a.reps):
        for q in precisions:
            out = tmp / f"{q}-{rep}.png"
            start = time.perf_counter()
            subprocess.run([*cli, "restore", str(meas), "-o", str(out), "--precision", q, "-q"], check=True)
            times[q].append(time.perf_counter() - start)
            m = {k: round(float(v), 4) for k, v in compute_all(to_unit(load_image(str(out))), truth).items()}
            quality.setdefault(q, m)
            print(json.dumps({"precision": q, "rep": rep, "seconds": round(times[q][-1], 1), **m}), flush=True)
    med = {q: statistics.median(t) for q, t in times.items()}
    summary = {"median_seconds": {q: round(v, 1) for q, v in med.items()}, "quality_rep0": quality}
    if len(precisions) == 2:
        summary["ratio"] = round(med[precisions[0]] / med[precisions[1]], 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
