"""Exactness of the samplers with a Gaussian prior, whose posteriors are known in closed form (docs/method.md §10).

PnP-GD with the exact generative denoiser, beta = 2 sigma_y², the EMA off and a schedule that ends well below sigma_y
samples the exact posterior p(x | y) = N(m, C) of a linear operator (from OPS, as a dense matrix). Many chains run in
one batch on one measurement; we test the empirical mean, the per-pixel variance and the variance of the measured
components A x against the analytic values.

Tolerances (K = 2000 chains):
- mean: every pixel within 5 standard errors sqrt(C_ii / K) plus 0.1 posterior std of schedule bias (the annealing
  leaves the chains slightly behind the target: on the one-pixel toy of §10 (prior std 0.3, sigma_y 0.05, 1e5
  chains) the schedule used here gives a mean bias of 0.003 std and a std ratio of 1.006, i.e. +1.1 % variance);
- variance: the ratio empirical / analytic has standard error sqrt(2 / K) = 3.2 % per pixel: each pixel within
  6 standard errors plus 3 % bias, and the average over pixels (many nearly independent pixels) within 5 %.
  A 2x over-dispersion (the paper's 50-step schedule, §10) or the EMA's pull toward the prior fails both by a
  wide margin.
"""

import itertools
import math

import pytest
import torch

import operators
from ncvsd_cli.sampling.gaussian import GaussianPrior, operator_matrix
from ncvsd_cli.sampling.generate import default_ts, generate, heun_sample
from ncvsd_cli.sampling.pnp_gd import pnp_gd
from ncvsd_cli.sampling.schedules import karras_sigmas
from operators.noise import randn

K = 2000
SIGMA_Y = 0.05
SHAPE = (1, 8, 8)


def _prior(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GaussianPrior(0.2 * torch.randn(shape, generator=g), 0.2 + 0.2 * torch.rand(shape, generator=g))


def _exact_schedule() -> torch.Tensor:
    """329 levels: 29 Karras (rho 7) levels 80 -> 0.2, then 300 log-spaced levels 0.2 -> 0.001, so the last denoiser
    call is at sigma ~ 1e-3 << sigma_y and ~190 levels lie in [sigma_y / 10, 3 sigma_y], where the Gibbs chain's
    mixing slows down (docs/method.md §10)."""
    return torch.cat([karras_sigmas(30, 0.2, 80.0, rho=7.0)[:-1],
                      torch.logspace(math.log10(0.2), math.log10(0.001), 300, dtype=torch.float64)])


def _check_moments(samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, label: str) -> None:
    """samples (K, D) against N(mean, cov) with the tolerances of the module docstring."""
    k = samples.shape[0]
    var = cov.diagonal()
    emp_mean, emp_var = samples.mean(0), samples.var(0)
    z = (emp_mean - mean).abs() / (var / k).sqrt()
    assert (z < 5 + 0.1 * math.sqrt(k)).all(), f"{label}: mean off by {z.max():.1f} standard errors"
    ratio = emp_var / var
    se = math.sqrt(2 / (k - 1))
    assert ((ratio - 1).abs() < 0.03 + 6 * se).all(), f"{label}: variance ratios {ratio.min():.3f}..{ratio.max():.3f}"
    assert abs(ratio.mean() - 1) < 0.05, f"{label}: mean variance ratio {ratio.mean():.3f}"


@pytest.mark.parametrize("name, params", [
    ("inpaint-random", {"fraction": 0.5}),
    ("deblur-gauss", {"sigma": 1.0, "kernel_size": 5}),
    ("sr4", {}),
])
def test_pnp_gd_samples_exact_gaussian_posterior(name, params):
    torch.manual_seed(0)
    prior = _prior(SHAPE)
    op = operators.create(name, SHAPE, **params)
    A = operator_matrix(op)
    g = torch.Generator().manual_seed(1)
    x_true = prior.sample((1, *SHAPE), g)
    y = op.measure(x_true, SIGMA_Y, g)
    mean, cov = prior.posterior(A, y.flatten(), SIGMA_Y, SHAPE)
    sigmas = _exact_schedule()
    res = pnp_gd(prior.denoiser, op, y.expand(K, *y.shape[1:]), sigmas, generator=g, beta=2 * SIGMA_Y**2,
                 ema_sigma=None)
    assert res.nfe == len(sigmas) - 1
    samples = res.x.reshape(K, -1).double()
    _check_moments(samples, mean, cov, name)
    # the measured directions, where the posterior is much narrower than the prior (rows of A that are not zero)
    rows = A[A.abs().sum(1) > 0]
    _check_moments(samples @ rows.T, mean @ rows.T, rows @ cov @ rows.T, f"{name} A x")


def test_pnp_gd_paper_schedule_is_overdispersed_without_ema():
    """The check above can fail: the paper's 50 steps (last call at sigma 0.0512) inflate the posterior (§10)."""
    prior = GaussianPrior(0.0, 0.5)
    op = operators.create("denoise", (1, 1, 1))
    y = torch.full((4000, 1, 1, 1), 0.3)
    res = pnp_gd(prior.denoiser, op, y, karras_sigmas(50, rho=2.0), generator=torch.Generator().manual_seed(0),
                 beta=2 * SIGMA_Y**2, ema_sigma=0)
    true_std = (1 / (1 / 0.25 + 1 / SIGMA_Y**2)) ** 0.5
    assert res.x.std() > 1.5 * true_std


@pytest.mark.parametrize("nfe", [1, 2, 4])
def test_generate_samples_the_prior(nfe):
    shape = (1, 4, 4)
    prior = _prior(shape, seed=3)
    res = generate(prior.denoiser, (K, *shape), default_ts(nfe), torch.Generator().manual_seed(nfe))
    assert res.nfe == nfe and res.x.shape == (K, *shape)
    # starting the grid at sigma_eff >= 16.4 instead of the exact marginal biases the mean by < 0.1 % of mu
    _check_moments(res.x.reshape(K, -1).double(), prior.mu.reshape(-1), torch.diag(prior.s.reshape(-1) ** 2),
                   f"generate nfe={nfe}")


def test_heun_sample_follows_the_exact_probability_flow():
    """For a Gaussian prior N(mu, s²) the ODE maps x at sigma_max to mu + (x - mu)·s/√(s² + sigma_max²) (each
    sample, exactly). The teacher's Heun samples converge to it at second order (error / 16 for 4x the steps;
    Euler steps on the same levels, the correction dropped: / 4, and 5-25x larger from 63 NFE) and have the
    prior's moments."""
    shape = (1, 4, 4)
    prior = _prior(shape, seed=4)
    mu, s = prior.mu.double(), prior.s.double()
    err, euler_err = {}, {}
    for nfe in (15, 63, 255):
        res = heun_sample(prior.teacher, (K, *shape), nfe, torch.Generator().manual_seed(0))
        start = 80.0 * randn((K, *shape), torch.Generator().manual_seed(0)).double()  # heun_sample's first draw
        exact = mu + (start - mu) * s / (s**2 + 80.0**2) ** 0.5
        err[nfe] = float((res.x.double() - exact).abs().max() / s.min())
        levels = karras_sigmas((nfe + 1) // 2, 0.002, 80.0, 7.0).tolist() + [0.0]
        euler_err[nfe] = float((_euler(prior.teacher, start, levels) - exact).abs().max() / s.min())
        assert res.nfe == nfe and res.x.shape == (K, *shape)
    assert err[255] < 0.01 and err[255] < err[63] / 10 < err[15] / 100, err
    assert euler_err[63] > 5 * err[63] and euler_err[255] > 20 * err[255] and euler_err[255] > euler_err[63] / 6, (
        err, euler_err)
    res = heun_sample(prior.teacher, (K, *shape), 255, torch.Generator().manual_seed(1))
    _check_moments(res.x.reshape(K, -1).double(), prior.mu.reshape(-1), torch.diag(prior.s.reshape(-1) ** 2),
                   "heun nfe=255")
    with pytest.raises(ValueError, match="nfe must be odd"):
        heun_sample(prior.teacher, (1, *shape), 4, None)
    steps = []
    heun_sample(prior.teacher, (1, *shape), 7, None, on_step=lambda done, total: steps.append((done, total)))
    assert steps == [(2.0, 7.0), (4.0, 7.0), (6.0, 7.0), (7.0, 7.0)]  # 3 Heun steps of 2 calls, a last Euler one


def _euler(teacher, x: torch.Tensor, sig: list[float]) -> torch.Tensor:
    for a, b in itertools.pairwise(sig):
        x = x + (b - a) * (x - teacher(x, a)) / a
    return x


@pytest.mark.parametrize("task", ["sr4", "deblur-gauss", "inpaint-box"])
@pytest.mark.parametrize("nfe", [4, 10])
def test_few_step_schedule_uses_the_measurement_where_the_cut_paper_schedule_does_not(task, nfe):
    """--nfe below the paper's 49 switches to the few-step schedule (sampling.presets.FEW_STEP_SCHEDULE). With an
    exact denoiser (Gaussian prior) and the task preset's other settings (beta, EMA), the mean of 1024 chains is
    compared with the exact posterior mean: the paper's schedule cut to the same number of calls (last call at
    sigma 5 for 4 calls, 1.3 for 10) keeps 82-101 % of the prior mean's squared error, i.e. it ignores y; the
    few-step schedule removes 53-99.9 % of it (measured; the chain-mean noise var/K is < 2 % of these errors)."""
    from ncvsd_cli.sampling.methods import get_method
    from ncvsd_cli.sampling.presets import build_operator, settings_sigmas, task_settings

    shape, k = (3, 16, 16), 1024
    prior = _prior(shape, seed=5)
    few = task_settings(task, nfe=nfe)
    cut = task_settings(task, nfe=nfe, sigma_max=80.0, rho=2.0)  # explicit values win over the few-step rule
    assert (few["sigma_max"], few["rho"]) != (80.0, 2.0) and settings_sigmas(cut)[0] == 80.0
    op = build_operator(few, shape)
    g = torch.Generator().manual_seed(2)
    y = op.measure(prior.sample((1, *shape), g), few["sigma_y"], g)
    mean, _ = prior.posterior(operator_matrix(op), y.flatten(), few["sigma_y"], shape)
    prior_err = ((prior.mu.flatten() - mean) ** 2).mean().item()
    rel = {}
    for name, p in (("few", few), ("cut", cut)):
        call = get_method("pnp-gd").arguments(p, nfe)
        res = pnp_gd(prior.denoiser, op, y.expand(k, *y.shape[1:]), call.sigmas,
                     generator=torch.Generator().manual_seed(3), **call.kwargs)
        rel[name] = ((res.x.reshape(k, -1).double().mean(0) - mean) ** 2).mean().item() / prior_err
    assert rel["cut"] > 0.75 and rel["few"] < 0.6, rel


def test_warm_start_keeps_the_exact_posterior():
    """A warm start only moves the chain's starting point: started at sigma 1 from a wrong estimate (the prior
    mean shifted by +0.5, outside the posterior) the chains still sample the exact posterior N(m, C)."""
    torch.manual_seed(0)
    prior = _prior(SHAPE)
    op = operators.create("sr4", SHAPE)
    g = torch.Generator().manual_seed(1)
    y = op.measure(prior.sample((1, *SHAPE), g), SIGMA_Y, g)
    mean, cov = prior.posterior(operator_matrix(op), y.flatten(), SIGMA_Y, SHAPE)
    sigmas = _exact_schedule()
    sigmas = sigmas[sigmas <= 1.0]
    wrong = (prior.mu + 0.5).expand(K, *SHAPE)
    res = pnp_gd(prior.denoiser, op, y.expand(K, *y.shape[1:]), sigmas, generator=g, beta=2 * SIGMA_Y**2,
                 ema_sigma=None, x_init=wrong)
    _check_moments(res.x.reshape(K, -1).double(), mean, cov, "warm start")


@pytest.mark.parametrize("nfe", [1, 4])
def test_denoiser_method_samples_the_exact_denoising_posterior(nfe):
    """Method `denoiser` on the denoise task: G(y, sigma_y) (or its multi-step refinement) is a sample of
    p(x | y = x + sigma_y n) = N(m, C) itself; no PnP loop, so no schedule bias to allow for."""
    from ncvsd_cli.sampling.generate import denoise_measurement

    prior = _prior(SHAPE, seed=5)
    op = operators.create("denoise", SHAPE)
    g = torch.Generator().manual_seed(2)
    sigma_y = 0.2  # prior std 0.2-0.4: the posterior is far from both the prior and y
    y = op.measure(prior.sample((1, *SHAPE), g), sigma_y, g)
    mean, cov = prior.posterior(operator_matrix(op), y.flatten(), sigma_y, SHAPE)
    res = denoise_measurement(prior.denoiser, op, y.expand(K, *y.shape[1:]), None, generator=g, sigma_y=sigma_y,
                              nfe=nfe)
    assert res.nfe == nfe and res.operator_evals == 0
    _check_moments(res.x.reshape(K, -1).double(), mean, cov, f"denoiser nfe={nfe}")


def test_denoiser_method_refuses_other_tasks_and_returns_noiseless_input():
    from ncvsd_cli.sampling.generate import denoise_measurement

    prior = _prior(SHAPE)
    y = torch.rand(1, *SHAPE) - 0.5
    with pytest.raises(ValueError, match="only solves the denoise task"):
        denoise_measurement(prior.denoiser, operators.create("inpaint-box", SHAPE), y, generator=None)
    with pytest.raises(ValueError, match="sigma_y >= 0"):
        denoise_measurement(prior.denoiser, operators.create("denoise", SHAPE), y, generator=None, sigma_y=-0.1)
    exact = denoise_measurement(prior.denoiser, operators.create("denoise", SHAPE), y, generator=None, sigma_y=0.0)
    assert torch.equal(exact.x, y) and exact.nfe == 0  # no noise: the posterior is a point mass at y


@pytest.mark.parametrize("sigma_y", [0.05, 0.2])
def test_warm_denoise_starts_at_y_as_a_point_of_the_chain(sigma_y):
    """pnp-gd-warm on the denoise task starts from y = x + sigma_y n, which already holds sigma_y of noise: the
    first call must see noise of std sigma_max in all (not sqrt(sigma_y² + sigma_max²)), so the task's warm schedule
    (sigma_max = sigma_y, 3 calls) samples the exact posterior with the EMA off; counting y's noise twice made
    the output over-dispersed (1.6-1.9x the posterior variance at sigma_y 0.05)."""
    from ncvsd_cli.sampling.pnp_gd import pnp_gd_warm
    from ncvsd_cli.sampling.presets import settings_sigmas, task_settings

    prior = _prior(SHAPE, seed=7)
    op = operators.create("denoise", SHAPE)
    g = torch.Generator().manual_seed(3)
    y = op.measure(prior.sample((1, *SHAPE), g), sigma_y, g)
    mean, cov = prior.posterior(operator_matrix(op), y.flatten(), sigma_y, SHAPE)
    settings = task_settings("denoise", warm=True, sigma_y=sigma_y)
    sigmas = settings_sigmas(settings)
    assert sigmas[0] == pytest.approx(sigma_y)
    seen = []
    res = pnp_gd_warm(lambda u, s, **kw: seen.append(u) or prior.denoiser(u, s, **kw), op,
                      y.expand(K, *y.shape[1:]), sigmas, generator=g, sigma_y=sigma_y, beta=2 * sigma_y**2,
                      ema_sigma=None)
    assert torch.equal(seen[0], y.expand(K, *y.shape[1:]))  # sigma_max = sigma_y: nothing added
    _check_moments(res.x.reshape(K, -1).double(), mean, cov, f"warm denoise sigma_y={sigma_y}")
    higher = pnp_gd_warm(lambda u, s, **kw: seen.append(u) or prior.denoiser(u, s, **kw), op,
                         y.expand(K, *y.shape[1:]), [2 * sigma_y, sigma_y / 10], generator=g, sigma_y=sigma_y,
                         beta=2 * sigma_y**2, ema_sigma=None)
    added = (seen[-1] - y).std().item()  # a higher start adds only the rest: sqrt(4 - 1) sigma_y
    assert added == pytest.approx(math.sqrt(3) * sigma_y, rel=0.03) and higher.nfe == 1
