"""Restore speed on one device: images/s, ratio to the NFE x one-pass floor, peak memory, per precision and batch.

Networks: the ffhq256-xs generator and teacher architectures (networks/presets.py) with random weights (speed does
not depend on the values); `--tiny` uses the 16 px `tiny` preset for a CPU check of the script itself.
Rows (sr4 at --size px, measurement sigma_y 0.05, one generator per image):
  pass     one generator call G(y, sigma): seconds (median of --reps after 2 warm-ups)
  default  PnP-GD warm-started from the classical estimate, 10 NFE (the sr4 preset's warm_start: sigma 0.7 -> 0.002,
           rho 7), the `restore` default
  paper49  PnP-GD from noise, 49 NFE (Karras sigma 80 -> 0.002, rho 2, beta 1e-3, EMA 100 / 0.6; paper Table 4)
  dps      DPS with the teacher (--teacher-nfe steps; each step also back-propagates through it)
  daps     DAPS-style with the teacher (--teacher-nfe // 5 levels x 5 ODE steps)
  tpass    one teacher call D(x, sigma)
For every row: seconds, images/s, seconds per NFE, ratio to NFE x the matching one-pass time (the floor), peak device
memory (CUDA: max_memory_allocated; CPU: peak RSS above the start of the row).
Usage:  python benchmarks/gpu_speed.py [--device cuda] [--tiny] [--batches 1,8,32] [--precisions fp32,bf16]
        [--out benchmarks/gpu-speed] [--compile]
Writes <out>/results.jsonl and <out>/summary.md (with the device name and versions).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, reps: int = 1, warmup: int = 0) -> float:
    """Median seconds of `reps` calls of fn() after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Peak:
    """Peak device memory (MiB) of the code it wraps: CUDA max_memory_allocated, or CPU RSS peak above the start."""

    def __init__(self, device: torch.device):
        self.device, self.mib = device, 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            from ncvsd_cli.bench.memory import RowCost
            self._cost = RowCost("cpu").__enter__()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._cost.__exit__(*exc)
            self.mib = self._cost.peak_mem_mb


@torch.no_grad()
def randomise_scalars(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Zero-initialised gains and mixing weights set to random values in (0.1, 0.9), so every branch is used."""
    g = torch.Generator().manual_seed(seed)
    for p in net.parameters():
        if p.ndim <= 1 and p.numel() < 64:
            p.copy_(torch.rand(p.shape, generator=g) * 0.8 + 0.1)
    return net


def build(kind: str, preset: str, precision: str, device: torch.device, compile_: bool):
    from ncvsd_cli.networks import build_network, network_config
    from ncvsd_cli.networks.inference import prepare_for_inference

    torch.manual_seed(0)
    net = randomise_scalars(build_network(network_config(kind, preset))).to(device).eval().requires_grad_(False)
    effective = prepare_for_inference(net, precision, device, kind)
    return (torch.compile(net) if compile_ else net), effective


def net_call(net, x: torch.Tensor, batch: int):
    """fn() -> net(x, 0.5) with fresh per-image generators (the teacher takes none)."""
    from operators.noise import generators_for_seeds

    if hasattr(net, "gamma") or hasattr(getattr(net, "_orig_mod", None), "gamma"):  # a generative denoiser
        return lambda: net(x, 0.5, generator=generators_for_seeds(range(batch)))
    return lambda: net(x, 0.5)


def sampler_call(sampler, net, op, y: torch.Tensor, sigmas, batch: int, **kwargs):
    """fn() -> sampler(net, op, y, sigmas, generator=<fresh per-image generators>, **kwargs)."""
    from operators.noise import generators_for_seeds

    return lambda: sampler(net, op, y, sigmas, generator=generators_for_seeds(range(batch)), **kwargs)


def schedules():
    """Noise levels and settings of the sr4 preset's default (warm, 10 NFE) and paper (49 NFE) samplers."""
    from ncvsd_cli.sampling.schedules import karras_sigmas

    common = {"beta": 1e-3, "ema_sigma": 100.0, "ema_decay": 0.6}
    return {"default": (karras_sigmas(11, 0.002, 0.7, 7.0), common),
            "paper49": (karras_sigmas(50, 0.002, 80.0, 2.0), common)}


def run(a) -> list[dict]:
    import operators
    from ncvsd_cli.sampling.pnp_gd import pnp_gd, pnp_gd_warm
    from ncvsd_cli.sampling.schedules import karras_sigmas
    from ncvsd_cli.sampling.teacher_baselines import daps, dps
    from operators.noise import generators_for_seeds

    device = torch.device(a.device)
    preset = "tiny" if a.tiny else "ffhq256-xs"
    size = a.size or (16 if a.tiny else 256)
    rows = []

    def emit(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    op = operators.create("sr4", (3, size, size)).float().to(device)
    for precision in a.precisions.split(","):
        gen_net, eff = build("generator", preset, precision, device, a.compile)
        teacher, teff = build("teacher", preset, precision, device, a.compile)
        for batch in (int(b) for b in a.batches.split(",")):
            base = {"preset": preset, "size": size, "precision": precision, "effective": eff, "batch": batch,
                    "device": str(device), "compile": a.compile}
            x = (torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
            y = op.measure(x, 0.05, generators_for_seeds(range(batch)))
            with torch.no_grad(), Peak(device) as pk:
                one = timed(net_call(gen_net, x, batch), device, a.reps, warmup=2)
            emit({**base, "row": "pass", "nfe": 1, "seconds": one, "images_per_s": batch / one,
                  "s_per_nfe": one, "floor_ratio": 1.0, "peak_mib": pk.mib})
            for name, (sigmas, settings) in schedules().items():
                nfe = len(sigmas) - 1
                if name == "default":
                    fn = sampler_call(pnp_gd_warm, gen_net, op, y, sigmas, batch, sigma_y=0.05, **settings)
                else:
                    fn = sampler_call(pnp_gd, gen_net, op, y, sigmas, batch, **settings)
                with Peak(device) as pk:
                    sec = timed(fn, device, 1, warmup=1 if name == "default" else 0)
                emit({**base, "row": name, "nfe": nfe, "seconds": sec, "images_per_s": batch / sec,
                      "s_per_nfe": sec / nfe, "floor_ratio": sec / (nfe * one), "peak_mib": pk.mib})
            if batch > a.teacher_max_batch:
                continue
            with torch.no_grad(), Peak(device) as pk:
                tone = timed(net_call(teacher, x, batch), device, a.reps, warmup=2)
            emit({**base, "effective": teff, "row": "tpass", "nfe": 1, "seconds": tone, "images_per_s": batch / tone,
                  "s_per_nfe": tone, "floor_ratio": 1.0, "peak_mib": pk.mib})
            n = a.teacher_nfe
            for name, fn, nfe in (
                ("dps", sampler_call(dps, teacher, op, y, karras_sigmas(n), batch, zeta=0.5), n),
                ("daps", sampler_call(daps, teacher, op, y, karras_sigmas(max(1, n // 5), 0.1), batch, ode_steps=5),
                 max(1, n // 5) * 5),
            ):
                with Peak(device) as pk:
                    sec = timed(fn, device, 1)
                emit({**base, "effective": teff, "row": name, "nfe": nfe, "seconds": sec, "images_per_s": batch / sec,
                      "s_per_nfe": sec / nfe, "floor_ratio": sec / (nfe * tone), "peak_mib": pk.mib})
        gen_net = teacher = None  # free before the next precision
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def summary(rows: list[dict], a) -> str:
    dev = torch.cuda.get_device_name(torch.device(a.device)) if a.device.startswith("cuda") else platform.processor()
    setup = (f"device: {a.device} ({dev}); torch {torch.__version__}; threads {torch.get_num_threads()}; "
             f"compile {a.compile}")
    lines = [f"# Restore speed ({'tiny' if a.tiny else 'ffhq256-xs'}, random weights)", "", setup, "",
             "| precision | batch | row | NFE | seconds | images/s | s/NFE | ratio to floor | peak MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['precision']} ({r['effective']}) | {r['batch']} | {r['row']} | {r['nfe']} | "
                     f"{r['seconds']:.4f} | {r['images_per_s']:.2f} | {r['s_per_nfe']:.4f} | "
                     f"{r['floor_ratio']:.2f} | {r['peak_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="16 px `tiny` networks (a CPU check of this script)")
    p.add_argument("--size", type=int, default=None, help="image side (default 256, or 16 with --tiny)")
    p.add_argument("--batches", default=None, help="default 1,8,32 (1,2 with --tiny)")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions of one pass")
    p.add_argument("--teacher-nfe", type=int, default=20, help="DPS steps; DAPS uses NFE // 5 levels x 5 ODE steps")
    p.add_argument("--teacher-max-batch", type=int, default=8, help="largest batch for the teacher rows")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--out", default="benchmarks/gpu-speed")
    a = p.parse_args()
    a.batches = a.batches or ("1,2" if a.tiny else "1,8,32")
    if a.tiny:  # a quick check of the script: fewer repetitions and calls
        a.reps, a.teacher_nfe = min(a.reps, 2), min(a.teacher_nfe, 10)
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    rows = run(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "summary.md").write_text(summary(rows, a) + f"\nwall time {time.perf_counter() - t0:.0f} s\n")
    print(f"wrote {out / 'results.jsonl'} and {out / 'summary.md'} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
