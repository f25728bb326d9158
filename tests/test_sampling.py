"""Sampling library: schedules, presets, registry, counters, determinism, and the teacher baselines on a Gaussian
prior (exactness of PnP-GD and generation: test_sampling_exact.py)."""

import math

import pytest
import torch

import operators
from ncvsd_cli.sampling import METHODS, Method, SamplerResult, get_method
from ncvsd_cli.sampling.gaussian import GaussianPrior, operator_matrix
from ncvsd_cli.sampling.generate import default_ts, generate
from ncvsd_cli.sampling.pnp_gd import pnp_gd
from ncvsd_cli.sampling.presets import build_operator, read_preset_file, settings_sigmas, task_names, task_settings
from ncvsd_cli.sampling.schedules import karras_sigmas, ts_sigmas, validate_ts
from ncvsd_cli.sampling.teacher_baselines import daps, dps
from operators.noise import generators_for_seeds

# docs/method.md §3.2: the PnP-GD schedule (steps 50, 80 -> 0.002, rho 2) as printed
PAPER_SIGMAS = [80, 76.78, 73.63, 70.55, 67.53, 64.58, 61.69, 58.87, 56.12, 53.43, 50.81, 48.25, 45.76, 43.34, 40.98,
                38.69, 36.46, 34.30, 32.21, 30.18, 28.22, 26.32, 24.49, 22.72, 21.03, 19.39, 17.83, 16.33, 14.89,
                13.52, 12.22, 10.98, 9.811, 8.707, 7.668, 6.695, 5.788, 4.947, 4.172, 3.463, 2.820, 2.243, 1.732,
                1.287, 0.9079, 0.5948, 0.3476, 0.1664, 0.05123, 0.002]


# --- schedules ----------------------------------------------------------------------------------------------------
def test_karras_matches_the_paper_schedule():
    s = karras_sigmas(50, 0.002, 80.0, rho=2.0)
    assert s.dtype == torch.float64 and s.shape == (50,)
    for got, want in zip(s.tolist(), PAPER_SIGMAS):
        assert got == pytest.approx(want, rel=5e-4, abs=5e-5)
    assert (s[1:] < s[:-1]).all()


def test_ts_grid_check_values():
    # docs/method.md §2.7: T(0) = 80, T(10) = 16.78, T(12) = 11.72, T(14) = 8.03, T(20) = 2.240, T(22) = 1.382, ...
    want = {0: 80, 10: 16.78, 12: 11.72, 14: 8.03, 20: 2.240, 22: 1.382, 30: 0.1312, 39: 0.002}
    got = ts_sigmas(list(want)).tolist()
    assert got == pytest.approx(list(want.values()), rel=1e-3)


@pytest.mark.parametrize("bad", [[39], [10, 10], [22, 10, 39], [0, 40], [-1, 39]])
def test_validate_ts_rejects(bad):
    with pytest.raises(ValueError, match="ts"):
        validate_ts(bad)


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(steps=5, sigma_min=1.0, sigma_max=0.5), dict(steps=5, rho=0)])
def test_karras_rejects(kwargs):
    with pytest.raises(ValueError):
        karras_sigmas(**kwargs)


def test_default_ts():
    assert default_ts(1) == [10, 39] and default_ts(2) == [10, 22, 39] and default_ts(4) == [0, 10, 20, 30, 39]
    for n in (3, 6, 31):
        assert len(default_ts(n)) == n + 1 and default_ts(n)[-1] == 39
    with pytest.raises(ValueError, match="nfe"):
        default_ts(32)


# --- the Gaussian prior ---------------------------------------------------------------------------------------------
def test_gaussian_prior_teacher_is_the_denoising_posterior_mean():
    shape = (1, 3, 2)
    g = torch.Generator().manual_seed(0)
    prior = GaussianPrior(torch.randn(shape, generator=g), 0.1 + torch.rand(shape, generator=g))
    x = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    for sigma in (0.05, 1.0, 30.0):
        mean, cov = prior.posterior(torch.eye(6, dtype=torch.float64), x.reshape(2, -1), sigma, shape)
        assert torch.allclose(prior.teacher(x, sigma).reshape(2, -1), mean, atol=1e-10)
        # information form of the same posterior
        s2 = prior.flat_moments(shape)[1]
        assert torch.allclose(cov, torch.diag(1 / (1 / s2 + 1 / sigma**2)), atol=1e-10)
    # per-image sigma as a (B,) tensor
    sig = torch.tensor([0.5, 2.0], dtype=torch.float64)
    both = prior.teacher(x, sig)
    assert torch.allclose(both[1], prior.teacher(x[1:], 2.0)[0])
    with pytest.raises(ValueError, match="sigma"):
        prior.teacher(x, 0.0)


def test_gaussian_prior_denoiser_moments():
    prior = GaussianPrior(0.3, 0.4)
    y = torch.full((20000, 1, 1, 1), 1.0)
    out = prior.denoiser(y, 0.5, generator=torch.Generator().manual_seed(0))
    v = 1 / (1 / 0.16 + 1 / 0.25)
    assert out.mean().item() == pytest.approx(v * (0.3 / 0.16 + 1 / 0.25), abs=4 * math.sqrt(v / 20000))
    assert out.var().item() == pytest.approx(v, rel=0.05)


def test_posterior_information_form_for_a_blur():
    shape = (1, 5, 5)
    op = operators.create("deblur-gauss", shape, sigma=1.0, kernel_size=5)
    A = operator_matrix(op)
    assert A.shape == (25, 25)
    prior = GaussianPrior(0.1, 0.3)
    y = torch.randn(25, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, cov = prior.posterior(A, y, 0.05, shape)
    prec = torch.eye(25, dtype=torch.float64) / 0.09 + A.T @ A / 0.05**2
    assert torch.allclose(cov, torch.linalg.inv(prec), atol=1e-8)
    assert torch.allclose(mean, torch.linalg.solve(prec, 0.1 / 0.09 + A.T @ y / 0.05**2), atol=1e-6)


# --- PnP-GD semantics and counters ----------------------------------------------------------------------------------
class _CountingDenoiser:
    """Returns the number of the call (0, 1, 2, ...) everywhere: makes the EMA weights visible."""

    def __init__(self):
        self.calls = 0

    def __call__(self, y, sigma, generator=None):
        out = torch.full_like(y, float(self.calls))
        self.calls += 1
        return out


def test_pnp_gd_paper_schedule_nfe_and_ema():
    op = operators.create("denoise", (1, 2, 2))
    y = torch.zeros(1, 1, 2, 2)
    seen = []
    den = _CountingDenoiser()
    res = pnp_gd(den, op, y, karras_sigmas(50, rho=2.0), generator=torch.Generator().manual_seed(0), beta=1e-3,
                 ema_sigma=100.0, ema_decay=0.6, callback=seen.append)
    assert isinstance(res, SamplerResult) and res.nfe == 49 == den.calls and res.operator_evals == 2 * 48
    assert [c["i"] for c in seen] == list(range(49))  # no likelihood step after the last denoiser step (unused)
    assert all(c["u"] is not None for c in seen[:-1]) and seen[-1]["u"] is None
    assert seen[0]["sigma"] == 80.0 and seen[-1]["sigma"] == pytest.approx(0.05123, rel=1e-3)
    want = 0.0                                        # EMA from the second call on (ema_sigma 100 > 80)
    for k in range(1, 49):
        want = 0.6 * want + 0.4 * k
    assert res.x.flatten()[0].item() == pytest.approx(want, rel=1e-6)
    # phase-retrieval setting: the EMA only acts at sigma 0.1664 and 0.0512 (calls 47 and 48), on top of call 46
    res = pnp_gd(_CountingDenoiser(), op, y, karras_sigmas(50, rho=2.0), generator=torch.Generator(), beta=1e-3,
                 ema_sigma=0.2, ema_decay=0.6)
    assert res.x.flatten()[0].item() == pytest.approx(0.6 * (0.6 * 46 + 0.4 * 47) + 0.4 * 48, rel=1e-6)


def test_pnp_gd_uses_the_next_sigma_and_sqrt_beta_over_2():
    calls = []

    class Spy(type(operators.create("denoise", (1, 1, 1)))):
        def likelihood_sample(self, x0, y, rho, sigma_p, generator=None):
            calls.append((rho, sigma_p))
            return x0

    sig = karras_sigmas(5, rho=2.0)
    pnp_gd(_CountingDenoiser(), Spy((1, 1, 1)), torch.zeros(1, 1, 1, 1), sig, generator=None, beta=2e-3)
    assert [c[0] for c in calls] == pytest.approx(sig[1:-1].tolist())  # (none after the last denoiser step)
    assert all(c[1] == pytest.approx(math.sqrt(1e-3)) for c in calls)


def test_pnp_gd_counts_langevin_operator_evals_and_multistep_nfe():
    op = operators.create("phase-retrieval", (1, 4, 4))
    op.langevin_steps = 2
    prior = GaussianPrior(0.0, 0.5)
    y = op.forward(prior.sample((1, 1, 4, 4), torch.Generator().manual_seed(0)))
    res = pnp_gd(prior.denoiser, op, y, karras_sigmas(4, rho=2.0), generator=torch.Generator().manual_seed(0),
                 beta=1e-3, ts=[10, 22, 39])
    assert res.nfe == 3 * 2 and res.operator_evals == 2 * 2 * 2  # 3 steps, a likelihood step between them
    assert torch.isfinite(res.x).all()


@pytest.mark.parametrize("kwargs", [dict(beta=0.0), dict(beta=1e-3, ema_decay=1.0)])
def test_pnp_gd_rejects_bad_settings(kwargs):
    op = operators.create("denoise", (1, 2, 2))
    with pytest.raises(ValueError):
        pnp_gd(_CountingDenoiser(), op, torch.zeros(1, 1, 2, 2), karras_sigmas(5), generator=None, **kwargs)
    with pytest.raises(ValueError, match="decreasing"):
        pnp_gd(_CountingDenoiser(), op, torch.zeros(1, 1, 2, 2), [1.0, 2.0], generator=None, beta=1e-3)


# --- determinism ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["inpaint-box", "sr4", "deblur-gauss"])
def test_pnp_gd_per_image_generators_are_batch_independent(name):
    shape = (3, 8, 7)
    op = operators.create(name, shape, **({"kernel_size": 5, "sigma": 1.0} if name == "deblur-gauss" else {}))
    prior = GaussianPrior(0.1, 0.4)
    x = prior.sample((3, *shape), generators_for_seeds([0, 1, 2]))
    y = op.measure(x, 0.05, generators_for_seeds([10, 11, 12]))
    sig = karras_sigmas(6, rho=2.0)
    batch = pnp_gd(prior.denoiser, op, y, sig, generator=generators_for_seeds([5, 6, 7]), beta=1e-3).x
    again = pnp_gd(prior.denoiser, op, y, sig, generator=generators_for_seeds([5, 6, 7]), beta=1e-3).x
    assert torch.equal(batch, again)
    single = pnp_gd(prior.denoiser, op, y[1:2], sig, generator=generators_for_seeds([6]), beta=1e-3).x
    assert torch.allclose(single[0], batch[1], atol=1e-5)
    other = pnp_gd(prior.denoiser, op, y[1:2], sig, generator=generators_for_seeds([8]), beta=1e-3).x
    assert not torch.allclose(other[0], batch[1])


def test_generate_per_image_generators_are_batch_independent():
    prior = GaussianPrior(0.0, 0.5)
    a = generate(prior.denoiser, (3, 1, 4, 4), [0, 10, 20, 30, 39], generators_for_seeds([0, 1, 2])).x
    b = generate(prior.denoiser, (1, 1, 4, 4), [0, 10, 20, 30, 39], generators_for_seeds([2])).x
    assert torch.allclose(a[2], b[0], atol=1e-6)


# --- teacher baselines ------------------------------------------------------------------------------------------------
def _inpainting_problem():
    shape = (1, 6, 6)
    g = torch.Generator().manual_seed(0)
    prior = GaussianPrior(0.4 + 0.2 * torch.randn(shape, generator=g), 0.2 + 0.2 * torch.rand(shape, generator=g))
    op = operators.create("inpaint-random", shape, fraction=0.5)
    x = prior.sample((1, *shape), g)
    y = op.measure(x, 0.05, g)
    mean, _ = prior.posterior(operator_matrix(op), y.flatten(), 0.05, shape)
    return prior, op, y, mean


@pytest.mark.parametrize("method, settings, nfe", [
    ("dps", dict(steps=200, zeta=0.1), 200),
    ("daps", dict(levels=40, ode_steps=2), 80),
])
def test_teacher_baselines_move_towards_the_posterior_mean(method, settings, nfe):
    """Lenient check: the mean over 32 chains is much closer to the analytic posterior mean than the measurement
    (zero-filled holes) in the holes, and than the prior mean on the observed pixels."""
    prior, op, y, post = _inpainting_problem()
    chains = 32
    res = METHODS[method](prior.teacher, op, y.expand(chains, *y.shape[1:]), None,
                          generator=torch.Generator().manual_seed(0), **settings)
    assert res.nfe == nfe and not res.x.requires_grad
    est = res.x.mean(0).flatten().double()
    known = op.mask.expand(1, *op.image_shape).flatten().bool()

    def rmse(a, sel):
        return (a[sel] - post[sel]).pow(2).mean().sqrt().item()

    zero_fill = op.pseudo_inverse(y).flatten().double()
    prior_mean = prior.flat_moments(op.image_shape)[0]
    assert rmse(est, ~known) < 0.3 * rmse(zero_fill, ~known)
    assert rmse(est, known) < 0.3 * rmse(prior_mean, known)


def test_teacher_baselines_default_nfe_is_1000():
    prior = GaussianPrior(0.0, 0.5)
    op = operators.create("denoise", (1, 1, 1))
    y = torch.zeros(1, 1, 1, 1)
    r = dps(prior.teacher, op, y, None, generator=torch.Generator().manual_seed(0))
    assert r.nfe == 1000 and r.operator_evals == 2000
    r = daps(prior.teacher, op, y, None, generator=torch.Generator().manual_seed(0))
    assert r.nfe == 1000 and r.operator_evals == 2 * 199  # no likelihood step after the last level


def test_daps_returns_the_last_ode_estimate_without_a_final_likelihood_sample():
    """The last level's output is x0_hat, not a likelihood sample at r = sigma_min, which would add noise of that
    std on the unobserved pixels; no likelihood step follows the last level."""
    prior, op, y, _ = _inpainting_problem()
    seen = []
    res = daps(prior.teacher, op, y.expand(16, *y.shape[1:]), None, generator=torch.Generator().manual_seed(0),
               levels=10, ode_steps=2, callback=seen.append)
    assert torch.equal(res.x, seen[-1]["x0_hat"]) and torch.equal(res.x, seen[-1]["x0"])
    assert res.operator_evals == 2 * 9
    assert not torch.allclose(res.x[0], res.x[1])  # still a sampler: chains differ
    one = daps(prior.teacher, op, y, [0.5], generator=torch.Generator().manual_seed(0), ode_steps=2)
    assert one.operator_evals == 2  # a single level keeps its likelihood step: its output depends on y
    other = daps(prior.teacher, op, y + 1, [0.5], generator=torch.Generator().manual_seed(0), ode_steps=2)
    assert not torch.allclose(one.x, other.x)


def test_teacher_baselines_are_deterministic():
    prior, op, y, _ = _inpainting_problem()
    for fn, kw in ((dps, dict(steps=20, zeta=0.1)), (daps, dict(levels=10, ode_steps=2))):
        a = fn(prior.teacher, op, y, None, generator=generators_for_seeds([3]), **kw).x
        b = fn(prior.teacher, op, y, None, generator=generators_for_seeds([3]), **kw).x
        assert torch.equal(a, b)


# --- registry -------------------------------------------------------------------------------------------------------
def test_methods_registry():
    assert METHODS["pnp-gd"].needs == "generator" and METHODS["pnp-gd"].load() is pnp_gd
    assert METHODS["dps"].needs == "teacher" and METHODS["daps"].needs == "teacher"
    assert all(m.needs in ("generator", "teacher", "none") for m in METHODS.values())
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(ValueError, match="'ghost' is unavailable"):
        Method("ghost", "none", "ncvsd_cli.sampling.no_such_module:f")()


# --- presets --------------------------------------------------------------------------------------------------------
def test_every_operator_has_a_preset_that_builds():
    assert set(operators.names()) <= set(task_names())
    for task in task_names():
        p = task_settings(task)
        assert p["task"] == task and p["steps"] == 50 and p["rho"] == 2.0 and p["sigma_y"] == 0.05
        if task not in ("inpaint-mask", "deblur-kernel"):          # these need the user's mask / kernel
            op = build_operator(p, (3, 16, 16))
            assert op.langevin_steps == p["langevin_steps"]


@pytest.mark.parametrize("task, beta, ema_sigma, ema_decay", [
    ("inpaint-box", 1e-4, 100.0, 0.2), ("deblur-gauss", 2e-3, 100.0, 0.6), ("deblur-motion", 3e-3, 100.0, 0.6),
    ("sr4", 1e-3, 100.0, 0.6), ("phase-retrieval", 1e-3, 0.2, 0.6),
])
def test_paper_settings(task, beta, ema_sigma, ema_decay):
    p = task_settings(task)
    assert (p["beta"], p["ema_sigma"], p["ema_decay"]) == (beta, ema_sigma, ema_decay)
    assert settings_sigmas(p).tolist() == pytest.approx(PAPER_SIGMAS, rel=5e-4, abs=5e-5)


def test_preset_merge_order_and_nfe(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("beta: 0.01\nema_decay: 0.3\noperator: {sigma: 2.0}\n")
    p = task_settings("deblur-gauss", nfe=10, preset_file=user, ema_decay=0.5, sigma_y=None)
    assert p["steps"] == 11 and p["beta"] == 0.01 and p["ema_decay"] == 0.5 and p["sigma_y"] == 0.05
    assert p["operator"] == {"sigma": 2.0, "kernel_size": 61}
    assert task_settings("sr4", nfe=8, ts=[10, 22, 39])["steps"] == 5


@pytest.mark.parametrize("task", ["sr4", "inpaint-box", "phase-retrieval"])
def test_few_step_schedule_only_below_the_paper_steps(task, tmp_path):
    from ncvsd_cli.sampling.presets import FEW_STEP_SCHEDULE

    paper = task_settings(task)
    assert (paper["sigma_max"], paper["rho"]) == (80.0, 2.0)
    for nfe in (49, 60):  # the paper's step count and more keep the paper's schedule
        p = task_settings(task, nfe=nfe)
        assert (p["sigma_max"], p["rho"]) == (80.0, 2.0)
    few = task_settings(task, nfe=10)
    assert few["steps"] == 11 and (few["sigma_max"], few["rho"]) == (FEW_STEP_SCHEDULE["sigma_max"],
                                                                     FEW_STEP_SCHEDULE["rho"])
    assert task_settings(task, nfe=10, rho=3.0)["rho"] == 3.0  # the user's value wins
    user = tmp_path / "keep.yaml"
    user.write_text("few_step_rho: null\nfew_step_sigma_max: 40.0\n")
    kept = task_settings(task, nfe=10, preset_file=user)
    assert (kept["sigma_max"], kept["rho"]) == (40.0, 2.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(task="nope"), "unknown task/operator 'nope'"),
    (dict(task="sr5"), "did you mean sr8 or sr4 or sr2"),  # (it said "no preset for task")
    (dict(task="sr4", bogus=1), "unknown preset key"),
    (dict(task="sr4", beta=-1.0), "beta=-1.0"),
    (dict(task="sr4", ema_decay=1.0), "ema_decay"),
    (dict(task="sr4", steps=1), "steps=1"),
    (dict(task="sr4", sigma_min=90.0), "sigma_min"),
    (dict(task="sr4", ts=[39, 10]), "ts="),
    (dict(task="sr4", nfe=0), "nfe"),
    (dict(task="sr4", nfe=10, steps=5), "nfe=10 implies steps=11"),
    (dict(task="sr4", nfe=3, ts=[10, 22, 39]), "not a multiple"),
])
def test_preset_validation(kwargs, match):
    task = kwargs.pop("task")
    with pytest.raises(ValueError, match=match):
        task_settings(task, **kwargs)


def test_preset_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        task_settings("sr4", preset_file=bad)
    with pytest.raises(ValueError, match="not found"):
        task_settings("sr4", preset_file=tmp_path / "missing.yaml")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("sigma_maks: 1\n")
    with pytest.raises(ValueError, match="unknown.yaml: unknown preset key"):
        read_preset_file(unknown)


def test_a_preset_file_reads_exponents_without_a_dot(tmp_path):
    """`beta: 1e-3` is the number, as Python writes it (YAML 1.1 alone reads it as text and it was refused)."""
    import yaml

    user = tmp_path / "user.yaml"
    user.write_text("beta: 1e-3\nsigma_min: 2E-3\n")
    settings = task_settings("sr4", preset_file=user)
    assert (settings["beta"], settings["sigma_min"]) == (0.001, 0.002)
    assert yaml.safe_load("1e-3") == "1e-3"  # PyYAML's own loader is left as it is


def test_a_read_preset_mapping_equals_its_file(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("beta: 0.002\nwarm_start: {sigma_max: 1.5}\n")
    for warm in (False, True):
        assert task_settings("sr4", nfe=4, preset_file=read_preset_file(user), warm=warm) == \
            task_settings("sr4", nfe=4, preset_file=user, warm=warm)


# ----------------------------------------------------------------------------------------------- warm start
@pytest.mark.parametrize("task", ["sr4", "deblur-gauss", "deblur-motion", "inpaint-box"])
def test_warm_start_presets(task, tmp_path):
    """pnp-gd-warm is the default of the four validated tasks; its schedule comes from `warm_start`, nfe sets the
    steps, the few-step rule does not apply, the user's sigma_max / YAML warm_start keys win."""
    paper = task_settings(task)
    assert paper["method"] == "pnp-gd-warm" and (paper["sigma_max"], paper["steps"]) == (80.0, 50)
    ws = paper["warm_start"]
    warm = task_settings(task, warm=True)
    assert (warm["sigma_max"], warm["rho"], warm["steps"]) == (ws["sigma_max"], ws["rho"], ws["steps"])
    assert task_settings(task, warm=True, nfe=4)["steps"] == 5
    assert task_settings(task, warm=True, nfe=4)["sigma_max"] == ws["sigma_max"]
    assert task_settings(task, warm=True, sigma_max=0.3)["sigma_max"] == 0.3
    user = tmp_path / "w.yaml"
    user.write_text("warm_start: {rho: 3.0}\n")
    merged = task_settings(task, warm=True, preset_file=user)
    assert merged["rho"] == 3.0 and merged["sigma_max"] == ws["sigma_max"]  # merged key by key


@pytest.mark.parametrize(("task", "sigma_y", "expected"), [
    ("denoise", None, 0.05), ("denoise", 0.01, 0.05), ("denoise", 0.2, 0.2), ("inpaint-random", 0.3, 0.3),
    ("inpaint-random", 0.05, 0.1), ("sr4", 0.2, 0.7)])
def test_the_warm_start_begins_at_least_at_the_measurements_noise(task, sigma_y, expected):
    """The classical estimate keeps y's noise (denoise starts from y itself): pnp-gd-warm's sigma_max is raised to
    sigma_y where that is higher (a start at 0.05 of a sigma_y 0.2 measurement left its grain); a --sigma-max flag
    still wins."""
    assert task_settings(task, warm=True, sigma_y=sigma_y)["sigma_max"] == pytest.approx(expected)
    assert task_settings(task, warm=True, sigma_y=sigma_y, sigma_max=0.04)["sigma_max"] == 0.04
    mine = {"warm_start": {"sigma_max": 0.02}}  # a preset file's own choice too
    assert task_settings(task, warm=True, sigma_y=sigma_y, preset_file=mine)["sigma_max"] == 0.02
    assert task_settings(task, sigma_y=sigma_y)["sigma_max"] == 80.0  # pnp-gd's own schedule is untouched


def test_a_copied_preset_file_keeps_the_warm_start(tmp_path):
    """A user YAML's top-level sigma_max / rho / steps belong to pnp-gd: copying the packaged preset to change one
    value must not turn pnp-gd-warm into a 49-call run from sigma 80; flags still win over warm_start."""
    from importlib import resources

    copy = tmp_path / "mine.yaml"
    copy.write_text((resources.files("ncvsd_cli") / "presets" / "tasks" / "sr4.yaml").read_text() + "beta: 0.002\n")
    warm = task_settings("sr4", warm=True, preset_file=copy)
    assert (warm["sigma_max"], warm["steps"], warm["beta"]) == (0.7, 11, 0.002)
    assert task_settings("sr4", preset_file=copy)["sigma_max"] == 80.0
    assert task_settings("sr4", warm=True, preset_file=copy, sigma_max=0.4, nfe=3)["sigma_max"] == 0.4


def test_warm_start_errors(tmp_path):
    assert task_settings("phase-retrieval")["method"] == "pnp-gd"
    with pytest.raises(ValueError, match="no warm start"):
        task_settings("phase-retrieval", warm=True)
    bad = tmp_path / "bad.yaml"
    for text, match in (("warm_start: {beta: 1.0}\n", "warm_start"), ("warm_start: {sigma_max: -1}\n", "sigma_max"),
                        ("warm_start: 3\n", "warm_start"), ("warm_start: {steps: null}\n", "warm_start")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=match):
            task_settings("sr4", preset_file=bad)


def test_bench_skips_the_warm_start_where_there_is_none(tmp_path):
    from ncvsd_cli.bench.methods import expand_jobs

    for task, n in (("phase-retrieval", 0), ("sr4", 2)):
        jobs = expand_jobs(["pnp-gd-warm"], [1, 4], 10, operators.create(task, (3, 16, 16)), task_settings(task))
        assert len(jobs) == n
    off = tmp_path / "off.yaml"
    off.write_text("warm_start: null\n")
    assert expand_jobs(["pnp-gd-warm"], [4], 10, operators.create("sr4", (3, 16, 16)),
                       task_settings("sr4", preset_file=off)) == []
    with pytest.raises(ValueError, match="no warm start"):
        task_settings("phase-retrieval", warm=True, preset_file=_yaml(tmp_path, "warm_start: {rho: 3.0}\n"))


def _yaml(tmp_path, text: str):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("task", ["sr2", "sr8", "denoise", "inpaint-random"])
def test_warm_start_runs_for_the_other_tasks(task):
    """Not their default, but `--method pnp-gd-warm` works for every task that carries a warm_start."""
    from ncvsd_cli.sampling.pnp_gd import pnp_gd_warm

    preset, op, y, prior = _warm_case(task, shape=(1, 16, 8))
    call = get_method("pnp-gd-warm").arguments(preset, None)
    sigmas, kwargs = call.sigmas, call.kwargs
    res = pnp_gd_warm(prior.denoiser, op, y, sigmas, generator=torch.Generator().manual_seed(0), **kwargs)
    assert res.x.shape == (1, *op.image_shape) and torch.isfinite(res.x).all() and res.extras["init"]


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_warm_start_solves_the_classical_estimate_once_per_measurement(monkeypatch, batch_size):
    """--samples K of one image (in one batch or K batches): the restorer computes its estimate once, and the
    samples equal those of a single batch."""
    from ncvsd_cli.measurement import measurement_from_image
    from ncvsd_cli.restore import Restorer, RestoreOptions
    from ncvsd_cli.sampling import classical

    calls = []
    real = classical.classical
    monkeypatch.setattr(classical, "classical", lambda *a, **k: calls.append(a[2].shape[0]) or real(*a, **k))
    _, op, y, prior = _warm_case("inpaint-box")
    m = measurement_from_image(y, "inpaint-box")
    options = RestoreOptions(task="inpaint-box", method="pnp-gd-warm", samples=3, batch_size=batch_size)
    (res,) = Restorer(prior.denoiser, None, options.validate()).run([m])
    assert calls == [1] and res.error is None and res.samples.shape == (3, 3, 17, 13)
    (one,) = Restorer(prior.denoiser, None, RestoreOptions(**{**vars(options), "batch_size": 3})).run([m])
    assert torch.allclose(res.samples, one.samples, atol=1e-6)


def _warm_case(task: str, shape=(3, 17, 13)):
    from ncvsd_cli.sampling.gaussian import GaussianPrior
    from ncvsd_cli.sampling.presets import build_operator, task_settings

    preset = task_settings(task, warm=True)
    op = build_operator(preset, shape)
    g = torch.Generator().manual_seed(0)
    x = 0.5 * torch.rand((1, *shape), generator=g) - 0.25
    return preset, op, op.measure(x, preset["sigma_y"], g), GaussianPrior(0.0, 0.5)


def test_pnp_gd_zero_x_init_equals_the_paper_start():
    from ncvsd_cli.sampling.pnp_gd import pnp_gd
    from ncvsd_cli.sampling.schedules import karras_sigmas

    _, op, y, prior = _warm_case("sr4")
    kw = {"beta": 1e-3, "ema_sigma": 100.0, "ema_decay": 0.2}
    a = pnp_gd(prior.denoiser, op, y, karras_sigmas(6), generator=torch.Generator().manual_seed(4), **kw)
    b = pnp_gd(prior.denoiser, op, y, karras_sigmas(6), generator=torch.Generator().manual_seed(4),
               x_init=torch.zeros(1, *op.image_shape), **kw)
    assert torch.equal(a.x, b.x)
    with pytest.raises(ValueError, match="x_init has shape"):
        pnp_gd(prior.denoiser, op, y, karras_sigmas(6), generator=torch.Generator(), x_init=torch.zeros(1, 3, 4, 4),
               **kw)


@pytest.mark.parametrize("task, init", [("sr4", "bicubic"), ("deblur-gauss", "wiener"), ("deblur-motion", "wiener"),
                                        ("inpaint-box", "biharmonic")])
def test_pnp_gd_warm_starts_from_the_classical_estimate(task, init):
    """The warm start is the classical estimate plus sigma_max noise; with a zero-calls-like schedule that ends
    at once (2 levels from 1e-3) the chain returns the denoised start, i.e. (almost) the classical estimate."""
    from ncvsd_cli.sampling.pnp_gd import classical_estimate, pnp_gd_warm

    preset, op, y, prior = _warm_case(task)
    call = get_method("pnp-gd-warm").arguments(preset, None)
    sigmas, kwargs = call.sigmas, call.kwargs
    assert sigmas[0] == preset["warm_start"]["sigma_max"] and len(sigmas) == preset["warm_start"]["steps"]
    res = pnp_gd_warm(prior.denoiser, op, y, sigmas, generator=torch.Generator().manual_seed(0), **kwargs)
    assert res.extras["init"] == init and res.nfe == len(sigmas) - 1 and res.x.shape == (1, *op.image_shape)
    est = classical_estimate(op, y, preset["sigma_y"]).x
    tiny = pnp_gd_warm(lambda u, s, generator=None: u, op, y, [1e-3, 5e-4], generator=torch.Generator(),
                       beta=kwargs["beta"], ema_sigma=0, sigma_y=preset["sigma_y"])
    assert (tiny.x - est).abs().max() < 0.01  # identity denoiser: start = estimate + 1e-3 noise


def test_pnp_gd_warm_refuses_phase_retrieval_and_pads_for_restore():
    from operators.padding import pad_operator
    from ncvsd_cli.sampling.pnp_gd import classical_estimate, warm_start_applies

    op = operators.create("phase-retrieval", (1, 8, 8))
    assert not warm_start_applies(op)
    with pytest.raises(ValueError, match="phase retrieval"):
        classical_estimate(op, torch.zeros(1, 1, 16, 16), 0.05)
    inner = operators.create("inpaint-box", (3, 13, 11))
    padded = pad_operator(inner, 8)
    y = inner.measure(torch.zeros(1, 3, 13, 11), 0.0, torch.Generator())
    est = classical_estimate(padded, y, 0.05).x
    assert est.shape == (1, 3, 16, 16) and torch.allclose(est[..., :13, :11], classical_estimate(inner, y, 0.05).x)


def test_bench_runs_the_denoiser_method_only_on_denoise():
    import operators
    from ncvsd_cli.bench.methods import expand_jobs

    def jobs(task):
        return [(j.method, j.nfe) for j in expand_jobs(["denoiser"], [1, 4, 49], 10, operators.create(task, (3, 8, 8)))]

    assert jobs("denoise") == [("denoiser", 1), ("denoiser", 4)]  # multi-step refinement stops at 31 calls
    only = expand_jobs(["denoiser"], [49], 10, operators.create("denoise", (3, 8, 8)))
    assert [(j.method, j.nfe) for j in only] == [("denoiser", 1)]  # never silently dropped
    assert jobs("sr4") == [] and jobs("inpaint-box") == []


@pytest.mark.parametrize("call, said", [
    (lambda: karras_sigmas(2.7), "steps must be an integer"), (lambda: karras_sigmas(3, rho=float("nan")), "rho"),
    (lambda: validate_ts([10.7, 39]), "ts indices must be integers"),
])
def test_schedules_refuse_fractional_steps_and_nan(call, said):
    """karras_sigmas(2.7) ran 2 steps, validate_ts([10.7, 39]) read [10, 39], rho NaN gave a NaN schedule."""
    with pytest.raises(ValueError, match=said):
        call()


@pytest.mark.parametrize("kwargs, said", [({"sigmas": [1.0, float("nan"), 0.1]}, "sigmas must be finite"),
                                          ({"ema_sigma": float("nan")}, "ema_sigma must be >= 0")])
def test_pnp_gd_refuses_nan_settings_by_name(kwargs, said):
    """A NaN noise level passed the order check and failed later as "rho must be > 0"; ema_sigma NaN switched the
    EMA off silently."""
    prior = GaussianPrior(0.0, 0.5)
    op = operators.create("denoise", (3, 4, 5))
    args = {"sigmas": [1.0, 0.5, 0.1], **kwargs}
    with pytest.raises(ValueError, match=said):
        pnp_gd(prior.denoiser, op, torch.zeros(1, 3, 4, 5), args.pop("sigmas"), beta=1e-4, generator=None, **args)
