"""One NCVSD iteration (docs/method.md §1.4-§1.6, §1.8 order): score model, discriminator, generator, each on a fresh batch.

Network-agnostic, so that the same code trains the image networks (distill.py) and the analytic toy of the tests.
Interfaces (images in [-1, 1], σ and t as (B,) tensors):

- generator(y, σ, generator=, class_labels=, return_logvar=) -> x0 sample [, log-variance u(σ̂)]
- score(x_t, t, y, σ, class_labels=, return_logvar=) -> E_μθ[x0 | x_t, y] [, u(t)]
- discriminator(x_t, t, y, σ, class_labels=) -> (B,) logits
- teacher(x, σ, class_labels=) -> E_q[x0 | x]   (frozen)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ncvsd_cli.training.common import optimiser_step
from ncvsd_cli.training.losses import (
    discriminator_loss,
    gan_generator_loss,
    posterior_query,
    uncertainty_loss,
    vsd_loss,
)
from operators.noise import randn

#: fresh(update) -> (images, labels or None, σ (B,), y = images + σ n, torch.Generator for this update's noise)
FreshBatch = Callable[[int], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Generator]]


@dataclass
class NCVSDModels:
    """The three trained networks, the frozen teacher and one optimiser per trained network (keys as below)."""

    generator: torch.nn.Module
    score: torch.nn.Module
    discriminator: torch.nn.Module
    teacher: Callable
    optimisers: dict[str, torch.optim.Optimizer]  # "generator", "score", "discriminator"

    def only_train(self, net: torch.nn.Module | None) -> None:
        """Train mode and gradients for `net` only (None: all frozen, eval mode)."""
        for m in (self.generator, self.score, self.discriminator):
            m.train(m is net)
            m.requires_grad_(m is net)


def add_noise(x: torch.Tensor, t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """x + t n, n ~ N(0, I) from `gen`, with one noise level per sample (t: (B,))."""
    return x + t.view(-1, *([1] * (x.ndim - 1))) * randn(x.shape, gen, device=x.device)


def ncvsd_step(m: NCVSDModels, fresh: FreshBatch, sample_t: Callable[[int, torch.Generator], torch.Tensor], *,
               lrs: dict[str, float], gan: bool, gan_loss_scaling: float = 1.0, loss_norm: float = 1.0,
               autocast_ctx=None) -> dict[str, torch.Tensor]:
    """Three Adam updates; returns the mean per-dimension losses (loss_score, loss_vsd[, loss_disc][, loss_gan]).

    lrs: learning rate per network; gan: add the GAN term to the generator loss (after warm-up); loss_norm:
    loss_scaling / per-rank batch (docs/method.md §1.4 step 9). gan_loss_scaling 0 turns the GAN off entirely:
    the discriminator update (the second of the three) is then skipped, which saves about a quarter of a step.
    """
    ac = autocast_ctx if autocast_ctx is not None else contextlib.nullcontext()
    opt = m.optimisers

    # 1. score model D_φ: DSM on generator samples (§1.5)
    m.only_train(m.score)
    _, lab, sigma, y, gen = fresh(0)
    with torch.no_grad(), ac:
        x = m.generator(y, sigma, generator=gen, class_labels=lab).float()
    t = sample_t(x.shape[0], gen)
    x_t = add_noise(x, t, gen)
    with ac:
        s_hat, u = m.score(x_t, t, y, sigma, class_labels=lab, return_logvar=True)
    loss_score = uncertainty_loss(s_hat, x, u, t)
    optimiser_step(m.score, opt["score"], loss_score.sum() * loss_norm, lrs["score"])

    dims = x[0].numel()
    out = {"loss_score": loss_score.mean() / dims}

    # 2. discriminator C_ψ: real (x0 + t ε1) vs fake (G(y) + t ε2), same t (§1.6)
    if gan_loss_scaling > 0:
        m.only_train(m.discriminator)
        images, lab, sigma, y, gen = fresh(1)
        with torch.no_grad(), ac:
            x = m.generator(y, sigma, generator=gen, class_labels=lab).float()
        t = sample_t(x.shape[0], gen)
        real, fake = add_noise(images, t, gen), add_noise(x, t, gen)
        lab2 = torch.cat([lab, lab]) if lab is not None else None
        with ac:
            logits = m.discriminator(torch.cat([real, fake]), torch.cat([t, t]), torch.cat([y, y]),
                                     torch.cat([sigma, sigma]), class_labels=lab2)
        B = images.shape[0]
        loss_disc = discriminator_loss(logits[:B], logits[B:], dims)
        optimiser_step(m.discriminator, opt["discriminator"], loss_disc.sum() * loss_norm, lrs["discriminator"])
        out["loss_disc"] = loss_disc.mean() / dims

    # 3. generator G_θ: VSD through the posterior-score identity (+ GAN after warm-up) (§1.3-§1.4)
    m.only_train(m.generator)
    _, lab, sigma, y, gen = fresh(2)
    with ac:
        x, u = m.generator(y, sigma, generator=gen, class_labels=lab, return_logvar=True)
    x = x.float()
    t = sample_t(x.shape[0], gen)
    x_t = add_noise(x, t, gen)
    with torch.no_grad():
        y_eff, sigma_eff = posterior_query(y, sigma, x_t, t)
        with ac:
            s0 = m.teacher(y_eff, sigma_eff, class_labels=lab).float()
            s_phi = m.score(x_t, t, y, sigma, class_labels=lab).float()
    loss_vsd = vsd_loss(x, u, s0, s_phi, t)
    loss_gen = loss_vsd
    out["loss_vsd"] = loss_vsd.mean() / dims
    if gan and gan_loss_scaling > 0:
        with ac:
            logits_g = m.discriminator(x_t, t, y, sigma, class_labels=lab)
        loss_gan = gan_generator_loss(logits_g, dims)
        loss_gen = loss_vsd + gan_loss_scaling * loss_gan
        out["loss_gan"] = loss_gan.mean() / dims
    optimiser_step(m.generator, opt["generator"], loss_gen.sum() * loss_norm, lrs["generator"])
    m.only_train(None)
    return out
