"""Circular deblurring (docs/method.md §4.3–4.4): A(x) = k ⊛ x, a circular convolution computed by FFT, per channel.

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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from operators.base import Operator
from operators.noise import Generators, randn_like
from operators.params import as_array, check_likelihood_args, encode_array, like, positive_float, positive_int
from operators.registry import register

#: Tikhonov regularisation of the pseudo-inverse: conj(K)·Y / (|K|² + eps).
PINV_EPS = 1e-3
#: Largest kernel_size accepted: refused before the kernel_size² array is allocated.
MAX_KERNEL_SIZE = 2049


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


def check_kernel(kernel: Any, name: str = "kernel", normalize: bool = True) -> np.ndarray:
    """A 2-D, finite, float64 kernel with a non-zero sum; divided by its sum when `normalize`."""
    k = np.asarray(as_array(kernel, name), dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {k.shape}")
    if not np.isfinite(k).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if normalize:
        total = k.sum()
        if total == 0:
            raise ValueError(f"{name} sums to 0 and cannot be normalised")
        k = k / total
    return k


class CircularBlur(Operator):
    """Shared FFT body; subclasses pass the float64 kernel to `_set_kernel`."""

    linear = True

    def _set_kernel(self, kernel: np.ndarray, shift: bool) -> None:
        self.shift = bool(shift)
        self.kernel = kernel  # float64 numpy, kept for the config
        _, h, w = self.image_shape
        self.register_buffer("psf", torch.from_numpy(circular_psf(kernel, (h, w), self.shift)))

    def _otf(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(like(self.psf, x))

    def _filter(self, x: torch.Tensor, spectrum: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(spectrum * torch.fft.rfft2(x), s=x.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._filter(x, self._otf(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._filter(y, self._otf(y).conj())

    def pseudo_inverse(self, y: torch.Tensor, eps: float = PINV_EPS) -> torch.Tensor:
        """Tikhonov-regularised inverse F⁻¹[conj(K)·F(y)/(|K|² + eps)], eps = 1e-3 by default."""
        k = self._otf(y)
        return self._filter(y, k.conj() / (k.abs() ** 2 + eps))

    def likelihood_sample(self, x0: torch.Tensor, y: torch.Tensor, rho: float, sigma_p: float,
                          generator: Generators = None) -> torch.Tensor:
        """Exact sample in the Fourier domain (docs/method.md §3.3, circular blur)."""
        check_likelihood_args(rho, sigma_p)
        k = self._otf(x0)
        s = 1.0 / (k.abs() ** 2 / sigma_p**2 + 1.0 / rho**2)
        b = self._filter(y, k.conj()) / sigma_p**2 + x0 / rho**2
        return self._filter(b, s) + self._filter(randn_like(x0, generator), s.sqrt())

    def extra_config(self) -> dict[str, Any]:
        return {"shift": self.shift}


@register
class GaussianBlur(CircularBlur):
    """Gaussian blur: a kernel_size² delta filtered by scipy.ndimage.gaussian_filter(sigma) (truncate 4, reflect),
    sigma = 3 px and 61×61 by default (docs/method.md §4.3)."""

    name = "deblur-gauss"

    def __init__(self, image_shape: tuple[int, int, int], sigma: float = 3.0, kernel_size: int = 61,
                 shift: bool = False):
        super().__init__(image_shape)
        from scipy.ndimage import gaussian_filter

        self.sigma = positive_float(sigma, "sigma")
        self.kernel_size = kernel_size_param(kernel_size)
        delta = np.zeros((self.kernel_size, self.kernel_size))
        delta[self.kernel_size // 2, self.kernel_size // 2] = 1.0
        self._set_kernel(gaussian_filter(delta, sigma=self.sigma), shift)

    def extra_config(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "kernel_size": self.kernel_size, **super().extra_config()}


@register
class MotionBlur(CircularBlur):
    """Random-trajectory motion blur (docs/method.md §4.4), kernel_size² (61) with intensity in [0, 1] (0.5), drawn from
    numpy.random.default_rng(seed). The kernel itself is stored in the config, so `from_config` reproduces it
    exactly even if the generator changes; pass `kernel` to reuse one."""

    name = "deblur-motion"

    def __init__(self, image_shape: tuple[int, int, int], kernel_size: int = 61, intensity: float = 0.5,
                 seed: int = 0, shift: bool = False, kernel: Any = None):
        super().__init__(image_shape)
        from operators.motion_kernel import motion_kernel

        self.kernel_size = kernel_size_param(kernel_size)
        self.intensity = float(intensity)
        if not 0.0 <= self.intensity <= 1.0:
            raise ValueError(f"intensity must be in [0, 1], got {intensity}")
        if isinstance(seed, bool) or not float(seed).is_integer():
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        if kernel is None:
            k = motion_kernel(self.kernel_size, self.intensity, np.random.default_rng(self.seed))
        else:
            k = check_kernel(kernel, normalize=False)
            if k.shape != (self.kernel_size, self.kernel_size):
                raise ValueError(f"kernel has shape {k.shape}, expected ({self.kernel_size}, {self.kernel_size})")
        self._set_kernel(k, shift)

    def extra_config(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "intensity": self.intensity, "seed": self.seed,
                "kernel": encode_array(self.kernel), **super().extra_config()}


@register
class KernelBlur(CircularBlur):
    """A user kernel: array, tensor, nested list, `.npy` file or image (grey levels); 2-D, any size; divided by
    its sum unless normalize=False."""

    name = "deblur-kernel"

    def __init__(self, image_shape: tuple[int, int, int], kernel: Any = None, normalize: bool = True,
                 shift: bool = False):
        super().__init__(image_shape)
        if kernel is None:
            raise ValueError("kernel is required for deblur-kernel (a .npy file, an image, an array or a tensor)")
        self._set_kernel(check_kernel(kernel, normalize=bool(normalize)), shift)

    def extra_config(self) -> dict[str, Any]:
        # The stored kernel is already normalised: rebuild without normalising again, bit for bit.
        return {"kernel": encode_array(self.kernel), "normalize": False, **super().extra_config()}
