"""PnP-GD: split-Gibbs posterior sampling with a generative denoiser (docs/method.md §3.1-3.3, paper Alg. 1).

Target pi(x0) ∝ q(x0) exp(-|y - A(x0)|² / beta), annealed through pi_sigma(x0, u) ∝ q(x0) exp(-|A(u) - y|² / beta
- |u - x0|² / (2 sigma²)) with sigma following `sigmas` (docs/method.md §3.2):
    u = x_init + sigmas[0] * eps               (x_init = 0: the paper's start from noise)
    for i = 0 .. N-2:
        x  = G(u, sigmas[i])                       prior step (multi-step with `ts` when given, docs/method.md §2.7)
        x0 = ema_decay * x0 + (1 - ema_decay) * x  when sigmas[i] < ema_sigma and an x0 exists, else x0 = x
        u  ~ exp(-|A(u) - y|² / (2 sp²) - |u - x|² / (2 sigmas[i+1]²)),  sp = sqrt(beta / 2)   (next sigma!)
    return x0
NFE = (N - 1) * (len(ts) - 1 if ts else 1): 49 for the paper's 50 steps.

Warm start (`pnp_gd_warm`, not in the paper): x_init is the task's classical estimate (bicubic, Wiener,
biharmonic, ...) and sigmas start low (task presets: sigma_max 0.05-0.7, see their warm_start), as in
Come-Closer-Diffuse-Faster (Chung et al., CVPR 2022): forward-diffusing a good initial estimate to a moderate noise
level and running the reverse chain from there.
The chain then only has to add what the classical estimate lacks (texture, detail) and needs few steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ncvsd_cli.sampling.common import SamplerResult
from ncvsd_cli.sampling.generate import _call, multistep_denoise
from operators.base import Operator
from operators.noise import Generators, randn
from operators.padding import base_operator


def likelihood_evals(operator: Operator) -> int:
    """Operator applications of the last `likelihood_sample` call, per image.

    Uses `operator.last_evals` when the operator provides it; otherwise the convention: a closed-form step counts 2
    (A and Aᵀ, or the FFT pair), a Langevin step 2 * langevin_steps (one forward and one backward per iteration).
    """
    operator = base_operator(operator)
    n = getattr(operator, "last_evals", None)
    if n is not None:
        return int(n)
    if type(operator).likelihood_sample is _base_likelihood_sample():
        return 2 * int(getattr(operator, "langevin_steps", 100))
    return 2


def _base_likelihood_sample():
    from operators.base import Operator
    return Operator.likelihood_sample


def pnp_gd(denoiser: Callable, operator: Operator, y: torch.Tensor, sigmas: torch.Tensor | Sequence[float], *,
           generator: Generators, callback: Callable[[dict], None] | None = None, beta: float,
           ema_sigma: float | None = 100.0, ema_decay: float = 0.6, ts: Sequence[int] | None = None,
           class_labels: torch.Tensor | None = None, x_init: torch.Tensor | None = None,
           x_init_noise: float = 0.0) -> SamplerResult:
    """Posterior samples of x0 given measurements y (docs/method.md §3.2).

    denoiser: generative denoiser `G(y, sigma, generator=...)`. operator: an `operators.Operator`.
    y: measurements (B, ...). sigmas: decreasing noise levels, length N >= 2 (e.g. `karras_sigmas(50, rho=2)`);
    with N = 2 and no x_init the output is a prior draw (the one denoiser step sees pure noise; y enters after it).
    beta > 0: likelihood temperature (Bayes-exact 2 sigma_y²; the paper's tuned values are smaller).
    ema_sigma: EMA of x0 active below this sigma (100 = always, the paper's "∞"; None or 0 = off).
    ema_decay in [0, 1): weight of the previous x0. ts: optional multi-step prior step (docs/method.md §2.7).
    callback: called after every iteration with dict(i, sigma, x, x0, u) (u None after the last: x0 is returned
    after the last denoiser step, with no likelihood step after it).
    x_init: optional (B, *operator.image_shape) starting estimate in [-1, 1]; the chain starts at
    u = x_init + sigmas[0] * eps instead of sigmas[0] * eps (warm start, see the module docstring).
    x_init_noise >= 0: std of the white noise x_init already carries (denoising's y: sigma_y); the start then adds
    sqrt(max(sigmas[0]² - x_init_noise², 0)) * eps, so that u holds noise of std sigmas[0] as G is told.
    Returns SamplerResult(x0 in [-1, 1] scale (not clipped), nfe, operator_evals per image (see
    `likelihood_evals`), extras={"sigmas": [...]}).
    """
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten().tolist()
    if len(sig) < 2:
        raise ValueError(f"PnP-GD needs at least 2 sigmas, got {len(sig)}")
    if not all(math.isfinite(v) for v in sig) or any(b >= a for a, b in zip(sig, sig[1:])) or sig[-1] <= 0:
        raise ValueError(f"sigmas must be finite, positive and strictly decreasing, got {sig[:3]}...{sig[-3:]}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    ema_sigma = 0.0 if ema_sigma is None else float(ema_sigma)
    if not ema_sigma >= 0:  # NaN too (every comparison with it is False: the EMA would be off silently)
        raise ValueError(f"ema_sigma must be >= 0 (or None: off), got {ema_sigma}")
    sigma_p = math.sqrt(beta / 2)                                       # docs/method.md §3.3
    batch = y.shape[0]
    if not x_init_noise >= 0:
        raise ValueError(f"x_init_noise must be >= 0, got {x_init_noise}")
    added = math.sqrt(max(sig[0] ** 2 - (x_init_noise if x_init is not None else 0.0) ** 2, 0.0))
    u = added * randn((batch, *operator.image_shape), generator, device=y.device, dtype=y.dtype)
    if x_init is not None:
        if tuple(x_init.shape) != tuple(u.shape):
            raise ValueError(f"x_init has shape {tuple(x_init.shape)}, expected {tuple(u.shape)}")
        u = u + x_init.to(u)
    x0 = None
    nfe = op_evals = 0
    with torch.no_grad():
        for i in range(len(sig) - 1):
            if ts is None:
                x = _call(denoiser, u, sig[i], generator, class_labels)
                nfe += 1
            else:
                x = multistep_denoise(denoiser, u, sig[i], ts, generator, class_labels)
                nfe += len(ts) - 1
            x0 = ema_decay * x0 + (1 - ema_decay) * x if (sig[i] < ema_sigma and x0 is not None) else x
            if i < len(sig) - 2:  # the last one's u would go unused (phase retrieval: 36 s at 1024x768)
                u = operator.likelihood_sample(x, y, rho=sig[i + 1], sigma_p=sigma_p, generator=generator)
                op_evals += likelihood_evals(operator)
            else:
                u = None
            if callback is not None:
                callback({"i": i, "sigma": sig[i], "x": x, "x0": x0, "u": u})
    return SamplerResult(x=x0, nfe=nfe, operator_evals=op_evals, extras={"sigmas": sig, "beta": beta})


#: Tasks without an informative classical estimate (phase retrieval's pseudo-inverse is mid-grey): no warm start.
NO_WARM_START_TASKS = ("phase-retrieval",)


def warm_start_applies(operator: Operator) -> bool:
    """Whether `operator` has an informative classical estimate to start from (all but NO_WARM_START_TASKS)."""
    return getattr(base_operator(operator), "name", "") not in NO_WARM_START_TASKS


def classical_estimate(operator: Operator, y: torch.Tensor, sigma_y: float) -> SamplerResult:
    """The task's classical estimate of x0 (`sampling.classical.classical`: bicubic, biharmonic, ...; for a blur the
    Wiener filter with the exponent-2 power-law prior, not the fitted one; for denoising y itself):
    x in [-1, 1] on the operator's full canvas (a padded operator's inner estimate is reflect-padded),
    extras["method"] names the baseline used.

    Raises ValueError when the only classical estimate is uninformative (phase retrieval: constant mid-grey).
    """
    from functools import partial

    from ncvsd_cli.sampling.classical import classical, pseudo_inverse, wiener
    from operators.blur import CircularBlur
    from operators.padding import pad_to_shape
    from operators.simple import Denoise

    inner = base_operator(operator)
    if not warm_start_applies(operator):
        raise ValueError("pnp-gd-warm needs an informative classical estimate; phase retrieval has none "
                         "(its pseudo-inverse is mid-grey): use pnp-gd")
    rows, inverse = torch.unique(y.flatten(1), dim=0, return_inverse=True)  # --samples K: K copies of one y
    # Denoising starts from y itself (its pseudo-inverse): y is x0 + sigma_y noise, i.e. already a point of the
    # chain at sigma_y (`pnp_gd_warm` adds only the rest up to sigma_max); a smoothed estimate (non-local means) is
    # not.
    # A blur starts from the Wiener estimate with the exponent-2 power law it was tuned with (from an exponent-3 one
    # the default sampler scored 0.07 dB less on the validation photos; the fitted prior, the baseline's default,
    # was not tried as a start).
    baseline = (pseudo_inverse if isinstance(inner, Denoise) else
                partial(wiener, prior="power-law") if isinstance(inner, CircularBlur) else classical)
    res = baseline(None, inner, rows.reshape(-1, *y.shape[1:]), None, sigma_y=sigma_y)
    res.x = res.x[inverse]
    if inner is not operator:
        res.x = pad_to_shape(res.x, operator.image_shape[1:], mode="reflect")
    return res


def pnp_gd_warm(denoiser: Callable, operator: Operator, y: torch.Tensor, sigmas: torch.Tensor | Sequence[float], *,
                generator: Generators, sigma_y: float = 0.05, estimate: SamplerResult | None = None,
                **settings: Any) -> SamplerResult:
    """PnP-GD warm-started from the classical estimate (module docstring): `pnp_gd(..., x_init=...)`.

    sigma_y >= 0: measurement noise std on the [-1, 1] scale, used by the classical estimate (Wiener's noise
    level). sigmas should start low (the task presets' `warm_start`, e.g. sigma_max 0.7, rho 7, 10 calls).
    estimate: the result of `classical_estimate(operator, y, sigma_y)` when the caller already has it (K samples of
    one image run in several batches solve it once); computed here otherwise. Other keywords as `pnp_gd`.
    extras["init"] names the classical baseline; operator_evals include its own.
    """
    init = classical_estimate(operator, y, sigma_y) if estimate is None else estimate
    from operators.simple import Denoise

    noisy = isinstance(base_operator(operator), Denoise)  # y itself: already sigma_y from x0 (classical_estimate)
    res = pnp_gd(denoiser, operator, y, sigmas, generator=generator, x_init=init.x,
                 x_init_noise=float(sigma_y) if noisy else 0.0, **settings)
    res.operator_evals += init.operator_evals
    res.extras["init"] = init.extras.get("method")
    return res
