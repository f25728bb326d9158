"""Side-by-side wall time of the README's restore (256x256 astronaut, sr4, default settings) in two source trees.

Runs `python -m ncvsd_cli restore` from each tree (this one and `--other DIR`, e.g. a `git worktree` of an older
commit), interleaved REPS times, each in a fresh process, so model loading and imports are included and machine
noise hits both alike. Both trees restore the same measurement, made once by this tree's `degrade`. Prints one JSON
line per run and a summary (median seconds per tree and their ratio).
Usage (repository root):  git worktree add /tmp/old REV && python benchmarks/restore_speed_revisions.py --other /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--other", required=True, help="the other source tree (repository root)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--task", default="sr4")
    a = p.parse_args()
    here = Path(__file__).resolve().parents[1]
    trees = {"this": here, "other": Path(a.other).resolve()}
    tmp = Path(tempfile.mkdtemp(prefix="ncvsd-revs-"))
    meas = tmp / "measured.png"
    truth = here / "ncvsd_cli" / "examples" / "astronaut.png"
    subprocess.run([sys.executable, "-m", "ncvsd_cli", "degrade", "--task", a.task, str(truth), "-o", str(meas), "-q"],
                   check=True, cwd=here)
    times: dict[str, list[float]] = {k: [] for k in trees}
    for rep in range(a.reps):
        for name, tree in trees.items():
            out = tmp / f"{name}-{rep}.png"
            env = {**os.environ, "PYTHONPATH": str(tree)}
            start = time.perf_counter()
            # the same level, width and kernel in both trees (a plain image's are read from it in newer ones)
            known = ["--sigma-y", "0.05"] + (["-p", "sigma=3"] if a.task == "deblur-gauss" else [])
            known += ["-p", "seed=0"] if a.task in ("deblur-motion", "inpaint-random") else []
            subprocess.run([sys.executable, "-m", "ncvsd_cli", "restore", "--task", a.task, str(meas), "--no-sidecar",
                            *known, "-o", str(out), "-q"], check=True, cwd=tree, env=env)
            times[name].append(time.perf_counter() - start)
            print(json.dumps({"tree": name, "rep": rep, "seconds": round(times[name][-1], 2)}), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"median_seconds": {k: round(v, 2) for k, v in med.items()},
                      "ratio_this_over_other": round(med["this"] / med["other"], 3), "task": a.task,
                      "trees": {k: str(v) for k, v in trees.items()}}))


if __name__ == "__main__":
    main()
