"""Diffusion baselines driven by the teacher D(x, sigma) = E[x0 | x] (VE / EDM form), written from the papers'
descriptions (no code taken from either project, which carry no licence):

- `dps`: Diffusion Posterior Sampling (Chung et al., ICLR 2023, Alg. 1): reverse diffusion with an ancestral (or
  Euler) step, then a guidance step x <- x - zeta_i * grad_x |y - A(D(x, sigma))|², zeta_i = zeta / |y - A(D(x))|.
- `daps`: a DAPS-style annealed sampler (Zhang et al., 2024): at each annealing level sigma_k an ODE solve with the
  teacher from x_k to x0_hat, then a sample of x0 ∝ N(x0; x0_hat, r_k²) exp(-|A(x0) - y|² / beta) (the
  operator's likelihood step: exact where a closed form exists, Langevin otherwise), then x_{k+1} = x0 + sigma_{k+1} eps;
  the output is the last level's x0_hat.

Both share the sampler signature with `teacher` in place of the generative denoiser.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ncvsd_cli.sampling.common import SamplerResult
from ncvsd_cli.sampling.pnp_gd import likelihood_evals
from ncvsd_cli.sampling.schedules import karras_sigmas
from operators.base import autograd_enabled, graph_leaf
from operators.noise import Generators, randn, randn_like


def _teacher(teacher: Callable, x: torch.Tensor, sigma: float, class_labels) -> torch.Tensor:
    return teacher(x, sigma) if class_labels is None else teacher(x, sigma, class_labels=class_labels)


def _levels(sigmas, steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    sig = (karras_sigmas(steps, sigma_min, sigma_max, rho) if sigmas is None
           else torch.as_tensor(sigmas, dtype=torch.float64).flatten()).tolist()
    if not sig or any(b >= a for a, b in zip(sig, sig[1:])) or sig[-1] <= 0:
        raise ValueError(f"sigmas must be positive and strictly decreasing, got {sig[:3]}...{sig[-3:]}")
    return sig


def dps(teacher: Callable, operator, y: torch.Tensor, sigmas: torch.Tensor | Sequence[float] | None = None, *,
        generator: Generators, callback: Callable[[dict], None] | None = None, zeta: float = 1.0,
        steps: int = 1000, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
        stochastic: bool = True, vp_scaling: bool = True, class_labels=None) -> SamplerResult:
    """DPS with the teacher; NFE = len(sigmas) (each call also back-propagates through the teacher).

    sigmas: decreasing noise levels (default Karras(steps=1000, 0.002..80, rho 7)); a final step to sigma 0 is
    implied. stochastic: ancestral (DDPM-like, as in DPS) rather than Euler steps. zeta > 0: guidance scale of
    zeta_i = zeta / |y - A(D(x))| per image (the paper's range 0.1-1 was tuned for 256x256x3 images: the guidance
    step has norm about 2 zeta whatever the image size, so small images need a smaller zeta). This is the paper's
    Alg. 1 as written; the DPS authors' code steps scale * grad |y - A(D(x))| = scale / (2 |r|) * grad |r|², so
    zeta = scale / 2 (their scale 1 is zeta 0.5 here).
    vp_scaling: multiply the step by sqrt((1 + sigma²)(1 + sigma_next²)), which makes a step in these VE coordinates
    equal to DPS's step in its variance-preserving coordinates (x_vp = x_ve / sqrt(1 + sigma²)).
    operator_evals = 2 per step (A and its backward). Returns the last iterate.
    """
    if not zeta >= 0:
        raise ValueError(f"zeta must be >= 0, got {zeta}")
    sig = _levels(sigmas, steps, sigma_min, sigma_max, rho)
    x = sig[0] * randn((y.shape[0], *operator.image_shape), generator, device=y.device, dtype=y.dtype)
    for i, sigma in enumerate(sig):
        sigma_next = sig[i + 1] if i + 1 < len(sig) else 0.0
        with autograd_enabled("DPS"):  # (also inside a caller's torch.inference_mode)
            x = graph_leaf(x)
            d = _teacher(teacher, x, sigma, class_labels)
            sq = (y - operator.forward(d)).pow(2).flatten(1).sum(1)          # |y - A(D(x))|² per image
            (grad,) = torch.autograd.grad(sq.sum(), x)
        x, d, sq = x.detach(), d.detach(), sq.detach()
        if stochastic:                                                       # ancestral VE step
            sigma_up = min(sigma_next, math.sqrt(max(sigma_next**2 * (sigma**2 - sigma_next**2), 0.0)) / sigma)
            sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
            x_next = d + sigma_down / sigma * (x - d)
            if sigma_up > 0:
                x_next = x_next + sigma_up * randn_like(x, generator)
        else:                                                                # Euler step of the PF-ODE
            x_next = d + sigma_next / sigma * (x - d)
        # DPS's VP step in VE coordinates: x_ve = sqrt(1 + sigma²) x_vp and grad_vp = sqrt(1 + sigma²) grad_ve
        vp = math.sqrt((1 + sigma**2) * (1 + sigma_next**2)) if vp_scaling else 1.0
        scale = zeta / sq.sqrt().clamp_min(1e-12) * vp
        x = x_next - scale.reshape(-1, *([1] * (x.dim() - 1))) * torch.nan_to_num(grad)
        if callback is not None:
            callback({"i": i, "sigma": sigma, "x": x, "x0": d})
    n = len(sig)
    return SamplerResult(x=x, nfe=n, operator_evals=2 * n,
                         extras={"zeta": zeta, "steps": n, "teacher_backward_passes": n})


def _ode_to_x0(teacher: Callable, x: torch.Tensor, sigma: float, ode_steps: int, class_labels) -> torch.Tensor:
    """Euler solve of the probability-flow ODE from (x, sigma) to sigma = 0 in `ode_steps` teacher calls on the
    levels sigma * (1 - j / ode_steps)^7 (a Karras rho = 7 ramp ending at 0); returns the last D."""
    levels = [sigma * (1 - j / ode_steps) ** 7 for j in range(ode_steps + 1)]
    for j in range(ode_steps):
        d = _teacher(teacher, x, levels[j], class_labels)
        x = d + levels[j + 1] / levels[j] * (x - d)
    return x


def daps(teacher: Callable, operator, y: torch.Tensor, sigmas: torch.Tensor | Sequence[float] | None = None, *,
         generator: Generators, callback: Callable[[dict], None] | None = None, levels: int = 200,
         ode_steps: int = 5, sigma_min: float = 0.1, sigma_max: float = 80.0, rho: float = 7.0,
         sigma_y: float = 0.05, beta: float | None = None, r_scale: float = 0.5, class_labels=None) -> SamplerResult:
    """DAPS-style annealed sampling with the teacher; NFE = len(sigmas) * ode_steps (default 200 x 5 = 1000).

    sigmas: annealing levels (default Karras(levels, sigma_min=0.1, sigma_max=80, rho=7)). At level sigma_k:
    x0_hat = ODE(x, sigma_k) (ode_steps >= 1 teacher calls), x0 ~ N(x0_hat, r_k²) x likelihood with r_k =
    r_scale * sigma_k (r_scale 0.5, chosen on the validation photos: docs/method.md §5; the paper's coupling is 1)
    and likelihood std sqrt(beta / 2) (beta defaults to the Bayes value 2 sigma_y²), then
    x = x0 + sigma_{k+1} eps. Returns the last level's x0_hat, the ODE estimate from x at sigma_min: in DAPS the
    Langevin step size decays to 1 % by the last level, so its final x0 stays close to x0_hat, whereas an exact
    likelihood sample at r = sigma_min would add noise of std sigma_min wherever the measurement says nothing.
    operator_evals: the likelihood steps' count (`likelihood_evals`, one per level but the last; one level keeps it).
    """
    if int(ode_steps) < 1:
        raise ValueError(f"ode_steps must be >= 1, got {ode_steps}")
    if not r_scale > 0:
        raise ValueError(f"r_scale must be > 0, got {r_scale}")
    beta = 2 * sigma_y**2 if beta is None else beta
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (or sigma_y > 0), got beta={beta}")
    sigma_p = math.sqrt(beta / 2)
    sig = _levels(sigmas, levels, sigma_min, sigma_max, rho)
    x = sig[0] * randn((y.shape[0], *operator.image_shape), generator, device=y.device, dtype=y.dtype)
    x0 = x
    op_evals = 0
    with torch.no_grad():
        for k, sigma in enumerate(sig):
            x0 = x0_hat = _ode_to_x0(teacher, x, sigma, int(ode_steps), class_labels)
            if k + 1 < len(sig) or len(sig) == 1:  # a single level keeps its step, else y would be ignored
                x0 = operator.likelihood_sample(x0_hat, y, rho=r_scale * sigma, sigma_p=sigma_p, generator=generator)
                op_evals += likelihood_evals(operator)
            if k + 1 < len(sig):
                x = x0 + sig[k + 1] * randn_like(x0, generator)
            if callback is not None:
                callback({"i": k, "sigma": sigma, "x": x, "x0": x0, "x0_hat": x0_hat})
    return SamplerResult(x=x0, nfe=len(sig) * int(ode_steps), operator_evals=op_evals,
                         extras={"levels": len(sig), "ode_steps": int(ode_steps), "beta": beta})


def teacher_mmse(teacher: Callable, operator, y: torch.Tensor, sigmas=None, *, generator: Generators = None,
                 sigma_y: float = 0.05, callback: Callable[[dict], None] | None = None,
                 class_labels=None) -> SamplerResult:
    """Method `teacher-mmse`: the teacher's MMSE estimate D(y, sigma_y) = E[x0 | y] of a noisy image (the denoise
    task only; one call, deterministic). The fidelity-first counterpart of one posterior sample G(y, sigma_y).

    y: (B, C, H, W) noisy images in [-1, 1]; sigma_y >= 0 on the [-1, 1] scale (0 returns y, 0 NFE).
    """
    from ncvsd_cli.sampling.generate import denoiser_applies

    if not denoiser_applies(operator):
        raise ValueError("method 'teacher-mmse' only solves the denoise task (y = x + sigma_y n)")
    noisy = operator.pseudo_inverse(y)
    if sigma_y == 0:
        return SamplerResult(x=noisy.clone(), nfe=0, operator_evals=0, extras={"sigma": 0.0})
    with torch.no_grad():
        x0 = _teacher(teacher, noisy, float(sigma_y), class_labels)
    if callback is not None:
        callback({"i": 0, "sigma": float(sigma_y), "x": x0, "x0": x0})
    return SamplerResult(x=x0, nfe=1, operator_evals=0, extras={"sigma": float(sigma_y)})
