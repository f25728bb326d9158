"""Which runs a benchmark makes for a task: each registered method (`ncvsd_cli.sampling.methods`) at the NFE
values it says (`Method.bench_nfe`) where it applies (`Method.applies`), prepared by its own budget rule
(`Method.prepare`), exactly as `ncvsd restore` prepares it.

`--methods` takes registry names plus the group "classical" (every classical baseline that applies to the task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ncvsd_cli.sampling.methods import ClassicalMethod, get_method, method_names

CLASSICAL_GROUP = "classical"


@dataclass(frozen=True)
class Job:
    """One (method, nfe) run for a task. needs: "generator", "teacher" or "none" (which network drives it)."""

    method: str
    nfe: int
    needs: str


def needs_of(method: str) -> str:
    """"generator", "teacher" or "none" for a registered method or the "classical" group; ValueError otherwise."""
    return get_method(method).needs  # "classical" is also the method that picks the fitting baseline


def classical_names() -> list[str]:
    """The registered classical baselines (bicubic, wiener, tikhonov, biharmonic, pseudo-inverse, ...)."""
    return [n for n in method_names() if isinstance(get_method(n), ClassicalMethod) and n != CLASSICAL_GROUP]


def expand_jobs(methods: list[str], nfe_sweep: list[int], baseline_nfe: int, operator,
                settings: dict[str, Any] | None = None) -> list[Job]:
    """The jobs of one task, in the order of `methods`, without duplicates: each method at its `bench_nfe` values
    where it `applies` to `operator` (with the task `settings`); "classical" expands to every classical baseline
    that applies. Raises ValueError naming an unknown method; NFE values must be >= 1."""
    if any(n < 1 for n in nfe_sweep) or baseline_nfe < 1:
        raise ValueError(f"NFE values must be >= 1, got --nfe {nfe_sweep} and --baseline-nfe {baseline_nfe}")
    jobs: list[Job] = []
    for name in methods:
        names = classical_names() if name == CLASSICAL_GROUP else [name]
        for m in map(get_method, names):
            if m.applies(operator, settings):
                jobs += [Job(m.name, int(n), m.needs) for n in m.bench_nfe(list(nfe_sweep), baseline_nfe)]
    return list(dict.fromkeys(jobs))


def run_job(job: Job, task: str, operator, y, network, generator, preset_file=None, on_step=None, **overrides: Any):
    """Run one job on measurements y (B, ...) and return the sampler's SamplerResult (nfe and operator_evals
    count calls, each on the whole batch).

    generator: one torch.Generator per image (results do not depend on the batch's other images). network: the
    generator, the teacher or None (what `job.needs` says). The method prepares its own settings and arguments
    (`Method.prepare(task, job.nfe, preset_file=..., **overrides)`), the same call restore makes.
    on_step(done, total): network evaluations done after each sampler iteration (`ncvsd_cli.progress`).
    """
    from ncvsd_cli.progress import step_callback

    method = get_method(job.method)
    call = method.prepare(task, job.nfe or None, preset_file=preset_file, **overrides)
    callback = step_callback(call, on_step)
    extra = {"callback": callback} if callback is not None else {}
    return method.run(call, network, operator, y, generator=generator, **extra)
