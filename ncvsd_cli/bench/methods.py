"""Which runs a benchmark makes for a task, and how each one is called through `ncvsd_cli.sampling.METHODS`.

`--methods` takes registry names plus the group "classical" (every classical baseline that applies to the task):
- "pnp-gd": PnP-GD with the generator, once per value of the NFE sweep (task preset with nfe=N, docs/method.md §3.4);
- "pnp-gd-warm": the same warm-started from the classical estimate (the preset's `warm_start` schedule);
- "dps", "daps": teacher-driven baselines at `baseline_nfe` network evaluations (1000 by default, docs/method.md §6.2);
- classical baselines (bicubic, Wiener/Tikhonov, biharmonic inpainting, pseudo-inverse): NFE 0, no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CLASSICAL_GROUP = "classical"


@dataclass(frozen=True)
class Job:
    """One (method, nfe) run for a task. needs: "generator", "teacher" or "none" (which network drives it)."""

    method: str
    nfe: int
    needs: str


def registry() -> dict[str, Any]:
    """`ncvsd_cli.sampling.METHODS` (name -> Method with `.needs` and the sampler signature)."""
    from ncvsd_cli.sampling import METHODS

    return METHODS


def needs_of(method: str) -> str:
    """"generator", "teacher" or "none" for a registered method; "none" for the "classical" group."""
    if method == CLASSICAL_GROUP:
        return "none"
    known = registry()
    if method not in known:
        raise ValueError(f"unknown method {method!r}; known: {', '.join([*known, CLASSICAL_GROUP])}")
    return known[method].needs


def classical_names() -> list[str]:
    """Registered methods that need no network (bicubic, wiener, tikhonov, biharmonic, pseudo-inverse, ...)."""
    return [name for name, m in registry().items() if m.needs == "none" and name != CLASSICAL_GROUP]


def classical_applies(method: str, operator) -> bool:
    """Whether classical baseline `method` handles `operator`.

    Asks `ncvsd_cli.sampling.classical.applies(method, operator)` when the module provides it; otherwise runs the
    method once on the noiseless measurement of a zero image and treats ValueError / NotImplementedError / TypeError
    as "does not apply".
    """
    import torch

    try:
        from ncvsd_cli.sampling import classical
    except ImportError:
        return False
    check = getattr(classical, "applies", None)
    if check is not None:
        return bool(check(method, operator))
    try:
        with torch.no_grad():
            x = torch.zeros(1, *operator.image_shape, device=next(iter(operator.buffers()), torch.zeros(0)).device)
            registry()[method](None, operator, operator.forward(x), None, generator=None)
    except (ValueError, NotImplementedError, TypeError):
        return False
    return True


def _warm_available(operator, preset: dict[str, Any] | None) -> bool:
    from ncvsd_cli.sampling.pnp_gd import warm_start_applies

    return warm_start_applies(operator) and (preset is None or bool(preset.get("warm_start")))


def expand_jobs(methods: list[str], nfe_sweep: list[int], baseline_nfe: int, operator,
                preset: dict[str, Any] | None = None) -> list[Job]:
    """The jobs of one task, in the order of `methods`: a generator method over the NFE sweep, a teacher method
    at `baseline_nfe`, a classical method (or every one that applies, for "classical") at NFE 0.

    "pnp-gd-warm" is left out where there is no warm start (phase retrieval, or `preset["warm_start"]` null);
    "denoiser" runs only on the denoise task, at the sweep's NFE values up to 31 (at 1 if there are none).
    Raises ValueError naming an unknown method; NFE values must be >= 1.
    """
    if any(n < 1 for n in nfe_sweep) or baseline_nfe < 1:
        raise ValueError(f"NFE values must be >= 1, got --nfe {nfe_sweep} and --baseline-nfe {baseline_nfe}")
    jobs: list[Job] = []
    for m in methods:
        needs = needs_of(m)
        if m == CLASSICAL_GROUP:
            jobs += [Job(c, 0, "none") for c in classical_names() if classical_applies(c, operator)]
        elif needs == "generator":
            if m == "pnp-gd-warm" and not _warm_available(operator, preset):
                continue  # phase retrieval (no classical estimate to start from) or warm_start: null
            if m == "denoiser":
                from ncvsd_cli.sampling.generate import MAX_MULTISTEP_NFE, denoiser_applies

                if denoiser_applies(operator):  # the denoise task only
                    sweep = [n for n in sorted(set(nfe_sweep)) if n <= MAX_MULTISTEP_NFE] or [1]
                    jobs += [Job(m, int(n), needs) for n in sweep]
                continue
            jobs += [Job(m, int(n), needs) for n in sorted(set(nfe_sweep))]
        elif needs == "teacher":
            jobs.append(Job(m, int(baseline_nfe), needs))
        elif classical_applies(m, operator):
            jobs.append(Job(m, 0, "none"))
    seen, unique = set(), []
    for j in jobs:
        if (j.method, j.nfe) not in seen:
            seen.add((j.method, j.nfe))
            unique.append(j)
    return unique


def run_job(job: Job, task: str, operator, y, network, generator, sigma_y: float, preset_file=None):
    """Run one job on measurement y (B = 1) and return the sampler's SamplerResult.

    network: the generator (pnp-gd), the teacher (dps, daps) or None (classical). PnP-GD settings come from the
    task preset (`load_task_preset(task, nfe=...)`); the teacher baselines use `baseline_settings`; classical
    baselines get the task's sigma_y (the Wiener / Tikhonov noise level).
    """
    from ncvsd_cli.sampling import presets

    fn = registry()[job.method]
    if job.method == "denoiser":
        return fn(network, operator, y, None, generator=generator, sigma_y=float(sigma_y), nfe=job.nfe)
    if job.needs == "generator":
        preset = presets.load_task_preset(task, nfe=job.nfe, preset_file=preset_file,
                                          warm=job.method == "pnp-gd-warm")
        sigmas, kwargs = presets.pnp_arguments(job.method, preset, sigma_y)
        return fn(network, operator, y, sigmas, generator=generator, **kwargs)
    if job.needs == "teacher":
        return fn(network, operator, y, None, generator=generator, **baseline_settings(job.method, job.nfe, sigma_y))
    return fn(None, operator, y, None, generator=generator, sigma_y=float(sigma_y))


def baseline_settings(method: str, nfe: int, sigma_y: float) -> dict[str, Any]:
    """Keyword arguments that make a teacher baseline spend `nfe` >= 1 teacher calls (sampler defaults otherwise).

    dps: `steps = nfe` (one call per step; DPS's usual 1000). daps: `levels x ode_steps = nfe` with 5 ODE steps
    per annealing level when nfe is a multiple of 5 (DAPS-1K = 200 x 5), else 1; it also gets the task's sigma_y.
    """
    if nfe < 1:
        raise ValueError(f"nfe must be >= 1, got {nfe}")
    if method == "dps":
        return {"steps": int(nfe)}
    if method == "daps":
        ode_steps = 5 if nfe % 5 == 0 else 1
        return {"levels": int(nfe) // ode_steps, "ode_steps": ode_steps, "sigma_y": float(sigma_y)}
    raise ValueError(f"{method!r} has no NFE rule for teacher baselines (known: dps, daps)")
