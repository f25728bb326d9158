"""Multi-step generation with `ts` indices into the 40-point grid (docs/method.md §2.7, paper Eq. 26-27).

A generative denoiser G(y, sigma) samples q(x0 | y_sigma = y). Given a condition (y, sigma) and a partially denoised
x at level tau, the posterior-score identity (docs/method.md §1.3, §7 item 2) folds both observations into one:
sigma_eff = (sigma^-2 + tau^-2)^(-1/2), y_eff = sigma_eff² (y / sigma² + x / tau²), x0 = G(y_eff, sigma_eff);
then x is re-noised with fresh noise to the next grid level (DDIM-like, zeta = 1).

`heun_sample` draws from the teacher D(x, sigma) instead: EDM's deterministic sampler (Karras et al. 2022, Alg. 1;
docs/method.md §2.8), not part of NCVSD; it shows what the prior has learnt when the generator is a teacher copy.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from ncvsd_cli.sampling.common import SamplerResult
from ncvsd_cli.sampling.schedules import TS_SIGMA_MAX, karras_sigmas, ts_grid, validate_ts
from operators.base import all_finite
from operators.noise import Generators, randn, randn_like
from operators.padding import base_operator

#: Default `ts` per number of denoiser calls (paper Table 3 / docs/method.md §2.7): 1 step uses the ImageNet-64 start
#: index 10 (sigma_eff 16.42; ImageNet-512 used 12); 2 and 4 steps are the values both datasets used.
DEFAULT_TS: dict[int, list[int]] = {1: [10, 39], 2: [10, 22, 39], 4: [0, 10, 20, 30, 39]}
#: Most denoiser calls `default_ts` spreads over the grid (indices 0..30, one call each).
MAX_MULTISTEP_NFE = 31


def default_ts(nfe: int) -> list[int]:
    """`ts` for `nfe` denoiser calls: the table DEFAULT_TS for 1, 2, 4; otherwise `nfe` indices evenly spaced
    over 0..30 (rounded, the 4-step rule [0, 10, 20, 30] generalised) plus the terminal 39. 1 <= nfe <= 31."""
    nfe = int(nfe)
    if nfe in DEFAULT_TS:
        return list(DEFAULT_TS[nfe])
    if not 1 <= nfe <= MAX_MULTISTEP_NFE:
        raise ValueError(f"nfe for multi-step generation must be in 1..{MAX_MULTISTEP_NFE}, got {nfe}")
    idx = torch.linspace(0, 30, nfe).round().long().tolist()
    return validate_ts([*idx, 39])


def _call(denoiser: Callable, y: torch.Tensor, sigma: float, generator: Generators, class_labels) -> torch.Tensor:
    """denoiser(y, sigma, generator=...) with class_labels passed only when given (plain callables work too)."""
    if class_labels is None:
        return denoiser(y, sigma, generator=generator)
    return denoiser(y, sigma, generator=generator, class_labels=class_labels)


def multistep_denoise(denoiser: Callable, y: torch.Tensor, sigma: float, ts: Sequence[int], generator: Generators,
                      class_labels=None) -> torch.Tensor:
    """One sample of q(x0 | y_sigma = y) refined over `ts` (docs/method.md §2.7); len(ts) - 1 denoiser calls.

    y: (B, C, H, W) condition at noise level sigma > 0 (a float). The terminal index only sets the discarded
    last re-noise. Returns the last x0.
    """
    ts = validate_ts(ts)
    taus = ts_grid()[ts].tolist()
    sigma = float(sigma)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = taus[0] * randn_like(y, generator)                              # step 1: x <- T(i_0) eps
    x0 = y
    for k in range(len(ts) - 1):
        tau = taus[k]
        sigma_eff = (sigma**-2 + tau**-2) ** -0.5
        y_eff = sigma_eff**2 * (y / sigma**2 + x / tau**2)
        x0 = _call(denoiser, y_eff, sigma_eff, generator, class_labels)
        x = x0 + taus[k + 1] * randn_like(x0, generator)                 # fresh-noise re-noising (zeta = 1)
    return x0


def generate(denoiser: Callable, shape: Sequence[int], ts: Sequence[int], generator: Generators,
             class_labels=None, device: torch.device | str | None = None) -> SamplerResult:
    """Unconditional (or class-conditional) samples of shape (B, C, H, W) in [-1, 1] (docs/method.md §2.7).

    The condition is pure noise y = 80 * eps at init_sigma = 80, so the first call is effectively
    G(sigma_eff * eps, sigma_eff). NFE = len(ts) - 1. `ts`: e.g. `default_ts(nfe)`.
    """
    ts = validate_ts(ts)
    y = TS_SIGMA_MAX * randn(shape, generator, device=device)
    with torch.no_grad():
        x0 = multistep_denoise(denoiser, y, TS_SIGMA_MAX, ts, generator, class_labels)
    taus = ts_grid()[ts].tolist()
    sig_eff = [(TS_SIGMA_MAX**-2 + t**-2) ** -0.5 for t in taus[:-1]]
    return SamplerResult(x=x0, nfe=len(ts) - 1, operator_evals=0, extras={"ts": ts, "sigma_eff": sig_eff})


def heun_steps(nfe: int) -> int:
    """Heun steps N for `nfe` = 2N − 1 teacher calls (the last step, to sigma 0, is an Euler step); nfe odd, >= 1."""
    nfe = int(nfe)
    if nfe < 1 or nfe % 2 == 0:
        raise ValueError(f"the teacher's Heun sampler makes 2N - 1 calls for N steps: nfe must be odd (e.g. 31 or "
                         f"63), got {nfe}")
    return (nfe + 1) // 2


def heun_sample(teacher: Callable, shape: Sequence[int], nfe: int, generator: Generators, class_labels=None,
                device: torch.device | str | None = None, sigma_min: float = 0.002,
                sigma_max: float = TS_SIGMA_MAX, rho: float = 7.0,
                on_step: Callable[[float, float], None] | None = None) -> SamplerResult:
    """Samples (B, C, H, W), about [-1, 1], of the teacher's prior by EDM's deterministic sampler (Karras et al. 2022,
    Alg. 1): x ~ N(0, sigma_max²), then Heun steps of the probability-flow ODE dx/dsigma = (x − D(x, sigma))/sigma
    over `karras_sigmas(N, sigma_min, sigma_max, rho)` and a last Euler step to 0. nfe = 2N − 1 calls (odd; 63 is
    EDM2's 32 steps). The only randomness is the start, so sample b depends on generator b alone. on_step(done,
    nfe): after each step, the teacher calls made so far (a progress bar's `step`)."""
    steps = heun_steps(nfe)
    sig = [*karras_sigmas(steps, sigma_min, sigma_max, rho).tolist(), 0.0]  # one step: [sigma_max, 0]
    labels = {} if class_labels is None else {"class_labels": class_labels}
    x = sig[0] * randn(shape, generator, device=device)
    with torch.no_grad():
        for k, (s, s_next) in enumerate(itertools.pairwise(sig)):
            slope = (x - teacher(x, s, **labels)) / s
            x_next = x + (s_next - s) * slope
            if s_next > 0:  # Heun's correction: the mean of the slopes at both ends
                x_next = x + (s_next - s) * (slope + (x_next - teacher(x_next, s_next, **labels)) / s_next) / 2
            x = x_next
            if on_step is not None:
                on_step(float(min(2 * k + 2, 2 * steps - 1)), float(2 * steps - 1))
    return SamplerResult(x=x, nfe=2 * steps - 1, operator_evals=0, extras={"sigmas": sig[:-1]})


def denoiser_applies(operator) -> bool:
    """True for the `denoise` operator (y = x + sigma_y n, possibly on a padded canvas): the only task whose
    measurement is itself a noisy image that the generative denoiser can take directly."""
    return getattr(base_operator(operator), "name", None) == "denoise"


def denoise_measurement(denoiser: Callable, operator, y: torch.Tensor, sigmas=None, *, generator: Generators,
                        sigma_y: float = 0.05, nfe: int = 1, class_labels=None, callback=None) -> SamplerResult:
    """Method `denoiser`: a sample of the denoising posterior q(x0 | y_sigma = y) at sigma = sigma_y, drawn by the
    generative denoiser itself (what NCVSD distils, docs/method.md §1; no PnP loop): G(y, sigma_y) for nfe = 1, refined by
    `multistep_denoise` with `default_ts(nfe)` for 1 < nfe <= 31. Only for the `denoise` operator.

    y: (B, C, H, W) noisy images in [-1, 1] (a padded operator's y is reflect-padded to its canvas, as its
    pseudo-inverse does). sigma_y >= 0: the noise std on the [-1, 1] scale; 0 returns y itself (the exact answer,
    0 NFE). `sigmas` and `callback` are unused (the shared sampler signature). Raises ValueError for another
    operator, sigma_y < 0, or nfe outside 1..31.
    """
    if not denoiser_applies(operator):
        raise ValueError("method 'denoiser' only solves the denoise task (y = x + sigma_y n); use pnp-gd-warm")
    if not sigma_y >= 0:
        raise ValueError(f"method 'denoiser' needs the noise level sigma_y >= 0, got {sigma_y}")
    ts = default_ts(nfe)
    noisy = operator.pseudo_inverse(y)
    if sigma_y == 0:  # noiseless: the posterior is a point mass at y
        return SamplerResult(x=noisy.clone(), nfe=0, operator_evals=0, extras={"sigma": 0.0, "ts": None})
    with torch.no_grad():
        if nfe == 1:
            x0 = _call(denoiser, noisy, float(sigma_y), generator, class_labels)
        else:
            x0 = multistep_denoise(denoiser, noisy, float(sigma_y), ts, generator, class_labels)
    return SamplerResult(x=x0, nfe=int(nfe), operator_evals=0,
                         extras={"sigma": float(sigma_y), "ts": None if nfe == 1 else ts})


def sample_images(model: Callable, config: dict, seeds: Sequence[int], **kwargs: Any) -> torch.Tensor:
    """Unconditional (class-conditional with labels) samples, one per seed: (N, C, R, R) in [-1, 1]; the batches
    of `sample_batches` (same keyword arguments) joined. Raises NonFiniteOutputError when a sample holds NaN/inf."""
    from ncvsd_cli.errors import NonFiniteOutputError

    x = torch.cat([x for _, x in sample_batches(model, config, seeds, **kwargs)])
    bad = [int(s) for s, xi in zip(seeds, x) if not all_finite(xi)]
    if bad:
        raise NonFiniteOutputError(f"the network produced NaN/inf values for seed(s) {bad}; nothing written")
    return x


def sample_batches(
    model: Callable,
    config: dict,
    seeds: Sequence[int],
    *,
    nfe: int = 1,
    ts: Sequence[int] | None = None,
    class_label: int | None = None,
    batch_size: int = 8,
    resolution: int | None = None,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
    teacher: bool = False,
    on_step: Callable[[float, float], None] | None = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Unconditional (class-conditional with labels) samples, one per seed, yielded a batch at a time as
    (seeds of the batch, (n, C, R, R) in [-1, 1] on the CPU), so that a caller can write them as they come.

    nfe: denoiser calls, mapped to `ts` by `sampling.generate.default_ts` (1: [10, 39], 2: [10, 22, 39],
    4: [0, 10, 20, 30, 39]) unless `ts` is given (docs/method.md §2.7). teacher: `model` is a teacher D(x, sigma),
    sampled by `heun_sample` in `nfe` calls (odd; `ts` does not apply; `on_step` hears of each step). Seed s uses
    its own generator, so a sample does not depend on the batch. Labels: `class_label`, or per seed a uniform draw from the stream
    ("class-label", s) (operators.noise.stream_seed), not from the sample's own noise. resolution: default the model's img_resolution; must be a multiple of `network_multiple(config)`.
    Raises ValueError for bad settings; a sample with NaN/inf values is yielded as it is (the caller checks).
    """
    from ncvsd_cli.networks.build import network_multiple
    from operators.noise import generators_for_seeds, rand, stream_seed

    if teacher and ts:
        raise ValueError("ts indices belong to the generator's multi-step sampling, not to the teacher's Heun sampler")
    ts = None if teacher else list(ts) if ts else default_ts(nfe)
    if teacher:
        heun_steps(nfe)  # an even nfe is refused before any work
    res = int(resolution or config.get("img_resolution", 64))
    mult = network_multiple(config)
    if res < 1 or res % mult:
        raise ValueError(f"resolution {res} must be a positive multiple of {mult} for this network")
    channels, label_dim = int(config.get("img_channels", 3)), int(config.get("label_dim", 0) or 0)
    if class_label is not None and not label_dim:  # (0 too: it was taken, and ignored)
        raise ValueError("this checkpoint is unconditional; --class-label does not apply")
    if class_label is not None and not 0 <= class_label < label_dim:
        raise ValueError(f"--class-label {class_label} is out of range 0..{label_dim - 1}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if any(int(s) < 0 for s in seeds):
        raise ValueError(f"seeds must be >= 0, got {min(int(s) for s in seeds)}")
    for start in range(0, len(seeds), batch_size):
        chunk = [int(s) for s in seeds[start : start + batch_size]]
        labels = None
        if label_dim:
            if class_label is None:
                label_gens = generators_for_seeds([stream_seed("class-label", s) for s in chunk])
                idx = [int(rand((1,), g)[0] * label_dim) for g in label_gens]
            else:
                idx = [int(class_label)] * len(chunk)
            labels = torch.nn.functional.one_hot(torch.tensor(idx), label_dim).float().to(device)
        shape, gens = (len(chunk), channels, res, res), generators_for_seeds(chunk)
        result = (heun_sample(model, shape, nfe, gens, class_labels=labels, device=device, on_step=on_step)
                  if teacher else generate(model, shape, ts, gens, class_labels=labels, device=device))
        x = result.x.detach().float().cpu()
        if on_batch is not None:
            on_batch(len(chunk))
        yield chunk, x
