"""Super-resolution: downsampling by 2, 4 or 8 (docs/method.md §4.2), as two dense 1-D matrices; bicubic antialiased
by default (the paper), or the kernel that made the image (`kernel`, below).

A(x) = M_h · x · M_wᵀ per channel, M_h of shape (ceil(H/s), H), M_w of shape (ceil(W/s), W).
Row i of M (0-based) weights input pixel j by k_s(p_i − j), normalised to sum 1, where
  - k_s(d) = k(d/s)/s is the Keys cubic (a = −0.5) stretched by s (antialiasing: support |d| < 2s),
  - p_i = (i + 0.5 − δ)·s − 0.5 with δ = (n_out − n/s)/2, i.e. the reference's "match coordinates"
    p_in = p_out/scale + 0.5·(1 − 1/scale), scale = 1/s, in 1-based pixel units (δ = 0 when s divides n),
  - taps outside [0, n) are reflected symmetrically (period 2n: …, 1, 0 | 0, 1, …, n−1 | n−1, n−2, …).
Sizes that s does not divide are supported: n_out = ceil(n/s), centred as in the reference's resizer.
`kernel` (KERNELS) names k and whether it is stretched, at the same positions p_i:
  - "bicubic" (default): as above; MATLAB's imresize, Pillow's BICUBIC, torch `antialias=True`.
  - "bilinear": the triangle max(0, 1 − |d|), stretched (Pillow's BILINEAR, torch bilinear `antialias=True`).
  - "box": the s-pixel mean, 1 for |d| < 1/2 (1/2 at |d| = 1/2), stretched (OpenCV INTER_AREA, Pillow's BOX).
  - "bilinear-aliased", "bicubic-aliased": the triangle, the Keys cubic with a = −0.75, not stretched: each output
    pixel interpolates 2 or 4 input pixels and the rest alias (torch `F.interpolate(mode="bilinear" / "bicubic")`,
    whose `antialias` is False by default; OpenCV INTER_LINEAR, its default, and INTER_CUBIC).
  - "nearest": the pixel at round(p_i) = floor(p_i + 1/2) (Pillow's NEAREST, torch "nearest-exact").
  - "nearest-floor": the pixel at floor(p_i − (s − 1)/2), i.e. s·i when s divides n (torch's "nearest", the default
    mode of `F.interpolate`; OpenCV INTER_NEAREST).
The torch equalities hold where s divides the size (torch then also gives n/s pixels); the antialiased kernels
differ from torch and Pillow within a few pixels of the border, where they drop taps and we reflect.
An image shrunk without antialiasing restored as "bicubic" shows jagged edges and checkerboards, as the exact
likelihood step fits its aliasing as detail (`benchmarks/sr-kernels/`).

Likelihood step (default `likelihood="exact"`): with the thin SVDs M_h = U_h S_h V_hᵀ, M_w = U_w S_w V_wᵀ
(V of shape (n, r), r = ceil(n/s) = the rank of the downsampling), AᵀA = (V_h ⊗ V_w) diag(s_h,i² s_w,j²) (V_h ⊗ V_w)ᵀ
and the Gaussian p(u) ∝ exp(−|Au − y|²/(2σ_p²) − |u − x0|²/(2ρ²)) has precision λ_ij = s_h,i² s_w,j²/σ_p² + 1/ρ²
on span(V_h ⊗ V_w) and 1/ρ² on its complement. Written as an update of u₀ = x0 + ρ ε, ε ~ N(0, I):
  u = u₀ + V_h [ g ⊙ (U_hᵀ (y − A x0) U_w) + (1/√λ − ρ) ⊙ (V_hᵀ ε V_w) ] V_wᵀ,   g_ij = s_ij ρ² / (σ_p² + ρ² s_ij²),
s_ij = s_h,i s_w,j. This is algebraically the full-basis sample V [(Vᵀ b V)/λ + (Vᵀ ε V)/√λ] Vᵀ, b = Aᵀy/σ_p² + x0/ρ²,
for the same ε, but costs r/n of its products and never forms ρ² b − (…), which cancels in float32 for large ρ/σ_p.
Factor entries below 2⁻⁶³ in magnitude are flushed to zero: their float32 products would be denormals, which slow the
matrix products several-fold, and they change the sample by less than float64 rounding.
`likelihood="langevin"` runs the reference's ULA instead (docs/method.md §3.3, §7.13).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from operators.base import Operator
from operators.noise import Generators, randn_like
from operators.params import check_likelihood_args, like
from operators.registry import register

if TYPE_CHECKING:  # pragma: no cover (scipy.sparse is imported where used: not on every command's start)
    from scipy import sparse

LIKELIHOODS = ("exact", "langevin")
#: Factor entries smaller than this in magnitude are set to 0: products of two kept entries stay float32-normal.
FLUSH_BELOW = 2.0**-63


def keys_cubic(d: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = −0.5: Catmull-Rom-like bicubic), support |d| < 2."""
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _triangle(d: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(d))


def _box(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < 0.5, 1.0, np.where(np.abs(d) == 0.5, 0.5, 0.0))


#: kernel name -> (k(d), support radius of k, stretched by the factor); "nearest" is handled apart.
KERNELS: dict[str, tuple[Any, float, bool]] = {
    "bicubic": (keys_cubic, 2.0, True),
    "bilinear": (_triangle, 1.0, True),
    "box": (_box, 0.5, True),
    "bilinear-aliased": (_triangle, 1.0, False),
    "bicubic-aliased": (lambda d: keys_cubic(d, a=-0.75), 2.0, False),
    "nearest": (None, 0.5, False),
    "nearest-floor": (None, 0.5, False),
}


def _position(i: int, n: int, factor: int) -> float:
    """p_i, where output pixel i of an axis of n pixels is centred on the input (module docstring)."""
    delta = (math.ceil(n / factor) - n / factor) / 2
    return (i + 0.5 - delta) * factor - 0.5


def _nearest_tap(p: float, factor: int, kernel: str) -> int:
    """The input pixel a nearest kernel takes for position p: the nearest, or (nearest-floor) the first of the s."""
    return math.floor(p + 0.5 if kernel == "nearest" else p - (factor - 1) / 2 + 1e-9)


def kernel_shift(n: int, factor: int, kernel: str = "bicubic") -> float:
    """How far (input pixels) the point an output pixel samples lies from its centre p_i: 0 for the symmetric
    kernels, the picked pixel's offset for the nearest ones (nearest +0.5, nearest-floor −1.5 for s = 4 dividing n;
    the same for every i, as p_i's fractional part is). Interpolating y back at p_i + shift removes the shift."""
    if KERNELS[kernel][0] is not None:
        return 0.0
    p = _position(0, n, factor)
    return float(_nearest_tap(p, factor, kernel) - p)


def downsample_matrix(n: int, factor: int, kernel: str = "bicubic") -> np.ndarray:
    """The (ceil(n/factor), n) float64 matrix of downsampling along one axis with `kernel` (module docstring)."""
    k, radius, stretched = KERNELS[kernel]
    width = factor if stretched else 1
    n_out = math.ceil(n / factor)
    m = np.zeros((n_out, n))
    for i in range(n_out):
        p = _position(i, n, factor)
        if k is None:
            taps, w = np.array([_nearest_tap(p, factor, kernel)]), np.ones(1)
        else:
            taps = np.arange(math.floor(p - radius * width) - 1, math.ceil(p + radius * width) + 2)
            w = k((p - taps) / width)
            w = w / w.sum()
        idx = np.mod(taps, 2 * n)
        idx = np.where(idx < n, idx, 2 * n - 1 - idx)  # symmetric reflection
        np.add.at(m[i], idx, w)
    return m


#: `thin_svd` takes M Mᵀ's eigenvectors where its eigenvalues span less than this ratio (cond(M) < 100): the
#: singular values then come out to ~1e-12 relative (cond² eps), and the downsampling matrices are far better (the
#: bicubic's s_min / s_max is 0.56-0.70 for ×2 to ×4
#: at 9 to 65 px).
EIGH_MAX_SPREAD = 1e4


def thin_svd(mat: np.ndarray | sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, s, vt) with mat = u diag(s) vt, s descending, for a wide float64 matrix (r <= n rows; dense, or sparse
    as the banded downsampling matrices are best given): from the eigenvectors of the r x r matrix M Mᵀ when it is
    well conditioned (`EIGH_MAX_SPREAD`; with the pseudo-inverse below, an 8000-px axis at factor 4 in 2.5 s instead
    of LAPACK's SVD's 9.4 s on 2 cores, benchmarks/sr_factor_speed.py), else by that SVD."""
    from scipy import sparse

    banded = mat if sparse.issparse(mat) else sparse.csr_matrix(mat)  # M Mᵀ and Mᵀ U then cost next to nothing
    r, n = banded.shape
    if r <= n:
        w, u = np.linalg.eigh((banded @ banded.T).toarray())
        w, u = w[::-1].copy(), u[:, ::-1].copy()  # descending, as LAPACK's
        if w[-1] > 0 and w[0] < EIGH_MAX_SPREAD * w[-1]:
            s = np.sqrt(w)
            return u, s, np.ascontiguousarray((banded.T @ u / s).T)  # V = Mᵀ U S⁻¹
    return np.linalg.svd(banded.toarray(), full_matrices=False)


@functools.lru_cache(maxsize=16)
def downsample_factors(n: int, factor: int, kernel: str = "bicubic") -> dict[str, np.ndarray]:
    """Read-only float64 arrays for one axis of length n >= 1, factor >= 1 and `kernel`, cached (building an operator
    twice costs one SVD): m (r, n) the matrix, pinv (n, r) its pseudo-inverse, u (r, r), s (r,) and v (n, r) its thin
    SVD m = u diag(s) vᵀ, with r = ceil(n/factor) and u, v flushed below FLUSH_BELOW (module docstring)."""
    from scipy import sparse

    mat = downsample_matrix(n, factor, kernel)
    banded = sparse.csr_matrix(mat)
    u, s, vt = thin_svd(banded)
    kept = s > s.max() * max(mat.shape) * np.finfo(s.dtype).eps  # np.linalg.pinv's cut-off, from the same SVD
    # V S⁺ Uᵀ = Mᵀ U S⁺² Uᵀ (V = Mᵀ U S⁻¹): one factorisation instead of two, and with the banded M an r x r product
    # instead of an n x r one
    pinv = banded.T @ ((u * np.where(kept, 1 / np.where(kept, s, 1) ** 2, 0)) @ u.T)
    out = {"m": mat, "pinv": pinv, "u": u, "s": s, "v": vt.T.copy()}
    for key in ("u", "v"):
        out[key][np.abs(out[key]) < FLUSH_BELOW] = 0.0
    for a in out.values():
        a.setflags(write=False)
    return out


class Downsample(Operator):
    """Downsampling by `factor` (class attribute) with `kernel` (one of KERNELS; default bicubic antialiased);
    output (C, ceil(H/s), ceil(W/s))."""

    linear = True
    measures_pixels = True
    factor: ClassVar[int] = 1

    def __init__(self, image_shape: Sequence[int], likelihood: str = "exact", kernel: str = "bicubic"):
        super().__init__(image_shape)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if not isinstance(kernel, str) or kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        self.likelihood, self.kernel = likelihood, kernel
        _, h, w = self.image_shape
        for axis, n in (("h", h), ("w", w)):
            for key, arr in downsample_factors(n, self.factor, kernel).items():
                self.register_buffer(f"{key}_{axis}", torch.tensor(arr))

    @classmethod
    def setup_bytes(cls, image_shape: Sequence[int]) -> int:
        """Per axis of n output pixels (r = ceil(n/s) measured), 8 (6 r n + 5 r²) bytes: the float64 matrix, its
        pseudo-inverse and V (r x n each) and U (r x r), held twice (the cached arrays and the buffers), and the
        factorisation's transients. Measured by peak RSS at sr4: 0.23 / 0.85 / 1.89 GB for a 4000 / 8000 / 12000-px
        axis (this gives 0.23 / 0.93 / 2.09); a 20000-px one cost 5.7 GB, all of it (the images' own bytes were
        counted, 11 MiB)."""
        total = 0
        for n in (int(v) for v in tuple(image_shape)[-2:]):
            r = -(-n // cls.factor)
            total += 8 * (6 * r * n + 5 * r * r)
        return total

    def measurement_shape(self, batch: int = 1) -> tuple[int, ...]:
        """(batch, C, ceil(H/s), ceil(W/s)), read off the matrices (the base class runs A on zeros: 7 s for an
        8000x6000 output)."""
        return (batch, self.image_shape[0], self.m_h.shape[0], self.m_w.shape[0])

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
        vh, vw, uh, uw = (like(t, x0) for t in (self.v_h, self.v_w, self.u_h, self.u_w))
        s = like(self.s_h, x0)[:, None] * like(self.s_w, x0)[None, :]
        a = (rho / sigma_p) ** 2 * s**2                                   # ρ² s² / σ_p² >= 0
        gain = s * rho**2 / (sigma_p**2 + rho**2 * s**2)                  # s ρ² / (σ_p² + ρ² s²)
        root = torch.sqrt(1 + a)
        noise_gain = -rho * a / (root * (1 + root))                      # 1/√λ − ρ without cancellation
        eps = randn_like(x0, generator)
        z = gain * (uh.T @ (y - self.forward(x0)) @ uw) + noise_gain * (vh.T @ eps @ vw)
        return x0 + rho * eps + vh @ z @ vw.T

    def extra_config(self) -> dict[str, Any]:
        # the default is left out, so that a sidecar of the default operator reads as before this parameter
        return {"likelihood": self.likelihood, **({"kernel": self.kernel} if self.kernel != "bicubic" else {})}


@register
class SR2(Downsample):
    """×2 downsampling, bicubic antialiased by default (docs/method.md §4.2 with s = 2)."""

    name = "sr2"
    summary = "x2 bicubic downscaling: super-resolution by 2"
    factor = 2


@register
class SR4(Downsample):
    """×4 downsampling, bicubic antialiased by default: the paper's super-resolution task (docs/method.md §4.2)."""

    name = "sr4"
    summary = "x4 bicubic downscaling: super-resolution by 4 (the paper's task)"
    factor = 4


@register
class SR8(Downsample):
    """×8 downsampling, bicubic antialiased by default (docs/method.md §4.2 with s = 8)."""

    name = "sr8"
    summary = "x8 bicubic downscaling: super-resolution by 8"
    factor = 8
