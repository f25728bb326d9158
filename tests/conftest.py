"""Shared fixtures: a seeded generator and tiny odd-sized images (deepinv style)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def rng() -> torch.Generator:
    """A CPU generator seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def odd_image(rng) -> torch.Tensor:
    """A (1, 3, 13, 11) image in [-1, 1]: non-square and odd, to catch shape bugs."""
    return torch.rand(1, 3, 13, 11, generator=rng) * 2 - 1
