"""The width of a Gaussian blur or the radius of a defocus disk, estimated from the blurred image alone
(docs/method.md §4.3, "Unknown blur width", "Defocus").

A maximum-likelihood fit of the expected power spectrum of the image's luminance,

    E|Y(f)|² = c · f^(−α) · |K(f)|² + n²,

natural images' power law (c, α) times the transfer |K(f)|² of the blur, exp(−4π²s²f²) for a Gaussian of std s px
or (2 J₁(2πRf) / 2πRf)² for a uniform disk of radius R px (whose zeros ring the spectrum), plus a noise floor n²:
under a stationary Gaussian model each periodogram value is exponential with that mean, so the fit maximises
Σ_f −log m(f) − P(f)/m(f) (type-II maximum likelihood, as in classical blur identification; Lagendijk, Tekalp and
Biemond 1990). A coarse grid over (s, α, c, n, β) finds the basin, L-BFGS-B (scipy) refines it; the disk's radius
is searched on a grid of RADIUS_STEP px. The two fits have as many parameters, so their likelihoods compare directly
(`read_blur`).

The spectrum cannot tell a blur from a sharp photo whose fine detail it explains as a noise floor (a sharp JPEG of
pyramids against a flat sky read 2.8 px and was deconvolved into a maze); the image's steepest edges can, as no
Gaussian blur of std s makes a one-pixel step larger than erf(1 / (2 √2 s)) of the contrast around it (a step edge's
slope). A reading their steepness rules out is capped (`edge_width`, `read_blur`).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from scipy.optimize import minimize
from scipy.special import erfinv

from ncvsd_cli.images import JpegCoding, centre_crop, jpeg_round_trip

#: Blur widths (px) the search covers; the operator's default 61-px kernel holds up to about 10.
MAX_SIGMA = 8.0
#: Images smaller than this (px, either side) are too small for a spectrum fit.
MIN_SIZE = 32
#: Larger images are read on their centre square of this side (px).
MAX_SIZE = 1024
#: A blur is reported only when it fits the spectrum at least this much better (log-likelihood) than none.
EVIDENCE_NATS = 2.0
#: What a disk must fit better beyond EVIDENCE_NATS: its search refines some 25 radii (`_defocus_fit`), and the
#: best of them fits pure noise better by chance (48 white-noise fields: up to 4.0 nats, 6 of 48 above 2; 1 of 48
#: when three radii were refined).
DISK_SEARCH_NATS = 2.5
#: Largest slope of the noise floor's spectrum (JPEG's error falls about as f^-1.3).
MAX_BETA = 1.5
#: Defocus radii (px) the search covers, on a grid of RADIUS_STEP px (a disk of radius R has per-axis std R/2).
MIN_RADIUS, MAX_RADIUS, RADIUS_STEP = 0.5, 16.0, 0.25
#: The disk fit refines the radii within this many px of the best whole-pixel one (`_defocus_fit`).
REFINE_SPAN = 0.75
_BINS = 48
#: Sub-bins per bin over which a disk's transfer is averaged (it has zeros: its value at a bin's centre is not
#: the bin's mean).
_SUB_BINS = 16
#: The steepest-edge check (`edge_width`): luminance smoothed by a Gaussian of EDGE_SMOOTH px (the noise's steps
#: shrink, an edge's slope little); steps where the range within the window around them is at least
#: EDGE_MIN_CONTRAST on the [-1, 1] scale; their EDGE_QUANTILE step / range ratio read as the steepest edges' slope;
#: a reading above EDGE_SLOPE x their width + EDGE_OFFSET px is ruled out. The slack covers what the bound leaves
#: out (fine lines are steeper than steps, noise steepens): on 30 training photos blurred by Gaussians of 1-6 px
#: and disks of 4-8 px (near-lossless, JPEG 90 / 50) their edges' widths read 0.6-1.2x a 2-6 px blur's std without
#: noise (1 px: 0-1.2x; a disk's half radius 0.7-1.3x), 0.5-1.1x with noise 0.08 where the gate below lets them be
#: read, sharp photos' 0-0.66 px (benchmarks/blur-edges/edges.md).
EDGE_SMOOTH, EDGE_MIN_CONTRAST, EDGE_QUANTILE, EDGE_SLOPE, EDGE_OFFSET = 1.0, 0.25, 0.99, 2.0, 1.0
#: Pixel-sharp edges (a drawing, a screenshot, a document): where the EDGE_QUANTILE step / range ratio is at least
#: SHARP_RATIO (a 1-px step after EDGE_SMOOTH gives 0.38) the reading is at most SHARP_LIMIT px, also under
#: EDGE_OFFSET. A flat-colour cartoon's spectrum read 1.04 px, let through at 1.0, and its outlines rang (12.9 dB
#: against the unblurred input; 20.9 at 0.7, 36.6 at 0.5). Its ratio read 0.46-0.48, a screenshot's and document
#: pages' 0.45-0.61; photos 0.36-0.43 unblurred (skimage's astronaut, coffee, chelsea, 2x-reduced crops), 0.29-0.37
#: at 0.7-1 px, a power-law field blurred 0.8 px 0.40.
SHARP_RATIO, SHARP_LIMIT = 0.44, 0.5
#: Above this noise level of the luminance (on the [-1, 1] scale; `_luma_noise`) its steps are the noise's and the
#: check gives no evidence: noise of 0.15-0.2 in each channel (luma 0.09-0.12) made true 6-px blurs read 4.4-5.8
#: (10 training photos, before this gate), while at 0.05 (luma 0.03) no limit fell under a true 4-8 px blur. A
#: noisy image restores with a strong prior anyway: a wrong width costs far less there than at a sharp photo's
#: low noise.
EDGE_MAX_NOISE = 0.04
#: Fewest edge steps the check needs; below, no reading is capped (a flat or low-contrast image).
EDGE_MIN_COUNT = 50


def _block_lines(h: int, w: int) -> torch.Tensor:
    """Frequencies (h, w) on the lines f_x or f_y = k/8, k = 1..4 (±1.5/size): where JPEG's 8x8 blocks put their
    artefacts."""
    def near(n: int) -> torch.Tensor:
        fr = torch.fft.fftfreq(n, dtype=torch.float64).abs()
        return ((fr[:, None] - torch.arange(1, 5, dtype=torch.float64) / 8).abs() < 1.5 / n).any(1)
    return near(h)[:, None] | near(w)[None]


class Spectrum(NamedTuple):
    """The binned periodogram: mean frequency f, mean power p and count n per used bin; `sub_f`, `sub_n` the
    centres and counts of _SUB_BINS log-spaced sub-bins of each used bin (used, _SUB_BINS)."""
    f: torch.Tensor
    p: torch.Tensor
    n: torch.Tensor
    sub_f: torch.Tensor
    sub_n: torch.Tensor


def _binned_periodogram(y: torch.Tensor) -> Spectrum:
    """The `Spectrum` in log-spaced radial bins from 4/min(h, w) to 0.5 cycles/px of the Hann-windowed luminance
    of y (1, C, h, w); the window keeps the image border out of the spectrum."""
    z = y[0].double().mean(0)
    h, w = z.shape
    win = torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64),
                      torch.hann_window(w, periodic=False, dtype=torch.float64))
    power = torch.fft.fft2((z - z.mean()) * win).abs().square() / win.square().sum()
    f = torch.sqrt(torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2
                   + torch.fft.fftfreq(w, dtype=torch.float64)[None] ** 2)
    lo, hi = 4.0 / min(h, w), 0.5
    keep = (f >= lo) & (f <= hi) & ~_block_lines(h, w)
    f = f[keep]
    bins = _BINS * _SUB_BINS
    edges = torch.logspace(math.log10(lo), math.log10(hi), bins + 1, dtype=torch.float64)
    sub = torch.bucketize(f, edges).clamp(1, bins) - 1
    sub_n = torch.zeros(bins, dtype=torch.float64).index_add_(0, sub, torch.ones_like(f)).view(_BINS, _SUB_BINS)
    index = sub // _SUB_BINS
    count = sub_n.sum(1)
    mean = lambda v: torch.zeros(_BINS, dtype=torch.float64).index_add_(0, index, v) / count.clamp(min=1)  # noqa: E731
    used = count > 0
    sub_f = torch.sqrt(edges[:-1] * edges[1:]).view(_BINS, _SUB_BINS)
    return Spectrum(mean(f)[used], mean(power[keep])[used], count[used], sub_f[used], sub_n[used])


#: Input powers (per periodogram value, on the [-1, 1] scale) at which a JPEG's gain is simulated, log-spaced: from
#: just above 8-bit rounding's (a weaker noise rounds to the same 127/128 pattern, about 1.5e-5) to a strong
#: texture's; below, the lowest level's gain.
_CODING_LEVELS = torch.logspace(-4.75, -1, 16, dtype=torch.float64)
#: Side (px) of the simulated images.
_CODING_SIZE = 512


@functools.lru_cache(maxsize=8)
def _coding_gains(coding: JpegCoding, colour_noise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(f, log gain (len(_CODING_LEVELS), bins)): how a JPEG coded with `coding` scales the binned spectrum (of the
    channels' mean) of a Gaussian white noise of each power in _CODING_LEVELS around mid-grey, rounded to 8 bits:
    grey (R = G = B, an image's detail) or, with `colour_noise`, independent in each channel (a sensor's noise):
    the mean periodogram after coding over the one before, one realisation per level (seed 0)."""
    rng = np.random.default_rng(0)
    gains, f = [], None
    channels = 3 if coding.colour else 1
    for level in _CODING_LEVELS.tolist():
        shape = (_CODING_SIZE, _CODING_SIZE, channels if colour_noise else 1)
        std = 127.5 * math.sqrt(level * (channels if colour_noise else 1))
        x = np.clip(np.rint(127.5 + std * rng.standard_normal(shape)), 0, 255).astype(np.uint8)
        x = np.repeat(x, channels // x.shape[-1], -1)
        decoded = jpeg_round_trip(x if channels == 3 else x[..., 0], coding).astype(np.float64).reshape(x.shape)
        spectra = [_binned_periodogram(torch.from_numpy(z / 127.5 - 1).permute(2, 0, 1)[None]) for z in (x, decoded)]
        f = spectra[0].f
        gains.append((spectra[1].p.clamp(min=1e-30) / spectra[0].p.clamp(min=1e-30)).log())
    return f, torch.stack(gains)


class CodingGain:
    """A JPEG's quantisation as a gain on the expected spectrum m(f) before coding: each frequency's power scaled by
    the gain that a grey Gaussian noise of that power gets (`_coding_gains`, simulated with the file's own tables
    and chroma subsampling), read at the spectrum's bins and, between the simulated levels, linearly in log power.
    Steps larger than a coefficient's spread zero it: a blurred or weak texture's finest frequencies and the noise
    on them vanish (the noise floor falls steeply above a knee), a strong texture passes."""

    def __init__(self, log_levels: torch.Tensor, log_gains: torch.Tensor):
        self.log_levels, self.log_gains = log_levels, log_gains  # (L,), (L, bins)

    @classmethod
    def of(cls, coding: JpegCoding, spectrum: Spectrum, colour_noise: bool = False) -> CodingGain:
        """The gain of `coding` at the bins of `spectrum` (`_coding_gains`)."""
        f, gains = _coding_gains(coding, colour_noise)
        at = [np.interp(spectrum.f.log().numpy(), f.log().numpy(), g.numpy()) for g in gains]
        return cls(_CODING_LEVELS.log(), torch.from_numpy(np.stack(at)))

    def __call__(self, log_m: torch.Tensor) -> torch.Tensor:
        """log gain [..., bins] at log powers log_m [..., bins] (the table's end values beyond its levels)."""
        step = float(self.log_levels[1] - self.log_levels[0])
        t = ((log_m - self.log_levels[0]) / step).clamp(0, len(self.log_levels) - 1)
        i = t.detach().floor().clamp(max=len(self.log_levels) - 2).long()
        w = t - i
        bins = torch.arange(log_m.shape[-1])
        return (1 - w) * self.log_gains[i, bins] + w * self.log_gains[i + 1, bins]


def _nll(nuisance: torch.Tensor, f: torch.Tensor, p: torch.Tensor, n: torch.Tensor,
         log_transfer: torch.Tensor, coded: tuple[CodingGain, CodingGain] | None = None) -> torch.Tensor:
    """−log-likelihood of binned powers p (counts n) for nuisance [..., 4] = (α, log c, log n², β) and the blur's
    log |K(f)|² (broadcast against [..., bins]): the floor n² f^(−β) (β in [0, MAX_BETA]; 0 = white noise, > 0 =
    compression's error, which falls with frequency); `coded`: the spectrum then passed a JPEG's quantisation
    (`CodingGain`)."""
    alpha, logc, logn2, beta = nuisance.unbind(-1)
    log_signal = logc[..., None] - alpha[..., None] * f.log() + log_transfer
    log_floor = logn2[..., None] - beta.clamp(0, MAX_BETA)[..., None] * f.log()
    if coded is not None:  # each part scaled by its kind's gain (detail: grey; noise: independent channels), both
        total = torch.logaddexp(log_signal, log_floor)  # at the total power: the quantiser acts on their sum
        log_signal, log_floor = log_signal + coded[0](total), log_floor + coded[1](total)
    m = log_signal.exp() + log_floor.exp()
    return (n * (m.log() + p / m)).sum(-1)


def _neg_log_likelihood(params: torch.Tensor, f: torch.Tensor, p: torch.Tensor, n: torch.Tensor,
                        coded: tuple[CodingGain, CodingGain] | None = None) -> torch.Tensor:
    """`_nll` of a Gaussian blur, params [..., 5] = (s², α, log c, log n², β). In s², not s, so that the slope does
    not vanish at s = 0 and a fit started there can leave it."""
    return _nll(params[..., 1:], f, p, n, -4 * math.pi**2 * params[..., :1] * f**2, coded)


def _nuisance_grid(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Coarse grid (G, 4) over (α, log c, log n², β): c relative to the lowest bins' level, n² up to the highest
    bins' level."""
    alpha = torch.arange(1.4, 4.01, 0.4, dtype=torch.float64)
    c0 = math.log(max(float(p[:4].mean() * f[:4].mean() ** 2), 1e-30))
    logc = c0 + torch.linspace(-6.0, 6.0, 21, dtype=torch.float64)
    logn2 = torch.linspace(math.log(1e-9), math.log(max(float(p[-4:].mean()) * 2, 2e-9)), 16, dtype=torch.float64)
    beta = torch.tensor([0.0, 0.75, MAX_BETA], dtype=torch.float64)
    return torch.cartesian_prod(alpha, logc, logn2, beta)


def _minimise(nll, start: torch.Tensor, bounds: list) -> tuple[float, np.ndarray]:
    """(value, argument) of L-BFGS-B (scipy) on nll (a torch function of a float64 vector) from `start`, or of
    `start` itself where the search did not improve on it."""
    def nll_and_grad(theta):
        t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        loss = nll(t)
        loss.backward()
        return float(loss.detach()), t.grad.numpy()

    res = minimize(nll_and_grad, start.numpy(), jac=True, method="L-BFGS-B", bounds=bounds)
    start_nll = float(nll(start))
    return (float(res.fun), res.x) if np.isfinite(res.fun) and res.fun <= start_nll else (start_nll, start.numpy())


#: Bounds of the refined nuisance (alpha, log c, log n², beta). alpha <= 4, the start grid's span (natural images'
#: spectra fall about as f^-2): at 6 a sharp image with a steep spectrum under JPEG's falling error floor mimicked a
#: Gaussian blur, and JPEGs of 3-4 px blurs could read 0 px (benchmarks/blur-alpha-bound/, training photos; PNG and
#: sharp readings unchanged).
_NUISANCE_BOUNDS = [(0.5, 4.0), (None, None), (None, None), (0.0, MAX_BETA)]


def _refine(start: torch.Tensor, f: torch.Tensor, p: torch.Tensor, n: torch.Tensor, max_v: float,
            coded: tuple[CodingGain, CodingGain] | None = None) -> tuple[float, float]:
    """(−log-likelihood, s²) of the Gaussian fit refined from the grid point `start`, with s² in [0, max_v]."""
    value, x = _minimise(lambda t: _neg_log_likelihood(t, f, p, n, coded), start,
                         [(0.0, max_v)] + _NUISANCE_BOUNDS)
    return value, float(x[0])


def _spectrum(y: torch.Tensor) -> Spectrum | None:
    """The `Spectrum` of y's centre (at most MAX_SIZE square: plenty of evidence in bounded time and memory; on the
    CPU, in fp32 from any device or dtype: the fit is small); None for images under MIN_SIZE px or flat ones."""
    if min(y.shape[-2:]) < MIN_SIZE:
        return None
    spectrum = _binned_periodogram(centre_crop(y.detach(), MAX_SIZE).to("cpu", torch.float32))
    return spectrum if float(spectrum.p.max()) > 1e-12 else None  # a flat image: no evidence of any blur


def _gaussian_fit(spectrum: Spectrum, coded: tuple[CodingGain, CodingGain] | None = None) -> tuple[float, float, float]:
    """(−log-likelihood, s px, −log-likelihood of the best fit without blur) of the Gaussian fit."""
    f, p, n = spectrum.f, spectrum.p, spectrum.n
    widths = torch.arange(0.0, MAX_SIGMA + 1e-9, 0.25, dtype=torch.float64)
    grid = _nuisance_grid(f, p)  # (G, 4)
    best_nll, best_at = [], []
    for width in widths:  # one width at a time keeps memory at |grid| x bins
        params = torch.cat([(width**2).expand(len(grid), 1), grid], dim=1)
        nll = _neg_log_likelihood(params, f, p, n, coded)
        k = int(nll.argmin())
        best_nll.append(float(nll[k]))
        best_at.append(params[k].clone())
    fit_nll, fit_v = _refine(best_at[int(np.argmin(best_nll))], f, p, n, MAX_SIGMA**2, coded)
    sharp_nll, _ = _refine(best_at[0], f, p, n, 0.0, coded)  # the best fit without any blur
    return fit_nll, math.sqrt(max(fit_v, 0.0)), sharp_nll


#: Grid (px) on which a disk kernel's transfer is computed by FFT and averaged over directions (`disk_transfer`).
_TRANSFER_GRID = 512


@functools.lru_cache(maxsize=128)
def disk_transfer(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(f, |K(f)|²): the transfer of the operator's disk of `radius` px (`operators.blur.disk_kernel`, each tap its
    pixel's coverage) averaged over the direction, on rings of width 1/_TRANSFER_GRID from 0 to 0.5 cycles/px. Close
    to (2 J₁(2πRf) / 2πRf)² times a pixel's own transfer, but exact for the sampled kernel (aliasing included)."""
    from operators.blur import disk_kernel

    n = _TRANSFER_GRID
    power = np.abs(np.fft.rfft2(disk_kernel(radius), s=(n, n))) ** 2
    f = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.rfftfreq(n)[None])
    ring = np.rint(f * n).astype(int).ravel()
    keep = ring <= n // 2
    total = np.bincount(ring[keep], weights=power.ravel()[keep])
    return np.arange(n // 2 + 1) / n, total / np.bincount(ring[keep])


def disk_log_transfer(radius: float, spectrum: Spectrum) -> torch.Tensor:
    """log |K(f)|² of the operator's disk of `radius` px (`disk_transfer`) averaged over each bin's sub-bins (its
    zeros fall inside bins; floored at 1e-30)."""
    rings, power = disk_transfer(float(radius))
    at = torch.from_numpy(np.interp(spectrum.sub_f.numpy(), rings, power))
    mean = (at * spectrum.sub_n).sum(1) / spectrum.sub_n.sum(1)
    return mean.clamp(min=1e-30).log()


def _defocus_fit(spectrum: Spectrum, coded: tuple[CodingGain, CodingGain] | None = None) -> tuple[float, float]:
    """(−log-likelihood, R px) of the disk fit: each radius's best point of the coarse nuisance grid, the nuisance
    refined (L-BFGS-B) at the three best of them, at every whole-pixel radius and then at the grid's radii within
    REFINE_SPAN px of the best refined one. The coarse grid alone ranks radii hundreds of nats off where the
    spectrum holds much evidence (a 256-px sky with a kite, disk of radius 4 px: radius 1 ranked above 4, which
    refined fits 54 nats better)."""
    f, p, n = spectrum.f, spectrum.p, spectrum.n
    grid = _nuisance_grid(f, p)
    coarse = {}
    for radius in np.arange(MIN_RADIUS, MAX_RADIUS + 1e-9, RADIUS_STEP):
        log_transfer = disk_log_transfer(float(radius), spectrum)
        nll = _nll(grid, f, p, n, log_transfer, coded)
        k = int(nll.argmin())
        coarse[float(radius)] = (float(nll[k]), grid[k], log_transfer)
    refined: dict[float, float] = {}

    def refine(radius: float) -> None:
        if radius in coarse and radius not in refined:
            _, start, lt = coarse[radius]
            refined[radius] = _minimise(lambda t: _nll(t, f, p, n, lt, coded), start, _NUISANCE_BOUNDS)[0]

    for radius in sorted(coarse, key=lambda r: coarse[r][0])[:3] + [r for r in coarse if r == int(r)]:
        refine(radius)
    best = min(refined, key=refined.get)
    for radius in np.arange(best - REFINE_SPAN, best + REFINE_SPAN + 1e-9, RADIUS_STEP):
        refine(float(radius))
    best = min(refined, key=refined.get)
    return refined[best], best


def _luma_noise(z: np.ndarray) -> float:
    """The noise std of luminance z (h, w) read from its finest diagonal Haar details, median(|HH|) / 0.6745
    (Donoho and Johnstone 1994): texture raises it, which only makes the edge check give up sooner."""
    h, w = (z.shape[0] // 2) * 2, (z.shape[1] // 2) * 2
    if h == 0 or w == 0:
        return 0.0
    hh = (z[0:h:2, 0:w:2] - z[0:h:2, 1:w:2] - z[1:h:2, 0:w:2] + z[1:h:2, 1:w:2]) / 2
    return float(np.median(np.abs(hh))) / 0.6745


def _edge_luma(y: torch.Tensor) -> torch.Tensor | None:
    """The luminance `edge_width` measures: y's centre (at most MAX_SIZE square) averaged over channels and smoothed
    by EDGE_SMOOTH px, float64 (h, w); None where it is noisier than EDGE_MAX_NOISE (`_luma_noise`)."""
    z = centre_crop(y.detach(), MAX_SIZE)[0].to("cpu", torch.float64).mean(0).numpy()
    return None if _luma_noise(z) > EDGE_MAX_NOISE else torch.from_numpy(gaussian_filter(z, EDGE_SMOOTH, mode="reflect"))


def _steepest_width(z: torch.Tensor | None, width: float) -> float | None:
    """`edge_width` of the luminance `_edge_luma` made (None: no evidence)."""
    return _ratio_width(_steepest_ratio(z, width))


def _ratio_width(r: float | None) -> float | None:
    """The std (px) of the Gaussian blur whose smoothed step edge has the one-pixel step / range ratio r: the
    width s with erf(1 / (2 √2 s)) = r, less EDGE_SMOOTH in quadrature (None for None)."""
    if r is None:
        return None
    s = 0.5 / (math.sqrt(2) * float(erfinv(min(max(r, 1e-9), 1 - 1e-9))))
    return math.sqrt(max(s**2 - EDGE_SMOOTH**2, 0.0))


def _steepest_ratio(z: torch.Tensor | None, width: float) -> float | None:
    """The EDGE_QUANTILE one-pixel step / range ratio of the luminance `_edge_luma` made (`edge_width`), or None."""
    if z is None:
        return None
    k = min(max(math.ceil(3 * width) + 1, 4), 25)
    ratios = []
    for lines in (z, z.T):  # steps along x, then along y
        if lines.shape[1] < 2 * k + 2:
            continue
        step = (lines[:, 1:] - lines[:, :-1]).abs()[:, k:lines.shape[1] - k - 1]
        high, low = F.max_pool1d(lines[None], 2 * k + 2, 1)[0], -F.max_pool1d(-lines[None], 2 * k + 2, 1)[0]
        contrast = high - low
        edge = contrast >= EDGE_MIN_CONTRAST
        ratios.append(step[edge] / contrast[edge])
    ratio = torch.cat(ratios) if ratios else torch.zeros(0)
    return None if len(ratio) < EDGE_MIN_COUNT else float(np.quantile(ratio.numpy(), EDGE_QUANTILE))


def edge_width(y: torch.Tensor, width: float) -> float | None:
    """The std (px, >= 0) of the Gaussian blur whose step edge is as steep as the steepest edges of image y
    (1, C, h, w) in [-1, 1] (its centre, at most MAX_SIZE square): ratio r of one-pixel luminance steps to the range
    within ±(3 `width` + 1) px along the step (the window a blur of `width` px needs to show its contrast, 4-25 px),
    at the EDGE_QUANTILE of steps with range >= EDGE_MIN_CONTRAST, as the width s with erf(1 / (2 √2 s)) = r, less the
    smoothing in quadrature. None with fewer than EDGE_MIN_COUNT such steps, or a luminance noisier than
    EDGE_MAX_NOISE (no evidence)."""
    return _steepest_width(_edge_luma(y), width)


def _limit(seen: float | None) -> float:
    return math.inf if seen is None else EDGE_SLOPE * seen + EDGE_OFFSET


def edge_limit(y: torch.Tensor, width: float) -> float:
    """The widest Gaussian blur (std, px) y's steepest edges allow for a reading of `width` px (`edge_width`):
    EDGE_SLOPE x their width + EDGE_OFFSET, or infinity where they give no evidence."""
    return _limit(edge_width(y, width))


def _edge_checked(luma, reads: list[float], scale: float = 1.0) -> tuple[float, int | None]:
    """(size, index): the first of `reads` (blur sizes, px: a std, or with `scale` 0.5 a radius) that the edges of
    the luminance `luma()` returns (`_edge_luma`, made on first use) allow (`edge_limit`; any std up to
    EDGE_OFFSET; SHARP_LIMIT where the edges are pixel-sharp) and its index; where they allow none, the first one's
    limit (as a size) and None."""
    limits = []
    for i, read in enumerate(reads):
        std, limit = scale * read, math.inf
        ratio = _steepest_ratio(luma(), std) if std > SHARP_LIMIT else None  # (one pass over the edges)
        if (ratio or 0.0) >= SHARP_RATIO:
            limit = SHARP_LIMIT / scale
        elif std > EDGE_OFFSET:
            limit = _limit(_ratio_width(ratio)) / scale
        limits.append(limit)
        if read <= limits[-1]:
            return read, i
    return limits[0], None


class BlurReading(NamedTuple):
    """What `read_blur` reads: the Gaussian fit's std `width` and the disk fit's `radius` (px; 0 where no blur
    shows, i.e. the fit is not EVIDENCE_NATS better than a sharp image, the disk DISK_SEARCH_NATS more; radius nan
    where the disk was not fitted),
    `defocus_nats` how much better (−log-likelihood) the disk fits than the Gaussian (negative: worse; nan where
    not fitted), over `frequencies` periodogram values (the evidence grows with them); `coded`: read through the
    file's JPEG coding (`CodingGain`), which fitted the spectrum better than the plain model (the width; `read_blur`
    may take it from the other model than the radius; `radius_coded` the same of the radius); `capped`: the width
    was lowered to what the image's steepest edges allow (`edge_limit`), the other model's reading where they
    allow that; `radius_capped` the same of the radius."""
    width: float
    radius: float
    defocus_nats: float
    frequencies: int
    coded: bool = False
    capped: bool = False
    radius_capped: bool = False
    radius_coded: bool = False


def _fits(spectrum: Spectrum, defocus: bool, coded: tuple[CodingGain, CodingGain] | None) -> tuple[float, ...]:
    """(Gaussian fit's −log-likelihood, its width, the sharp fit's, the disk fit's, its radius) of one model."""
    fit_nll, width, sharp_nll = _gaussian_fit(spectrum, coded)
    disk_nll, radius = _defocus_fit(spectrum, coded) if defocus else (math.nan, math.nan)
    return fit_nll, width, sharp_nll, disk_nll, radius


def read_blur(y: torch.Tensor, defocus: bool = True, coding: JpegCoding | None = None,
              edges: bool = True) -> BlurReading | None:
    """The blur read from image y (1, C, h, w) in [-1, 1] (module docstring): a Gaussian's std in [0, MAX_SIGMA]
    and, with `defocus`, a disk's radius in [MIN_RADIUS, MAX_RADIUS] on a RADIUS_STEP grid; None for images under
    MIN_SIZE px or without any variation. `coding`: y was decoded from a JPEG coded so (`images.jpeg_coding`); the
    spectrum is then also fitted through that coding (`CodingGain`), and that model is read where its best fit is
    at least EVIDENCE_NATS better (both have as many parameters): a noisy JPEG's blur otherwise reads far too small,
    as the coding strips the noise's finest frequencies (benchmarks/lossy-blur-reading/). Where the chosen model's
    Gaussian fit is worse than its own sharp fit (width 0: the search missed it; a 2-px blur of a cheetah's fur
    with noise 0.06 at quality 85 read 0 through the coding, its disk fitting best) the width is the other
    model's. About 4x slower, plus the coding's simulation once per process. With `edges`, a width or radius
    that the image's steepest edges rule out (`edge_limit`) is replaced by the other model's where they allow it,
    else by the limit (`BlurReading.capped`). Measured: `estimate_gaussian_blur`, `estimate_defocus_radius`. The
    fits differentiate with autograd, also inside a caller's torch.no_grad or torch.inference_mode."""
    with torch.inference_mode(False), torch.enable_grad():
        return _read_blur(y.clone() if y.is_inference() else y, defocus, coding, edges)


def _read_blur(y: torch.Tensor, defocus: bool = True, coding: JpegCoding | None = None,
               edges: bool = True) -> BlurReading | None:
    spectrum = _spectrum(y)
    if spectrum is None:
        return None
    models = [_fits(spectrum, defocus, None)]
    try:
        coded = None if coding is None else (CodingGain.of(coding, spectrum),
                                             CodingGain.of(coding, spectrum, colour_noise=coding.colour))
    except (OSError, ValueError, TypeError):  # Pillow cannot code with these tables: the plain reading stands
        coded = None
    if coded is not None:
        models.append(_fits(spectrum, defocus, coded))
    best_nll = [float(np.nanmin([m[0], m[3]])) for m in models]  # the better of the Gaussian and disk fits
    best = 1 if len(models) > 1 and best_nll[0] - best_nll[1] >= EVIDENCE_NATS else 0
    fit_nll, _, sharp_nll, disk_nll, _ = models[best]
    missed = len(models) > 1 and fit_nll > sharp_nll and models[1 - best][0] <= models[1 - best][2]
    gauss = 1 - best if missed else best  # a Gaussian of width 0 is the sharp fit: one worse than it is a missed
    blurred = lambda nll, sharp, more=0.0: sharp - nll >= EVIDENCE_NATS + more  # search; noise fits all alike
    # the width's model first, then the other unless its search missed; the radius's model first, then the other
    width_from = [gauss] + [j for j in range(len(models)) if j != gauss and models[j][0] <= models[j][2]]
    widths = [models[j][1] if blurred(models[j][0], models[j][2]) else 0.0 for j in width_from]
    radius_from = [best] + [j for j in range(len(models)) if j != best]
    radii = [models[j][4] if not defocus or blurred(models[j][3], models[j][2], DISK_SEARCH_NATS) else 0.0
             for j in radius_from]
    width, radius, pick, radius_pick = widths[0], radii[0], 0, 0
    if edges:
        luma = functools.cache(lambda: _edge_luma(y))  # made once, where a reading needs checking
        width, pick = _edge_checked(luma, widths)
        if defocus:
            radius, radius_pick = _edge_checked(luma, radii, scale=0.5)
            if radius_pick is None:  # the limit: on the radius grid
                radius = max(MIN_RADIUS, math.floor(radius / RADIUS_STEP) * RADIUS_STEP)
    return BlurReading(width, radius, models[gauss][0] - disk_nll, int(spectrum.n.sum()),
                       coded=width_from[pick or 0] == 1, capped=pick != 0, radius_capped=radius_pick != 0,
                       radius_coded=radius_from[radius_pick or 0] == 1)


def estimate_gaussian_blur(y: torch.Tensor) -> float | None:
    """The std (px, in [0, MAX_SIGMA]) of the Gaussian blur in image y (1, C, h, w) in [-1, 1]; None for images
    under MIN_SIZE px or without any variation. Measured (`benchmarks/blur_estimate.py`): validation photos at
    256 px blurred by the operator with mirrored edges, σ_y 0.05: true 1 / 2 / 3 / 4 px read 0.80-1.31 /
    1.88-2.06 / 2.88-3.06 / 3.91-4.29, unblurred 0-0.55 (a photo's own softness); PIL's GaussianBlur(r) saved
    as JPEG (quality 85) 15-18 % high for r >= 3. Assumes a stationary power-law spectrum: strongly textured or
    tiny images read less reliably; a defocus disk reads far too narrow (`estimate_defocus_radius`)."""
    reading = read_blur(y, defocus=False)
    return None if reading is None else reading.width


def estimate_defocus_radius(y: torch.Tensor) -> float | None:
    """The radius (px, in [MIN_RADIUS, MAX_RADIUS] on a RADIUS_STEP grid; 0 where no blur shows) of a defocus disk
    in image y (1, C, h, w) in [-1, 1]; None for images under MIN_SIZE px or without any variation. Measured on
    training photos at 256 px (`benchmarks/defocus.py`): disks of radius 2-8 px read to the grid step."""
    reading = read_blur(y)
    return None if reading is None else reading.radius
