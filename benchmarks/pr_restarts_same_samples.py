"""Phase retrieval on the same K samples per image: the first, the best-fitting (least RMS |A(x) - y|, the rule of
`pnp-gd-fit4`) and the best by the ground truth (oracle). Validation crops only; output: benchmarks/pr-restarts/.

Measurement seed 0 at sigma_y 0.05, restoration seed 0, default `pnp-gd` (49 NFE) per sample.
Usage (repository root):  python benchmarks/pr_restarts_same_samples.py VAL_DIR [--samples 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ncvsd_cli import images, metrics
from ncvsd_cli.measurement import degrade
from ncvsd_cli.restore import RestoreOptions, Restorer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("val_dir")
    p.add_argument("--samples", type=int, default=4)
    a = p.parse_args()
    k = a.samples
    restorer = Restorer.from_options(RestoreOptions(task="phase-retrieval", samples=k, seed=0).validate()).load()
    rows = []
    for path in sorted(Path(a.val_dir).glob("*.png")):
        x = images.read_image(path).tensor
        m = degrade(x, "phase-retrieval", sigma_y=0.05, seed=0, source=str(path))
        t0 = time.time()
        (res,) = list(restorer.run([m]))
        s = res.samples.clamp(-1, 1)
        with torch.no_grad():
            resid = torch.stack([(m.operator().forward(s[i:i + 1]) - m.y).pow(2).mean().sqrt() for i in range(k)])
        met = metrics.compute_all(images.to_unit(s), images.to_unit(x).expand_as(s))
        ps, lp = met["psnr"], met["lpips-alex"]
        pick = int(resid.argmin())
        rows.append([ps[0], ps[pick], ps.max(), lp[0], lp[pick], lp.min()])
        print(f"{path.name}: resid {[round(v, 4) for v in resid.tolist()]} psnr {[round(v, 2) for v in ps.tolist()]} "
              f"lpips {[round(v, 3) for v in lp.tolist()]} pick {pick} {time.time() - t0:.0f}s", flush=True)
    t = torch.tensor(rows).mean(0).tolist()
    print(f"mean  first psnr {t[0]:.2f} pick {t[1]:.2f} oracle {t[2]:.2f} | first lpips {t[3]:.3f} pick {t[4]:.3f} "
          f"oracle {t[5]:.3f}")


if __name__ == "__main__":
    main()
