"""The method contract, parametrised over every registered method: each spends exactly the network evaluations it
promises (`MethodCall.nfe`) and reports (`SamplerResult.nfe`), and restore and bench prepare identical calls."""

from __future__ import annotations

import pytest
import torch

import operators
from ncvsd_cli.bench.methods import Job, expand_jobs, run_job
from ncvsd_cli.measurement import measurement_from_image
from ncvsd_cli.restore import Restorer, RestoreOptions
from ncvsd_cli.sampling.gaussian import GaussianPrior
from ncvsd_cli.sampling.methods import METHODS, Method, get_method, method_names, register_method

SHAPE = (3, 16, 12)
#: A task each method applies to, and the --nfe values to check (None: the method's default).
CASES = {"pnp-gd": ("sr4", [None, 2, 3]), "pnp-gd-warm": ("deblur-gauss", [None, 2, 5]),
         "denoiser": ("denoise", [None, 1, 4]), "dps": ("inpaint-box", [3, 10]),
         "daps": ("inpaint-box", [11, 17, 50, 60]), "teacher-mmse": ("denoise", [None, 1]),
         "pnp-gd-warm-mean8": ("sr4", [None, 16]), "denoiser-mean8": ("denoise", [None, 16]),
         "pnp-gd-fit4": ("sr4", [None, 8]), "classical": ("sr4", [None]), "bicubic": ("sr2", [None]),
         "wiener": ("deblur-gauss", [None]), "tikhonov": ("deblur-gauss", [None]),
         "biharmonic": ("inpaint-box", [None]), "nl-means": ("denoise", [None]), "pseudo-inverse": ("denoise", [None])}


class Counting:
    """A network that counts its calls (one batched call counts once, as NFE does)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def _problem(task: str):
    prior = GaussianPrior(0.0, 0.5)
    op = operators.create(task, SHAPE)
    g = torch.Generator().manual_seed(0)
    y = op.measure(prior.sample((1, *SHAPE), g).clamp(-1, 1), 0.05, g)
    return prior, op, y


def _network(method: Method, prior: GaussianPrior):
    return {"generator": prior.denoiser, "teacher": prior.teacher}.get(method.needs)


def test_every_builtin_method_has_a_case():
    """(The built-ins only: a plug-in installed beside ncvsd made the project's own tests fail.)"""
    from ncvsd_cli.sampling.methods import _BUILTIN

    assert set(CASES) == {m.name for m in _BUILTIN} and set(CASES) <= set(method_names())


@pytest.mark.parametrize("name", sorted(CASES))
def test_method_spends_exactly_the_nfe_it_reports(name):
    task, nfes = CASES[name]
    method = get_method(name)
    prior, op, y = _problem(task)
    assert method.applies(op, method.prepare(task, nfes[0]).settings)
    for nfe in nfes:
        call = method.prepare(task, nfe)
        net = _network(method, prior)
        counting = Counting(net) if net is not None else None
        res = method(counting, op, y, call.sigmas, generator=torch.Generator().manual_seed(1), **call.kwargs)
        spent = counting.calls if counting is not None else 0
        assert spent == res.nfe == call.nfe, (nfe, spent, res.nfe, call.nfe)
        if nfe is not None:
            assert call.nfe == nfe
        assert res.x.shape == (1, *SHAPE) and torch.isfinite(res.x).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_restore_and_bench_prepare_the_same_call(name, monkeypatch):
    """The sampler receives identical sigmas and arguments from `ncvsd restore` and `ncvsd bench`."""
    task, nfes = CASES[name]
    nfe = nfes[-1]
    method = get_method(name)
    prior, op, y = _problem(task)
    seen: list[tuple] = []
    real = Method.__call__

    def spy(self, model, operator, yy, sigmas, **kwargs):
        kept = {k: v for k, v in kwargs.items() if k not in ("generator", "estimate")}
        seen.append((None if sigmas is None else torch.as_tensor(sigmas).tolist(), kept))
        return real(self, model, operator, yy, sigmas, **kwargs)

    monkeypatch.setattr(Method, "__call__", spy)
    options = RestoreOptions(task=task, method=name, nfe=nfe).validate()
    (res,) = Restorer(_network(method, prior), None, options).run([measurement_from_image(y, task)])
    assert res.error is None, res.error
    job = Job(name, nfe or 0, method.needs)
    if name != "classical":  # bench's group "classical" expands to every baseline that applies
        per_sample = (nfe or 1) // getattr(method, "k", 1)  # a mean method's bench rows: k x the sweep
        assert job in expand_jobs([name], [per_sample], nfe or 1, op)
    run_job(job, task, op, y, _network(method, prior), torch.Generator())
    half = len(seen) // 2  # a mean method calls its base k times per run
    assert len(seen) == 2 * getattr(method, "k", 1) and seen[:half] == seen[half:], seen
    assert res.nfe == method.prepare(task, nfe).nfe


def test_mean_of_samples_is_the_posterior_mean_of_a_gaussian_prior():
    """Denoising with a Gaussian prior: the mean of 8 exact posterior samples has 1/8 of one sample's variance
    around the exact posterior mean (checked to within 30 %, 12 x 16 x 3 pixels)."""
    prior, op, y = _problem("denoise")
    post_mean = (prior.mu / prior.s**2 + y / 0.05**2) / (1 / prior.s**2 + 1 / 0.05**2)
    one, mean8 = get_method("denoiser"), get_method("denoiser-mean8")
    g = torch.Generator().manual_seed(2)
    e1 = (one(prior.denoiser, op, y, None, generator=g, sigma_y=0.05).x - post_mean).pow(2).mean()
    e8 = (mean8(prior.denoiser, op, y, None, generator=g, sigma_y=0.05).x - post_mean).pow(2).mean()
    assert 0.7 / 8 < float(e8 / e1) < 1.3 / 8


def test_best_fit_keeps_each_images_least_residual_sample():
    """pnp-gd-fit4 on a batch of two measurements returns, per image, the one of the 4 samples drawn in turn on the
    image's own generator whose A(x) is nearest to y: the same samples run one by one pick the same winners."""
    from operators.noise import generators_for_seeds

    prior = GaussianPrior(0.0, 0.5)
    op = operators.create("sr4", SHAPE)
    g = torch.Generator().manual_seed(3)
    y = op.measure(prior.sample((2, *SHAPE), g).clamp(-1, 1), 0.05, g)
    method, base = get_method("pnp-gd-fit4"), get_method("pnp-gd")
    call = method.prepare("sr4", 12)
    res = method(prior.denoiser, op, y, call.sigmas, generator=generators_for_seeds([3, 4]), **call.kwargs)
    gens = generators_for_seeds([3, 4])
    xs = [base(prior.denoiser, op, y, call.sigmas, generator=gens, **call.kwargs).x.clamp(-1, 1) for _ in range(4)]
    resid = torch.stack([(op.forward(x) - y).flatten(1).pow(2).mean(1).sqrt() for x in xs])  # (4, 2)
    best = resid.argmin(0)
    assert torch.allclose(torch.tensor(res.extras["residuals"]), resid)
    for b in range(2):
        assert torch.equal(res.x[b], xs[int(best[b])][b])
    assert res.extras["residual"] == resid.min(0).values.tolist() and res.nfe == 12
    assert best[0] != best[1]  # per image: one winner for the whole batch would fail
    one = base(prior.denoiser, op, y, call.sigmas, generator=generators_for_seeds([3, 4]), **call.kwargs)
    assert res.operator_evals == 4 * one.operator_evals + 4  # each sample's, plus one A(x) per sample


def test_best_fit_never_keeps_a_nan_sample_over_a_finite_one():
    """A first sample of NaN (a diverged chain) loses to any finite later one."""
    _, op, y = _problem("sr4")
    method = get_method("pnp-gd-fit4")
    kept = method._reduce(None, torch.full((1, *SHAPE), float("nan")), op, y)
    kept = method._reduce(kept, torch.zeros(1, *SHAPE), op, y)
    x, extras = method._output(kept)
    assert torch.equal(x, torch.zeros(1, *SHAPE)) and extras["residual"][0] < float("inf")


def test_mean_method_progress_counts_over_all_samples():
    """The callback of a mean method counts iterations over its k samples, so a progress bar fills once."""
    from ncvsd_cli.progress import step_callback

    prior, op, y = _problem("sr4")
    method = get_method("pnp-gd-warm-mean8")
    call = method.prepare("sr4", 16)
    seen = []
    cb = step_callback(call, lambda done, total: seen.append((done, total)))
    res = method(prior.denoiser, op, y, call.sigmas, generator=torch.Generator().manual_seed(0), callback=cb,
                 **call.kwargs)
    assert res.nfe == 16 and [d for d, _ in seen] == list(range(1, 17)) and {t for _, t in seen} == {16}


def test_one_pnp_gd_step_would_be_a_prior_draw():
    """Plain PnP-GD's single step (Alg. 1 with two noise levels) returns G(sigma_0 eps): a prior draw whatever y
    is (shown with the sampler itself), so its Method refuses nfe 1 and benches from 2; warm starts keep 1."""
    from ncvsd_cli.sampling.pnp_gd import pnp_gd

    prior, op, y = _problem("sr4")
    outputs = [pnp_gd(prior.denoiser, op, yy, [10.0, 0.01], generator=torch.Generator().manual_seed(3), beta=0.01).x
               for yy in (y, -y)]
    assert torch.equal(*outputs)
    assert get_method("pnp-gd").bench_nfe([1, 2, 4], 1000) == [2, 4]
    assert get_method("pnp-gd-warm").bench_nfe([1, 2], 1000) == [1, 2]
    assert get_method("pnp-gd-warm").prepare("sr4", 1).nfe == 1
    with pytest.raises(ValueError, match="nfe >= 2$"):  # no warm start to suggest for phase retrieval
        get_method("pnp-gd").prepare("phase-retrieval", 1)


def test_budget_rules_that_used_to_disagree():
    """DAPS at nfe 3 / 7 / 12 (under 10 levels now refused; 11 / 17 / 60 alike): restore asked for 5 / 5 / 10
    evaluations, bench for 3 / 7 / 12; both now what was asked."""
    daps = get_method("daps")
    for nfe in (11, 17, 60):
        kw = daps.prepare("sr4", nfe).kwargs
        assert kw["levels"] * kw["ode_steps"] == nfe
    assert daps.prepare("sr4").nfe == 1000 and daps.prepare("sr4", 1000).kwargs["ode_steps"] == 5


def test_daps_runs_on_an_exact_measurement():
    """restore measures a plain photo's inpainting at sigma_y 0: DAPS's beta = 2 sigma_y² takes 8-bit rounding's
    error as the floor (it raised "beta must be > 0"); the kept pixels are reproduced to within that error."""
    from ncvsd_cli.sampling.presets import BETA_FLOOR_SIGMA
    from ncvsd_cli.sampling.teacher_baselines import daps

    call = get_method("daps").prepare("inpaint-box", 11, sigma_y=0.0)
    assert call.kwargs["sigma_y"] == BETA_FLOOR_SIGMA
    op = operators.create("inpaint-box", (3, 9, 11), box_size=3)
    x = torch.linspace(-0.5, 0.5, 3 * 9 * 11).reshape(1, 3, 9, 11)
    y = op.forward(x)
    steps = []
    out = daps(lambda z, s: z / (1 + s**2), op, y, generator=torch.Generator().manual_seed(0),
               callback=steps.append, **call.kwargs).x  # the N(0, 1) prior's exact denoiser
    kept = op.forward(steps[-2]["x0"])  # the last likelihood sample (the output is the ODE estimate after it)
    assert torch.isfinite(out).all() and (kept - y).abs().max() < 4 * BETA_FLOOR_SIGMA


@pytest.mark.parametrize("name, nfe, match", [("denoiser", 40, "--nfe 1 to --nfe 31"), ("wiener", 3, "no network"),
                                              ("dps", 0, "nfe >= 1"), ("denoiser-mean8", 12, "multiple of 8"),
                                              ("pnp-gd", 1, r"prior draw that ignores the measurement.*--nfe >= 2")])
def test_budgets_a_method_cannot_spend_are_refused(name, nfe, match):
    task = CASES[name][0]
    with pytest.raises(ValueError, match=match):
        get_method(name).prepare(task, nfe)
    with pytest.raises(ValueError, match="only solves the denoise task"):
        get_method("denoiser").prepare("sr4")


def test_register_method_and_duplicates(monkeypatch):
    monkeypatch.setattr("ncvsd_cli.sampling.methods.METHODS", dict(METHODS))
    m = register_method(Method("test-mean", "none", "ncvsd_cli.sampling.classical:pseudo_inverse"))
    assert get_method("test-mean") is m and "test-mean" in method_names()
    with pytest.raises(ValueError, match="already registered"):
        register_method(Method("test-mean", "teacher", "x:y"))
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        get_method("nope")


def test_a_network_of_the_other_kind_is_refused():
    """pnp-gd given the teacher failed deep inside ("unexpected keyword 'generator'"); dps given the generator ran
    silently on the wrong model. Both now name the network the method needs."""
    import operators
    from ncvsd_cli.networks import build_network, network_config

    op = operators.create("sr4", (3, 16, 16))
    y = torch.zeros(op.measurement_shape(1))
    teacher, generator = (build_network(network_config(k, "tiny")) for k in ("teacher", "generator"))
    for name, wrong in (("pnp-gd", teacher), ("dps", generator), ("pnp-gd-warm-mean8", teacher)):
        method = get_method(name)
        call = method.prepare("sr4", 8 if name.endswith("mean8") else 2)
        with pytest.raises(ValueError, match=f"runs on the {method.needs} network"):
            method(wrong, op, y, call.sigmas, generator=torch.Generator().manual_seed(0), **call.kwargs)
