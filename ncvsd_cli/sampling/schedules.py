"""Noise-level schedules (EDM sigmas, variance exploding: x_t = x_0 + t * eps).

- `karras_sigmas`: the Karras et al. (2022) schedule used by PnP-GD (docs/method.md §3.2, rho = 2 there).
- `ts_sigmas`: noise levels of `ts` indices into the 40-point rho = 7 grid of multi-step generation (docs/method.md §2.7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: The 40-point grid of multi-step generation (docs/method.md §2.7): T(i), i = 0..39, rho = 7, 80 -> 0.002.
TS_GRID_POINTS = 40
TS_SIGMA_MIN = 0.002
TS_SIGMA_MAX = 80.0
TS_RHO = 7.0


def karras_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Decreasing float64 tensor of `steps` noise levels from sigma_max down to sigma_min (both included).

    sigma_i = (sigma_max^(1/rho) + i / (steps - 1) * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, i = 0..steps-1
    (docs/method.md §3.2; no trailing zero is appended). steps >= 2, 0 < sigma_min < sigma_max, rho > 0.
    `steps == 1` returns [sigma_max].
    """
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:  # 2.7 steps is not 2
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    steps = int(steps)
    if not (0 < sigma_min < sigma_max < math.inf):
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    if not rho > 0:  # NaN too
        raise ValueError(f"rho must be > 0, got {rho}")
    if steps == 1:
        return torch.tensor([float(sigma_max)], dtype=torch.float64)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    sigmas[0], sigmas[-1] = sigma_max, sigma_min                      # exact end points (no rounding from the root)
    return sigmas


def ts_grid() -> torch.Tensor:
    """The full 40-point grid T(0) = 80 ... T(39) = 0.002 (float64, docs/method.md §2.7)."""
    return karras_sigmas(TS_GRID_POINTS, TS_SIGMA_MIN, TS_SIGMA_MAX, TS_RHO)


def validate_ts(ts: Sequence[int]) -> list[int]:
    """Check `ts` (integer indices into the 40-point grid, strictly increasing, >= 2 entries); return them as ints."""
    if any(isinstance(i, bool) or int(i) != i for i in ts):  # 10.7 is not index 10
        raise ValueError(f"ts indices must be integers, got {list(ts)}")
    out = [int(i) for i in ts]
    if len(out) < 2:
        raise ValueError(f"ts needs at least two indices (start and terminal, e.g. [10, 39]), got {list(ts)}")
    if any(i < 0 or i >= TS_GRID_POINTS for i in out):
        raise ValueError(f"ts indices must lie in 0..{TS_GRID_POINTS - 1}, got {out}")
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"ts indices must be strictly increasing (decreasing noise), got {out}")
    return out


def ts_sigmas(ts: Sequence[int]) -> torch.Tensor:
    """Noise levels T(i) for each index i in `ts` (float64): e.g. ts_sigmas([10, 22, 39]) = [16.78, 1.382, 0.002]."""
    return ts_grid()[validate_ts(ts)]
