"""`ncvsd bench` with one image per sampler call versus --batch-size B, side by side in one process.

Same config (the shipped default generator and teacher, the builtin held-out crops, seed 0), run in the order
1, B, 1, B so that machine noise hits both; reports each run's wall time, the batched/unbatched ratio, and the largest
difference of any score between the two (each image keeps its own generators, so only the network's float rounding
may differ). Usage:
  python benchmarks/bench_batching.py [--device cpu|cuda] [--batch 8] [--limit 8] [--out benchmarks/bench-batching]
Writes <out>/results.json and <out>/summary.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ncvsd_cli.bench import BenchConfig, results, run_bench


def one_run(args: argparse.Namespace, batch: int, scratch: Path) -> tuple[float, dict]:
    out = scratch / f"b{batch}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = BenchConfig(dataset="builtin", out=str(out), tasks=args.tasks.split(","), methods=args.methods.split(","),
                      nfe=[int(n) for n in args.nfe.split(",")], baseline_nfe=args.baseline_nfe, limit=args.limit,
                      device=args.device, batch_size=batch, grid_images=0)
    t0 = time.perf_counter()
    outcome = run_bench(cfg, progress=False)
    wall = time.perf_counter() - t0
    if outcome.failed:
        raise SystemExit(f"batch {batch}: {outcome.failed[0]}")
    return wall, {results.row_key(r): r for r in results.read_rows(out / results.CSV_NAME)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--tasks", default="sr4,inpaint-box")
    ap.add_argument("--methods", default="pnp-gd-warm,pnp-gd,dps")
    ap.add_argument("--nfe", default="4")
    ap.add_argument("--baseline-nfe", type=int, default=8)
    ap.add_argument("--out", default="benchmarks/bench-batching")
    args = ap.parse_args()
    if args.batch < 2:
        ap.error("--batch must be >= 2 (it is compared with one image per call)")
    walls: dict[int, list[float]] = {1: [], args.batch: []}
    rows: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, args.batch, 1, args.batch):
            wall, rows[batch] = one_run(args, batch, Path(tmp))
            walls[batch].append(wall)
            print(f"batch {batch}: {wall:.2f} s", flush=True)
    one, many = rows[1], rows[args.batch]
    sampler = {b: sum(r["seconds"] for r in rs.values()) for b, rs in rows.items()}  # the last run of each
    assert one.keys() == many.keys(), "the two runs made different rows"
    diff = {c: max(abs(one[k][c] - many[k][c]) for k in one) for c in ("psnr", "ssim", "lpips_alex")}
    best = {b: min(w) for b, w in walls.items()}
    res = {"device": args.device, "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
           "torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
           "config": {k: v for k, v in vars(args).items() if k != "out"}, "rows": len(one),
           "wall_s": {str(b): w for b, w in walls.items()}, "best_wall_s": {str(b): w for b, w in best.items()},
           "speedup_best": best[1] / best[args.batch], "sampler_s": {str(b): v for b, v in sampler.items()},
           "sampler_speedup": sampler[1] / sampler[args.batch], "max_abs_score_difference": diff}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [f"# bench --batch-size {args.batch} vs 1 ({args.device}{', ' + res['gpu'] if res['gpu'] else ''}, "
             f"torch {res['torch']}, {res['cpu_threads']} CPU threads)", "",
             f"builtin held-out crops, first {args.limit}; tasks {args.tasks}; methods {args.methods}; "
             f"nfe {args.nfe}; baseline nfe {args.baseline_nfe}; seed 0; {len(one)} rows per run; runs in the order 1, B, 1, B.", "",
             "| batch | wall s (each run) | best |", "|---|---|---|"]
    lines += [f"| {b} | {', '.join(f'{w:.2f}' for w in walls[b])} | {best[b]:.2f} |" for b in walls]
    lines += ["", f"Speed-up of the whole run (best of each, model loading and reports included): "
              f"**{res['speedup_best']:.2f}x**; of the sampler calls alone (sum of the rows' seconds, second runs): "
              f"{sampler[1]:.2f} s vs {sampler[args.batch]:.2f} s, **{res['sampler_speedup']:.2f}x**. Largest score "
              "difference between the runs: " + ", ".join(f"{c} {v:.2e}" for c, v in diff.items()) + "."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
