"""Seeds and measurements shared by every method of a benchmark.

The measurement of (image, task) is made once, with a generator seeded from (seed, image index), and every method
restores that same y. Each method's own randomness (run k of best-of-K) comes from a second generator seeded from
(seed, image index, k + 1), reset for every method, so methods see identical noise streams and an image's results do
not depend on which rank or batch processed it. Seeds are derived with numpy's SeedSequence (well mixed, stable).
"""

from __future__ import annotations

import numpy as np
import torch

from operators.noise import generators_for_seeds

#: Stream 0 is the measurement noise; stream k + 1 the sampler of run k.
MEASUREMENT_STREAM = 0


def derive_seed(seed: int, index: int, stream: int = MEASUREMENT_STREAM) -> int:
    """A 63-bit seed from (seed, image index, stream); all three >= 0."""
    if min(seed, index, stream) < 0:
        raise ValueError(f"seed, index and stream must be >= 0, got {(seed, index, stream)}")
    return int(np.random.SeedSequence([seed, index, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


def measurement_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator that draws the measurement noise of image `index`."""
    return generators_for_seeds([derive_seed(seed, index, MEASUREMENT_STREAM)])[0]


def sampler_generators(seed: int, index: int, run: int = 0, device: str = "cpu") -> list[torch.Generator]:
    """One generator on `device` (in a list: one per batch element) for run `run` >= 0 of a method on image `index`:
    the sampler's noise is drawn where it is used (the measurement's stays on the CPU, identical on every device)."""
    return generators_for_seeds([derive_seed(seed, index, run + 1)], device=device)


def make_measurement(operator, x: torch.Tensor, sigma_y: float, seed: int, index: int) -> torch.Tensor:
    """y = A(x) + sigma_y * n with n drawn from `measurement_generator(seed, index)` (x: (1, C, H, W) in [-1, 1])."""
    with torch.no_grad():
        return operator.measure(x, sigma_y=sigma_y, generator=[measurement_generator(seed, index)])


def measurement_preview(operator, y: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """A displayable (1, C, H, W) picture of y in [-1, 1] for the grid.

    Image-shaped measurements (inpainting, deblurring) are shown as they are; smaller ones (super-resolution) are
    enlarged with nearest-neighbour; anything else (phase-retrieval magnitudes) is shown as log(1 + |y|), centred,
    scaled to [-1, 1] and resized.
    """
    c, h, w = image_shape
    y = y.detach().float().cpu()
    if y.dim() == 4 and y.shape[1] == c and operator.linear:
        if tuple(y.shape[-2:]) != (h, w):
            y = torch.nn.functional.interpolate(y, size=(h, w), mode="nearest")
        return y.clamp(-1, 1)
    z = torch.log1p(y.abs())
    if z.dim() == 4 and z.shape[-1] > 1:
        z = torch.fft.fftshift(z, dim=(-2, -1))
    z = z.reshape(1, -1, *z.shape[-2:]) if z.dim() >= 2 else z.reshape(1, 1, 1, -1)
    z = z[:, :c] if z.shape[1] >= c else z[:, :1].expand(1, c, *z.shape[-2:])
    lo, hi = z.amin(), z.amax()
    z = (z - lo) / (hi - lo).clamp_min(1e-12) * 2 - 1
    return torch.nn.functional.interpolate(z, size=(h, w), mode="bilinear", align_corners=False).clamp(-1, 1)
