"""Sampling: schedules, multi-step generation, PnP-GD, teacher baselines (DPS, DAPS-style), classical baselines.

Methods by name, each with its budget rule, live in `sampling.methods` (`get_method`, `register_method`, entry-point
group `ncvsd.methods`). Implementations are imported on first use, so a missing module is an error only when that
method is requested.
"""

from __future__ import annotations

from ncvsd_cli.sampling.common import SamplerResult
from ncvsd_cli.sampling.methods import METHODS, Method, MethodCall, get_method, method_names, register_method

__all__ = ["METHODS", "Method", "MethodCall", "SamplerResult", "get_method", "method_names", "register_method"]
