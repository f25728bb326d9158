"""Power-function EMA (EDM2 post-hoc EMA family; docs/method.md §1.8).

For a relative standard deviation σ_rel the exponent γ is the largest real root of
γ³ + 7γ² + (16 − σ_rel⁻²)γ + (12 − σ_rel⁻²) = 0 (σ_rel 0.05 → 16.97, 0.10 → 6.94). After each step with the
image count n (after the increment) and batch size b, β = (1 − b/n)^(γ+1) and ema ← lerp(ema, θ, 1 − β), so
the first step copies θ.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """Exponent γ of the power-function EMA with relative std `sigma_rel` (0 < sigma_rel < ~0.28)."""
    if not 0.0 < sigma_rel < 0.28:
        raise ValueError(f"sigma_rel {sigma_rel} outside (0, 0.28)")
    k = sigma_rel ** -2
    roots = np.roots([1.0, 7.0, 16.0 - k, 12.0 - k])
    real = roots[np.abs(roots.imag) < 1e-9].real
    return float(real.max())


def power_function_beta(gamma: float, cur_nimg: int, batch_size: int) -> float:
    """β = (1 − batch/cur_nimg)^(γ+1), with cur_nimg counted after the step (β = 0 on the first step)."""
    if cur_nimg <= 0:
        raise ValueError(f"cur_nimg {cur_nimg} must be > 0 after a step")
    return float(max(1.0 - batch_size / cur_nimg, 0.0) ** (gamma + 1.0))


class PowerFunctionEMA:
    """EMA copies of `net` for several σ_rel (default 0.05 and 0.10, docs/method.md §1.8).

    `update(net, cur_nimg, batch_size)` after every optimiser step; `models()` yields (σ_rel, ema_net) with the
    buffers of `net` copied in (as at EDM2 snapshot time). The EMA nets stay in fp32 and eval mode.
    """

    def __init__(self, net: torch.nn.Module, sigma_rels: Sequence[float] = (0.05, 0.10)):
        self.sigma_rels = tuple(float(s) for s in sigma_rels)
        self.gammas = tuple(sigma_rel_to_gamma(s) for s in self.sigma_rels)
        self.emas = [copy.deepcopy(net).eval().requires_grad_(False) for _ in self.sigma_rels]

    @torch.no_grad()
    def update(self, net: torch.nn.Module, cur_nimg: int, batch_size: int) -> None:
        src = [p.detach() for p in net.parameters()]
        for gamma, ema in zip(self.gammas, self.emas):
            beta = power_function_beta(gamma, cur_nimg, batch_size)
            dst = list(ema.parameters())
            torch._foreach_lerp_(dst, [s.to(d.dtype) for s, d in zip(src, dst)], 1.0 - beta)

    @torch.no_grad()
    def models(self, net: torch.nn.Module):
        """Yield (sigma_rel, ema_net) after copying `net`'s buffers into each EMA."""
        for s, ema in zip(self.sigma_rels, self.emas):
            for b_src, b_dst in zip(net.buffers(), ema.buffers()):
                b_dst.copy_(b_src)
            yield s, ema

    def state_dict(self) -> dict:
        return {"sigma_rels": self.sigma_rels, "emas": [e.state_dict() for e in self.emas]}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["sigma_rels"]) != self.sigma_rels:
            raise ValueError(f"saved EMA sigma_rels {state['sigma_rels']} differ from {self.sigma_rels}")
        for e, sd in zip(self.emas, state["emas"]):
            e.load_state_dict(sd)
