"""Random-trajectory motion-blur kernels, re-implemented from the description in docs/method.md §4.4 (step numbers below).

Everything is drawn on a canvas twice the kernel size, then drawn, blurred, resized and normalised.
"""

from __future__ import annotations

import math

import numpy as np


def _trajectory(diag: float, intensity: float, rng: np.random.Generator) -> np.ndarray:
    """Complex points of a random camera path centred on its centre of mass (steps 2–6, before translation)."""
    max_len = 0.75 * diag * (rng.uniform(0, 1) + rng.uniform(0, intensity**2))  # step 2
    steps: list[float] = []
    for _ in range(100_000):  # step 3: Beta(1, 30) lengths below the maximum until they reach it
        if sum(steps) >= max_len:
            break
        step = rng.beta(1, 30) * (1 - intensity + 0.1) * diag
        if step < max_len:
            steps.append(step)
    else:  # a vanishing max_len would reject forever: close the path with the remainder
        steps.append(max(max_len - sum(steps), 0.0))
    max_angle = rng.uniform(0, intensity * math.pi)  # step 4
    jitter = rng.beta(2, 20)
    angles = [rng.uniform(-max_angle, max_angle)]  # step 5
    for _ in steps[1:]:
        magnitude = rng.triangular(0, intensity * max_angle, max_angle + 0.1)
        sign = math.copysign(1.0, angles[-1])
        angles.append(-sign * magnitude if rng.uniform() < jitter else sign * magnitude)
    increments = np.asarray(steps) * np.exp(1j * np.asarray(angles))
    path = np.concatenate([[0j], np.cumsum(increments)])  # step 6
    path = path - path.mean()
    return path * np.exp(1j * rng.uniform(0, math.pi))


def motion_kernel(size: int, intensity: float, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) float64 motion kernel summing to 1, intensity in [0, 1] (docs/method.md §4.4)."""
    from PIL import Image, ImageDraw, ImageFilter

    canvas = 2 * size
    diag = math.hypot(canvas, canvas)  # step 1
    path = _trajectory(diag, intensity, rng) + complex(canvas / 2, canvas / 2)
    image = Image.new("L", (canvas, canvas))
    ImageDraw.Draw(image).line([(p.real, p.imag) for p in path], fill=255, width=max(int(diag / 150), 1))  # 7
    image = image.filter(ImageFilter.GaussianBlur(radius=int(0.01 * diag)))  # step 8
    kernel = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float64)  # step 9
    if kernel.sum() <= 0:  # a path too short to leave a mark: the identity blur
        kernel = np.zeros((size, size))
        kernel[size // 2, size // 2] = 1.0
    return kernel / kernel.sum()
