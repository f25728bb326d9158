"""Aggregate per-image rows into the benchmark summary: Markdown table, JSON, NFE plot and image grids.

Aggregation (stated in every output):
- "mean": each image's metrics are averaged over its runs (one run unless --best-of K), then the mean and the
  sample standard deviation (ddof = 1; 0 for a single image) over images are reported.
- "best-of-K" (only with K > 1 runs): each image's best run is taken separately per metric (max PSNR, max SSIM,
  min LPIPS; the DAPS / NCVSD eval.py convention, docs/method.md §5), then mean and std over images. It flatters the method
  and is labelled as such.
Costs: network and operator evaluations are per run (mean), seconds is the mean wall clock per image and run,
peak memory the maximum over rows (see bench/memory.py for its meaning).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ncvsd_cli.bench.results import lpips_column

SUMMARY_MD = "summary.md"
SUMMARY_JSON = "summary.json"
PLOT_PNG = "nfe_plot.png"
SAMPLES_DIR = "samples"
AGGREGATION_TEXT = {
    "mean": "mean ± std over images (std: sample, ddof=1); per image, the mean over its runs",
    "best-of-K": "best-of-K: per image the best of K runs separately per metric (max PSNR/SSIM, min LPIPS), "
                 "then mean ± std over images. Not comparable with single-sample numbers",
}


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def method_order(method: str) -> tuple[int, str]:
    """Sort key: generator methods (PnP-GD, the denoiser) first, then teacher baselines (DPS before DAPS), then
    classical ones."""
    from ncvsd_cli.sampling.methods import get_method

    try:
        needs = get_method(method).needs
    except ValueError:  # a method of an older run that is no longer registered
        needs = "none"
    rank = {"generator": 0, "teacher": 1}.get(needs, 3)
    return rank, "" if method == "dps" else method


def summarize(rows: list[dict[str, Any]], lpips_net: str) -> list[dict[str, Any]]:
    """One record per (dataset, task, method, nfe, aggregation) with metric means/stds and costs (see module doc)."""
    lp = lpips_column(lpips_net)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["task"], r["method"], int(r["nfe"]))].append(r)
    out = []
    for (dataset, task, method, nfe), grp in groups.items():
        per_image: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in grp:
            per_image[r["image"]].append(r)
        runs = max(len(v) for v in per_image.values())
        aggs = {"mean": {"psnr": np.mean, "ssim": np.mean, lp: np.mean}}
        if runs > 1:
            aggs["best-of-K"] = {"psnr": np.max, "ssim": np.max, lp: np.min}
        for agg, fns in aggs.items():
            rec: dict[str, Any] = {"dataset": dataset, "task": task, "method": method, "nfe": nfe,
                                   "aggregation": agg if agg == "mean" else f"best-of-{runs}",
                                   "n_images": len(per_image), "runs": runs}
            for metric, fn in fns.items():
                vals = [float(fn([r[metric] for r in rs])) for rs in per_image.values()]
                rec[f"{metric}_mean"], rec[f"{metric}_std"] = _mean_std(vals)
            rec["network_evals"] = float(np.mean([r["network_evals"] for r in grp]))
            rec["operator_evals"] = float(np.mean([r["operator_evals"] for r in grp]))
            rec["seconds_mean"] = float(np.mean([r["seconds"] for r in grp]))
            rec["peak_mem_mb_max"] = float(np.max([r["peak_mem_mb"] for r in grp]))
            rec["mem_kind"] = grp[0]["mem_kind"]
            rec["device"] = grp[0]["device"]
            out.append(rec)
    out.sort(key=lambda s: (s["dataset"], s["task"], method_order(s["method"]), s["nfe"], s["aggregation"] != "mean"))
    return out


def _fmt(mean: float, std: float, digits: int) -> str:
    return "–" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(summary: list[dict[str, Any]], lpips_net: str, header: dict[str, Any] | None = None) -> str:
    """The summary as Markdown: one table per task, rows method x NFE (x aggregation)."""
    lp = lpips_column(lpips_net)
    lines = ["# ncvsd bench summary", ""]
    for k, v in (header or {}).items():
        lines.append(f"- {k}: {v}")
    lines += [f"- LPIPS: `{lp}` (lpips package, {lpips_net} backbone, lower is better)",
              f"- aggregation: {AGGREGATION_TEXT['mean']}",
              ("- NFE: the sweep value (network evaluations requested); evals: counted network evaluations per run; "
               "op evals: forward-operator applications per run"), ""]
    if any(s["aggregation"] != "mean" for s in summary):
        lines += [f"- {AGGREGATION_TEXT['best-of-K']}", ""]
    tasks = sorted({(s["dataset"], s["task"]) for s in summary})
    for dataset, task in tasks:
        lines += [f"## {task} ({dataset})", "",
                  (f"| method | NFE | aggregation | images | PSNR ↑ | SSIM ↑ | LPIPS-{lpips_net} ↓ | evals "
                   "| op evals | s / image | peak MiB |"),
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in summary:
            if (s["dataset"], s["task"]) != (dataset, task):
                continue
            lines.append(
                f"| {s['method']} | {s['nfe']} | {s['aggregation']} | {s['n_images']} | "
                f"{_fmt(s['psnr_mean'], s['psnr_std'], 2)} | {_fmt(s['ssim_mean'], s['ssim_std'], 3)} | "
                f"{_fmt(s[lp + '_mean'], s[lp + '_std'], 3)} | {s['network_evals']:.0f} | {s['operator_evals']:.0f} | "
                f"{s['seconds_mean']:.3f} | {s['peak_mem_mb_max']:.1f} |")
        lines.append("")
    mem = sorted({s["mem_kind"] for s in summary})
    lines.append(f"peak MiB = {', '.join(mem)} (cuda_max_allocated: torch.cuda.max_memory_allocated; "
                 "cpu_rss_peak_delta: peak RSS during the row minus RSS at its start)")
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    from ncvsd_cli.images import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def write_summary(out: str | os.PathLike, rows: list[dict[str, Any]], lpips_net: str,
                  config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Write summary.md and summary.json into `out`; return the summary records."""
    out = Path(out)
    summary = summarize(rows, lpips_net)
    keys = ("dataset", "seed", "device", "precision", "generator", "teacher")
    header = {k: config[k] for k in keys if config and k in config}
    _atomic_write(out / SUMMARY_MD, markdown(summary, lpips_net, header))
    doc = {"lpips_net": lpips_net, "lpips_column": lpips_column(lpips_net), "aggregation": AGGREGATION_TEXT,
           "config": config or {}, "summary": summary}
    _atomic_write(out / SUMMARY_JSON, json.dumps(doc, indent=2, allow_nan=True) + "\n")
    return summary


def plot_nfe(summary: list[dict[str, Any]], lpips_net: str, path: str | os.PathLike) -> None:
    """LPIPS and PSNR versus NFE, one column per task: swept methods as lines (log NFE axis), methods at a single
    NFE as marked points, classical methods (NFE 0) as horizontal dashed lines ("mean" aggregation only).
    Written with matplotlib's Agg canvas to `path` (PNG)."""
    import matplotlib
    import matplotlib.ticker
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state is touched

    lp = lpips_column(lpips_net)
    recs = [s for s in summary if s["aggregation"] == "mean"]
    tasks = sorted({s["task"] for s in recs})
    fig = Figure(figsize=(4.2 * max(1, len(tasks)), 6.4))
    axes = fig.subplots(2, max(1, len(tasks)), squeeze=False)
    cmap = matplotlib.colormaps["tab10"]
    methods = sorted({s["method"] for s in recs}, key=method_order)
    colour = {m: cmap(i % 10) for i, m in enumerate(methods)}
    for j, task in enumerate(tasks):
        for i, (metric, label) in enumerate(((lp, f"LPIPS ({lpips_net}) ↓"), ("psnr", "PSNR (dB) ↑"))):
            ax = axes[i][j]
            for m in methods:
                pts = sorted((s["nfe"], s[metric + "_mean"]) for s in recs if s["task"] == task and s["method"] == m)
                if not pts:
                    continue
                if all(n == 0 for n, _ in pts):
                    ax.axhline(pts[0][1], ls="--", lw=1, color=colour[m], label=f"{m} (no network)")
                elif len(pts) == 1:
                    ax.plot(*zip(*pts), ls="none", marker="*", ms=12, color=colour[m], label=f"{m} @ {pts[0][0]}")
                else:
                    ax.plot(*zip(*pts), marker="o", color=colour[m], label=m)
            ax.set_xscale("log")
            ticks = sorted({s["nfe"] for s in recs if s["task"] == task and s["nfe"] > 0})
            if ticks:
                ax.set_xticks(ticks, [str(t) for t in ticks])
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("NFE (network evaluations)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(task)
    legend: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:  # one legend for all tasks, below the plots
        fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(len(legend), 4), fontsize=8)
    fig.tight_layout(rect=(0, 0.04 * (1 + (len(legend) - 1) // 4), 1, 1))
    fig.savefig(path, dpi=110)  # the Agg canvas is chosen from the suffix


def sample_path(out: str | os.PathLike, task: str, image: str, name: str) -> Path:
    """Where the grid's PNGs live: DIR/samples/<task>/<image>/<name>.png (name: ground_truth, measurement,
    <method>-nfe<N>)."""
    return Path(out) / SAMPLES_DIR / task / image / f"{name}.png"


def plot_grids(out: str | os.PathLike, summary: list[dict[str, Any]], tile: int = 96) -> list[Path]:
    """One PNG per task, grid_<task>.png: a row per saved image, columns ground truth, measurement, then every
    method x NFE of the summary (grey where missing), labelled; tiles enlarged (nearest) to at least `tile` px.
    Drawn with Pillow. Returns the files written."""
    from PIL import Image, ImageDraw

    out = Path(out)
    written = []
    for task in sorted({s["task"] for s in summary}):
        task_dir = out / SAMPLES_DIR / task
        images = sorted(p.name for p in task_dir.iterdir() if p.is_dir()) if task_dir.is_dir() else []
        if not images:
            continue
        runs = sorted({(s["method"], s["nfe"]) for s in summary if s["task"] == task},
                      key=lambda mn: (method_order(mn[0]), mn[1]))
        cols = ["ground truth", "measurement", *[f"{m}\nNFE {n}" if n else m for m, n in runs]]
        files = ["ground_truth", "measurement", *[f"{m}-nfe{n}" for m, n in runs]]
        pics = {}
        for i, im in enumerate(images):
            for j, f in enumerate(files):
                if (p := sample_path(out, task, im, f)).exists():
                    with Image.open(p) as pic:  # our own 8-bit PNGs (images.save_image): pasted, not converted
                        pics[i, j] = pic.convert("RGB")
        side = max([tile, *(max(p.size) for p in pics.values())])
        pad, top, left = 4, 28, 64
        grid = Image.new("RGB", (left + len(cols) * (side + pad), top + len(images) * (side + pad)), "white")
        draw = ImageDraw.Draw(grid)
        for j, label in enumerate(cols):
            short = "\n".join(line[: side // 6] for line in label.split("\n"))  # ~6 px per character
            draw.text((left + j * (side + pad), 2), short, fill="black")
        for i, image in enumerate(images):
            y0 = top + i * (side + pad)
            draw.text((2, y0 + side // 2), image[:10], fill="black")
            for j in range(len(cols)):
                x0 = left + j * (side + pad)
                pic = pics.get((i, j))
                if pic is None:
                    draw.rectangle((x0, y0, x0 + side - 1, y0 + side - 1), fill=(200, 200, 200))
                else:
                    grid.paste(pic.resize((side, side), Image.NEAREST), (x0, y0))
        path = out / f"grid_{task}.png"
        tmp = path.with_name(path.name + ".tmp")
        grid.save(tmp, format="PNG")
        os.replace(tmp, path)
        written.append(path)
    return written
