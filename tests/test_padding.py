"""The padded canvas (operators.padding), parametrised over every registered operator (deepinv's wrapper tests).

Mathematics checked: A' ignores the extra pixels, A' and A'ᵀ are adjoint, the likelihood step is the inner one on
the window (same generator stream) and N(x0, rho²) outside, the config is the inner operator's.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_operators import ALL, LINEAR, gen, image, make

import operators
from operators.padding import Padded, base_operator, crop_to, pad_operator, pad_to_shape, padded_size

INNER = (3, 13, 11)
CANVAS = (16, 16)


@pytest.mark.parametrize("name", ALL)
def test_padded_forward_ignores_the_extra_pixels(name):
    inner = make(name, INNER)
    op = pad_operator(inner, 8)
    assert isinstance(op, Padded) and op.image_shape == (3, *CANVAS) and base_operator(op) is inner
    x = image((3, *CANVAS))
    changed = x.clone()
    changed[..., 13:, :] = 5.0
    changed[..., :, 11:] = -5.0
    assert torch.equal(op(x), inner(crop_to(x, (13, 11)))) and torch.equal(op(changed), op(x))
    assert operators.from_config(json.loads(json.dumps(op.to_config()))).image_shape == INNER


@pytest.mark.parametrize("name", LINEAR)
def test_padded_adjoint(name):
    op = pad_operator(make(name, INNER), 8).double()
    x = image((3, *CANVAS), dtype=torch.float64)
    y = torch.randn(op.measurement_shape(2), generator=gen(1), dtype=torch.float64)
    assert torch.allclose((op(x) * y).sum(), (x * op.adjoint(y)).sum(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", LINEAR)
def test_padded_likelihood_step_is_exact_per_region(name):
    """Inside: the inner operator's step with the same generator; outside: x0 + rho eps, eps ~ N(0, 1)."""
    inner = make(name, INNER)
    op = pad_operator(inner, 8)
    n, rho = 4000, 0.3
    x0 = image((3, *CANVAS), batch=1).expand(n, -1, -1, -1)
    y = inner.measure(crop_to(x0[:1], (13, 11)), 0.05, gen(0)).expand(n, *inner.measurement_shape(1)[1:])
    u = op.likelihood_sample(x0, y, rho, 0.1, gen(7))
    window = inner.likelihood_sample(crop_to(x0, (13, 11)), y, rho, 0.1, gen(7))
    assert torch.equal(crop_to(u, (13, 11)), window)
    z = ((u - x0) / rho)[..., 13:, :].flatten()
    assert abs(float(z.mean())) < 5 / z.numel() ** 0.5 and abs(float(z.std()) - 1) < 0.02


def test_no_padding_when_the_size_fits_and_bad_canvas():
    inner = make("sr2", (3, 16, 16))
    assert pad_operator(inner, 8) is inner and base_operator(inner) is inner
    with pytest.raises(ValueError, match="smaller"):
        Padded(inner, (8, 16))


@pytest.mark.parametrize("multiple", [1, 4, 8, 32])
def test_pad_and_crop_back(multiple):
    x = image(INNER, batch=1)
    padded = pad_to_shape(x, (padded_size(13, multiple), padded_size(11, multiple)))
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] >= 13 and padded.shape[-2] - 13 < multiple
    assert torch.equal(crop_to(padded, (13, 11)), x)


def test_reflect_padding_mirrors_without_repeating_the_edge():
    x = torch.arange(3.0).view(1, 1, 1, 3).expand(1, 1, 2, 3)
    p = pad_to_shape(x, (2, 6))
    assert p[0, 0, 0].tolist() == [0, 1, 2, 1, 0, 1]  # a pad larger than the image repeats the reflection
    one = pad_to_shape(torch.ones(1, 1, 1, 1), (3, 2))
    assert torch.equal(one, torch.ones(1, 1, 3, 2))
    with pytest.raises(ValueError, match="smaller"):
        pad_to_shape(x, (1, 3))
