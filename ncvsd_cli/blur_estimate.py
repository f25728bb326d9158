"""The width of a Gaussian blur, estimated from the blurred image alone (docs/method.md §4.3, "Unknown blur width").

A maximum-likelihood fit of the expected power spectrum of the image's luminance,

    E|Y(f)|² = c · f^(−α) · exp(−4π²s²f²) + n²,

natural images' power law (c, α) times the Gaussian transfer |K(f)|² of a blur of std s px, plus white noise n²:
under a stationary Gaussian model each periodogram value is exponential with that mean, so the fit maximises
Σ_f −log m(f) − P(f)/m(f) (type-II maximum likelihood, as in classical blur identification; Lagendijk, Tekalp and
Biemond 1990). A coarse grid over (s, α, c, n, β) finds the basin, L-BFGS-B (scipy) refines it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize

from ncvsd_cli.images import centre_crop

#: Blur widths (px) the search covers; the operator's default 61-px kernel holds up to about 10.
MAX_SIGMA = 8.0
#: Images smaller than this (px, either side) are too small for a spectrum fit.
MIN_SIZE = 32
#: Larger images are read on their centre square of this side (px).
MAX_SIZE = 1024
#: A blur is reported only when it fits the spectrum at least this much better (log-likelihood) than none.
EVIDENCE_NATS = 2.0
#: Largest slope of the noise floor's spectrum (JPEG's error falls about as f^-1.3).
MAX_BETA = 1.5
_BINS = 48


def _block_lines(h: int, w: int) -> torch.Tensor:
    """Frequencies (h, w) on the lines f_x or f_y = k/8, k = 1..4 (±1.5/size): where JPEG's 8x8 blocks put their
    artefacts."""
    def near(n: int) -> torch.Tensor:
        fr = torch.fft.fftfreq(n, dtype=torch.float64).abs()
        return ((fr[:, None] - torch.arange(1, 5, dtype=torch.float64) / 8).abs() < 1.5 / n).any(1)
    return near(h)[:, None] | near(w)[None]


def _binned_periodogram(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frequency, mean power, count) in log-spaced radial bins from 4/min(h, w) to 0.5 cycles/px of the
    Hann-windowed luminance of y (1, C, h, w); the window keeps the image border out of the spectrum."""
    z = y[0].double().mean(0)
    h, w = z.shape
    win = torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64),
                      torch.hann_window(w, periodic=False, dtype=torch.float64))
    power = torch.fft.fft2((z - z.mean()) * win).abs().square() / win.square().sum()
    f = torch.sqrt(torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2
                   + torch.fft.fftfreq(w, dtype=torch.float64)[None] ** 2)
    lo, hi = 4.0 / min(h, w), 0.5
    keep = (f >= lo) & (f <= hi) & ~_block_lines(h, w)
    edges = torch.logspace(math.log10(lo), math.log10(hi), _BINS + 1, dtype=torch.float64)
    index = (torch.bucketize(f[keep], edges).clamp(1, _BINS) - 1)
    count = torch.zeros(_BINS, dtype=torch.float64).index_add_(0, index, torch.ones_like(f[keep]))
    mean = lambda v: torch.zeros(_BINS, dtype=torch.float64).index_add_(0, index, v) / count.clamp(min=1)  # noqa: E731
    used = count > 0
    return mean(f[keep])[used], mean(power[keep])[used], count[used]


def _neg_log_likelihood(params: torch.Tensor, f: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """−log-likelihood of binned powers p (counts n) for params [..., 5] = (s², α, log c, log n², β): the floor
    n² f^(−β) (β in [0, MAX_BETA]; 0 = white noise, > 0 = compression's error, which falls with frequency). In s²,
    not s, so that the slope does not vanish at s = 0 and a fit started there can leave it."""
    v, alpha, logc, logn2, beta = params.unbind(-1)
    logm = logc[..., None] - alpha[..., None] * f.log() - 4 * math.pi**2 * v[..., None] * f**2
    m = logm.exp() + (logn2[..., None] - beta.clamp(0, MAX_BETA)[..., None] * f.log()).exp()
    return (n * (m.log() + p / m)).sum(-1)


def _refine(start: torch.Tensor, f: torch.Tensor, p: torch.Tensor, n: torch.Tensor,
            max_v: float) -> tuple[float, float]:
    """(−log-likelihood, s²) after L-BFGS-B (scipy) from the grid point `start`, with s² in [0, max_v]."""
    def nll_and_grad(theta):
        t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        loss = _neg_log_likelihood(t, f, p, n)
        loss.backward()
        return float(loss.detach()), t.grad.numpy()

    bounds = [(0.0, max_v), (0.5, 6.0), (None, None), (None, None), (0.0, MAX_BETA)]
    res = minimize(nll_and_grad, start.numpy(), jac=True, method="L-BFGS-B", bounds=bounds)
    start_nll = float(_neg_log_likelihood(start, f, p, n))
    return (float(res.fun), float(res.x[0])) if np.isfinite(res.fun) and res.fun <= start_nll else \
        (start_nll, float(start[0]))


def estimate_gaussian_blur(y: torch.Tensor) -> float | None:
    """The std (px, in [0, MAX_SIGMA]) of the Gaussian blur in image y (1, C, h, w) in [-1, 1]; None for images
    under MIN_SIZE px or without any variation. Measured (`benchmarks/blur_estimate.py`): validation photos at
    256 px blurred by the operator with mirrored edges, σ_y 0.05: true 1 / 2 / 3 / 4 px read 0.80-1.31 /
    1.88-2.06 / 2.88-3.06 / 3.91-4.29, unblurred 0-0.55 (a photo's own softness); PIL's GaussianBlur(r) saved
    as JPEG (quality 85) 15-18 % high for r >= 3. Assumes a stationary power-law spectrum: strongly textured or
    tiny images read less reliably."""
    if min(y.shape[-2:]) < MIN_SIZE:
        return None
    # the centre, at most MAX_SIZE square, holds plenty of evidence in bounded time and memory (on the CPU, in fp32
    # from any device or dtype: the fit is small)
    f, p, n = _binned_periodogram(centre_crop(y.detach(), MAX_SIZE).to("cpu", torch.float32))
    if not float(p.max()) > 1e-12:  # a flat image: no evidence of any blur
        return None
    # Coarse grid: c relative to the lowest bins' level, n² up to the highest bins' level.
    widths = torch.arange(0.0, MAX_SIGMA + 1e-9, 0.25, dtype=torch.float64)
    alpha = torch.arange(1.4, 4.01, 0.4, dtype=torch.float64)
    c0 = math.log(max(float(p[:4].mean() * f[:4].mean() ** 2), 1e-30))
    logc = c0 + torch.linspace(-6.0, 6.0, 21, dtype=torch.float64)
    logn2 = torch.linspace(math.log(1e-9), math.log(max(float(p[-4:].mean()) * 2, 2e-9)), 16, dtype=torch.float64)
    beta = torch.tensor([0.0, 0.75, MAX_BETA], dtype=torch.float64)
    grid = torch.cartesian_prod(alpha, logc, logn2, beta)  # (A·C·N·B, 4)
    best_nll, best_at = [], []
    for width in widths:  # one width at a time keeps memory at |grid| x bins
        params = torch.cat([(width**2).expand(len(grid), 1), grid], dim=1)
        nll = _neg_log_likelihood(params, f, p, n)
        k = int(nll.argmin())
        best_nll.append(float(nll[k]))
        best_at.append(params[k].clone())
    fit_nll, fit_v = _refine(best_at[int(np.argmin(best_nll))], f, p, n, MAX_SIGMA**2)
    sharp_nll, _ = _refine(best_at[0], f, p, n, 0.0)  # the best fit without any blur
    if sharp_nll - fit_nll < EVIDENCE_NATS:  # e.g. pure noise: every width fits alike
        return 0.0
    return math.sqrt(max(fit_v, 0.0))
