"""What every sampler returns (docs/architecture.md, "Samplers")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class SamplerResult:
    """The estimate of a sampler and its cost.

    x: (B, C, H, W) estimate in the [-1, 1] image convention.
    nfe: network (denoiser or teacher) evaluations per image; one batched call counts once.
    operator_evals: applications of the forward operator A (or its adjoint / a closed-form likelihood step) per
        image, as counted by the sampler (each sampler's docstring states its convention).
    extras: sampler-specific diagnostics (e.g. the sigma schedule used); JSON-friendly values preferred.
    """

    x: torch.Tensor
    nfe: int
    operator_evals: int
    extras: dict[str, Any] = field(default_factory=dict)

