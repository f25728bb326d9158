"""Denoising (A = I) and phase retrieval (docs/method.md §4.5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from operators.base import Operator
from operators.noise import Generators, randn_like
from operators.params import check_likelihood_args, positive_float
from operators.registry import register


@register
class Denoise(Operator):
    """A = I. Exact likelihood step: var = (1/ρ² + 1/σ_p²)⁻¹, mean = var·(x0/ρ² + y/σ_p²) (docs/method.md §3.3 with m = 1)."""

    name = "denoise"
    summary = "Gaussian noise alone; a photo's noise level is read from it"
    measures_pixels = True
    linear = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def exact_fit(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """A noiseless measurement of the identity is the image: y itself."""
        return y.to(x.dtype).clone()

    def likelihood_sample(self, x0: torch.Tensor, y: torch.Tensor, rho: float, sigma_p: float,
                          generator: Generators = None) -> torch.Tensor:
        check_likelihood_args(rho, sigma_p)
        var = 1.0 / (1.0 / rho**2 + 1.0 / sigma_p**2)
        return var * (x0 / rho**2 + y / sigma_p**2) + var**0.5 * randn_like(x0, generator)


#: Largest phase-retrieval oversample accepted: 25 times the image's pixels (oversample 1000 asked for 16 GB).
MAX_OVERSAMPLE = 16.0


@register
class PhaseRetrieval(Operator):
    """A(x) = |F_c(pad((x + 1)/2))|: x mapped to [0, 1], zero-padded by int(oversample/8·H) rows and
    int(oversample/8·W) columns on each side (128 on 256 for the default oversample = 4, i.e. 4× the pixels),
    centred orthonormal 2-D FFT (ifftshift, fft "ortho", fftshift), magnitude (docs/method.md §4.5).

    Computed in the input's precision (the reference uses complex128). No closed form: the likelihood step is the
    base class's ULA, 100 steps, C1 = C2 = 0.1 (docs/method.md §3.3). Not linear; `pseudo_inverse` has no meaning here and
    returns the mid-grey image (zeros), a neutral start.
    """

    name = "phase-retrieval"
    summary = "Fourier amplitudes, 4x oversampled (degrade's sidecar, or your own through Python)"
    linear = False

    def __init__(self, image_shape: Sequence[int], oversample: float = 4.0):
        super().__init__(image_shape)
        self.oversample = positive_float(oversample, "oversample", allow_zero=True)
        if self.oversample > MAX_OVERSAMPLE:  # the measurement holds (1 + oversample / 4)² times the pixels
            raise ValueError(f"oversample must be <= {MAX_OVERSAMPLE:g} (a measurement of (1 + oversample/4)² "
                             f"times the image's pixels; the paper's is 4), got {oversample}")
        _, h, w = self.image_shape
        self.pad = (int(self.oversample / 8 * h), int(self.oversample / 8 * w))

    def _canvas(self, x: torch.Tensor) -> torch.Tensor:
        """pad((x + 1)/2): the image on [0, 1], zero-padded by `self.pad` on each side."""
        ph, pw = self.pad
        return torch.nn.functional.pad((x + 1) / 2, (pw, pw, ph, ph))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self._canvas(x)
        f = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(z, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))
        return f.abs()

    def data_gradient(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Closed form of ∇_u |A(u) - y|²: with z = pad((u + 1)/2) and f = F z (F unitary; a magnitude does not see
        the centring shifts, which only permute and rephase), ∇_z = 2 Re F^H[(|f| - y') f/|f|] (0 where f = 0, as
        autograd's), y' = y without the output's fftshift, and ∇_u = ½ crop(∇_z): two FFTs and no graph (the same
        gradient as autograd's up to rounding). z is real, so f is Hermitian and Re F^H[h] = F^H[the Hermitian part
        of h], which only needs y' made symmetric, y'_s(k) = (y'(k) + y'(-k)) / 2: half-spectrum FFTs (rfft2 /
        irfft2), about half the work (benchmarks/pr-likelihood/)."""
        return self.data_gradient_for(y)(u)

    def data_gradient_for(self, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """`data_gradient(., y)` with y's symmetric half spectrum computed once (the ULA's 100 steps share it)."""
        ph, pw = self.pad
        width = self.image_shape[2] + 2 * pw
        yp = torch.fft.ifftshift(y, dim=(-2, -1))
        mirrored = torch.roll(torch.flip(yp, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))  # y'(-k mod N)
        target = ((yp + mirrored) / 2)[..., : width // 2 + 1]

        def gradient(u: torch.Tensor) -> torch.Tensor:
            z = self._canvas(u)
            f = torch.fft.rfft2(z, norm="ortho")
            mag = f.abs()
            phase = f / mag.clamp_min(torch.finfo(mag.dtype).tiny)  # 0 where f = 0
            g = torch.fft.irfft2((mag - target) * phase, s=z.shape[-2:], norm="ortho")
            return g[..., ph:ph + u.shape[-2], pw:pw + u.shape[-1]].to(u.dtype)  # 2 Re(...) × ½ from (u + 1)/2

        return gradient

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Fallback: zeros (mid-grey) of shape (B, *image_shape); phase retrieval has no linear inverse."""
        return y.new_zeros((y.shape[0], *self.image_shape))

    def extra_config(self) -> dict[str, Any]:
        return {"oversample": self.oversample}
