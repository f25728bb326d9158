"""Phase retrieval's Langevin likelihood step, before/after side by side: the gradient of |A(u) - y|² by autograd
through the operator (the former implementation, `Operator.data_gradient`) versus the closed form
(`PhaseRetrieval.data_gradient`: two FFTs, no graph), float32, one (1, 3, n, n) image, 100 ULA steps.

Prints one JSON line per size: fastest seconds of each (interleaved repetitions), their ratio, and the max
|difference| of the two chains for the same noise (rho = 0.5, sigma_p = 0.05; equal up to float32 rounding).
Usage (repository root, idle machine):  python benchmarks/pr_likelihood_speed.py [--sizes 64,128,256]
"""

from __future__ import annotations

import argparse
import json
import types

import torch
from sr_likelihood_speed import interleaved, seeded  # same directory: the interleaved timing rule

import operators


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64,128,256")
    a = p.parse_args()
    rho, sp = 0.5, 0.05
    for n in (int(v) for v in a.sizes.split(",")):
        new = operators.create("phase-retrieval", (3, n, n))
        old = operators.create("phase-retrieval", (3, n, n))
        old.data_gradient = types.MethodType(operators.Operator.data_gradient, old)  # the autograd gradient
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, n, n, generator=g) * 2 - 1
        y = new.measure(x, sp, g)
        x0 = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
        (t_old, t_new), (u_old, u_new) = interleaved(
            [seeded(old.likelihood_sample, x0, y, rho, sp), seeded(new.likelihood_sample, x0, y, rho, sp)],
            3 if n <= 128 else 2)
        print(json.dumps({
            "n": n, "langevin_steps": new.langevin_steps, "step_s_autograd": round(t_old, 4),
            "step_s_closed_form": round(t_new, 4), "speedup": round(t_old / t_new, 2),
            "max_abs_diff": float((u_old - u_new).abs().max()), "threads": torch.get_num_threads(),
        }), flush=True)


if __name__ == "__main__":
    main()
