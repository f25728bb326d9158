"""Classical baselines (ncvsd_cli/sampling/classical.py): shapes, ranges, dispatch, and that each one helps."""

import math

import numpy as np
import pytest
import torch

import operators
from ncvsd_cli.metrics import psnr
from ncvsd_cli.sampling import classical as C
from ncvsd_cli.sampling.common import SamplerResult
from operators.resize import KERNELS

SHAPE = (3, 21, 19)  # odd, non-square


def _op(name: str, shape=SHAPE, **params):
    if name == "inpaint-mask":
        mask = np.ones(shape[1:])
        mask[5:9, 3:12] = 0
        params.setdefault("mask", mask)
    if name == "deblur-kernel":
        params.setdefault("kernel", np.outer([1.0, 2.0, 1.0], [1.0, 4.0, 6.0, 4.0, 1.0]))
    if name in ("deblur-gauss", "deblur-motion"):
        params.setdefault("kernel_size", 9)
    return operators.create(name, shape, **params)


def smooth_image(shape=SHAPE, periodic: bool = False) -> torch.Tensor:
    """(1, C, H, W) in [-0.8, 0.8]: low-frequency content (periodic on the grid when `periodic`)."""
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64) / h, torch.arange(w, dtype=torch.float64) / w,
                            indexing="ij")
    chans = []
    for k in range(c):
        if periodic:
            v = 0.5 * torch.cos(2 * math.pi * (yy + k / 7)) + 0.3 * torch.sin(2 * math.pi * (xx + 2 * yy - k / 5))
        else:
            v = 0.8 * (xx - 0.5) + 0.6 * (yy - 0.5) ** 2 - 0.1 * k + 0.1 * torch.sin(3 * xx + k)
        chans.append(v)
    return torch.stack(chans)[None].float().clamp(-0.8, 0.8)


def unit(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) / 2).clamp(0, 1)


def _psnr(a, b) -> float:
    return psnr(unit(a), unit(b)).item()


@pytest.mark.parametrize("name", sorted(operators.names()))
def test_classical_dispatch_shapes_and_range(name, rng):
    op = _op(name)
    x = torch.rand(2, *SHAPE, generator=rng) * 2 - 1
    y = op.measure(x, sigma_y=0.05, generator=rng)
    seen = []
    res = C.classical(None, op, y, None, generator=None, callback=seen.append, sigma_y=0.05)
    assert isinstance(res, SamplerResult)
    assert res.x.shape == x.shape and res.x.dtype == y.dtype
    assert res.x.min() >= -1 and res.x.max() <= 1 and torch.isfinite(res.x).all()
    assert res.nfe == 0 and res.operator_evals in (0, 1)
    expected = {"sr": "bicubic", "deblur": "wiener", "inpaint": "biharmonic", "denoise": "nl-means"}.get(
        name.split("-")[0].rstrip("248"), "pseudo-inverse")
    assert res.extras["method"] == expected
    assert len(seen) == 1
    # deterministic: the generator is not used
    assert torch.equal(C.classical(None, op, y, None, generator=torch.Generator()).x, res.x)


@pytest.mark.parametrize("method", ["bicubic", "wiener", "tikhonov", "biharmonic", "nl-means"])
def test_specific_baselines_refuse_other_operators(method):
    op = _op("denoise" if method != "nl-means" else "sr2")
    with pytest.raises(ValueError, match=f"'{method}' needs"):
        C.CLASSICAL_METHODS[method](None, op, torch.zeros(1, *SHAPE))


@pytest.mark.parametrize("name", sorted(operators.names()))
def test_applies_matches_what_runs(name):
    op = _op(name)
    y = op(torch.zeros(1, *SHAPE))
    for method, fn in C.CLASSICAL_METHODS.items():
        if C.applies(method, op):
            assert fn(None, op, y).x.shape == (1, *SHAPE)
        else:
            with pytest.raises(ValueError, match="needs"):
                fn(None, op, y)
    assert C.applies("classical", op) and C.applies("pseudo-inverse", op)
    with pytest.raises(ValueError, match="unknown classical method"):
        C.applies("magic", op)


def test_registry_names_resolve():
    from ncvsd_cli.sampling import METHODS

    for name, method in METHODS.items():
        if method.needs == "none":
            assert method.load() is C.CLASSICAL_METHODS[name]


@pytest.mark.parametrize("name", ["sr2", "sr4"])
def test_bicubic_recovers_a_smooth_image_and_beats_nearest(name):
    x = smooth_image((3, 32, 32))
    op = _op(name, (3, 32, 32))
    y = op.measure(x, sigma_y=0.0)
    est = C.bicubic(None, op, y).x
    nearest = torch.nn.functional.interpolate(y, size=(32, 32), mode="nearest")
    assert _psnr(est, x) > 30
    assert _psnr(est, x) > _psnr(nearest, x) + 3


@pytest.mark.parametrize("prior, blur, gain_db", [("power-law", 1.0, 3.0), ("flat", 2.0, 2.0), ("fitted", 1.0, 3.0)])
def test_wiener_beats_the_blurred_image_with_low_noise(prior, blur, gain_db):
    """On a real photo (32x32 astronaut face; measured: y 21.1 dB -> Wiener 26.0 dB at blur 1 px, y 17.2 dB ->
    Tikhonov 20.9 dB at 2 px)."""
    from skimage import data

    a = data.astronaut()[20:276, 128:384].astype(np.float32) / 255
    x = torch.nn.functional.avg_pool2d(torch.from_numpy(a).permute(2, 0, 1)[None], 8) * 2 - 1
    op = operators.create("deblur-gauss", (3, 32, 32), sigma=blur, kernel_size=13)
    y = op.measure(x, sigma_y=0.01, generator=torch.Generator().manual_seed(0))
    est = C.wiener(None, op, y, sigma_y=0.01, prior=prior).x
    assert _psnr(est, x) > _psnr(y, x) + gain_db, (_psnr(est, x), _psnr(y, x))


def _power_law_field(shape: tuple[int, int, int], exponent: float, std: float, seed: int) -> torch.Tensor:
    """A stationary Gaussian image (1, C, H, W) whose power spectrum is ∝ (|f|² + f0²)^(-exponent/2), pixel std `std`."""
    c, h, w = shape
    f2 = torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2 + torch.fft.fftfreq(w, dtype=torch.float64)[None] ** 2
    amplitude = (f2 + 1.0 / max(h, w) ** 2) ** (-exponent / 4)
    white = torch.randn((1, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = torch.fft.ifft2(torch.fft.fft2(white) * amplitude).real
    return (z / z.std() * std).float()


@pytest.mark.parametrize("exponent", [2.0, 3.0])
@pytest.mark.parametrize("name", ["deblur-gauss", "deblur-motion"])
def test_the_fitted_wiener_prior_reads_a_fields_own_spectrum_and_restores_it_best(name, exponent):
    """On a Gaussian field of a known power law (the model the fit assumes) the fitted exponent is the field's
    (within a grid step) and the filter restores it at least as well as the fixed 1/|f|² prior; a field steeper
    than 1/|f|² (smooth photos fit 3-3.25) gains."""
    shape = (3, 96, 96)
    x = _power_law_field(shape, exponent, 0.3, seed=1)
    op = _op(name, shape).double()
    y = op.measure(x.double(), 0.02, torch.Generator().manual_seed(0))
    power, fitted = C.fitted_power(op, y, 0.02)
    assert abs(fitted - exponent) <= 0.25 and power.shape == (96, 49)
    res = C.wiener(None, op, y, sigma_y=0.02)
    fixed = C.wiener(None, op, y, sigma_y=0.02, prior="power-law").x
    assert res.extras["exponent"] == [fitted] and _psnr(res.x, x) >= _psnr(fixed, x) - 0.05
    if exponent == 3.0:
        assert _psnr(res.x, x) > _psnr(fixed, x) + 0.5, (_psnr(res.x, x), _psnr(fixed, x))


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 2, 16), (3, 40, 3)])
@pytest.mark.parametrize("boundary", ["circular", "reflect"])
def test_the_fitted_wiener_prior_keeps_a_flat_images_mean_and_falls_back_where_nothing_is_fitted(shape, boundary):
    """A flat grey under noise has no texture to fit: the scale hit the grid's floor and P(0) fell far below the
    noise, so its mean was pulled to mid-grey (grey 200 came out 149). P(0) is infinite and such images (and sides
    under 8 px, whose Hann window is all zeros) get the fixed 1/|f|² prior."""
    op = operators.create("deblur-gauss", shape, sigma=1.0, boundary=boundary)
    y = 0.6 + 0.05 * torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    res = C.wiener(None, op, y, sigma_y=0.05)
    if min(shape[1:]) < C.FIT_MIN_SIDE:  # the fixed prior's own result
        assert torch.equal(res.x, C.wiener(None, op, y, sigma_y=0.05, prior="power-law").x)
    else:
        assert abs(float(res.x.mean()) - 0.6) < 0.01 and torch.isfinite(res.x).all()


def test_wiener_is_nearly_exact_without_noise_and_rejects_bad_settings():
    x = smooth_image((1, 16, 16), periodic=True)
    op = operators.create("deblur-gauss", (1, 16, 16), sigma=0.7, kernel_size=7)
    est = C.wiener(None, op, op(x), sigma_y=0.0).x
    assert _psnr(est, x) > 45
    for bad in ({"sigma_y": -1}, {"prior": "gauss"}, {"prior_std": 0}, {"exponent": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            C.wiener(None, op, op(x), **bad)


def test_biharmonic_fills_a_box_in_a_smooth_gradient():
    c, h, w = 3, 25, 23
    yy, xx = np.mgrid[0:h, 0:w] / 24.0
    x = torch.from_numpy(np.stack([0.8 * xx - 0.6 * yy + 0.1 * k for k in range(c)]))[None].float()
    op = operators.create("inpaint-box", (c, h, w), box_size=9)
    y = op.measure(x, sigma_y=0.0)
    est = C.biharmonic(None, op, y).x
    hole = op.mask.expand_as(x) == 0
    assert (est - x)[hole].abs().max() < 1e-3           # a linear ramp is biharmonic: filled almost exactly
    assert torch.equal(est[~hole], y[~hole])             # known pixels keep the measurement
    assert _psnr(est, x) > _psnr(C.pseudo_inverse(None, op, y).x, x) + 20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_biharmonic_fill_of_a_large_noisy_hole_does_not_amplify_the_edge_noise(seed):
    """Flat grey 0.3 measured with noise 0.05 around a 65x64 hole: raw biharmonic extrapolation amplifies the edge
    noise into swings of 0.16-0.23 (3-5 sigma_y); the fill from the smoothed edge stays within ~1 sigma_y."""
    from skimage.restoration import inpaint_biharmonic

    shape = (3, 131, 129)
    x = torch.full((1, *shape), 0.3)
    op = operators.create("inpaint-box", shape)
    y = op.measure(x, sigma_y=0.05, generator=torch.Generator().manual_seed(seed))
    est = C.biharmonic(None, op, y).x
    hole = op.mask.expand_as(x) == 0
    raw = inpaint_biharmonic(y[0].numpy().transpose(1, 2, 0).astype(np.float64), hole[0, 0].numpy(),
                             channel_axis=-1).transpose(2, 0, 1)
    raw_err = np.abs(raw - 0.3)[hole[0].numpy()].max()
    err = (est - x)[hole].abs()
    assert err.max() < 0.1 and err.max() < raw_err / 2
    assert (est - x)[hole].std() < 0.04
    assert torch.equal(est[~hole], y[~hole])  # known pixels keep the measurement


def test_biharmonic_smooths_the_edge_per_channel_when_the_masks_differ():
    """A large hole in channel 0 only (one grey problem per channel): its fill from the smoothed edge stays near the
    flat grey; channel 1, all known, keeps its measurement."""
    shape = (2, 131, 129)
    mask = np.ones(shape)
    mask[0, 33:98, 32:97] = 0
    op = operators.create("inpaint-mask", shape, mask=mask)
    x = torch.full((1, *shape), 0.3)
    y = op.measure(x, sigma_y=0.05, generator=torch.Generator().manual_seed(0))
    est = C.biharmonic(None, op, y).x
    assert (est[0, 0, 33:98, 32:97] - 0.3).abs().max() < 0.1
    assert torch.equal(est[0, 1], y[0, 1])


def test_biharmonic_fills_small_holes_from_the_raw_pixels(rng):
    """Holes of a few pixels (inpaint-random) are filled by scikit-image's biharmonic from the unsmoothed pixels."""
    from skimage.restoration import inpaint_biharmonic

    op = _op("inpaint-random", seed=3)
    y = op(torch.rand(1, *SHAPE, generator=rng) * 1.6 - 0.8)
    hole = (op.mask[0, 0] == 0).numpy()
    raw = inpaint_biharmonic(y[0].numpy().transpose(1, 2, 0).astype(np.float64), hole, channel_axis=-1)
    assert np.allclose(C.biharmonic(None, op, y).x[0].numpy(), raw.transpose(2, 0, 1).clip(-1, 1), atol=1e-6)


def test_smoothed_boundary_averages_known_pixels_only():
    image = np.zeros((1, 40, 40))
    image[0, :, 20:] = 1.0
    known = np.ones((40, 40), bool)
    known[4:36, 4:36] = False  # radius 16: scale 0.5
    image[0, ~known] = 50.0    # hole values must not leak into the average
    out = C.smoothed_boundary(image, known)
    assert out[0, known].max() <= 1.0 + 1e-9 and out[0, known].min() >= -1e-9
    assert np.array_equal(out[0, ~known], image[0, ~known])
    assert 0 < out[0, 0, 19] < 0.5 < out[0, 0, 20] < 1  # the step is softened on both sides
    small = np.ones((40, 40), bool)
    small[10:14, 10:14] = False
    assert np.array_equal(C.smoothed_boundary(image, small), image)


def test_biharmonic_with_a_different_mask_per_channel():
    c, h, w = 3, 13, 11
    mask = np.ones((c, h, w))
    mask[0, 4:8, 3:7] = 0
    mask[2, 1:3, 1:9] = 0
    op = operators.create("inpaint-mask", (c, h, w), mask=mask)
    x = smooth_image((c, h, w))
    est = C.biharmonic(None, op, op(x)).x
    assert (est - x).abs().max() < 0.05
    assert torch.equal(est[0, 1], x[0, 1])  # channel 1 has no hole


@pytest.mark.parametrize("sigma_y", [0.05, 0.2])
def test_nl_means_denoises_a_smooth_image(sigma_y, rng):
    x = smooth_image((3, 33, 29))
    op = _op("denoise", (3, 33, 29))
    y = op.measure(x, sigma_y=sigma_y, generator=rng)
    res = C.nl_means(None, op, y, sigma_y=sigma_y)
    assert res.extras["h"] == pytest.approx(C.nl_means_strength(sigma_y) * sigma_y)
    assert _psnr(res.x, x) > _psnr(y.clamp(-1, 1), x) + 5  # a smooth image: non-local means averages most noise away
    assert torch.equal(C.nl_means(None, op, y, sigma_y=sigma_y).x, res.x)  # deterministic


def test_nl_means_strength_and_the_noiseless_case(rng):
    assert [C.nl_means_strength(s) for s in (0.0, 0.05, 0.125, 0.2, 1.0)] == pytest.approx([0.8, 0.8, 0.65, 0.5, 0.5])
    op = _op("denoise")
    y = op.measure(smooth_image(), sigma_y=0.0)
    assert torch.equal(C.nl_means(None, op, y, sigma_y=0.0).x, y)  # nothing to remove: y itself
    with pytest.raises(ValueError, match="sigma_y"):
        C.nl_means(None, op, y, sigma_y=float("nan"))


def test_pnp_gd_warm_starts_denoising_from_y_not_from_nl_means(rng):
    from ncvsd_cli.sampling.pnp_gd import classical_estimate

    op = _op("denoise")
    y = op.measure(smooth_image(), sigma_y=0.1, generator=rng)
    res = classical_estimate(op, y, 0.1)
    assert res.extras["method"] == "pseudo-inverse" and torch.equal(res.x, y.clamp(-1, 1))


def test_pseudo_inverse_of_denoise_is_y(rng):
    op = _op("denoise")
    y = torch.rand(1, *SHAPE, generator=rng) * 1.8 - 0.9
    res = C.pseudo_inverse(None, op, y)
    assert torch.equal(res.x, y) and res.operator_evals == 1


@pytest.mark.parametrize("name", ["deblur-gauss", "deblur-motion"])
def test_wiener_with_the_reflect_boundary_has_no_border_ringing(name):
    """A blur that does not wrap (a photo: the scene goes on beyond the frame, here mirrored): the circular
    Wiener filter rings along the edges; with boundary "reflect" (the solve on the canvas, only the image
    measured) the border band is as good as the interior."""
    shape = (3, 40, 36)
    x = smooth_image(shape)
    reflect, circular = _op(name, shape, boundary="reflect").double(), _op(name, shape).double()
    y = reflect.measure(x, 0.01, torch.Generator().manual_seed(0))
    band = torch.ones(shape[1:], dtype=torch.bool)
    band[4:-4, 4:-4] = False

    def border_rmse(op) -> float:
        est = C.wiener(None, op, y, sigma_y=0.01).x
        return float((est - x).pow(2).mean(1)[0][band].mean().sqrt())

    assert border_rmse(reflect) < 0.5 * border_rmse(circular)
    assert C.wiener(None, reflect, y, sigma_y=0.01).operator_evals > 4  # conjugate gradients ran


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("n,name", [(64, "sr4"), (66, "sr4"), (69, "sr4"), (67, "sr8"), (21, "sr2")])
def test_bicubic_is_aligned_with_the_operator_for_any_size(n, name, kernel):
    """A linear ramp, measured with any kernel and interpolated back, is not shifted: at most the 0.4 px bias
    bicubic has on the sizes s divides (sizes it does not divide were stretched by up to (s - 1)/2 px at the edges;
    the nearest kernels' picked pixel is 0.5-3.5 px off the output pixel's centre). On those sizes, for the symmetric
    kernels, it is exactly torch's F.interpolate."""
    s = int(name[2:])
    op = operators.create(name, (1, n, n), kernel=kernel).double()
    x = (torch.arange(n, dtype=torch.float64) / n).expand(1, 1, n, n)
    y = op(x)
    shift = ((C.bicubic(None, op, y).x - x)[0, 0, n // 2, 2 * s:n - 2 * s] * n).abs().max()
    assert shift < 0.45
    if n % s == 0 and not kernel.startswith("nearest"):
        want = torch.nn.functional.interpolate(y, size=(n, n), mode="bicubic", align_corners=False).clamp(-1, 1)
        torch.testing.assert_close(C.bicubic(None, op, y).x, want, rtol=0, atol=1e-12)
