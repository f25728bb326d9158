"""NCVSD end to end on an analytic problem: the real training step (training/ncvsd_step.py) distils a 2-D
Gaussian-mixture teacher, whose denoiser E[x0 | x_σ] is exact, into a generative denoiser; the test then checks the
learnt denoising posteriors against the analytic ones (mode weights and within-mode spread), at σ = 80 (one-step
generation) and at σ = 0.4 (a posterior whose two modes both matter). Data live in (B, 2, 1, 1) "images".
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ncvsd_cli.networks.precond import edm_coefficients
from ncvsd_cli.training.common import make_adam
from ncvsd_cli.training.losses import karras_grid, lognormal_sigma, uniform_grid_sigma
from ncvsd_cli.training.ncvsd_step import NCVSDModels, ncvsd_step

SIGMA_DATA = 0.5
MEANS = torch.tensor([[0.5, 0.5], [-0.5, -0.3]])
WEIGHTS = torch.tensor([0.7, 0.3])
STD = 0.08  # within-mode std


def mixture_posterior(y: torch.Tensor, sigma: torch.Tensor | float,
                      weights: torch.Tensor = WEIGHTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact q(x0 | y_σ) of the mixture: (mode responsibilities (B, K), per-mode means (B, K, 2)); the per-mode
    variance is (STD⁻² + σ⁻²)⁻¹."""
    y2 = y.reshape(y.shape[0], 2)
    s2 = torch.as_tensor(sigma, dtype=y2.dtype).reshape(-1, 1) ** 2
    v = STD ** 2 + s2
    resp = (weights.log() - ((y2[:, None] - MEANS[None]) ** 2).sum(-1) / (2 * v)).softmax(-1)
    means = (STD ** 2 * y2[:, None] + s2[:, :, None] * MEANS[None]) / v[:, :, None]
    return resp, means


def mixture_teacher(weights: torch.Tensor = WEIGHTS):
    """The exact denoiser E[x0 | x_σ = x] of the mixture with mode weights `weights` (Tweedie)."""

    def teacher(x: torch.Tensor, sigma, class_labels=None) -> torch.Tensor:
        resp, means = mixture_posterior(x, sigma, weights)
        return (resp[:, :, None] * means).sum(1).view_as(x)

    return teacher


def _precond(s: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """EDM c_skip, c_out, c_in, c_noise as (B, 1) columns for the MLPs."""
    skip, out, c_in, c_noise = edm_coefficients(s.reshape(-1, 1), SIGMA_DATA)
    return skip, out, c_in, c_noise.reshape(-1, 1)


def _mlp(i: int, o: int, h: int = 64) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(),
                         nn.Linear(h, o))


class ToyGenerator(nn.Module):
    """G(y, σ, z) = c_skip y + c_out F(c_in y, c_noise, z), z ~ N(0, I_2); log-variance head u(σ)."""

    def __init__(self):
        super().__init__()
        self.f, self.u = _mlp(5, 2), _mlp(1, 1, 8)

    def forward(self, y, sigma, generator=None, class_labels=None, return_logvar=False):
        b = y.shape[0]
        skip, out, cin, cnoise = _precond(torch.as_tensor(sigma, dtype=y.dtype).expand(b))
        z = torch.randn(b, 2, generator=generator)
        x = (skip * y.view(b, 2) + out * self.f(torch.cat([cin * y.view(b, 2), cnoise, z], 1))).view_as(y)
        return (x, self.u(cnoise).view(b, 1, 1, 1)) if return_logvar else x


class ToyScore(nn.Module):
    """D_φ(x_t, t, y, σ), EDM-preconditioned in t; log-variance head u(t)."""

    def __init__(self):
        super().__init__()
        self.f, self.u = _mlp(6, 2), _mlp(1, 1, 8)

    def forward(self, x_t, t, y, sigma, class_labels=None, return_logvar=False):
        b = x_t.shape[0]
        skip, out, cin, cnoise = _precond(t)
        _, _, cin_s, cnoise_s = _precond(sigma)
        h = torch.cat([cin * x_t.view(b, 2), cnoise, cin_s * y.view(b, 2), cnoise_s], 1)
        d = (skip * x_t.view(b, 2) + out * self.f(h)).view_as(x_t)
        return (d, self.u(cnoise).view(b, 1, 1, 1)) if return_logvar else d


class ToyDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = _mlp(6, 1)

    def forward(self, x_t, t, y, sigma, class_labels=None):
        b = x_t.shape[0]
        _, _, cin, cnoise = _precond(t)
        _, _, cin_s, cnoise_s = _precond(sigma)
        return self.f(torch.cat([cin * x_t.view(b, 2), cnoise, cin_s * y.view(b, 2), cnoise_s], 1)).view(-1)


def distil_toy(steps: int, gan_after: int, teacher_weights: torch.Tensor = WEIGHTS, batch: int = 256,
               lr: float = 2e-3, g_lr_scale: float = 1.0, seed: int = 0) -> nn.Module:
    """Distil mixture_teacher(teacher_weights) with `steps` NCVSD iterations (GAN term from step `gan_after` on; its
    real samples come from the data mixture WEIGHTS); returns the generator."""
    torch.manual_seed(seed)
    nets = {"generator": ToyGenerator(), "score": ToyScore(), "discriminator": ToyDiscriminator()}
    models = NCVSDModels(nets["generator"], nets["score"], nets["discriminator"], mixture_teacher(teacher_weights),
                         {k: make_adam(n, torch.device("cpu")) for k, n in nets.items()})
    grid = karras_grid()
    data_gen = torch.Generator().manual_seed(seed + 1)

    def fresh(update):
        k = torch.multinomial(WEIGHTS, batch, replacement=True, generator=data_gen)
        x0 = (MEANS[k] + STD * torch.randn(batch, 2, generator=data_gen)).view(batch, 2, 1, 1)
        sigma = uniform_grid_sigma(batch, grid, data_gen)
        return x0, None, sigma, x0 + sigma.view(-1, 1, 1, 1) * torch.randn(x0.shape, generator=data_gen), data_gen

    for step in range(steps):
        cur = lr * min(1.0, 2.0 * (1.0 - step / steps))  # constant, then linear decay over the last half
        ncvsd_step(models, fresh, lambda n, g: lognormal_sigma(n, -0.8, 1.6, g),
                   lrs={"score": cur, "discriminator": cur * g_lr_scale, "generator": cur * g_lr_scale},
                   gan=step >= gan_after, loss_norm=1.0 / batch)
    return nets["generator"]


@torch.no_grad()
def _posterior_stats(gen: nn.Module, y: torch.Tensor, sigma: float, n: int = 4000):
    """Over n draws of G(y, σ): the fraction nearest to mode 0, the mean within-mode std, and the sample mean (2,)."""
    g = torch.Generator().manual_seed(123)
    x = gen(y.view(1, 2, 1, 1).expand(n, 2, 1, 1), torch.full((n,), sigma), generator=g).view(n, 2)
    k = torch.cdist(x, MEANS).argmin(1)
    spread = torch.stack([x[k == j].std(0).mean() for j in range(2) if (k == j).sum() > 10]).mean()
    return (k == 0).float().mean().item(), spread.item(), x.mean(0)


@pytest.fixture(scope="module")
def distilled_toy():
    return distil_toy(steps=1500, gan_after=500, lr=1e-2, g_lr_scale=0.1)  # G and D at 0.1x the score model


# Tolerances: 4000 draws give a binomial std <= 0.008 on a fraction; the rest is training error of this 1500-step run,
# measured over seeds 0-2 at <= 0.05 on the weights (0.15 leaves room) and a within-mode spread 1.15-1.8x the true
# std (over-dispersed; hence 2.0). Known and left unchecked (benchmarks/README.md): with equal G:score learning rates,
# longer runs drift towards the majority mode (0.83-0.92 at 6000 steps; 0.66-0.68 with G at 0.1x), and where y sits
# on the *minority* mode at σ ≈ 0.4 the generator keeps ~0.4 of its mass on the majority mode (exact 0.02) in every
# setting tried.
@pytest.mark.parametrize("y, sigma", [((0.0, 0.0), 80.0), ((0.0, 0.1), 0.4), ((0.0, 0.1), 1.0)])
def test_ncvsd_recovers_mixture_posterior(distilled_toy, y, sigma):
    y = torch.tensor(y)
    resp, _ = mixture_posterior(y.view(1, 2, 1, 1), sigma)
    frac0, spread, _ = _posterior_stats(distilled_toy, y, sigma)
    assert abs(frac0 - resp[0, 0].item()) < 0.15, (frac0, resp)
    post_std = (STD ** -2 + sigma ** -2) ** -0.5
    assert 0.7 * post_std < spread < 2.0 * post_std, (spread, post_std)


def test_ncvsd_follows_the_teacher_not_the_data():
    """VSD alone (no GAN, so the data enter only through y): with y uninformative (σ = 80) the generator takes the
    *teacher's* majority mode (weights 0.3 / 0.7), not the data's (0.7 / 0.3): the distillation signal is the teacher's."""
    gen = distil_toy(steps=1200, gan_after=10**9, teacher_weights=torch.tensor([0.3, 0.7]))
    frac0, _, _ = _posterior_stats(gen, torch.zeros(2), 80.0)
    assert frac0 < 0.5, frac0  # measured 0.10: VSD alone over-weights the teacher's majority mode (mode seeking)


def test_untrained_generator_fails_the_same_check():
    """The checks above can fail: the untrained generator misses the mode weights or the spread."""
    frac0, spread, _ = _posterior_stats(distil_toy(steps=0, gan_after=0), torch.zeros(2), 80.0)
    assert abs(frac0 - 0.7) >= 0.15 or not 0.7 * STD < spread < 2.0 * STD, (frac0, spread)
