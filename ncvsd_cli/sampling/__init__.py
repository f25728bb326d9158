"""Sampling: schedules, multi-step generation, PnP-GD, teacher baselines (DPS, DAPS-style), classical baselines.

`METHODS` maps a method name to a `Method`: call it with the shared sampler signature
`method(model, operator, y, sigmas, *, generator, callback=None, **settings) -> SamplerResult`, where `model` is
what `method.needs` says: "generator" (a generative denoiser), "teacher" (D(x, sigma)) or "none" (ignored, may be
None). Implementations are imported on first use, so a missing module (e.g. the classical baselines) is an error only
when that method is requested.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ncvsd_cli.sampling.common import SamplerResult

Needs = Literal["generator", "teacher", "none"]


@dataclass(frozen=True)
class Method:
    """A registered sampler: `name`, what model it `needs`, and its implementation `target` ("module:function")."""

    name: str
    needs: Needs
    target: str

    def load(self) -> Callable[..., SamplerResult]:
        """The sampler function; ValueError naming the method when its module or function is missing."""
        module, func = self.target.split(":")
        try:
            return getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"method '{self.name}' is unavailable: cannot load {self.target} ({exc})") from None

    def __call__(self, *args, **kwargs) -> SamplerResult:
        return self.load()(*args, **kwargs)


_CLASSICAL = "ncvsd_cli.sampling.classical"
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("pnp-gd", "generator", "ncvsd_cli.sampling.pnp_gd:pnp_gd"),
    Method("pnp-gd-warm", "generator", "ncvsd_cli.sampling.pnp_gd:pnp_gd_warm"),  # from the classical estimate
    Method("denoiser", "generator", "ncvsd_cli.sampling.generate:denoise_measurement"),  # denoise: G(y, sigma_y)
    Method("dps", "teacher", "ncvsd_cli.sampling.teacher_baselines:dps"),
    Method("daps", "teacher", "ncvsd_cli.sampling.teacher_baselines:daps"),
    # classical baselines (owner MET, ncvsd_cli/sampling/classical.py); the denoiser argument is ignored
    Method("classical", "none", f"{_CLASSICAL}:classical"),             # picks the one that fits the operator
    Method("bicubic", "none", f"{_CLASSICAL}:bicubic"),
    Method("wiener", "none", f"{_CLASSICAL}:wiener"),
    Method("tikhonov", "none", f"{_CLASSICAL}:tikhonov"),
    Method("biharmonic", "none", f"{_CLASSICAL}:biharmonic"),
    Method("pseudo-inverse", "none", f"{_CLASSICAL}:pseudo_inverse"),
)}


def get_method(name: str) -> Method:
    """The registered method `name`; ValueError listing the known names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method '{name}'; known: {', '.join(sorted(METHODS))}") from None


__all__ = ["METHODS", "Method", "SamplerResult", "get_method"]
