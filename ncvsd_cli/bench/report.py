"""Aggregate per-image rows into the benchmark summary: Markdown table, JSON, NFE plot, image grids and a one-page
HTML report (report.html: the plot, the tables and the grids, images linked relative to it) and the same page as
one picture (report.png).

Aggregation (stated in every output):
- "mean": each image's metrics are averaged over its runs (one run unless --best-of K), then the mean and the
  sample standard deviation (ddof = 1; none for a single image: null in summary.json, no ± in summary.md) over
  images are reported.
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
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ncvsd_cli import strict_json
from ncvsd_cli.bench.results import lpips_column
from ncvsd_cli.errors import one_line

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SUMMARY_MD = "summary.md"
SUMMARY_JSON = "summary.json"
PLOT_PNG = "nfe_plot.png"
REPORT_HTML = "report.html"
REPORT_PNG = "report.png"
SAMPLES_DIR = "samples"
#: The settings that head every report (summary.md, report.html, report.png), in order (config keys).
HEADER_KEYS = ("dataset", "images", "failed", "resolution", "seed", "device", "batch_size", "precision", "generator",
               "teacher", "ncvsd", "rows_of_earlier_runs")
AGGREGATION_TEXT = {
    "mean": "mean ± std over images (std: sample, ddof=1); per image, the mean over its runs",
    "best-of-K": "best-of-K: per image the best of K runs separately per metric (max PSNR/SSIM, min LPIPS), "
                 "then mean ± std over images. Not comparable with single-sample numbers",
}


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (ddof 1; NaN for a single value: undefined, not 0)."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan


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


def summarize(rows: list[dict[str, Any]], lpips_net: str, task_order: list[str] | None = None) -> list[dict[str, Any]]:
    """One record per (dataset, task, method, nfe, aggregation) with metric means/stds and costs (see module doc),
    tasks in `task_order` (--tasks'; others after it, by name)."""
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
            rec["sigma_y"] = float(grp[0].get("sigma_y") or 0.0)  # the task's measurement noise
            rec["device"] = grp[0]["device"]
            out.append(rec)
    order = {t: i for i, t in enumerate(task_order or [])}
    out.sort(key=lambda s: (s["dataset"], order.get(s["task"], len(order)), s["task"], method_order(s["method"]),
                            s["nfe"], s["aggregation"] != "mean"))
    return out


def task_heading(dataset: str, task: str, summary: list[dict[str, Any]]) -> str:
    """A task table's title: "sr4 (photos, sigma_y 0.05 on [-1, 1])" (a --preset's level otherwise shows nowhere)."""
    sig = next((s.get("sigma_y") for s in summary if (s["dataset"], s["task"]) == (dataset, task)), None)
    return f"{task} ({dataset}" + (f", sigma_y {sig:g} on [-1, 1])" if sig is not None else ")")


def _fmt(mean: float, std: float, digits: int, n: int = 2) -> str:
    """mean ± std, or the mean alone for one image (its std is undefined, not 0)."""
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if n < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(summary: list[dict[str, Any]], lpips_net: str, header: dict[str, Any] | None = None) -> str:
    """The summary as Markdown: one table per task, rows method x NFE (x aggregation)."""
    lp = lpips_column(lpips_net)
    lines = ["# ncvsd bench summary", ""]
    for k, v in (header or {}).items():
        lines.append(f"- {k}: images of {v}x{v} px (other sizes cropped to a square and resized)" if k == "resolution"
                     else f"- {k}: {v}")
    lines += [f"- LPIPS: `{lp}` (lpips package, {lpips_net} backbone, lower is better)",
              f"- aggregation: {AGGREGATION_TEXT['mean']}",
              ("- NFE: the sweep value (network evaluations requested); evals: counted network evaluations per run; "
               "op evals: forward-operator applications per run"), ""]
    if any(s["aggregation"] != "mean" for s in summary):
        lines += [f"- {AGGREGATION_TEXT['best-of-K']}", ""]
    tasks = list(dict.fromkeys((s["dataset"], s["task"]) for s in summary))  # summarize's order
    for dataset, task in tasks:
        lines += [f"## {task_heading(dataset, task, summary)}", "",
                  "| method | NFE | aggregation | images | " + " | ".join(h for _, h, _, _ in _metric_columns(lpips_net))
                  + " | evals | op evals | s / image | peak MiB |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in summary:
            if (s["dataset"], s["task"]) != (dataset, task):
                continue
            lines.append(
                f"| {s['method']} | {s['nfe']} | {s['aggregation']} | {s['n_images']} | "
                f"{_fmt(s['psnr_mean'], s['psnr_std'], 2, s['n_images'])} | "
                f"{_fmt(s['ssim_mean'], s['ssim_std'], 3, s['n_images'])} | "
                f"{_fmt(s[lp + '_mean'], s[lp + '_std'], 3, s['n_images'])} | {s['network_evals']:.0f} | "
                f"{s['operator_evals']:.0f} | {s['seconds_mean']:.3f} | {s['peak_mem_mb_max']:.1f} |")
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
    summary = summarize(rows, lpips_net, ((config or {}).get("settings") or {}).get("tasks"))
    header = {k: config[k] for k in HEADER_KEYS if config and config.get(k) not in (None, "")}  # e.g. no precision
    _atomic_write(out / SUMMARY_MD, markdown(summary, lpips_net, header))
    doc = {"lpips_net": lpips_net, "lpips_column": lpips_column(lpips_net), "aggregation": AGGREGATION_TEXT,
           "config": config or {}, "summary": summary}
    _atomic_write(out / SUMMARY_JSON, strict_json.dumps(doc, indent=2) + "\n")
    return summary


#: Okabe & Ito's colour-blind-safe palette (its yellow left out: too faint on white), then grey.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#888888")
#: Each method also has its own marker (swept and single-NFE methods) or dash pattern (classical baselines), so
#: the plot reads without colour.
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "<", ">")
DASHES = ("--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (10, 3)), (0, (1, 3)))


def plot_nfe(summary: list[dict[str, Any]], lpips_net: str, path: str | os.PathLike) -> None:
    """Write `nfe_figure` to `path` (PNG, matplotlib's Agg canvas)."""
    nfe_figure(summary, lpips_net).savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.1)  # (the legend
    # right of the plots: the saved box grows to hold it whole)


def nfe_figure(summary: list[dict[str, Any]], lpips_net: str) -> Figure:
    """LPIPS and PSNR versus NFE, one column per task: swept methods as lines (log NFE axis), methods at a single
    NFE as marked points, classical methods (NFE 0) as horizontal lines ("mean" aggregation only); each method its
    colour and its marker or dash pattern; the y range holds every line; one legend for all tasks."""
    import matplotlib.ticker
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state is touched

    lp = lpips_column(lpips_net)
    recs = [s for s in summary if s["aggregation"] == "mean"]
    tasks = list(dict.fromkeys(s["task"] for s in recs))
    fig = Figure(figsize=(4.2 * max(1, len(tasks)), 6.4))
    axes = fig.subplots(2, max(1, len(tasks)), squeeze=False)
    methods = sorted({s["method"] for s in recs}, key=method_order)
    baselines = [m for m in methods if all(s["nfe"] == 0 for s in recs if s["method"] == m)]
    colour = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
    marker = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(m for m in methods if m not in baselines)}
    dashes = {m: DASHES[i % len(DASHES)] for i, m in enumerate(baselines)}
    swept = any(s["nfe"] > 0 for s in recs)
    for j, task in enumerate(tasks):
        for i, (metric, label) in enumerate(((lp, f"LPIPS ({lpips_net}) ↓"), ("psnr", "PSNR (dB) ↑"))):
            ax = axes[i][j]
            values = []
            for m in methods:
                pts = sorted((s["nfe"], s[metric + "_mean"]) for s in recs if s["task"] == task and s["method"] == m)
                pts = [(n, v) for n, v in pts if math.isfinite(v)]
                values += [v for _, v in pts]
                if not pts:
                    continue
                if m in baselines:
                    ax.axhline(pts[0][1], ls=dashes[m], lw=1.3, color=colour[m], label=f"{m} (no network)")
                elif len(pts) == 1:
                    ax.plot(*zip(*pts), ls="none", marker=marker[m], ms=9, color=colour[m],
                            label=f"{m} @ {pts[0][0]}")
                else:
                    ax.plot(*zip(*pts), marker=marker[m], color=colour[m], label=m)
            if values:  # (axhline is left out of autoscaling: a baseline at the top sat on the frame)
                lo, hi = min(values), max(values)
                pad = 0.08 * (hi - lo) or 0.05 * max(abs(hi), 1e-3)
                ax.set_ylim(lo - pad, hi + pad)
            if swept:
                ax.set_xscale("log")
                ticks = sorted({s["nfe"] for s in recs if s["task"] == task and s["nfe"] > 0})
                if ticks:
                    ax.set_xticks(ticks, [str(t) for t in ticks])
                    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                ax.set_xlabel("NFE (network evaluations, log scale)")
            else:  # classical methods only: no NFE axis to show
                ax.set_xticks([])
                ax.set_xlabel("classical methods (no network evaluations)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(task)
    legend: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.tight_layout()
    if legend:  # right of the plots
        fig.legend(list(legend.values()), list(legend), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                   frameon=False, handlelength=3.5)
    return fig


#: Characters of an image's name shown as a grid row's label (longer names keep their end).
LABEL_CHARS = 24


def sample_path(out: str | os.PathLike, task: str, image: str, name: str) -> Path:
    """Where the grid's PNGs live: DIR/samples/<task>/<image>/<name>.png (name: ground_truth, measurement,
    <method>-nfe<N>; an image id's subfolders flattened, "a/b" -> "a__b")."""
    return Path(out) / SAMPLES_DIR / task / image.replace("/", "__") / f"{name}.png"


def claim_samples(out: str | os.PathLike, task: str, image: str, origin: dict[str, Any]) -> None:
    """Make an image's sample folder this run's (`origin`: dataset and seed): pictures another dataset's image of
    that name or another seed left there are removed (their rows stay in the CSV; a --resume of that run draws
    them again), so a grid never shows another run's pictures beside this run's numbers. A --resume of another
    dataset or seed is refused (`runner._check_settings`): this serves folders written before that refusal."""
    folder = sample_path(out, task, image, "x").parent
    record = folder / "origin.json"
    try:
        earlier = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None
    except ValueError:
        earlier = {}
    if earlier == origin:
        return
    if earlier is not None:
        for png in folder.glob("*.png"):
            png.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(origin) + "\n", encoding="utf-8")


def column_head(label: str, width_px: int) -> str:
    """A grid column's label wrapped at spaces and hyphens to `width_px` (Pillow's default font, ~6 px per
    character), never cut: "pnp-gd-warm-mean8" -> "pnp-gd-warm-\nmean8" on a 96-px tile."""
    return "\n".join(part for line in label.split("\n")
                     for part in textwrap.wrap(line, max(width_px // 6, 1), break_on_hyphens=True))


def _label(summary: list[dict[str, Any]]) -> bytes:
    """The AI label (`xmp.labelled`) of a figure of these summary records' restorations: edited with AI when a
    method runs a trained network (one not registered now, a plug-in's rows of an earlier run, counted as one),
    else algorithmically enhanced."""
    from ncvsd_cli.sampling.methods import source_type
    from ncvsd_cli.xmp import EDITED_BY_AI, ENHANCED, labelled

    def kind(method: str) -> str:
        try:
            return source_type(method)
        except ValueError:
            return EDITED_BY_AI

    return labelled(None, EDITED_BY_AI if any(kind(m["method"]) == EDITED_BY_AI for m in summary) else ENHANCED)


def plot_grids(out: str | os.PathLike, summary: list[dict[str, Any]], tile: int = 96,
               images: list[str] | None = None) -> list[Path]:
    """One PNG per task, grid_<task>.png: a row per image of `images` (this run's grid images, in order; None:
    every sample folder), columns ground truth, measurement, then every method x NFE of the summary (grey where
    missing), labelled; tiles enlarged (nearest) to at least `tile` px. Drawn with Pillow, with the AI label
    (`xmp.labelled`). Returns the files written."""
    from PIL import Image, ImageDraw

    from ncvsd_cli.images import png_xmp

    out = Path(out)
    written = []
    for task in dict.fromkeys(s["task"] for s in summary):
        task_dir = out / SAMPLES_DIR / task
        folders = sorted(p.name for p in task_dir.iterdir() if p.is_dir()) if task_dir.is_dir() else []
        rows = list(images) if images is not None else folders
        if not rows:
            continue
        runs = sorted({(s["method"], s["nfe"]) for s in summary if s["task"] == task},
                      key=lambda mn: (method_order(mn[0]), mn[1]))
        cols = ["ground truth", "measurement", *[f"{m}\nNFE {n}" if n else m for m, n in runs]]
        files = ["ground_truth", "measurement", *[f"{m}-nfe{n}" for m, n in runs]]
        pics = {}
        for i, im in enumerate(rows):
            for j, f in enumerate(files):
                if (p := sample_path(out, task, im, f)).exists():
                    with Image.open(p) as pic:  # our own 8-bit PNGs (images.save_image): pasted, not converted
                        pics[i, j] = pic.convert("RGB")
        side = max([tile, *(max(p.size) for p in pics.values())])
        heads = [column_head(label, side) for label in cols]
        pad, top = 4, max(28, 4 + 12 * max(h.count("\n") + 1 for h in heads))  # 28: two lines, as before
        left = min(max(64, 6 * max(map(len, rows)) + 6), 6 * LABEL_CHARS + 6)  # ~6 px per character
        grid = Image.new("RGB", (left + len(cols) * (side + pad), top + len(rows) * (side + pad)), "white")
        draw = ImageDraw.Draw(grid)
        for j, head in enumerate(heads):
            draw.multiline_text((left + j * (side + pad), 2), head, fill="black", spacing=2)
        for i, image in enumerate(rows):
            y0 = top + i * (side + pad)
            draw.text((2, y0 + side // 2), image if len(image) <= LABEL_CHARS else "..." + image[3 - LABEL_CHARS:],
                      fill="black")
            for j in range(len(cols)):
                x0 = left + j * (side + pad)
                pic = pics.get((i, j))
                if pic is None:
                    draw.rectangle((x0, y0, x0 + side - 1, y0 + side - 1), fill=(200, 200, 200))
                else:
                    grid.paste(pic.resize((side, side), Image.NEAREST), (x0, y0))
        path = out / f"grid_{task}.png"
        tmp = path.with_name(path.name + ".tmp")
        grid.save(tmp, format="PNG", pnginfo=png_xmp(_label([m for m in summary if m["task"] == task])))
        os.replace(tmp, path)
        written.append(path)
    return written


def _best(recs: list[dict[str, Any]], columns) -> dict[str, float]:
    """The best "mean" value of each metric column (max for PSNR / SSIM, min for LPIPS) among `recs` over the most
    images (a row over fewer, left by an earlier --resume's selection, is not compared)."""
    most = max((s["n_images"] for s in recs), default=0)
    return {m: pick([s[m + "_mean"] for s in recs if s["aggregation"] == "mean" and s["n_images"] == most
                     and not math.isnan(s[m + "_mean"])] or [math.nan]) for m, _, _, pick in columns} | {"_n": most}


def _is_best(s: dict[str, Any], metric: str, best: dict[str, float]) -> bool:
    """Whether record `s` holds `best`'s value of `metric` (`_best`: a "mean" row over the most images)."""
    return s["aggregation"] == "mean" and s["n_images"] == best["_n"] and s[metric + "_mean"] == best[metric]


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em}caption{text-align:left;color:#555;font-size:.9em;padding:.2em 0}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}img{max-width:100%;height:auto}
.note{color:#555;font-size:.85em}"""



def _metric_columns(lpips_net: str) -> tuple[tuple[str, str, int, Any], ...]:
    """The tables' metric columns: (summary key, heading, digits, which is best)."""
    return (("psnr", "PSNR (dB) ↑", 2, max), ("ssim", "SSIM ↑", 3, max),
            (lpips_column(lpips_net), f"LPIPS-{lpips_net} ↓", 3, min))


def write_html(out: str | os.PathLike, summary: list[dict[str, Any]], lpips_net: str,
               config: dict[str, Any] | None = None) -> Path:
    """Write DIR/report.html: one page with the run's settings (failures included), the NFE plot, per task a table
    (method x NFE, best mean metric in bold, said in its caption) and its image grid. Images are linked relative to
    the page (nfe_plot.png, grid_<task>.png), so the folder opens in any browser as it is; no script, no styles
    from elsewhere; tables have captions and column headers for screen readers and scroll sideways on a phone.
    Returns the path."""
    from html import escape

    out = Path(out)
    lp = lpips_column(lpips_net)
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>ncvsd bench report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>ncvsd bench report</h1>", "<ul>"]
    parts += [f"<li>{escape(k)}: {escape(str(config[k]))}</li>" for k in HEADER_KEYS if config and config.get(k)
              not in (None, "")]
    parts += [f"<li>LPIPS: {escape(lp)} (lower is better); PSNR and SSIM: higher is better</li>",
              f"<li>aggregation: {escape(AGGREGATION_TEXT['mean'])}</li>"]
    if any(s["aggregation"] != "mean" for s in summary):
        parts.append(f"<li>{escape(AGGREGATION_TEXT['best-of-K'])}</li>")
    parts.append("</ul>")
    if (out / PLOT_PNG).exists():
        parts += ["<h2>Quality versus network evaluations</h2>",
                  (f'<img src="{PLOT_PNG}" alt="LPIPS and PSNR versus the number of network evaluations, one column '
                   'per task (the numbers are in the tables below)">')]
    columns = _metric_columns(lpips_net)
    heads = ["method", "NFE", "aggregation", "images", *[h for _, h, _, _ in columns], "s / image", "peak MiB"]
    for dataset, task in dict.fromkeys((s["dataset"], s["task"]) for s in summary):
        recs = [s for s in summary if (s["dataset"], s["task"]) == (dataset, task)]
        best = _best(recs, columns)
        parts += [f"<h2>{escape(task_heading(dataset, task, recs))}</h2>", '<div class="scroll"><table>',
                  f"<caption>{escape(task)}: method x NFE; the best mean of each metric in bold</caption>",
                  "<thead><tr>" + "".join(f'<th scope="col">{escape(h)}</th>' for h in heads) + "</tr></thead>",
                  "<tbody>"]
        for s in recs:
            cells = []
            for m, _, digits, _ in columns:
                text = escape(_fmt(s[m + "_mean"], s[m + "_std"], digits, s["n_images"]))
                bold = _is_best(s, m, best)
                cells.append(f'<td class="n">{"<b>" + text + "</b>" if bold else text}</td>')
            parts.append(f"<tr><th scope=\"row\">{escape(s['method'])}</th><td class=\"n\">{s['nfe']}</td>"
                         f"<td>{escape(s['aggregation'])}</td><td class=\"n\">{s['n_images']}</td>{''.join(cells)}"
                         f"<td class=\"n\">{s['seconds_mean']:.3f}</td><td class=\"n\">{s['peak_mem_mb_max']:.1f}</td>"
                         "</tr>")
        parts.append("</tbody></table></div>")
        if (out / f"grid_{task}.png").exists():
            parts.append(f'<img src="grid_{escape(task)}.png" alt="{escape(task)}: per image, the ground truth, the '
                         'measurement and each method\'s restoration">')
    parts.append('<p class="note">Written by <code>ncvsd bench</code>; the numbers are in summary.json and '
                 "per_image.csv beside this page.</p></body></html>")
    path = out / REPORT_HTML
    _atomic_write(path, "\n".join(parts) + "\n")
    return path


def table_figure(lines: list[list[str]] | str, width: int, bold_cells=(), title: str | None = None) -> Figure:
    """A `width` px wide matplotlib figure of a title line (`lines` a string) or a table (`lines[0]` the header),
    its columns as wide as their text needs (a long plug-in method name overflowed an even share), `bold_cells`
    (row, column) in bold."""
    from matplotlib.figure import Figure

    rows = lines.count("\n") + 1 if isinstance(lines, str) else len(lines)
    fig = Figure(figsize=(width / 100, 0.5 + 0.24 * rows), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    if isinstance(lines, str):  # a title, then its lines of settings in smaller type
        head, *rest = lines.split("\n")
        ax.text(0.01, 1 - 0.25 / (0.5 + 0.24 * rows), head, fontsize=16, weight="bold", va="center")
        if rest:
            ax.text(0.01, 1 - 0.45 / (0.5 + 0.24 * rows), "\n".join(rest), fontsize=9, va="top", linespacing=1.5)
        return fig
    if title:
        ax.set_title(title, loc="left", fontsize=12, weight="bold", y=1.0, pad=-14)
    table = ax.table(cellText=lines[1:], colLabels=lines[0], loc="lower left",
                     bbox=(0.01, 0.02, 0.98, 0.98 - 0.3 / (0.5 + 0.24 * rows)))
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.auto_set_column_width(list(range(len(lines[0]))))  # shares of the bbox in proportion to the text
    for r, c in bold_cells:
        table[r, c].set_text_props(weight="bold")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    need = sum(max(cell.get_text().get_window_extent(renderer).width for (_, c), cell in table.get_celld().items()
                   if c == col) + 12 for col in range(len(lines[0])))  # + a cell's padding both sides
    if need > 0.98 * width:  # too long to fit at 9 pt: a smaller font
        table.set_fontsize(max(5.0, 9 * 0.98 * width / need))
    return fig


def write_report_png(out: str | os.PathLike, summary: list[dict[str, Any]], lpips_net: str,
                     width: int = 1400, config: dict[str, Any] | None = None) -> Path:
    """Write DIR/report.png: the HTML report as one picture (title and the settings of `config` that say what was
    measured, NFE plot, then per task its table and grid, each scaled to at most `width` px wide). Tables are drawn
    with matplotlib, the page stacked with Pillow. Returns the path."""
    import io

    from PIL import Image

    out = Path(out)
    columns = _metric_columns(lpips_net)

    def text_block(lines: list[list[str]] | str, bold_cells=(), title: str | None = None) -> Image.Image:
        buffer = io.BytesIO()
        table_figure(lines, width, bold_cells, title).savefig(buffer, format="png")
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")

    shown = [f"{k} {one_line(str(config[k]), 160)}" for k in HEADER_KEYS if config and config.get(k) not in (None, "")]
    shown.append(f"LPIPS {lpips_column(lpips_net)}; {AGGREGATION_TEXT['mean']}")
    if any(s["aggregation"] != "mean" for s in summary):
        shown.append(AGGREGATION_TEXT["best-of-K"])
    settings = textwrap.wrap(" · ".join(shown), max(width // 9, 40))  # 9 pt: 5-8 px per character (capitals: 8)
    blocks = [text_block("\n".join(["ncvsd bench report", *settings]))]
    if (out / PLOT_PNG).exists():
        with Image.open(out / PLOT_PNG) as pic:
            blocks.append(pic.convert("RGB"))
    for dataset, task in dict.fromkeys((s["dataset"], s["task"]) for s in summary):
        recs = [s for s in summary if (s["dataset"], s["task"]) == (dataset, task)]
        best = _best(recs, columns)
        lines = [["method", "NFE", "aggregation", "images", *[h for _, h, _, _ in columns], "s / image", "peak MiB"]]
        bold = []
        for i, s in enumerate(recs, start=1):
            lines.append([one_line(s["method"], 48), str(s["nfe"]), s["aggregation"], str(s["n_images"]),
                          *[_fmt(s[m + "_mean"], s[m + "_std"], d, s["n_images"]) for m, _, d, _ in columns],
                          f"{s['seconds_mean']:.3f}", f"{s['peak_mem_mb_max']:.1f}"])
            bold += [(i, 4 + c) for c, (m, *_) in enumerate(columns)
                     if _is_best(s, m, best)]
        blocks.append(text_block(lines, bold, title=task_heading(dataset, task, recs)))
        if (out / f"grid_{task}.png").exists():
            with Image.open(out / f"grid_{task}.png") as pic:
                blocks.append(pic.convert("RGB"))
    scaled = [b if b.width <= width else b.resize((width, round(b.height * width / b.width)), Image.LANCZOS)
              for b in blocks]
    page = Image.new("RGB", (width, sum(b.height + 8 for b in scaled)), "white")
    y = 0
    for b in scaled:
        page.paste(b, (0, y))
        y += b.height + 8
    buffer = io.BytesIO()
    from ncvsd_cli.images import atomic_write_bytes, png_xmp

    page.save(buffer, format="PNG", optimize=True, pnginfo=png_xmp(_label(summary)))  # (it shows the grids)
    path = out / REPORT_PNG

    atomic_write_bytes(path, buffer.getvalue())
    return path
