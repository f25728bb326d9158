"""Classical (network-free) baselines for the inverse problems, with the library's sampler signature.

`fn(denoiser, operator, y, sigmas=None, *, generator=None, callback=None, sigma_y=0.05, ...) -> SamplerResult`.
The denoiser, sigmas and generator are ignored (they may be None); every baseline is deterministic. Results are
images in [-1, 1] (clipped, so metrics see what a user would save). NFE is 0. `operator_evals` counts
applications of A, Aᵀ, A⁺ or an equivalent closed-form filter per image: bicubic 0, biharmonic 0, nl-means 0, Wiener/Tikhonov
1 (one Fourier-domain filter; boundary "reflect": 4 + 2 per conjugate-gradient iteration), pseudo-inverse 1.

- `bicubic` (sr2/sr4/sr8): PyTorch bicubic interpolation (Keys a = -0.75, clamped taps) of the low-resolution y
  at the positions where the operator took its samples (centred when s does not divide the size; the picked
  pixel for the nearest kernels, `kernel_shift`).
- `wiener` (circular blurs): X = conj(K)·Y / (|K|² + sigma_y² / P(f)) with the operator's kernel spectrum K and an
  image prior power spectrum P(f) = c / (|f|² + f0²)^(exponent/2), f in cycles per pixel, f0 = 1/max(H, W).
  prior "fitted" (the default): c and the exponent (1-4, steps of 0.25) fitted to each image's own periodogram,
  maximising Whittle's likelihood of y = k ⊛ x + n (Σ_f log m(f) + I(f)/m(f), m = |K|²P + sigma_y², over the
  frequencies the blur passes, |K|² > 0.05, y Hann-windowed; the classical parametric Wiener filter): photos
  differ, a grainy scan reads 2.5, a smooth animal photo 3.25. prior "power-law": c set so that the mean of P over
  all frequencies (the per-pixel variance, by Parseval) is prior_std² (0.5² = sigma_data² by default) and the
  given exponent (2: the classic 1/|f|² of natural images); PnP-GD's warm start uses this one, with exponent 2,
  as it was tuned with it.
- `tikhonov` (circular blurs): the same with a flat prior P(f) = prior_std², i.e. argmin |k*x - y|²/sigma_y² +
  |x|²/prior_std² (ridge regression towards mid-grey). With boundary "reflect" both solve on the canvas (image and
  margin) with only the image measured (`CircularBlur.deconvolve`, conjugate gradients).
- `biharmonic` (inpainting): scikit-image's `inpaint_biharmonic` fills the unknown pixels (mask 0), per image,
  channels together when the mask is the same in every channel; known pixels keep the (noisy) measurement. The
  fill sees the known pixels smoothed at a scale of the hole's radius / 32 (normalised Gaussian convolution over
  known pixels only; `smoothed_boundary`): biharmonic extrapolation amplifies the noise and texture at a large
  hole's edge into coloured blobs (swings of 3-5 sigma_y into a 65-px hole of a flat grey measured at sigma_y
  0.05); an image whose holes are all a few pixels wide (radius < 16, e.g. inpaint-random) is filled from the raw
  pixels. The scale comes from the largest hole: a mask with one large hole smooths the edges of its small ones too.
- `nl_means` (denoising): scikit-image's non-local means (Buades et al., CVPR 2005; `denoise_nl_means`, fast
  mode, 5x5 patches searched within 6 px, colour channels together) with the known sigma_y subtracted from the patch
  distances and a filtering strength h = `nl_means_strength(sigma_y)` x sigma_y.
- `pseudo_inverse` (any operator): `operator.pseudo_inverse(y)` (denoise: y; phase retrieval: mid-grey).
- `classical` picks one of the above by operator type (extras["method"] says which); `applies(method, operator)`
  says whether a baseline handles an operator (the specific ones raise ValueError otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ncvsd_cli.sampling.common import SamplerResult
from operators.blur import CircularBlur
from operators.inpainting import MaskOperator
from operators.resize import Downsample, kernel_shift
from operators.simple import Denoise

#: Noise floor used by the Wiener/Tikhonov filters when sigma_y = 0, so that the inverse stays bounded.
SIGMA_Y_FLOOR = 1e-3
#: Smoothing of the known pixels the biharmonic fill extrapolates, in px per px of hole radius (largest distance
#: of a hole pixel to a known one); below 0.5 px none (benchmarks/inpaint-fill/).
FILL_SMOOTHING_PER_RADIUS = 1 / 32


def _finish(x: torch.Tensor, y: torch.Tensor, method: str, operator_evals: int,
            callback: Callable[[dict], None] | None, **extras: Any) -> SamplerResult:
    x = x.to(y.dtype).clamp(-1, 1)
    if callback is not None:
        callback({"i": 0, "x": x, "x0": x})
    return SamplerResult(x=x, nfe=0, operator_evals=operator_evals, extras={"method": method, **extras})


def _require(operator, cls: type, method: str, what: str) -> None:
    if not isinstance(operator, cls):  # ValueError: the CLI reports it as a usage error (exit 2)
        raise ValueError(  # noqa: TRY004
            f"method '{method}' needs {what}, got operator '{getattr(operator, 'name', operator)}'; "
            "use 'classical' to pick the baseline that fits the operator")


def bicubic(denoiser: Any, operator, y: torch.Tensor, sigmas: Any = None, *, generator: Any = None,
            callback: Callable[[dict], None] | None = None, sigma_y: float = 0.05,
            class_labels: Any = None) -> SamplerResult:
    """Bicubic upsampling of the low-resolution measurement y (B, C, h, w) to (B, *operator.image_shape).

    Super-resolution operators only (sr2, sr4, sr8). sigma_y is accepted for a uniform signature and unused.
    """
    _require(operator, Downsample, "bicubic", "a super-resolution operator (sr2, sr4, sr8)")
    _, h, w = operator.image_shape
    s, kernel = int(operator.factor), getattr(operator, "kernel", "bicubic")  # F.interpolate when s divides h, w
    gx, gy = (_lowres_coordinates(n, n_out, s, kernel_shift(n, s, kernel)).to(y)
              for n, n_out in ((w, y.shape[-1]), (h, y.shape[-2])))
    grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1).expand(y.shape[0], h, w, 2)
    x = F.grid_sample(y, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return _finish(x, y, "bicubic", 0, callback)


def _lowres_coordinates(n: int, n_out: int, s: int, shift: float = 0.0) -> torch.Tensor:
    """Where each of n high-resolution pixel centres lies on the n_out low-resolution pixels, normalised to
    [-1, 1] (align_corners=False): the inverse of the point the operator samples, p_i + shift with
    p_i = (i + 0.5 - delta)·s - 0.5, delta = (n_out - n/s)/2 and shift = `kernel_shift` (operators/resize.py)."""
    delta = (n_out - n / s) / 2
    src = (torch.arange(n, dtype=torch.float64) + 0.5 - shift) / s + delta - 0.5
    return (2 * src + 1) / n_out - 1


def _power_spectrum(shape: tuple[int, int], exponent: float, prior_std: float) -> torch.Tensor:
    """P(f) on the rfft2 grid of an (H, W) image (module docstring), float64, mean over the full grid = prior_std²."""
    h, w = shape
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    p_full = (fy**2 + fx**2 + (1.0 / max(h, w)) ** 2) ** (-exponent / 2)
    p_full = p_full * prior_std**2 / p_full.mean()
    return p_full[:, : w // 2 + 1]


#: Exponents the fitted Wiener prior chooses from (`fitted_power`), and its log-scale grid (coarse, then refined).
FIT_EXPONENTS = torch.arange(1.0, 4.01, 0.25, dtype=torch.float64)
FIT_LOG_SCALES = torch.arange(-30.0, 4.01, 0.5, dtype=torch.float64)
#: The fit reads the frequencies where the blur keeps at least this much power (|K|²): elsewhere y is noise only.
FIT_PASSBAND = 0.05
#: Larger images are fitted on their centre square of this side (px): memory and time stay bounded; smaller than
#: FIT_MIN_SIDE, the fixed power law is used (a 2-px Hann window is all zeros).
FIT_MAX_SIDE = 512
FIT_MIN_SIDE = 8


def fitted_power(operator, y: torch.Tensor, sigma_y: float) -> tuple[torch.Tensor, float]:
    """(P on the canvas's rfft2 grid, exponent) of the power law c / (|f|² + f0²)^(e/2) that best explains one
    image y (1, C, H, W) blurred by `operator` under noise sigma_y (module docstring, "fitted"; channels share it).
    Fitted on y's own grid: the reflect canvas's wrap-around edges would read as unblurred detail. P(0) is
    infinite: the fit does not read the image's mean, which the blur keeps, so the filter keeps it too (a flat grey
    200 came out 149 when P(0) followed the power law). Where nothing of the image stands above the noise (the
    scale at the grid's floor), or its side is under FIT_MIN_SIDE, the fixed 1/|f|² prior (exponent 2) is used."""
    from ncvsd_cli.images import centre_crop
    from operators.blur import circular_psf

    rows, cols = operator.psf.shape[-2:]
    fixed = _power_spectrum((rows, cols), 2.0, 0.5), 2.0
    z = centre_crop(y, FIT_MAX_SIDE).to(torch.float64).cpu()
    h, w = z.shape[-2:]
    if min(h, w) < FIT_MIN_SIDE:
        return fixed
    z = z - z.mean(dim=(-2, -1), keepdim=True)
    window = torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64),
                         torch.hann_window(w, periodic=False, dtype=torch.float64))
    periodogram = (torch.fft.rfft2(z * window).abs() ** 2 / (window**2).sum())[0]  # (C, h, w//2+1)
    k2 = torch.fft.rfft2(torch.from_numpy(circular_psf(operator.kernel, (h, w), operator.shift))).abs() ** 2

    def f2(rows: int, cols: int) -> torch.Tensor:
        return torch.fft.fftfreq(rows, dtype=torch.float64)[:, None] ** 2 + \
            torch.fft.rfftfreq(cols, dtype=torch.float64)[None, :] ** 2

    grid = f2(h, w)
    keep = (grid > 0) & (k2 > FIT_PASSBAND)
    if not keep.any():  # a blur that passes nothing of this image
        return fixed
    noise, g = max(float(sigma_y), SIGMA_Y_FLOOR) ** 2, grid[keep] + 1.0 / max(h, w) ** 2
    channels, power = periodogram.shape[0], periodogram[:, keep].sum(0)  # Σ_c I_c: the channels share m

    def fit(e: float, logs: torch.Tensor) -> tuple[float, float]:
        """(the smallest negative log-likelihood, its log c) over `logs` for exponent e."""
        m = torch.exp(logs)[:, None] * (k2[keep] * g ** (-e / 2))[None] + noise  # (L, F)
        nll = (channels * torch.log(m) + power / m).sum(-1)
        return float(nll.min()), float(logs[int(nll.argmin())])

    def refined(e: float) -> tuple[float, float]:  # the coarse scale grid, then steps of 0.05 around its best
        _, log_c = fit(e, FIT_LOG_SCALES)
        return fit(e, log_c + torch.linspace(-0.5, 0.5, 21, dtype=torch.float64))

    _, log_c, e = min((*refined(float(e)), float(e)) for e in FIT_EXPONENTS)
    if log_c < float(FIT_LOG_SCALES[1]):  # no texture above the noise: nothing to fit
        return fixed
    power = math.exp(log_c) * (f2(rows, cols) + 1.0 / max(rows, cols) ** 2) ** (-e / 2)
    power[0, 0] = math.inf  # the mean: kept as measured
    return power, e


def wiener(denoiser: Any, operator, y: torch.Tensor, sigmas: Any = None, *, generator: Any = None,
           callback: Callable[[dict], None] | None = None, sigma_y: float = 0.05, prior: str = "fitted",
           exponent: float = 2.0, prior_std: float = 0.5, class_labels: Any = None) -> SamplerResult:
    """Wiener deconvolution for circular blur operators (deblur-gauss, deblur-motion, deblur-kernel).

    y: (B, C, H, W) blurred, noisy image in [-1, 1]. sigma_y >= 0: measurement noise std on the [-1, 1] scale
    (values below 1e-3 use 1e-3). prior: "fitted" (default: a power law fitted to each image, `fitted_power`),
    "power-law" (P ∝ 1/(|f|² + f0²)^(exponent/2), exponent > 0, default 2, scaled to prior_std) or "flat"
    (Tikhonov). prior_std > 0: prior pixel standard deviation (default 0.5 = sigma_data; not used by "fitted").
    """
    _require(operator, CircularBlur, "wiener" if prior != "flat" else "tikhonov",
             "a circular blur operator (deblur-gauss, deblur-motion, deblur-kernel)")
    if sigma_y < 0:
        raise ValueError(f"sigma_y must be >= 0, got {sigma_y}")
    if not prior_std > 0:
        raise ValueError(f"prior_std must be > 0, got {prior_std}")
    if not exponent > 0:
        raise ValueError(f"exponent must be > 0, got {exponent}")
    if prior not in ("fitted", "power-law", "flat"):
        raise ValueError(f"prior must be 'fitted', 'power-law' or 'flat', got {prior!r}")
    h, w = operator.psf.shape[-2:]  # the canvas: the image, or the image and its margin (boundary "reflect")
    noise = max(float(sigma_y), SIGMA_Y_FLOOR) ** 2
    dtype = torch.float64 if operator.boundary == "circular" else y.dtype  # CG on a large canvas: y's precision
    if prior == "fitted":  # one fit per image, solved one by one
        fits = [fitted_power(operator, y[i:i + 1], sigma_y) for i in range(y.shape[0])]
        parts = [(y[i:i + 1], power) for i, (power, _) in enumerate(fits)]
        extras: dict[str, Any] = {"exponent": [e for _, e in fits]}
    else:
        parts = [(y, _power_spectrum((h, w), exponent, prior_std) if prior == "power-law"
                  else torch.full((h, w // 2 + 1), prior_std**2, dtype=torch.float64))]
        extras = {"exponent": exponent if prior == "power-law" else None, "prior_std": prior_std}
    xs, evals = [], 0  # evals per image: the most any part took
    for part, power in parts:  # (|K|² + σ²/P)⁻¹ Kᵀy
        xs.append(operator.deconvolve(part.to(dtype), (noise / power).to(device=y.device, dtype=dtype)))
        evals = max(evals, 1 if operator.boundary == "circular" else operator.last_evals)
    return _finish(torch.cat(xs), y, "tikhonov" if prior == "flat" else "wiener", evals, callback, prior=prior,
                   sigma_y=float(sigma_y), **extras)


def tikhonov(denoiser: Any, operator, y: torch.Tensor, sigmas: Any = None, *, generator: Any = None,
             callback: Callable[[dict], None] | None = None, sigma_y: float = 0.05, prior_std: float = 0.5,
             class_labels: Any = None) -> SamplerResult:
    """Tikhonov deconvolution: `wiener` with a flat prior spectrum (prior_std² at every frequency)."""
    return wiener(denoiser, operator, y, sigmas, generator=generator, callback=callback, sigma_y=sigma_y,
                  prior="flat", prior_std=prior_std)


def biharmonic(denoiser: Any, operator, y: torch.Tensor, sigmas: Any = None, *, generator: Any = None,
               callback: Callable[[dict], None] | None = None, sigma_y: float = 0.05,
               class_labels: Any = None) -> SamplerResult:
    """Biharmonic inpainting (scikit-image) of the unknown pixels of y (B, C, H, W); inpainting operators only."""
    from skimage.restoration import inpaint_biharmonic

    _require(operator, MaskOperator, "biharmonic", "an inpainting operator (inpaint-box, inpaint-random, "
                                                   "inpaint-mask)")
    c = y.shape[1]
    known = operator.mask.detach().cpu().numpy()[0] > 0.5  # (1 or C, H, W), True = known
    known = np.broadcast_to(known, (c, *known.shape[1:]))
    same = bool((known == known[:1]).all())
    images = y.detach().cpu().numpy().astype(np.float64)
    if not known.any():  # nothing measured: the prior mean, mid-grey (as the pseudo-inverse)
        return _finish(torch.zeros_like(y), y, "biharmonic", 0, callback)
    out = images.copy()
    for b in range(images.shape[0]):
        if not (~known).any():
            break
        if same:
            source = smoothed_boundary(images[b], known[0])
            filled = inpaint_biharmonic(source.transpose(1, 2, 0), ~known[0], channel_axis=-1)
            out[b] = np.where(known, images[b], filled.transpose(2, 0, 1))
        else:  # a different mask per channel: one grey problem per channel
            for ch in range(c):
                if (~known[ch]).any():
                    filled = (inpaint_biharmonic(smoothed_boundary(images[b, ch:ch + 1], known[ch])[0], ~known[ch])
                              if known[ch].any() else 0.0)
                    out[b, ch] = np.where(known[ch], images[b, ch], filled)
    return _finish(torch.from_numpy(out).to(y.device), y, "biharmonic", 0, callback)


def smoothed_boundary(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """`image` (C, H, W) with its known pixels (`known` (H, W), True = known) replaced by their Gaussian average
    over known pixels only (normalised convolution), at FILL_SMOOTHING_PER_RADIUS x the hole radius; unchanged when
    that is under 0.5 px. What the biharmonic fill extrapolates from; the output keeps the measured pixels."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    scale = FILL_SMOOTHING_PER_RADIUS * float(distance_transform_edt(~known).max())
    if scale < 0.5 or not known.any():
        return image
    weight = known.astype(image.dtype)
    norm = gaussian_filter(weight, scale, mode="reflect")
    smooth = np.stack([gaussian_filter(ch * weight, scale, mode="reflect") for ch in image])
    # A known pixel has weight >= its own Gaussian tap, so norm > 0 wherever it is used.
    return np.where(known, smooth / np.maximum(norm, 1e-12), image)


def nl_means_strength(sigma_y: float) -> float:
    """Non-local means' h in units of sigma_y: 0.8 up to sigma_y 0.05, falling linearly to 0.5 at 0.2 and above.
    The best of 0.4-0.9 on five scikit-image training photos (256 px, seed 0) was 0.7-0.9 at sigma_y 0.02-0.05, 0.6-0.8
    at 0.1, 0.5-0.6 at 0.2-0.3 (benchmarks/nl-means/); this rule is within 0.4 dB of it on each."""
    return float(np.clip(0.8 - 2.0 * (sigma_y - 0.05), 0.5, 0.8))


def nl_means(denoiser: Any, operator, y: torch.Tensor, sigmas: Any = None, *, generator: Any = None,
             callback: Callable[[dict], None] | None = None, sigma_y: float = 0.05,
             class_labels: Any = None) -> SamplerResult:
    """Non-local means denoising (scikit-image, module docstring) of y (B, C, H, W) in [-1, 1] with noise std
    sigma_y >= 0 on that scale (0 returns y); the denoising operator only."""
    from skimage.restoration import denoise_nl_means

    _require(operator, Denoise, "nl-means", "the denoising operator (denoise)")
    if not sigma_y >= 0:
        raise ValueError(f"sigma_y must be >= 0, got {sigma_y}")
    if sigma_y == 0:
        return _finish(y.clone(), y, "nl-means", 0, callback, h=0.0)
    h = nl_means_strength(sigma_y) * sigma_y
    images = y.detach().cpu().numpy().astype(np.float64).transpose(0, 2, 3, 1)  # (B, H, W, C)
    out = np.stack([denoise_nl_means(im, h=h, sigma=sigma_y, fast_mode=True, patch_size=5, patch_distance=6,
                                     channel_axis=-1) for im in images])
    x = torch.from_numpy(out.transpose(0, 3, 1, 2).copy()).to(y.device)
    return _finish(x, y, "nl-means", 0, callback, h=h)


def pseudo_inverse(denoiser: Any, operator, y: torch.Tensor, sigmas: Any = None, *, generator: Any = None,
                   callback: Callable[[dict], None] | None = None, sigma_y: float = 0.05,
                   class_labels: Any = None) -> SamplerResult:
    """operator.pseudo_inverse(y) for any operator (denoise: y itself; phase retrieval: mid-grey)."""
    with torch.no_grad():
        x = operator.pseudo_inverse(y)
    return _finish(x, y, "pseudo-inverse", 1, callback)


def classical(denoiser: Any, operator, y: torch.Tensor, sigmas: Any = None, *, generator: Any = None,
              callback: Callable[[dict], None] | None = None, sigma_y: float = 0.05,
              class_labels: Any = None) -> SamplerResult:
    """The classical baseline that fits the operator: bicubic (super-resolution), wiener (circular blur),
    biharmonic (inpainting), nl_means (denoise), otherwise pseudo_inverse (phase retrieval, plug-in operators)."""
    if isinstance(operator, Downsample):
        fn = bicubic
    elif isinstance(operator, CircularBlur):
        fn = wiener
    elif isinstance(operator, MaskOperator):
        fn = biharmonic
    elif isinstance(operator, Denoise):
        fn = nl_means
    else:
        fn = pseudo_inverse
    return fn(denoiser, operator, y, sigmas, generator=generator, callback=callback, sigma_y=sigma_y)


#: The operator class each specific baseline needs (the others handle any operator).
_NEEDS: dict[str, type] = {"bicubic": Downsample, "wiener": CircularBlur, "tikhonov": CircularBlur,
                           "biharmonic": MaskOperator, "nl-means": Denoise}


def applies(method: str, operator) -> bool:
    """Whether baseline `method` (a key of CLASSICAL_METHODS) handles `operator`; ValueError for unknown names."""
    if method not in CLASSICAL_METHODS:
        raise ValueError(f"unknown classical method {method!r}; known: {', '.join(CLASSICAL_METHODS)}")
    return method not in _NEEDS or isinstance(operator, _NEEDS[method])


#: name -> baseline, for registries (sampling.METHODS registers these names with needs="none").
CLASSICAL_METHODS: dict[str, Callable[..., SamplerResult]] = {
    "classical": classical, "bicubic": bicubic, "wiener": wiener, "tikhonov": tikhonov, "biharmonic": biharmonic,
    "nl-means": nl_means, "pseudo-inverse": pseudo_inverse,
}
