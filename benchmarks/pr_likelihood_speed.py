"""Phase retrieval's Langevin likelihood step, side by side: the gradient of |A(u) - y|² by autograd through the
operator (the first implementation, `Operator.data_gradient`), the closed form on full spectra (fft2 / ifft2, the
second) and the closed form on half spectra (`PhaseRetrieval.data_gradient`: rfft2 / irfft2 with y made
Hermitian-symmetric), float32, one (1, 3, n, n) image, 100 ULA steps.

Prints one JSON line per size: fastest seconds of each (interleaved repetitions), the ratios, and the max
|difference| of the chains for the same noise (rho = 0.5, sigma_p = 0.05; equal up to float32 rounding).
Usage (repository root, idle machine):  python benchmarks/pr_likelihood_speed.py [--sizes 64,128,256]
"""

from __future__ import annotations

import argparse
import json

import torch
from sr_likelihood_speed import interleaved, seeded  # same directory: the interleaved timing rule

import operators


def full_spectrum_gradient(op, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The closed form before the half-spectrum one: 2 Re F^H[(|f| - y') f / |f|] on full complex spectra."""
    ph, pw = op.pad
    f = torch.fft.fft2(op._canvas(u), norm="ortho")
    mag = f.abs()
    phase = f / mag.clamp_min(torch.finfo(mag.dtype).tiny)
    g = torch.fft.ifft2((mag - torch.fft.ifftshift(y, dim=(-2, -1))) * phase, norm="ortho").real
    return g[..., ph:ph + u.shape[-2], pw:pw + u.shape[-1]].to(u.dtype)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64,128,256")
    a = p.parse_args()
    rho, sp = 0.5, 0.05
    for n in (int(v) for v in a.sizes.split(",")):
        new = operators.create("phase-retrieval", (3, n, n))
        old = operators.create("phase-retrieval", (3, n, n))
        # what the ULA steps call (`data_gradient_for`): the autograd gradient, the full-spectrum closed form
        old.data_gradient_for = lambda y, op=old: lambda u: operators.Operator.data_gradient(op, u, y)
        full = operators.create("phase-retrieval", (3, n, n))
        full.data_gradient_for = lambda y, op=full: lambda u: full_spectrum_gradient(op, u, y)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, n, n, generator=g) * 2 - 1
        y = new.measure(x, sp, g)
        x0 = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
        (t_old, t_full, t_new), (u_old, u_full, u_new) = interleaved(
            [seeded(m.likelihood_sample, x0, y, rho, sp) for m in (old, full, new)], 3 if n <= 128 else 2)
        print(json.dumps({
            "n": n, "langevin_steps": new.langevin_steps, "step_s_autograd": round(t_old, 4),
            "step_s_full_spectrum": round(t_full, 4), "step_s_half_spectrum": round(t_new, 4),
            "speedup_vs_autograd": round(t_old / t_new, 2), "speedup_vs_full_spectrum": round(t_full / t_new, 2),
            "max_abs_diff": float(max((u_old - u_new).abs().max(), (u_full - u_new).abs().max())),
            "threads": torch.get_num_threads(),
        }), flush=True)


if __name__ == "__main__":
    main()
