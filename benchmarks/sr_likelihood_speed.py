"""Exact sr4 likelihood step, before/after side by side: full n x n SVD factors (the former implementation, kept here
as the reference) versus the rank-r thin factors with flushed tiny entries (operators/resize.py), float32, one
(1, 3, n, n) image, at n = 256, 512, 1024, 2048.

Prints one JSON line per size: build seconds, fastest step seconds of each (interleaved repetitions), their ratio, the count of float32
denormals in the reference's factors, and the max |difference| of the two samples for the same noise (rho = 0.5,
sigma_p = 0.05; the samples agree up to float32 rounding).
Usage (repository root, idle machine):  python benchmarks/sr_likelihood_speed.py [--sizes 256,512,1024,2048]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import operators
from operators.resize import downsample_matrix


class FullBasisStep:
    """The former exact step: u = V [(Vᵀ b V)/λ + (Vᵀ ε V)/√λ] Vᵀ with full n x n V (float32 factors)."""

    def __init__(self, n: int, factor: int) -> None:
        mat = downsample_matrix(n, factor)
        _, s, vt = np.linalg.svd(mat, full_matrices=True)
        s2 = np.zeros(n)
        s2[: len(s)] = s**2
        self.m = torch.from_numpy(mat).float()
        self.v = torch.from_numpy(vt.T.copy()).float()
        self.s2 = torch.from_numpy(s2).float()

    def denormals(self) -> int:
        t = self.v[self.v != 0].abs()
        return int((t < torch.finfo(torch.float32).tiny).sum())

    def __call__(self, x0, y, rho, sigma_p, generator):
        lam = self.s2[:, None] * self.s2[None, :] / sigma_p**2 + 1.0 / rho**2
        b = (self.m.T @ y @ self.m) / sigma_p**2 + x0 / rho**2
        eps = torch.randn(x0.shape, generator=generator)
        z = (self.v.T @ b @ self.v) / lam + (self.v.T @ eps @ self.v) / lam.sqrt()
        return self.v @ z @ self.v.T


def seeded(fn, *args):
    """fn() -> fn(*args, generator seeded with 1): the same noise at every call."""
    return lambda: fn(*args, torch.Generator().manual_seed(1))


def interleaved(fns, reps: int) -> tuple[list[float], list[torch.Tensor]]:
    """Fastest of `reps` timed calls of each function, run alternately after one warm-up call each, so that load
    from other processes hits both alike; also returns each function's last output."""
    outs = [fn() for fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - t0)
    return [min(t) for t in times], outs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512,1024,2048")
    a = p.parse_args()
    rho, sp = 0.5, 0.05
    for n in (int(v) for v in a.sizes.split(",")):
        reps = 5 if n <= 512 else (3 if n <= 1024 else 1)
        t0 = time.perf_counter()
        old = FullBasisStep(n, 4)
        t_old_build = time.perf_counter() - t0
        operators.resize.downsample_factors.cache_clear()
        t0 = time.perf_counter()
        new = operators.create("sr4", (3, n, n)).float()
        t_new_build = time.perf_counter() - t0
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, n, n, generator=g) * 2 - 1
        y = new.measure(x, sp, g)
        x0 = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
        (t_old, t_new), (u_old, u_new) = interleaved(
            [seeded(old, x0, y, rho, sp), seeded(new.likelihood_sample, x0, y, rho, sp)], reps)
        print(json.dumps({
            "n": n, "build_s_full": round(t_old_build, 3), "build_s_thin": round(t_new_build, 3),
            "step_s_full": round(t_old, 4), "step_s_thin": round(t_new, 4), "speedup": round(t_old / t_new, 2),
            "full_denormals": old.denormals(), "max_abs_diff": float((u_old - u_new).abs().max()),
            "threads": torch.get_num_threads(),
        }), flush=True)


if __name__ == "__main__":
    main()
