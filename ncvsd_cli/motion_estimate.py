"""A camera shake's blur kernel read from the blurred photo alone (blind deconvolution; docs/method.md §4.4,
"Reading a motion kernel").

Coarse to fine over a pyramid of the photo's luma (kernel side x 1/sqrt(2) per level, down to 3 px), each level
alternates two least-squares steps, both closed forms in the Fourier domain:
- the latent sharp image under an L0 prior on its gradients, by half-quadratic splitting (Xu, Zheng & Jia,
  "Unnatural L0 sparse representation for natural image deblurring", CVPR 2013; Pan et al., "Deblurring text
  images via L0-regularized intensity and gradient prior", CVPR 2014): only strong edges survive, the edges that
  tell the blur's path;
- the kernel that blurs that image's gradients into the photo's, with a ridge (Cho & Lee, "Fast motion
  deblurring", SIGGRAPH Asia 2009), cut to its support, its faint taps (< KERNEL_FLOOR of the largest) and small
  islands dropped, non-negative, summing to 1.
The photo is mirrored at its edges and blended into a smooth wrap, so the Fourier steps see no false edges.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

#: Default side (px, odd) of the kernel read: a shake of up to 31 px (a 256-px photo's large shake).
MOTION_READ_SIZE = 31
#: Largest kernel side read (px).
MAX_READ_SIZE = 127
#: Weight of the L0 gradient prior on the [0, 1] luma (lambda; 1e-3-4e-3 read alike on training photos, 1e-2 worse).
L0_WEIGHT = 2e-3
#: A photo whose luma's LUMA_RANGE percentiles span less than MIN_CONTRAST is read with its luma scaled up to span
#: it, by at most MAX_STRETCH: the L0 prior's weight is on contrast, and an underexposed photo's edges fell under
#: it. benchmarks/motion-dark/: 8 skimage photos at 256 px, 21-px shakes, noise 0.01, similarity to the true kernel
#: at full exposure 0.858 -> 0.867 (7 read as before; the dark hubble_deep_field 0.89 -> 0.96), at 0.3x 0.60 ->
#: 0.80 (4 -> 7 of 8 readings reliable), at 0.12x 0.47 -> 0.50 (2 -> 1: too noisy to read either way).
#: Stretching every photo to span [0, 1] moved normal exposures' readings both ways (11-px shakes 0.90 -> 0.86,
#: 31-px 0.80 -> 0.89).
LUMA_RANGE, MIN_CONTRAST, MAX_STRETCH = (1.0, 99.0), 0.5, 4.0
#: Ridge of the kernel step, relative to the mean gradient energy per frequency.
KERNEL_RIDGE = 0.1
#: Taps under this fraction of the kernel's largest are cut (noise in the support).
KERNEL_FLOOR = 0.1
#: Alternations per pyramid level.
ITERATIONS = 5
#: A kernel lighting more than this many taps per px of its side is noise, not a path (a photo without edges to
#: read a blur from, or a longer shake): of 168 readings of 21 training photos (benchmarks/motion-estimate/), the 11
#: over 6.5 per px were poor (similarity 0.24-0.54) but one (0.68); under it, 2 of 157 were (0.58, 0.60).
MAX_TAPS_PER_SIDE = 6.5


#: A reading whose path spans at least this many px is checked against the kernels read on each half of the photo
#: (`halves_agreement`): long readings are the ones that go wrong, and the check triples the reading's time.
CHECK_EXTENT = 16
#: A checked reading whose halves agree with it by less than this (mean similarity) is a guess, not the photo's
#: shake: a true shake is the same in every part of the photo, a wrong path fits each part's noise differently.
MIN_HALF_AGREEMENT = 0.5
#: A checked reading that passes with agreement under this is said to be doubtful: of the 23 readings of 16 px or
#: more not spread like noise with agreement 0.5-0.7 (benchmarks/motion-long-shakes/reading.csv), 3 were poor
#: (similarity to the true kernel < 0.6), 9 fair (0.6-0.75) and 11 good; of the 26 at 0.7 or more, none was poor
#: and 5 fair. (It was 0.6, and a 47-px shake read as a 27-px path agreeing 0.65 restored ghosted unnoted.)
WEAK_HALF_AGREEMENT = 0.7


class MotionReading(NamedTuple):
    """A kernel read from a photo: `kernel` (size, size) float64, non-negative, summing to 1, centred on its centre
    of mass (`_centred`); `extent` the side (px) of the smallest square holding its taps; `taps` how many it
    lights; `agreement` the mean similarity (0-1) of the kernels read on the photo's halves with it
    (`halves_agreement`; None: not checked, a path under CHECK_EXTENT px or halves too small to read)."""

    kernel: np.ndarray
    extent: int
    taps: int
    agreement: float | None = None

    @property
    def noisy(self) -> bool:
        """Whether the kernel lights too many taps for a path (over MAX_TAPS_PER_SIDE per px of its side)."""
        return self.taps > MAX_TAPS_PER_SIDE * self.kernel.shape[0]

    @property
    def disagrees(self) -> bool:
        """Whether the photo's halves read other kernels (agreement under MIN_HALF_AGREEMENT)."""
        return self.agreement is not None and self.agreement < MIN_HALF_AGREEMENT

    @property
    def reliable(self) -> bool:
        """Neither spread like noise nor contradicted by the photo's halves."""
        return not (self.noisy or self.disagrees)


def kernel_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The largest normalised cross-correlation of two kernels over all shifts (a kernel is read up to a shift):
    in [0, 1] for non-negative kernels, 1 for the same path."""
    from scipy import signal

    return float(signal.correlate(a, b).max() / np.sqrt((a**2).sum() * (b**2).sum()))


def _fft2(a: np.ndarray) -> np.ndarray:
    import scipy.fft

    return scipy.fft.rfft2(a, workers=torch.get_num_threads())  # the threads torch may use (OMP_NUM_THREADS)


def _ifft2(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import scipy.fft

    return scipy.fft.irfft2(a, s=shape, workers=torch.get_num_threads())


def _otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The transfer function of `kernel` centred at the origin of a `shape` grid (circular)."""
    from operators.blur import circular_psf

    return _fft2(circular_psf(kernel, shape, shift=False))


def _gradients(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences along columns and rows, circular."""
    return np.roll(x, -1, axis=1) - x, np.roll(x, -1, axis=0) - x


def _latent(y: np.ndarray, kernel: np.ndarray, weight: float) -> np.ndarray:
    """argmin_x |k * x - y|² + weight |grad x|_0 by half-quadratic splitting: beta from 2 weight to 1e5, x2 a step;
    the gradients g kept where |grad x|² >= weight / beta, then x = (K^T y + beta D^T g) / (K^T K + beta D^T D)."""
    shape = y.shape
    k = _otf(kernel, shape)
    dx, dy = _otf(np.array([[1.0, -1.0, 0.0]]), shape), _otf(np.array([[1.0], [-1.0], [0.0]]), shape)  # x[i + 1] - x[i]
    data, k2, d2 = np.conj(k) * _fft2(y), np.abs(k) ** 2, np.abs(dx) ** 2 + np.abs(dy) ** 2
    x, beta = y, 2 * weight
    while beta < 1e5:
        gx, gy = _gradients(x)
        keep = gx**2 + gy**2 >= weight / beta
        edges = np.conj(dx) * _fft2(gx * keep) + np.conj(dy) * _fft2(gy * keep)
        x = _ifft2((data + beta * edges) / (k2 + beta * d2), shape)
        beta *= 2
    return x


def _kernel_step(x: np.ndarray, y: np.ndarray, size: int, inside: np.ndarray) -> np.ndarray:
    """argmin_k sum_d |d x * k - d y|² + ridge |k|² over all kernels (Fourier closed form; only the photo's own
    pixels, `inside`, count in d y), cut to the centred size x size square and cleaned (`_clean`)."""
    shape = y.shape
    sharp = [_fft2(g) for g in _gradients(x)]
    blurred = [_fft2(g * inside) for g in _gradients(y)]
    energy = sum(np.abs(s) ** 2 for s in sharp)
    if not energy.max() > 0:  # no edge at all (a flat image): nothing tells a path, the identity
        return _clean(np.zeros((size, size)))
    full = _ifft2(sum(np.conj(s) * b for s, b in zip(sharp, blurred)) / (energy + KERNEL_RIDGE * energy.mean()),
                  shape)
    r = size // 2
    return _clean(np.roll(full, (r, r), axis=(0, 1))[:size, :size])


def _clean(kernel: np.ndarray) -> np.ndarray:
    """Non-negative taps over KERNEL_FLOOR of the largest, islands under a tenth of the heaviest one's mass dropped,
    summing to 1 (a single centre tap where nothing is left)."""
    from scipy import ndimage

    k = np.maximum(np.nan_to_num(kernel), 0)
    if k.max() <= 0:
        k = np.zeros_like(k)
        k[k.shape[0] // 2, k.shape[1] // 2] = 1.0
        return k
    k[k < KERNEL_FLOOR * k.max()] = 0
    labels, n = ndimage.label(k > 0, structure=np.ones((3, 3)))
    if n > 1:
        mass = np.asarray(ndimage.sum(k, labels, range(1, n + 1)))
        k[np.isin(labels, 1 + np.flatnonzero(mass < 0.1 * mass.max()))] = 0
    return k / k.sum()


def _centred(kernel: np.ndarray) -> np.ndarray:
    """The kernel moved by whole pixels (no interpolation, which would blur it) so that its centre of mass is
    within half a pixel of its middle tap, where the square holds it: a blur is read up to a shift, which would
    move the restored image."""
    from scipy import ndimage

    c, (rows, cols) = kernel.shape[0] // 2, np.nonzero(kernel)
    cy, cx = ndimage.center_of_mass(kernel)
    dy = int(np.clip(round(c - cy), -rows.min(), kernel.shape[0] - 1 - rows.max()))
    dx = int(np.clip(round(c - cx), -cols.min(), kernel.shape[1] - 1 - cols.max()))
    return np.roll(kernel, (dy, dx), axis=(0, 1))


def _canvas(y: np.ndarray, margin: int) -> tuple[np.ndarray, tuple[int, int]]:
    """y mirrored by `margin` px on each side, the mirrored band blended (linearly, to the canvas's edge) into the
    canvas blurred circularly, so the canvas wraps around smoothly. Returns the canvas and the photo's (top, left)
    on it. (Padding further, to fast FFT lengths, read 1.5-2x faster but a little worse on the validation photos:
    the alternation is sensitive to its canvas.)"""
    from scipy import ndimage

    ext = np.pad(y, margin, mode="reflect" if min(y.shape) > margin else "symmetric")
    smooth = ndimage.gaussian_filter(ext, margin / 2, mode="wrap")

    def ramp(n: int) -> np.ndarray:  # 1 on the photo, falling to 0 at the canvas's edges
        i = np.arange(n)
        return np.clip(np.minimum(i, n - 1 - i) / margin, 0, 1)

    a = np.minimum(ramp(ext.shape[0])[:, None], ramp(ext.shape[1])[None])
    return a * ext + (1 - a) * smooth, (margin, margin)


def _resized(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from scipy import ndimage

    return ndimage.zoom(a, (shape[0] / a.shape[0], shape[1] / a.shape[1]), order=1, mode="nearest")


def largest_checked_size(height: int, width: int) -> int:
    """The largest odd square (px) whose reading `halves_agreement` can check on a height x width image (each half
    holds it twice, and 32 px); 0 where none."""
    side = min(height // 2, width // 2)
    return (side // 2 - 1) | 1 if side >= 32 and side // 2 >= 3 else 0


def halves_agreement(y: torch.Tensor, kernel: np.ndarray) -> float | None:
    """The mean `kernel_similarity` (0-1, 1: the same path) of `kernel` with the kernels read, in a square of its
    size, on each half of y (1, C, h, w): left, right, top and bottom. None where the halves are too small to read
    it (`largest_checked_size`), before any is read."""
    h, w = y.shape[-2:]
    if kernel.shape[0] > largest_checked_size(h, w):
        return None
    halves = (y[..., :, : w // 2], y[..., :, w // 2 :], y[..., : h // 2, :], y[..., h // 2 :, :])
    return float(np.mean([kernel_similarity(kernel, read_motion_kernel(half, kernel.shape[0], check=False).kernel)
                          for half in halves]))


def read_motion_kernel(y: torch.Tensor, size: int = MOTION_READ_SIZE, check: bool = True, *,
                       scaled: bool = True) -> MotionReading | None:
    """The motion-blur kernel of a blurred photo y (1, C, h, w) on [-1, 1], read on its luma, of at most `size` px
    (odd, 3-MAX_READ_SIZE; the shake's length must fit). None for an image too small to read (a side under 2 size
    or 32 px). check: a path of CHECK_EXTENT px or more is checked against the photo's halves (`halves_agreement`).
    scaled: a low-contrast photo's luma is scaled up (MIN_CONTRAST); where that reads a point (a dark photo's
    noise, scaled too, can drown a shake's edges: 0.25x exposures at noise 0.02 read "unblurred") it is read again
    as it is."""
    size = int(size)
    if size < 3 or size % 2 == 0 or size > MAX_READ_SIZE:
        raise ValueError(f"the kernel size read must be odd and in [3, {MAX_READ_SIZE}], got {size}")
    h, w = y.shape[-2:]
    if min(h, w) < max(32, 2 * size):
        return None
    from ncvsd_cli.images import LUMA_WEIGHTS

    rgb = (y[0].detach().double().clamp(-1, 1) + 1) / 2
    weights = rgb.new_tensor(LUMA_WEIGHTS if rgb.shape[0] == 3 else [1.0]).view(-1, 1, 1)
    luma = (rgb * weights).sum(0).cpu().numpy()
    low, high = np.percentile(luma, LUMA_RANGE)  # (L0_WEIGHT is on contrast: a dark photo's edges fell under it)
    gain = min(max(MIN_CONTRAST / max(high - low, 1e-9), 1.0), MAX_STRETCH) if scaled else 1.0
    luma = luma * gain
    levels = max(1, math.ceil(math.log(size / 3) / math.log(math.sqrt(2))) + 1)
    kernel = None
    for level in range(levels):
        scale = math.sqrt(0.5) ** (levels - 1 - level)
        side = max(3, round(size * scale) // 2 * 2 + 1)
        photo = _resized(luma, (max(16, round(h * scale)), max(16, round(w * scale)))) if scale < 1 else luma
        canvas, (top, left) = _canvas(photo, side)
        inside = np.zeros_like(canvas)
        inside[top:top + photo.shape[0], left:left + photo.shape[1]] = 1
        if kernel is None:  # a short horizontal stroke to start from
            kernel = np.zeros((side, side))
            kernel[side // 2, side // 2 - 1:side // 2 + 1] = 0.5
        else:
            kernel = _clean(_resized(kernel, (side, side)))
        for _ in range(ITERATIONS):
            kernel = _kernel_step(_latent(canvas, kernel, L0_WEIGHT), canvas, side, inside)
    rows, cols = np.nonzero(kernel)
    reading = MotionReading(_centred(kernel), int(max(np.ptp(rows), np.ptp(cols))) + 1, len(rows))
    if gain > 1 and reading.extent <= 2:
        return read_motion_kernel(y, size, check, scaled=False)
    return checked(y, reading) if check else reading


def checked(y: torch.Tensor, reading: MotionReading) -> MotionReading:
    """`reading` of y with its `agreement` (`halves_agreement`) where its path spans CHECK_EXTENT px or more and it
    is not spread like noise; else as it is."""
    if reading.agreement is None and reading.extent >= CHECK_EXTENT and not reading.noisy:
        return reading._replace(agreement=halves_agreement(y, reading.kernel))
    return reading
