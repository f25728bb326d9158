"""Model selection for the shipped generator: validation LPIPS over several runs per image, plus sample diversity.

For each candidate generator checkpoint it runs the real CLI,
`ncvsd bench --dataset VAL --methods pnp-gd,pnp-gd-warm --nfe 10,49 --best-of RUNS`, on the validation crops of
benchmarks/make_validation_set.py (never the held-out photos), and measures the diversity of its unconditional
samples (1 and 4 steps, 16 seeds): the mean pairwise LPIPS between samples and their mean colour saturation. A
mode-collapsed generator (grey texture samples, as the session-2 stage-2 model) scores low on both; the teacher's
samples (probability-flow ODE, 64 Euler steps) are measured the same way as a reference (--teacher).

Usage:  python benchmarks/select_generator.py VAL_DIR CKPT [CKPT ...] --out DIR [--runs 4] [--teacher T]
Prints one JSON line per candidate and writes DIR/selection.md (sorted by mean validation LPIPS).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

import torch

TASKS = "sr4,deblur-gauss,deblur-motion,inpaint-box"


#: (method, NFE) rows scored: the default sampler (warm start, 10 NFE; its LPIPS ranks the candidates) and the paper's.
SCORED = (("pnp-gd-warm", 10), ("pnp-gd", 49))


def validation_lpips(ckpt: str, val: Path, out: Path, runs: int, seed: int) -> dict[str, float]:
    """{task: mean LPIPS-alex over images (each the mean of `runs` samples)} from `ncvsd bench`, for the default
    sampler (keys: task names) and the paper's (keys: "<task> paper49")."""
    cmd = [sys.executable, "-m", "ncvsd_cli", "bench", "--dataset", str(val), "--tasks", TASKS, "--nfe", "10,49",
           "--methods", "pnp-gd,pnp-gd-warm", "--best-of", str(runs), "--seed", str(seed), "-c", ckpt, "--out",
           str(out), "--grid-images", "0", "--quiet", "--resume"]
    subprocess.run(cmd, check=True)
    summary = json.loads((out / "summary.json").read_text())["summary"]
    found = {(r["task"], r["method"], r["nfe"]): r["lpips_alex_mean"] for r in summary if r["aggregation"] == "mean"}
    (warm, warm_nfe), (paper, paper_nfe) = SCORED
    return {**{t: found[t, warm, warm_nfe] for t in TASKS.split(",")},
            **{f"{t} paper49": found[t, paper, paper_nfe] for t in TASKS.split(",")}}


def diversity(x: torch.Tensor) -> dict[str, float]:
    """Mean pairwise LPIPS-alex between the images of x (B, 3, H, W) in [-1, 1], and their mean saturation
    (mean |channel − grey| in [0, 1] units; 0 for grey images)."""
    from ncvsd_cli.metrics import lpips_distance

    u = ((x.float().clamp(-1, 1) + 1) / 2).cpu()
    pairs = list(itertools.combinations(range(len(u)), 2))
    a, b = zip(*pairs)
    d = lpips_distance(u[list(a)], u[list(b)])
    return {"pairwise_lpips": d.mean().item(), "saturation": (u - u.mean(1, keepdim=True)).abs().mean().item()}


@torch.no_grad()
def generator_samples(ckpt: str, nfe: int, n: int = 16) -> torch.Tensor:
    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.sampling.generate import default_ts, generate
    from operators.noise import generators_for_seeds

    net, _ = load_checkpoint(ckpt, kind="generator")
    r = net.img_resolution
    return generate(net, (n, net.img_channels, r, r), default_ts(nfe), generators_for_seeds(range(n))).x


@torch.no_grad()
def teacher_samples(ckpt: str, n: int = 16, steps: int = 64) -> torch.Tensor:
    """Probability-flow ODE samples of a teacher checkpoint from σ = 80 (Euler, ρ = 7 ramp; the DAPS baseline's
    solver)."""
    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.sampling.teacher_baselines import _ode_to_x0

    net, _ = load_checkpoint(ckpt, kind="teacher")
    r = net.img_resolution
    x = 80.0 * torch.randn(n, net.img_channels, r, r, generator=torch.Generator().manual_seed(0))
    return _ode_to_x0(net, x, 80.0, steps, None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("val", type=Path, help="validation folder (benchmarks/make_validation_set.py)")
    p.add_argument("candidates", nargs="+", help="generator checkpoints (names or paths)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--runs", type=int, default=4, help="PnP-GD runs per image (their LPIPS is averaged)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher", help="also report the diversity of this teacher's samples")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    if a.teacher:
        rows.append({"candidate": f"teacher {a.teacher} (ODE, 64 steps)", **diversity(teacher_samples(a.teacher))})
        print(json.dumps(rows[-1]), flush=True)
    for i, ckpt in enumerate(a.candidates):
        row: dict = {"candidate": ckpt}
        for nfe in (1, 4):
            row.update({f"{k}_nfe{nfe}": v for k, v in diversity(generator_samples(ckpt, nfe)).items()})
        row.update(validation_lpips(ckpt, a.val, a.out / f"cand{i}", a.runs, a.seed))
        row["mean_lpips"] = sum(row[t] for t in TASKS.split(",")) / len(TASKS.split(","))
        rows.append(row)
        print(json.dumps(row), flush=True)
    cols = ["candidate", "mean_lpips", *TASKS.split(","), *(f"{t} paper49" for t in TASKS.split(",")),
            "pairwise_lpips_nfe4", "saturation_nfe4",
            "pairwise_lpips_nfe1", "pairwise_lpips", "saturation"]
    cols = [c for c in cols if any(c in r for r in rows)]
    rows.sort(key=lambda r: r.get("mean_lpips", -1.0))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in (r.get(c, "") for c in cols))
              + " |" for r in rows]
    (a.out / "selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
