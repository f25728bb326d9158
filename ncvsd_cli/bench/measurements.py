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
    state = int(np.random.SeedSequence([seed, index, stream]).generate_state(1, dtype=np.uint64)[0])
    return state >> 1  # (a Python int: numpy 1.x refuses uint64 >> int)


def measurement_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator that draws the measurement noise of image `index`."""
    return generators_for_seeds([derive_seed(seed, index, MEASUREMENT_STREAM)])[0]


def sampler_generators(seed: int, index: int, run: int = 0, device: str = "cpu") -> list[torch.Generator]:
    """One generator on `device` (in a list: one per batch element) for run `run` >= 0 of a method on image `index`:
    the sampler's noise is drawn where it is used (the measurement's stays on the CPU, identical on every device)."""
    return generators_for_seeds([derive_seed(seed, index, run + 1)], device=device)


def make_measurement(operator, x: torch.Tensor, sigma_y: float, seed: int, index: int) -> torch.Tensor:
    """y = A(x) + sigma_y * n with n drawn from `measurement_generator(seed, index)` (x: (1, C, H, W) in [-1, 1]);
    a grey image (three equal channels) gets one noise field in its three, as `ncvsd degrade` gives it and a grey
    photo has (`measurement.measure_image`)."""
    from ncvsd_cli.measurement import distinct_channel_count, measure_image

    grey = x.shape[1] == 3 and distinct_channel_count(x[0]) == 1
    with torch.no_grad():
        return measure_image(operator, x, sigma_y, [measurement_generator(seed, index)], grey)


def measurement_preview(operator, y: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """A displayable (1, C, H, W) picture of y in [-1, 1] for the grid: the preview `ncvsd degrade` writes
    (`measurement.preview`: y itself for image-shaped measurements, log|y| scaled for the others) enlarged to
    the image's size (nearest-neighbour for images, e.g. super-resolution, bilinear for log-amplitudes)."""
    from ncvsd_cli.images import match_channels
    from ncvsd_cli.measurement import Measurement, is_image_like, preview

    c, h, w = image_shape
    m = Measurement(task=operator.name, operator_config={}, y=y.detach().float().cpu()[:1], sigma_y=0.0)
    pic = preview(m)
    if tuple(pic.shape[-2:]) != (h, w):
        mode = "nearest" if is_image_like(m) else "bilinear"
        pic = torch.nn.functional.interpolate(pic, size=(h, w), mode=mode, **({} if mode == "nearest" else
                                                                              {"align_corners": False}))
    return match_channels(pic.clamp(-1, 1), c)
