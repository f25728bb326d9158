"""Super-resolution: bicubic antialiased downsampling by 2, 4 or 8 (docs/method.md §4.2), as two dense 1-D matrices.

A(x) = M_h · x · M_wᵀ per channel, M_h of shape (ceil(H/s), H), M_w of shape (ceil(W/s), W).
Row i of M (0-based) weights input pixel j by k_s(p_i − j), normalised to sum 1, where
  - k_s(d) = k(d/s)/s is the Keys cubic (a = −0.5) stretched by s (antialiasing: support |d| < 2s),
  - p_i = (i + 0.5 − δ)·s − 0.5 with δ = (n_out − n/s)/2, i.e. the reference's "match coordinates"
    p_in = p_out/scale + 0.5·(1 − 1/scale), scale = 1/s, in 1-based pixel units (δ = 0 when s divides n),
  - taps outside [0, n) are reflected symmetrically (period 2n: …, 1, 0 | 0, 1, …, n−1 | n−1, n−2, …).
Sizes that s does not divide are supported: n_out = ceil(n/s), centred as in the reference's resizer.

Likelihood step (default `likelihood="exact"`): with the full SVDs M_h = U_h S_h V_hᵀ, M_w = U_w S_w V_wᵀ,
AᵀA = (V_h ⊗ V_w) diag(s_h,i² s_w,j²) (V_h ⊗ V_w)ᵀ (s padded with zeros on the null space), so the Gaussian
p(u) ∝ exp(−|Au − y|²/(2σ_p²) − |u − x0|²/(2ρ²)) is diagonal in that basis with precision
λ_ij = s_h,i² s_w,j²/σ_p² + 1/ρ²:  u = V_h [(V_hᵀ b V_w)/λ + (V_hᵀ ε V_w)/√λ] V_wᵀ, b = Aᵀy/σ_p² + x0/ρ².
`likelihood="langevin"` runs the reference's ULA instead (docs/method.md §3.3, §7.13).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from operators.base import Operator
from operators.noise import Generators, randn_like
from operators.params import check_likelihood_args, like
from operators.registry import register

LIKELIHOODS = ("exact", "langevin")


def keys_cubic(d: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = −0.5: Catmull-Rom-like bicubic), support |d| < 2."""
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def bicubic_downsample_matrix(n: int, factor: int) -> np.ndarray:
    """The (ceil(n/factor), n) float64 matrix of antialiased bicubic downsampling along one axis (module docstring)."""
    n_out = math.ceil(n / factor)
    delta = (n_out - n / factor) / 2
    m = np.zeros((n_out, n))
    for i in range(n_out):
        p = (i + 0.5 - delta) * factor - 0.5
        taps = np.arange(math.floor(p - 2 * factor) - 1, math.ceil(p + 2 * factor) + 2)
        w = keys_cubic((p - taps) / factor)
        w = w / w.sum()
        idx = np.mod(taps, 2 * n)
        idx = np.where(idx < n, idx, 2 * n - 1 - idx)  # symmetric reflection
        np.add.at(m[i], idx, w)
    return m


class Downsample(Operator):
    """Bicubic antialiased downsampling by `factor` (class attribute); output (C, ceil(H/s), ceil(W/s))."""

    linear = True
    factor: ClassVar[int] = 1

    def __init__(self, image_shape: tuple[int, int, int], likelihood: str = "exact"):
        super().__init__(image_shape)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.likelihood = likelihood
        _, h, w = self.image_shape
        for axis, n in (("h", h), ("w", w)):
            mat = bicubic_downsample_matrix(n, self.factor)
            _, s, vt = np.linalg.svd(mat, full_matrices=True)
            s_full = np.zeros(n)
            s_full[: len(s)] = s
            self.register_buffer(f"m_{axis}", torch.from_numpy(mat))
            self.register_buffer(f"pinv_{axis}", torch.from_numpy(np.linalg.pinv(mat)))
            self.register_buffer(f"v_{axis}", torch.from_numpy(vt.T.copy()))
            self.register_buffer(f"s2_{axis}", torch.from_numpy(s_full**2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return like(self.m_h, x) @ x @ like(self.m_w, x).T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return like(self.m_h, y).T @ y @ like(self.m_w, y)

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """M_h⁺ · y · M_w⁺ᵀ (minimum-norm least squares, through the 1-D pseudo-inverses)."""
        return like(self.pinv_h, y) @ y @ like(self.pinv_w, y).T

    @property
    def last_evals(self) -> int:
        """Operator applications per likelihood step: 2 (exact) or 2 per Langevin iteration."""
        return 2 * self.langevin_steps if self.likelihood == "langevin" else 2

    def likelihood_sample(self, x0: torch.Tensor, y: torch.Tensor, rho: float, sigma_p: float,
                          generator: Generators = None) -> torch.Tensor:
        """Exact sample through the separable SVD (module docstring), or ULA if `likelihood="langevin"`."""
        if self.likelihood == "langevin":
            return self.langevin_likelihood_sample(x0, y, rho, sigma_p, generator)
        check_likelihood_args(rho, sigma_p)
        vh, vw = like(self.v_h, x0), like(self.v_w, x0)
        lam = like(self.s2_h, x0)[:, None] * like(self.s2_w, x0)[None, :] / sigma_p**2 + 1.0 / rho**2
        b = self.adjoint(y) / sigma_p**2 + x0 / rho**2
        z = (vh.T @ b @ vw) / lam + (vh.T @ randn_like(x0, generator) @ vw) / lam.sqrt()
        return vh @ z @ vw.T

    def extra_config(self) -> dict[str, Any]:
        return {"likelihood": self.likelihood}


@register
class SR2(Downsample):
    """×2 bicubic antialiased downsampling (docs/method.md §4.2 with s = 2)."""

    name = "sr2"
    factor = 2


@register
class SR4(Downsample):
    """×4 bicubic antialiased downsampling, the paper's super-resolution task (docs/method.md §4.2)."""

    name = "sr4"
    factor = 4


@register
class SR8(Downsample):
    """×8 bicubic antialiased downsampling (docs/method.md §4.2 with s = 8)."""

    name = "sr8"
    factor = 8
