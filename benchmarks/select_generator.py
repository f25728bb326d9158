"""Model selection for the shipped generator on the validation set only (never the held-out photos).

Two criteria side by side, per task, on the crops of benchmarks/make_validation_set.py measured once with
`ncvsd degrade` (sigma_y 0.05, seed --seed) and restored with the real CLI, `ncvsd restore --samples 8 --mean`
(default settings, seed --seed + 1, so measurement and restoration noise are independent):
- `<task> lpips1`: LPIPS-alex of one posterior sample (sample 0) against the clean crop (perception);
- `<task> psnr8`: PSNR of the mean of the 8 samples (fidelity: a good prior's posterior mean approaches the MMSE
  estimate, so it should beat the classical baselines' PSNR).
Also the diversity of its unconditional samples (1 and 4 steps, 16 seeds): the mean pairwise LPIPS between samples
and their mean colour saturation (a mode-collapsed generator scores low on both; --teacher measures a teacher's
probability-flow ODE samples as a reference). --bench adds the older criterion: `ncvsd bench --methods
pnp-gd,pnp-gd-warm --nfe 10,49 --best-of RUNS` mean LPIPS.

Usage:  python benchmarks/select_generator.py VAL_DIR CKPT [CKPT ...] --out DIR [--teacher T] [--bench --runs 4]
Prints one JSON line per candidate and writes DIR/selection.md (sorted by mean lpips1).
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
#: Posterior samples whose mean is scored for PSNR.
MEAN_OF = 8


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


def measure(val: Path, out: Path, seed: int) -> dict[str, Path]:
    """{task: folder of the validation crops degraded once by `ncvsd degrade` (sigma_y 0.05, `seed`)}."""
    found = {}
    for task in TASKS.split(","):
        found[task] = out / "measured" / task
        if not found[task].is_dir():
            subprocess.run([sys.executable, "-m", "ncvsd_cli", "degrade", "--task", task, str(val), "-o",
                            str(found[task]), "--seed", str(seed), "-q"], check=True)
    return found


def posterior_scores(ckpt: str, val: Path, measured: dict[str, Path], out: Path, seed: int) -> dict[str, float]:
    """{"<task> lpips1": mean LPIPS-alex of sample 0, "<task> psnr8": mean PSNR (dB) of the mean of MEAN_OF
    samples} over the validation crops, from `ncvsd restore --samples MEAN_OF --mean` with default settings."""
    from ncvsd_cli.images import load_image, to_unit
    from ncvsd_cli.metrics import lpips_distance, psnr

    clean = sorted(p for p in val.iterdir() if p.suffix.lower() == ".png")
    scores: dict[str, float] = {}
    for task, folder in measured.items():
        dest = out / task
        subprocess.run([sys.executable, "-m", "ncvsd_cli", "restore", str(folder), "-o", str(dest), "--samples",
                        str(MEAN_OF), "--mean", "-c", ckpt, "--seed", str(seed), "-q", "--overwrite"], check=True)
        lp, ps = [], []
        for path in clean:
            truth = to_unit(load_image(str(path)))
            lp.append(lpips_distance(to_unit(load_image(str(dest / f"{path.stem}_s0.png"))), truth).item())
            ps.append(psnr(to_unit(load_image(str(dest / f"{path.stem}_mean.png"))), truth).item())
        scores[f"{task} lpips1"], scores[f"{task} psnr{MEAN_OF}"] = sum(lp) / len(lp), sum(ps) / len(ps)
    return scores


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
    r = max(net.img_resolution, 64)  # LPIPS needs >= 31 px; the networks are fully convolutional
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
    p.add_argument("--runs", type=int, default=4, help="--bench: PnP-GD runs per image (their LPIPS is averaged)")
    p.add_argument("--seed", type=int, default=0, help="measurement seed; restorations use seed + 1")
    p.add_argument("--bench", action="store_true", help="also the `ncvsd bench` LPIPS (slow)")
    p.add_argument("--teacher", help="also report the diversity of this teacher's samples")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    measured = measure(a.val, a.out, a.seed)
    tasks = TASKS.split(",")
    if a.teacher:
        rows.append({"candidate": f"teacher {a.teacher} (ODE, 64 steps)", **diversity(teacher_samples(a.teacher))})
        print(json.dumps(rows[-1]), flush=True)
    for i, ckpt in enumerate(a.candidates):
        row: dict = {"candidate": ckpt}
        for nfe in (1, 4):
            row.update({f"{k}_nfe{nfe}": v for k, v in diversity(generator_samples(ckpt, nfe)).items()})
        row.update(posterior_scores(ckpt, a.val, measured, a.out / f"cand{i}" / "restore", a.seed + 1))
        row["mean lpips1"] = sum(row[f"{t} lpips1"] for t in tasks) / len(tasks)
        row[f"mean psnr{MEAN_OF}"] = sum(row[f"{t} psnr{MEAN_OF}"] for t in tasks) / len(tasks)
        if a.bench:
            row.update(validation_lpips(ckpt, a.val, a.out / f"cand{i}", a.runs, a.seed))
            row["mean_lpips"] = sum(row[t] for t in tasks) / len(tasks)
        rows.append(row)
        print(json.dumps(row), flush=True)
    cols = ["candidate", "mean lpips1", f"mean psnr{MEAN_OF}",
            *(c for t in tasks for c in (f"{t} lpips1", f"{t} psnr{MEAN_OF}")),
            "mean_lpips", *tasks, *(f"{t} paper49" for t in tasks),
            "pairwise_lpips_nfe4", "saturation_nfe4",
            "pairwise_lpips_nfe1", "pairwise_lpips", "saturation"]
    cols = [c for c in cols if any(c in r for r in rows)]
    rows.sort(key=lambda r: r.get("mean lpips1", -1.0))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in (r.get(c, "") for c in cols))
              + " |" for r in rows]
    (a.out / "selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
