"""How wide are PnP-GD's samples with a teacher-copy generator (the shipped model's kind, docs/method.md §1.9)?

An 8x8 Gaussian prior makes everything exact: the teacher D_0 is the prior's MMSE denoiser, the exact generative
denoiser G samples the denoising posterior, and the posterior p(x | y) of a linear operator is known. The teacher
copy is G(y, σ) = D_0(y + sqrt(σ̂² − σ²) z, σ̂), σ̂ = (1 + γ)σ (`training.distill.teacher_copy_generator`). Printed,
per task and generator: the mean over pixels of the output's variance over K chains divided by the posterior
variance (1 = a posterior sample's spread), and the mean |bias| of the chains' mean in posterior stds, for
  - the exactness schedule of tests/test_sampling_exact.py (329 levels, β = 2σ_y², EMA off),
  - the task's default warm start (its preset: β, EMA, schedule);
and for denoising, the default method `denoiser` (G at σ_y, 1 and 4 calls).
Usage:  python benchmarks/teacher_copy_spread.py [--chains 2000] [--seed 0]  (about a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import math

import torch

import operators
from ncvsd_cli.sampling.gaussian import GaussianPrior, operator_matrix
from ncvsd_cli.sampling.generate import denoise_measurement
from ncvsd_cli.sampling.pnp_gd import pnp_gd, pnp_gd_warm
from ncvsd_cli.sampling.presets import settings_sigmas, task_settings
from ncvsd_cli.sampling.schedules import karras_sigmas
from operators.noise import randn_like

SIGMA_Y, SHAPE = 0.05, (1, 8, 8)
TASKS = {"sr4": {}, "deblur-gauss": {"sigma": 1.0, "kernel_size": 5}, "inpaint-random": {"fraction": 0.5}}


def teacher_copy(prior: GaussianPrior, gamma: float):
    """G(y, σ) = D_0(y + sqrt(σ̂² − σ²) z, σ̂), σ̂ = (1 + γ)σ, with the prior's exact teacher D_0."""
    def generator(y, sigma, generator=None, class_labels=None):
        high = (1 + gamma) * sigma
        return prior.teacher(y + math.sqrt(high**2 - sigma**2) * randn_like(y, generator), high)
    return generator


def exact_schedule() -> torch.Tensor:
    return torch.cat([karras_sigmas(30, 0.2, 80.0, rho=7.0)[:-1],
                      torch.logspace(math.log10(0.2), math.log10(0.001), 300, dtype=torch.float64)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chains", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    g0 = torch.Generator().manual_seed(a.seed)
    prior = GaussianPrior(0.2 * torch.randn(SHAPE, generator=g0), 0.2 + 0.2 * torch.rand(SHAPE, generator=g0))
    generators = {"exact G": prior.denoiser, "copy γ 0.414": teacher_copy(prior, 0.414),
                  "copy γ 0.1": teacher_copy(prior, 0.1)}
    print("| task | generator | variance ratio, exactness schedule | variance ratio, default warm start | "
          "mean bias / std (exact, warm) |\n|---|---|---|---|---|")
    for task, params in TASKS.items():
        op = operators.create(task, SHAPE, **params)
        g = torch.Generator().manual_seed(a.seed + 1)
        y = op.measure(prior.sample((1, *SHAPE), g), SIGMA_Y, g)
        mean, cov = prior.posterior(operator_matrix(op), y.flatten(), SIGMA_Y, SHAPE)
        ys = y.expand(a.chains, *y.shape[1:])
        warm = task_settings(task, warm=True, sigma_y=SIGMA_Y)
        for name, gen in generators.items():
            runs = [pnp_gd(gen, op, ys, exact_schedule(), generator=g, beta=2 * SIGMA_Y**2, ema_sigma=None),
                    pnp_gd_warm(gen, op, ys, settings_sigmas(warm), generator=g, sigma_y=SIGMA_Y, beta=warm["beta"],
                                ema_sigma=warm["ema_sigma"], ema_decay=warm["ema_decay"])]
            cells = []
            for r in runs:
                s = r.x.reshape(a.chains, -1).double()
                cells.append(((s.var(0) / cov.diagonal()).mean().item(),
                              ((s.mean(0) - mean).abs() / cov.diagonal().sqrt()).mean().item()))
            print(f"| {task} | {name} | {cells[0][0]:.2f} | {cells[1][0]:.2f} | {cells[0][1]:.2f}, {cells[1][1]:.2f} |",
                  flush=True)
    denoise_rows(prior, generators, a.chains, a.seed)


def denoise_rows(prior: GaussianPrior, generators: dict, chains: int, seed: int) -> None:
    """The `denoise` task's default method, `denoiser` (G itself at σ_y, refined by `multistep_denoise` for NFE > 1;
    no PnP loop): its variance ratio to the denoising posterior at σ_y 0.05, 0.1 and 0.2, 1 and 4 calls."""
    op = operators.create("denoise", SHAPE)
    print("\n| generator | σ_y | variance ratio, 1 call | 4 calls |\n|---|---|---|---|")
    for name, gen in generators.items():
        for sigma_y in (0.05, 0.1, 0.2):
            g = torch.Generator().manual_seed(seed + 2)
            y = op.measure(prior.sample((1, *SHAPE), g), sigma_y, g)
            _, cov = prior.posterior(operator_matrix(op), y.flatten(), sigma_y, SHAPE)
            ratios = [(denoise_measurement(gen, op, y.expand(chains, *y.shape[1:]), generator=g, sigma_y=sigma_y,
                                           nfe=nfe).x.reshape(chains, -1).double().var(0) / cov.diagonal()).mean()
                      for nfe in (1, 4)]
            print(f"| {name} | {sigma_y} | {ratios[0]:.2f} | {ratios[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
