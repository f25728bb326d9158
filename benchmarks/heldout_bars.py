"""A model's bars on the held-out photos at 256x256, with `ncvsd bench` (the shipped model unless --checkpoint).

Images: `--dataset builtin --resolution 256 --limit 3`, the three held-out photos (astronaut, coffee, chelsea) whole,
centre square resized to 256 px; training and model selection never see them. Measurement seed --seed (bench
streams: measurement and sampler noise independent), one sample per image and method, LPIPS-alex.
Runs (each a `ncvsd bench` call, in <out>/<name>/):
  restore     sr4, deblur-gauss, deblur-motion at 10 NFE (their default), pnp-gd-warm + pnp-gd-warm-mean8 + classical
  inpaint     inpaint-box at 3 NFE (its default), same methods
  denoise05   denoise at sigma_y 0.05: denoiser, denoiser-mean8, teacher-mmse, nl-means, pseudo-inverse (the noisy
              input)
  denoise20   the same at sigma_y 0.2 (a --preset file)
Bars checked: one default sample (pnp-gd-warm) beats the best classical baseline
on LPIPS; the mean of 8 samples is at least as good as the best classical PSNR; the denoiser beats the noisy input on
LPIPS. Writes <out>/bars.md and <out>/bars.json.
Usage:  python benchmarks/heldout_bars.py --out DIR [--checkpoint GEN] [--teacher T] [--device cpu] [--batch-size 3]
        [--resume]  (continue an interrupted run into the same DIR; bench refuses other settings there)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RUNS = {
    "restore": ["--tasks", "sr4,deblur-gauss,deblur-motion", "--nfe", "10",
                "--methods", "pnp-gd-warm,pnp-gd-warm-mean8,classical"],
    "inpaint": ["--tasks", "inpaint-box", "--nfe", "3", "--methods", "pnp-gd-warm,pnp-gd-warm-mean8,classical"],
    "denoise05": ["--tasks", "denoise", "--nfe", "1", "--methods", "denoiser,denoiser-mean8,teacher-mmse,classical"],
    "denoise20": ["--tasks", "denoise", "--nfe", "1", "--methods", "denoiser,denoiser-mean8,teacher-mmse,classical"],
}
CLASSICAL = {"bicubic", "wiener", "tikhonov", "biharmonic", "nl-means", "pseudo-inverse"}


def run(name: str, args: argparse.Namespace) -> list[dict]:
    out = args.out / name
    cmd = [sys.executable, "-m", "ncvsd_cli", "bench", "--dataset", "builtin", "--resolution", str(args.resolution),
           "--limit", "3",
           "--seed", str(args.seed), "--device", args.device, "--batch-size", str(args.batch_size), "--out", str(out),
           "--grid-images", "3", "--quiet", *RUNS[name], *(["--resume"] if args.resume else [])]
    if name == "denoise20":
        preset = args.out / "sigma_y_0.2.yaml"
        preset.write_text("sigma_y: 0.2\n")
        cmd += ["--preset", str(preset)]
    for flag, value in (("--checkpoint", args.checkpoint), ("--teacher", args.teacher)):
        if value:
            cmd += [flag, value]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())["summary"]
    return [r for r in summary if r["aggregation"] == "mean"]


def bars(name: str, rows: list[dict]) -> list[dict]:
    """One record per task: the scores the bars compare and whether each bar holds."""
    out = []
    for task in sorted({r["task"] for r in rows}):
        by = {r["method"]: r for r in rows if r["task"] == task}
        classical = {m: r for m, r in by.items() if m in CLASSICAL}
        if task == "denoise":
            noisy, one = by["pseudo-inverse"], by["denoiser"]
            rec = {"run": name, "task": task, "lpips_one": one["lpips_alex_mean"],
                   "lpips_noisy": noisy["lpips_alex_mean"], "psnr_mean8": by["denoiser-mean8"]["psnr_mean"],
                   "psnr_mmse": by["teacher-mmse"]["psnr_mean"], "psnr_noisy": noisy["psnr_mean"]}
            if "nl-means" in by:  # the classical denoiser, shown beside the noisy input (the bar)
                rec |= {"lpips_nl_means": by["nl-means"]["lpips_alex_mean"], "psnr_nl_means": by["nl-means"]["psnr_mean"]}
            rec["bar_lpips"] = rec["lpips_one"] < rec["lpips_noisy"]
        else:
            best_lpips = min(classical.values(), key=lambda r: r["lpips_alex_mean"])
            best_psnr = max(classical.values(), key=lambda r: r["psnr_mean"])
            rec = {"run": name, "task": task, "lpips_one": by["pnp-gd-warm"]["lpips_alex_mean"],
                   "lpips_classical": best_lpips["lpips_alex_mean"], "classical_lpips_method": best_lpips["method"],
                   "psnr_one": by["pnp-gd-warm"]["psnr_mean"], "psnr_mean8": by["pnp-gd-warm-mean8"]["psnr_mean"],
                   "psnr_classical": best_psnr["psnr_mean"], "classical_psnr_method": best_psnr["method"]}
            rec["bar_lpips"] = rec["lpips_one"] < rec["lpips_classical"]
            rec["bar_psnr8"] = rec["psnr_mean8"] >= rec["psnr_classical"]
        out.append(rec)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint")
    p.add_argument("--teacher")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=3)
    p.add_argument("--resolution", type=int, default=256, help="image side (the bars are defined at 256)")
    p.add_argument("--resume", action="store_true", help="continue the runs already in --out")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    records = [rec for name in RUNS for rec in bars(name, run(name, args))]
    (args.out / "bars.json").write_text(json.dumps(records, indent=2) + "\n")
    yes = {True: "yes", False: "**no**"}
    lines = [f"# Held-out bars at {args.resolution} px (astronaut, coffee, chelsea; seed {args.seed}; "
             f"generator {args.checkpoint or 'shipped default'}; LPIPS-alex; mean over 3 photos)",
             "",
             "| task | LPIPS one sample | best classical LPIPS | bar | PSNR one | PSNR mean of 8 "
             "| best classical PSNR | bar |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r["task"] == "denoise":
            sigma = "0.2" if r["run"] == "denoise20" else "0.05"
            has_nlm = "psnr_nl_means" in r
            nlm_lpips = f"; nl-means {r['lpips_nl_means']:.3f}" if has_nlm else ""
            nlm_psnr = f"; nl-means {r['psnr_nl_means']:.2f}" if has_nlm else ""
            lines.append(f"| denoise σ {sigma} | {r['lpips_one']:.3f} | noisy input {r['lpips_noisy']:.3f}{nlm_lpips} "
                         f"| {yes[r['bar_lpips']]} | teacher MMSE {r['psnr_mmse']:.2f} | {r['psnr_mean8']:.2f} "
                         f"| noisy input {r['psnr_noisy']:.2f}{nlm_psnr} | – |")
        else:
            lines.append(f"| {r['task']} | {r['lpips_one']:.3f} | {r['lpips_classical']:.3f} "
                         f"({r['classical_lpips_method']}) | {yes[r['bar_lpips']]} | {r['psnr_one']:.2f} "
                         f"| {r['psnr_mean8']:.2f} | {r['psnr_classical']:.2f} ({r['classical_psnr_method']}) "
                         f"| {yes[r['bar_psnr8']]} |")
    (args.out / "bars.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
