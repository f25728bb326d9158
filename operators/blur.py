"""Circular deblurring (docs/method.md §4.3–4.4): A(x) = k ⊛ x, a circular convolution computed by FFT, per channel;
k a Gaussian, a defocus disk, a motion path or a user's kernel.

The kernel (any size, odd or even, also larger than the image: it then wraps around) is laid on an H×W grid
with its centre tap k[kh//2, kw//2] at the grid position `q`, so a delta at p moves to the kernel centred at p + q.

One-pixel shift (docs/method.md §4.3, §7.12), the `shift` option:
  - `shift=False` (default): q = (0, 0), the blur is centred. We chose this because the shift is an artefact
    of the reference's padding (centre at 127, fftshift by 128), not part of any physical model: with the same
    operator on both sides (our `degrade` then `restore`) the reconstructions and metrics are the same either
    way, and a user's own kernel (`deblur-kernel`) should not move the picture.
  - `shift=True`: reproduces the reference exactly (pad (N−k)//2 before, then fftshift):
    q = ((N−k)//2 + k//2 + N//2) mod N per axis, i.e. (−1, −1) for the paper's 61×61 kernel on 256×256
    (0 only when both N and k are even). Use it to restore measurements made by the reference code.

Likelihood step, exact in the Fourier domain (docs/method.md §3.3): S = 1/(|K|²/σ_p² + 1/ρ²),
u = F⁻¹[S·F(Aᵀy/σ_p² + x0/ρ²)] + F⁻¹[√S·F(ε)].

Image border, the `boundary` option (docs/method.md §4.4, "The image border"):
  - "circular" (default; the paper's model, `degrade` and `bench`): the blur wraps around the image edges.
  - "reflect" (the default of `restore` for a plain image: a photo blurred by a camera does not wrap): the scene
    beyond the frame is unseen. A(x) = W[k ⊛ E(x)], E = reflect extension by the kernel's reach m on every side
    (the canvas), W = the centre window; `degrade -p boundary=reflect` measures so. The likelihood step and the
    Wiener/Tikhonov filters solve on the canvas, where the blur is circular, with only the window measured:
    (KᵀWᵀWK + Λ) u = KᵀWᵀy + Λ·prior by conjugate gradients preconditioned with the circular solve (the margin
    is free; the likelihood step's canvas prior is N(E(x0), ρ² I), sampled exactly by perturb-and-solve).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from operators.base import Operator
from operators.noise import MAX_SEED, Generators, randn_like
from operators.params import (
    MissingParameter,
    as_array,
    check_likelihood_args,
    encode_array,
    flag,
    integer,
    like,
    number,
    positive_float,
    positive_int,
)
from operators.registry import register

#: Tikhonov regularisation of the pseudo-inverse: conj(K)·Y / (|K|² + eps).
PINV_EPS = 1e-3
#: Image-border models (module docstring).
BOUNDARIES = ("circular", "reflect")
#: Boundary "reflect": conjugate gradients on the normal equations, stopping at a relative residual of
#: CG_TOLERANCE (likelihood steps with rho < 1; CG_TOLERANCE_BROAD above, where the posterior is broad and later
#: steps anneal it) or CG_SOLVE_TOLERANCE (Wiener, Tikhonov, pseudo-inverse), or after CG_ITERATIONS /
#: CG_SOLVE_ITERATIONS. At small σ_y the weakly regularised directions (a motion kernel's spectral zeros) carry
#: little residual: stopping at 1e-4 left bands across the picture (motion, σ_y 0.01: Wiener 10.6 dB at 1e-4,
#: 24.9 at 1e-6; the default sampler 14.1 → 28.8 dB). Measured: benchmarks/blur-boundary/cg-iterations.md.
CG_ITERATIONS = 150
CG_TOLERANCE = 1e-6
CG_TOLERANCE_BROAD = 1e-4
CG_SOLVE_ITERATIONS = 600
CG_SOLVE_TOLERANCE = 1e-6
#: Largest kernel_size accepted: refused before the kernel_size² array is allocated.
MAX_KERNEL_SIZE = 2049
#: Largest Gaussian sigma (px) accepted: its filter has 8 sigma + 1 taps (sigma 1e9 asked for 60 GiB).
MAX_GAUSS_SIGMA = 1000.0


def kernel_size_param(value: Any) -> int:
    """kernel_size as an int in 1..MAX_KERNEL_SIZE, or ValueError."""
    size = positive_int(value, "kernel_size")
    if size > MAX_KERNEL_SIZE:
        raise ValueError(f"kernel_size must be <= {MAX_KERNEL_SIZE}, got {size}")
    return size


def kernel_offset(n: int, k: int, shift: bool) -> int:
    """Grid position of the kernel centre along an axis of length n (module docstring)."""
    return ((n - k) // 2 + k // 2 + n // 2) % n if shift else 0


def circular_psf(kernel: np.ndarray, hw: tuple[int, int], shift: bool) -> np.ndarray:
    """The kernel wrapped onto an H×W grid with its centre at `kernel_offset` (taps beyond the grid add up)."""
    (kh, kw), (h, w) = kernel.shape, hw
    rows = (np.arange(kh) - kh // 2 + kernel_offset(h, kh, shift)) % h
    cols = (np.arange(kw) - kw // 2 + kernel_offset(w, kw, shift)) % w
    psf = np.zeros((h, w))
    np.add.at(psf, (rows[:, None], cols[None, :]), kernel)
    return psf


def kernel_reach(kernel: np.ndarray, shift: bool) -> tuple[int, int]:
    """How far (rows, cols) the non-zero taps reach from the kernel centre, plus 1 with `shift` (the grid offset)."""
    rows, cols = np.nonzero(kernel)
    if rows.size == 0:
        return (0, 0)
    ch, cw = kernel.shape[0] // 2, kernel.shape[1] // 2
    extra = int(bool(shift))
    return (int(max(ch - rows.min(), rows.max() - ch)) + extra, int(max(cw - cols.min(), cols.max() - cw)) + extra)


def _reflect_axis(x: torch.Tensor, m: int, dim: int) -> torch.Tensor:
    """x mirrored by m on both ends of `dim` (-2 or -1), without repeating the edge; repeated for m >= size; a
    1-pixel side is replicated."""
    while m > 0:
        n = x.shape[dim]
        a = m if n == 1 else min(m, n - 1)
        pad = (0, 0, a, a) if dim == -2 else (a, a, 0, 0)
        x = torch.nn.functional.pad(x, pad, mode="replicate" if n == 1 else "reflect")
        m -= a
    return x


def reflect_extend(x: torch.Tensor, mh: int, mw: int) -> torch.Tensor:
    """(..., H, W) -> (..., H + 2 mh, W + 2 mw), mirrored at every edge without repeating it (scipy's "mirror";
    repeated for margins wider than the image; a 1-pixel side is replicated)."""
    return _reflect_axis(_reflect_axis(x, mh, -2), mw, -1)


def reflect_indices(n: int, m: int) -> torch.Tensor:
    """The source index of each of the n + 2m positions of `reflect_extend` along one axis (long)."""
    return _reflect_axis(torch.arange(n, dtype=torch.float64).view(1, 1, n, 1), m, -2).view(-1).long()


def check_kernel_extent(k: np.ndarray, image_shape: Sequence[int]) -> None:
    """ValueError when a user's kernel `k` spreads (zero borders aside) over more than the (C, H, W) image."""
    rows, cols = np.nonzero(np.abs(k) > 1e-3 * np.abs(k).max())
    extent = (int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1)
    if extent[0] > image_shape[1] or extent[1] > image_shape[2]:
        raise ValueError(f"kernel spreads over {extent[1]}x{extent[0]} pixels, more than the {image_shape[2]}x"
                         f"{image_shape[1]} image: nothing of it is left to restore (a kernel at the image's scale?)")


def check_kernel(kernel: Any, name: str = "kernel", normalize: bool = True) -> np.ndarray:
    """A 2-D, finite, float64 kernel with a non-zero sum; divided by its sum when `normalize`."""
    k = np.asarray(as_array(kernel, name, max_side=MAX_KERNEL_SIZE), dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {k.shape}")
    if not np.isfinite(k).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if isinstance(kernel, (str, Path)) and Path(kernel).suffix.lower() != ".npy" and _looks_inverted(k):
        raise ValueError(f"{name} image {kernel} looks inverted (a bright background around darker strokes): a "
                         "kernel image shows the blur path bright on black; invert it")
    if normalize:
        total = k.sum()
        if total == 0:
            raise ValueError(f"{name} sums to 0 and cannot be normalised")
        k = k / total
    return k


def _looks_inverted(k: np.ndarray) -> bool:
    """A kernel drawn dark on white: a bright background (90 % of the border and half the kernel above half the
    maximum) around darker strokes (some value below half). Thin paths, even along the edges of a tight crop, keep
    the border and the median dark; a disk's border is mostly dark; a box blur is flat."""
    if min(k.shape) < 3:
        return False
    border, half = np.concatenate([k[0], k[-1], k[1:-1, 0], k[1:-1, -1]]), 0.5 * np.abs(k).max()
    return bool(np.percentile(border, 10) > half and np.median(k) > half and k.min() < half)


class CircularBlur(Operator):
    """Shared FFT body; subclasses pass the float64 kernel to `_set_kernel`."""

    linear = True
    measures_pixels = True

    def _set_kernel(self, kernel: np.ndarray, shift: bool, boundary: str = "circular") -> None:
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
        self.shift, self.boundary = flag(shift, "shift"), boundary
        self.kernel = kernel  # float64 numpy, kept for the config
        self.pixel_gain = max(1.0, float(np.abs(kernel).sum()))  # (-p normalize=false: A(x) reaches its sum)
        _, h, w = self.image_shape
        self.margin = kernel_reach(kernel, self.shift) if boundary == "reflect" else (0, 0)
        canvas = (h + 2 * self.margin[0], w + 2 * self.margin[1])
        self.register_buffer("psf", torch.from_numpy(circular_psf(kernel, canvas, self.shift)))

    @property
    def last_evals(self) -> int:
        """Operator applications of the last likelihood step per image: 2 (an FFT pair) for "circular", 2 per
        conjugate-gradient iteration plus 4 for "reflect"."""
        return 2 if self.boundary == "circular" else 4 + 2 * getattr(self, "_cg_iterations", 0)

    def _otf(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(like(self.psf, x))

    def _filter(self, x: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(spectrum * torch.fft.rfft2(x), s=x.shape[-2:])

    # --- the canvas (boundary "reflect"; for "circular" the canvas is the image) ------------------------------
    def _extend(self, x: torch.Tensor) -> torch.Tensor:
        return reflect_extend(x, *self.margin)

    def _window(self, x: torch.Tensor) -> torch.Tensor:
        (mh, mw), (_, h, w) = self.margin, self.image_shape
        return x[..., mh:mh + h, mw:mw + w]

    def _insert(self, canvas: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`canvas` (a fresh tensor, written in place) with its centre window replaced by y."""
        (mh, mw), (_, h, w) = self.margin, self.image_shape
        canvas[..., mh:mh + h, mw:mw + w] = y
        return canvas

    def _place(self, y: torch.Tensor) -> torch.Tensor:
        """Wᵀy: y in the centre window of a zero canvas."""
        return self._insert(y.new_zeros(*y.shape[:-2], *self.psf.shape[-2:]), y)

    def _solve(self, y: torch.Tensor, lam: torch.Tensor | float, prior: torch.Tensor | None = None,
               iterations: int | None = None, tolerance: float | None = None) -> torch.Tensor:
        """argmin_u |A u − y|² + ‖u − prior‖²_Λ on the canvas, i.e. (KᵀWᵀWK + Λ) u = KᵀWᵀy + Λ·prior, with Λ a
        Fourier multiplier on the rfft2 grid (or a scalar) and prior a canvas image (None: 0).

        "circular": W = I, the closed form F⁻¹[(conj(K)·F(y) + Λ·F(prior))/(|K|² + Λ)]. "reflect": conjugate
        gradients, per image and channel, preconditioned by that circular solve, which (with the margin's
        measurements taken from the blur of the prior, or mirrored from y) is also the first iterate; at most
        `iterations` (default CG_ITERATIONS) iterations, to a relative residual of `tolerance` (default
        CG_TOLERANCE); `cg_converged` says whether every image got there."""
        if torch.is_tensor(lam):
            lam = lam.to(device=y.device, dtype=y.dtype)
        k = self._otf(y)
        denominator = k.abs() ** 2 + lam

        def circular(v: torch.Tensor) -> torch.Tensor:  # (KᵀK + Λ)⁻¹ v
            return self._filter(v, 1.0 / denominator)

        def lam_times(v: torch.Tensor) -> torch.Tensor:
            return v * lam if not torch.is_tensor(lam) else self._filter(v, lam)

        extra = 0.0 if prior is None else lam_times(prior)
        if self.boundary == "circular":
            return self._filter(y, k.conj() / denominator) + (0.0 if prior is None else circular(extra))
        filled = self._extend(y) if prior is None else self._insert(self._filter(prior, k), y)
        u = circular(self._filter(filled, k.conj()) + extra)
        rhs = self._filter(self._place(y), k.conj()) + extra

        def apply(v: torch.Tensor) -> torch.Tensor:  # (KᵀWᵀWK + Λ) v
            return self._filter(self._place(self._window(self._filter(v, k))), k.conj()) + lam_times(v)

        tiny = torch.finfo(rhs.dtype).tiny

        def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return (a * b).sum((-2, -1), keepdim=True)

        r = rhs - apply(u)
        z = circular(r)
        direction, rz = z, dot(r, z)
        scale = dot(rhs, rhs).sqrt().clamp_min(tiny)
        self._cg_iterations, self.cg_converged = 0, False
        tolerance = CG_TOLERANCE if tolerance is None else tolerance
        for _ in range(CG_ITERATIONS if iterations is None else int(iterations)):
            # a converged image (all its channels) stops moving: each image's result is the same in any batch
            active = (dot(r, r).sqrt() / scale).amax(dim=-3, keepdim=True) > tolerance
            if not bool(active.any()):
                self.cg_converged = True
                break
            a_dir = apply(direction)
            alpha = torch.where(active, rz / dot(direction, a_dir).clamp_min(tiny), 0.0)
            u, r = u + alpha * direction, r - alpha * a_dir
            z = circular(r)
            rz, rz_old = dot(r, z), rz
            direction = z + rz / rz_old.clamp_min(tiny) * direction
            self._cg_iterations += 1
        return self._window(u)

    def deconvolve(self, y: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
        """The regularised inverse argmin_x |A x − y|² + ‖x‖²_Λ (Λ: a Fourier multiplier on the canvas's rfft2
        grid, e.g. σ_y²/P(f) for Wiener, or a scalar), as an image of `image_shape` (boundary "reflect": at most
        CG_SOLVE_ITERATIONS conjugate-gradient iterations, to a relative residual of CG_SOLVE_TOLERANCE)."""
        return self._solve(y, lam, iterations=CG_SOLVE_ITERATIONS, tolerance=CG_SOLVE_TOLERANCE)

    # --- the operator ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return self._filter(x, self._otf(x))
        xc = self._extend(x)
        return self._window(self._filter(xc, self._otf(xc)))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return self._filter(y, self._otf(y).conj())
        canvas = self._place(y)
        g = self._filter(canvas, self._otf(canvas).conj())
        (mh, mw), (_, h, w) = self.margin, self.image_shape  # Eᵀ folds the margin back onto its mirror images
        rows, cols = reflect_indices(h, mh).to(g.device), reflect_indices(w, mw).to(g.device)
        g = g.new_zeros(*g.shape[:-2], h, g.shape[-1]).index_add(-2, rows, g)
        return g.new_zeros(*g.shape[:-1], w).index_add(-1, cols, g)

    def pseudo_inverse(self, y: torch.Tensor, eps: float = PINV_EPS) -> torch.Tensor:
        """Tikhonov-regularised inverse F⁻¹[conj(K)·F(y)/(|K|² + eps)], eps = 1e-3 by default."""
        return self.deconvolve(y, eps)

    def likelihood_sample(self, x0: torch.Tensor, y: torch.Tensor, rho: float, sigma_p: float,
                          generator: Generators = None) -> torch.Tensor:
        """Exact sample in the Fourier domain (docs/method.md §3.3, circular blur). Boundary "reflect": the
        canvas posterior ∝ exp(−|WKu − y|²/(2σ_p²) − |u − E(x0)|²/(2ρ²)) sampled by perturb-and-solve (u = the
        solution for the perturbed y + σ_p ε and E(x0) + ρ ε'; exact in the limit of the conjugate gradients,
        stopped at CG_TOLERANCE for rho below 1, at the looser CG_TOLERANCE_BROAD above, where the posterior is
        broad and later steps anneal it: `cg_converged` says the tolerance was met, not that the sample is
        exact), its window. The residual tolerance does not bound the error in posterior standard
        deviations: against the dense canvas posterior the mean was off by 0.02-0.11 std at rho 0.7, sigma_p
        0.0023. Against a solve to 1e-13 (64-px image, sigma 3, sigma_p 0.0023, one seed) the sample's RMS error
        was 0.002 at rho 0.5, 0.035 at rho 1, 0.39 at rho 5, 4.2 at rho 20 and 83 at rho 80: 4-100 % of the
        spread rho, in the directions the blur removes (the fit to y differs by < 0.01 up to rho 5). PnP-GD's
        result did not change with the tight solve (24.84 / 24.58 dB, 2 seeds): early steps' samples are
        annealed away."""
        check_likelihood_args(rho, sigma_p)
        if self.boundary == "circular":
            # u = x0 + ρε + F⁻¹[g·F(y − K x0) + (1/√λ − ρ)·F(ε)], g = conj(K) ρ²/(σ_p² + ρ²|K|²), λ = |K|²/σ_p² + 1/ρ²:
            # the sample S b + √S ε (S = 1/λ, b = Kᵀy/σ_p² + x0/ρ²) without forming b, which cancels in float32
            # where ρ/σ_p is large (as operators/resize.py)
            k = self._otf(x0)
            k2 = k.abs() ** 2
            a = (rho / sigma_p) ** 2 * k2                                     # ρ²|K|²/σ_p² >= 0
            gain = k.conj() * (rho**2 / (sigma_p**2 + rho**2 * k2))
            root = torch.sqrt(1 + a)
            noise_gain = -rho * a / (root * (1 + root))                      # 1/√λ − ρ without cancellation
            eps = randn_like(x0, generator)
            update = gain * torch.fft.rfft2(y - self._filter(x0, k)) + noise_gain * torch.fft.rfft2(eps)
            return x0 + rho * eps + torch.fft.irfft2(update, s=x0.shape[-2:])
        prior = self._extend(x0)
        prior = prior + rho * randn_like(prior, generator)
        return self._solve(y + sigma_p * randn_like(y, generator), sigma_p**2 / rho**2, prior,
                           tolerance=CG_TOLERANCE if rho < 1 else CG_TOLERANCE_BROAD)

    def extra_config(self) -> dict[str, Any]:
        # "boundary" only when not the default: configs and sidecars written before the option stay identical
        return {"shift": self.shift, **({"boundary": self.boundary} if self.boundary != "circular" else {})}


@register
class GaussianBlur(CircularBlur):
    """Gaussian blur: a kernel_size² delta filtered by scipy.ndimage.gaussian_filter(sigma) (truncate 4, reflect),
    sigma = 3 px and 61×61 by default (docs/method.md §4.3)."""

    name = "deblur-gauss"
    summary = "Gaussian blur (std 3 px); a photo's blur width is read from it"

    def __init__(self, image_shape: Sequence[int], sigma: float = 3.0, kernel_size: int = 61,
                 shift: bool = False, boundary: str = "circular"):
        super().__init__(image_shape)
        from scipy.ndimage import gaussian_filter

        self.sigma = positive_float(sigma, "sigma")
        if self.sigma > MAX_GAUSS_SIGMA:  # scipy allocates 8 sigma + 1 filter taps
            raise ValueError(f"sigma must be <= {MAX_GAUSS_SIGMA:g} px (a {kernel_size}-px kernel is flat long "
                             f"before), got {sigma}")
        self.kernel_size = kernel_size_param(kernel_size)
        delta = np.zeros((self.kernel_size, self.kernel_size))
        delta[self.kernel_size // 2, self.kernel_size // 2] = 1.0
        self._set_kernel(gaussian_filter(delta, sigma=self.sigma), shift, boundary)

    def extra_config(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "kernel_size": self.kernel_size, **super().extra_config()}


@register
class MotionBlur(CircularBlur):
    """Random-trajectory motion blur (docs/method.md §4.4), kernel_size² (61) with intensity in [0, 1] (0.5), drawn from
    numpy.random.default_rng(seed). The kernel itself is stored in the config, so `from_config` reproduces it
    exactly even if the generator changes; pass `kernel` (square) to reuse one: kernel_size is then its side."""

    name = "deblur-motion"
    summary = "camera shake (a random-trajectory kernel); a photo's shake is read from it"

    def __init__(self, image_shape: Sequence[int], kernel_size: int | None = None, intensity: float = 0.5,
                 seed: int = 0, shift: bool = False, kernel: Any = None, boundary: str = "circular"):
        super().__init__(image_shape)
        from operators.motion_kernel import motion_kernel

        # a stored kernel is rebuilt bit for bit; a user's summing to anything else (an image's grey levels) is
        # normalised
        k = None if kernel is None else check_kernel(kernel, normalize=False)
        if k is not None and abs(k.sum() - 1.0) > 1e-6:
            k = check_kernel(k)
        if k is not None and k.shape[0] != k.shape[1]:
            raise ValueError(f"kernel is {k.shape[1]}x{k.shape[0]} (width x height): a motion kernel is square; any "
                             "other kernel: --task deblur-kernel")
        self.kernel_size = kernel_size_param(kernel_size if kernel_size is not None else 61 if k is None
                                             else k.shape[0])
        self.intensity = number(intensity, "intensity")
        if not 0.0 <= self.intensity <= 1.0:
            raise ValueError(f"intensity must be in [0, 1], got {intensity}")
        self.seed = integer(seed, "seed", 0, MAX_SEED)
        if k is None:
            k = motion_kernel(self.kernel_size, self.intensity, np.random.default_rng(self.seed))
        elif k.shape != (self.kernel_size, self.kernel_size):
            raise ValueError(f"kernel has shape {k.shape}, expected ({self.kernel_size}, {self.kernel_size}): a "
                             "motion kernel is square, kernel_size its side (leave kernel_size out to take the "
                             "kernel's); any other kernel: --task deblur-kernel")
        elif kernel_size is None:  # a user's kernel, as deblur-kernel's, no wider than the image; a stored one
            check_kernel_extent(k, self.image_shape)  # comes with its size (a drawn shake may be wider: it was made so)
        self._set_kernel(k, shift, boundary)

    def extra_config(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "intensity": self.intensity, "seed": self.seed,
                "kernel": encode_array(self.kernel), **super().extra_config()}


#: Sub-pixel samples per axis for the defocus disk's pixel coverage (16² per pixel the rim crosses: taps within
#: about 2 % of the exact coverage).
DISK_SUPERSAMPLING = 16


def disk_kernel(radius: float) -> np.ndarray:
    """A uniform disk of `radius` px (> 0): each tap the fraction of its pixel the disk covers, normalised to sum
    1; (2m + 1)² with m = ceil(radius + 0.71), every pixel the disk touches. Pixels wholly inside are 1, wholly
    outside 0, and only those the rim crosses are sampled (16² sub-pixel samples each: memory grows with the rim,
    not the area); a disk too small to cover any sample is a single tap (no blur)."""
    m = int(np.ceil(radius + np.sqrt(0.5)))
    centre = np.abs(np.arange(-m, m + 1, dtype=np.float64))
    near = np.hypot(np.maximum(centre[:, None] - 0.5, 0), np.maximum(centre[None] - 0.5, 0))  # pixel's nearest point
    far = np.hypot(centre[:, None] + 0.5, centre[None] + 0.5)  # and farthest, from the disk's centre
    coverage = (far <= radius).astype(np.float64)
    rim = np.nonzero((near < radius) & (far > radius))
    sub = (np.arange(DISK_SUPERSAMPLING) + 0.5) / DISK_SUPERSAMPLING - 0.5  # sample offsets within a pixel
    ys = centre[rim[0]][:, None, None] + sub[None, :, None]
    xs = centre[rim[1]][:, None, None] + sub[None, None, :]
    coverage[rim] = (ys**2 + xs**2 <= radius**2).mean(axis=(1, 2))
    if coverage.sum() == 0:  # under ~0.04 px no sample is inside
        coverage[m, m] = 1.0
    return coverage / coverage.sum()


@register
class DefocusBlur(CircularBlur):
    """Defocus blur: a uniform disk of `radius` px (4 by default; per-axis std radius/2), anti-aliased
    (`disk_kernel`), the out-of-focus blur of a lens with a round aperture (docs/method.md §4.3, "Defocus")."""

    name = "deblur-defocus"
    summary = "defocus, a uniform disk (radius 4 px); a photo's radius is read from it"

    def __init__(self, image_shape: Sequence[int], radius: float = 4.0, shift: bool = False,
                 boundary: str = "circular"):
        super().__init__(image_shape)
        self.radius = positive_float(radius, "radius")
        if self.radius > MAX_KERNEL_SIZE // 2 - 1:
            raise ValueError(f"radius must be <= {MAX_KERNEL_SIZE // 2 - 1} px, got {radius}")
        self._set_kernel(disk_kernel(self.radius), shift, boundary)

    def extra_config(self) -> dict[str, Any]:
        return {"radius": self.radius, **super().extra_config()}


@register
class KernelBlur(CircularBlur):
    """A user kernel: array, tensor, nested list, `.npy` file or image (grey levels); 2-D, any size; divided by
    its sum unless normalize=False."""

    name = "deblur-kernel"
    summary = "blur by your own kernel (-p kernel=K.png or K.npy)"

    def __init__(self, image_shape: Sequence[int], kernel: Any = None, normalize: bool = True,
                 shift: bool = False, boundary: str = "circular"):
        super().__init__(image_shape)
        if kernel is None:
            raise MissingParameter("kernel", "kernel is required for deblur-kernel (a .npy file, an image, an array "
                                   "or a tensor)")
        k = check_kernel(kernel, normalize=flag(normalize, "normalize"))
        check_kernel_extent(k, self.image_shape)
        self._set_kernel(k, shift, boundary)

    def extra_config(self) -> dict[str, Any]:
        # The stored kernel is already normalised: rebuild without normalising again, bit for bit.
        return {"kernel": encode_array(self.kernel), "normalize": False, **super().extra_config()}
