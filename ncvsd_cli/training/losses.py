"""Losses and noise-level samplers of teacher training (EDM2) and NCVSD distillation (docs/method.md §1.3-§1.7).

All losses here are *per sample*: they return a (B,) tensor summed over the C·H·W dimensions. The training loops
reduce them as sum(loss) · loss_scaling / per-rank batch (docs/method.md §1.4 step 9). Noise levels are EDM sigmas;
images are in [-1, 1]; sigma_data = 0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from operators.noise import Generators, rand, randn

SIGMA_DATA = 0.5


def _col(s: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """A float or (B,) noise level as a (B, 1, 1, 1) tensor on like's device (like's dtype, at least fp32)."""
    dtype = like.dtype if like.dtype == torch.float64 else torch.float32
    s = torch.as_tensor(s, dtype=dtype, device=like.device)
    return s.reshape(-1, *([1] * (like.ndim - 1)))


def edm_weight(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """λ(σ) = (σ² + σ_d²) / (σ·σ_d)² = 1 / c_out(σ)² (= 4 + σ⁻² for σ_d = 0.5; docs/method.md §1.4 step 4)."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def lognormal_sigma(n: int, p_mean: float, p_std: float, generator: Generators = None, device=None) -> torch.Tensor:
    """(n,) noise levels with ln σ ~ N(p_mean, p_std²) (docs/method.md §1.7; EDM2 pixel models: (−0.8, 1.6))."""
    if p_std <= 0:
        raise ValueError(f"p_std {p_std} must be > 0")
    return (randn((n,), generator, device=device) * p_std + p_mean).exp()


def karras_grid(points: int = 1000, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """The generator-σ grid of docs/method.md §1.7 (float32, decreasing, `points` values)."""
    from ncvsd_cli.sampling.schedules import karras_sigmas

    return karras_sigmas(points, sigma_min, sigma_max, rho).float()


def uniform_grid_sigma(n: int, grid: torch.Tensor, generator: Generators = None, device=None) -> torch.Tensor:
    """(n,) values drawn uniformly (with replacement) from `grid` (docs/method.md §1.7 UniformNoiseSampler)."""
    idx = (rand((n,), generator, device=device) * len(grid)).long().clamp_(max=len(grid) - 1)
    return grid.to(idx.device)[idx]


def posterior_query(y: torch.Tensor, sigma: torch.Tensor | float, x_t: torch.Tensor,
                    t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Proposition 1 (docs/method.md §1.3): the two Gaussian likelihoods N(y; x0, σ²) N(x_t; x0, t²) as one observation.

    Returns (y_eff, σ_eff) with σ_eff = (σ⁻² + t⁻²)^(−1/2) as a (B,) tensor and y_eff = σ_eff² (y/σ² + x_t/t²),
    (y's dtype, at least fp32) so that q(x0 | x_t, y_σ) = q(x0 | y_{σ_eff} = y_eff) and ∇_{x_t} log q(x_t | y_σ) = (E[x0 | y_eff] − x_t)/t².
    """
    s, tt = _col(sigma, y).expand(y.shape[0], 1, 1, 1), _col(t, y).expand(y.shape[0], 1, 1, 1)
    var = 1.0 / (s ** -2 + tt ** -2)
    y_eff = var * (y.to(s.dtype) / s ** 2 + x_t.to(s.dtype) / tt ** 2)
    return y_eff, var.sqrt().reshape(-1)


def uncertainty_loss(denoised: torch.Tensor, target: torch.Tensor, logvar: torch.Tensor,
                     sigma: torch.Tensor | float) -> torch.Tensor:
    """EDM2 uncertainty-weighted denoising loss Σ_dims [λ(σ) e^(−u) (D − x0)² + u] per sample (docs/method.md §1.5)."""
    w = edm_weight(_col(sigma, target))
    u = logvar.float().reshape(-1, *([1] * (target.ndim - 1)))
    err = (denoised.float() - target.float()) ** 2
    return (w * torch.exp(-u) * err + u).flatten(1).sum(1)


def vsd_loss(x: torch.Tensor, logvar: torch.Tensor, s0: torch.Tensor, s_phi: torch.Tensor,
             t: torch.Tensor | float) -> torch.Tensor:
    """Generator VSD term (docs/method.md §1.4 step 5): Σ_dims [λ(t) e^(−u) (x − sg(x + s0 − sφ))² + u] per sample.

    Its gradient w.r.t. x is 2 λ(t) e^(−u) (sφ − s0); u is the generator's log-variance at σ̂ (B,) or (B,1,1,1).
    """
    target = (x + s0 - s_phi).detach()
    return uncertainty_loss(x, target, logvar, t)


def gan_generator_loss(logits: torch.Tensor, dims: int) -> torch.Tensor:
    """Non-saturating generator BCE with target 1, scaled by D = C·H·W: D · softplus(−ℓ) (docs/method.md §1.4 steps 6-7)."""
    return dims * F.softplus(-logits.float().reshape(-1))


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor, dims: int) -> torch.Tensor:
    """D · 0.5 · (softplus(ℓ_fake) + softplus(−ℓ_real)) per sample (docs/method.md §1.6 step 4)."""
    return dims * 0.5 * (F.softplus(logits_fake.float().reshape(-1)) + F.softplus(-logits_real.float().reshape(-1)))
