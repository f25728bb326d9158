"""The restoration library (ncvsd_cli.restore) without the CLI: the noise-level rule and the exactness of the
denoiser path with a Gaussian prior (whose denoising posterior is known in closed form)."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

import ncvsd_cli.restore as restore_module
import operators
from ncvsd_cli.measurement import measurement_from_image
from ncvsd_cli.restore import RestoreOptions, Restorer
from ncvsd_cli.sampling.gaussian import GaussianPrior

SHAPE = (3, 9, 7)


def _noisy(sigma_y: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.rand((1, *SHAPE), generator=g) - 0.25
    return operators.create("denoise", SHAPE).measure(x, sigma_y, g)


def test_each_measurement_runs_at_its_own_noise_level_unless_told():
    """The measurement's recorded sigma_y wins (so two inputs made at 0.2 and 0.05 restore as each alone);
    options.sigma_y overrides every input."""
    prior = GaussianPrior(0.0, 0.5)
    ms = [measurement_from_image(_noisy(s, i), "denoise", sigma_y=s) for i, s in enumerate((0.2, 0.05))]

    def restore(options, measurements):
        return {r.index: r for r in Restorer(prior.denoiser, None, options.validate()).run(measurements)}

    both = restore(RestoreOptions(task="denoise", method="denoiser", samples=64), ms)
    assert [both[i].sigma_y for i in range(2)] == [0.2, 0.05]
    for i, m in enumerate(ms):
        alone = restore(RestoreOptions(task="denoise", method="denoiser", samples=64), [m])[0]
        assert torch.equal(alone.samples, both[i].samples)
        # the sample mean is the exact posterior mean at the recorded level (64 samples: 5 standard errors)
        v = 1 / (1 / 0.25 + 1 / m.sigma_y**2)
        mean = v * m.y / m.sigma_y**2
        assert (both[i].samples.mean(0) - mean[0]).abs().max() < 5 * (v / 64) ** 0.5
    forced = restore(RestoreOptions(task="denoise", method="denoiser", sigma_y=0.1), ms)
    assert [forced[i].sigma_y for i in range(2)] == [0.1, 0.1]


@pytest.mark.parametrize("field, value, match", [("samples", 0, "--samples"), ("nfe", 0, "--nfe"),
                                                 ("sigma_y", -0.1, "--sigma-y"), ("precision", "fp8", "--precision"),
                                                 ("method", "nope", "unknown method"),
                                                 ("task", "nope", "unknown task")])
def test_options_are_validated_once(field, value, match):
    with pytest.raises(ValueError, match=match):
        RestoreOptions(**{"task": "sr4", field: value}).validate()


@pytest.mark.parametrize("value", [np.int64(3), np.int32(3), torch.tensor(3), 3.0])
def test_options_take_numpy_and_tensor_integers(value):
    """np.int64(3) was refused as "seed (--seed) must be an integer >= 0, got np.int64(3)"."""
    opts = RestoreOptions(task="sr4", seed=value, samples=value, nfe=value, sigma_y=np.float32(0.1)).validate()
    assert (opts.seed, opts.samples, opts.nfe) == (3, 3, 3) and type(opts.seed) is int
    assert math.isclose(opts.sigma_y, 0.1, rel_tol=1e-6) and type(opts.sigma_y) is float
    with pytest.raises(ValueError, match="samples"):  # text is no integer (the command line parses its own)
        RestoreOptions(task="sr4", samples="2").validate()


@pytest.mark.parametrize("seed", [-1, 2**63, True, 1.5, "x", "7"])
def test_degrade_takes_the_seeds_load_measurement_reads(seed, tmp_path):
    """degrade(seed=-1) wrote a measurement that load_measurement then refused."""
    from ncvsd_cli.measurement import degrade

    with pytest.raises(ValueError, match="seed must be an integer from 0 to"):
        degrade(torch.zeros(1, 3, 8, 8), "denoise", seed=seed)


def test_a_restorer_refuses_a_measurement_of_another_task():
    """A Restorer for deblur-gauss restored an sr4 measurement as sr4 without a word (`ncvsd restore --task`
    refuses such a sidecar); a hand-built Measurement whose operator is not its task's ran anyway."""
    from dataclasses import replace

    from ncvsd_cli.measurement import degrade

    x = torch.zeros(1, 3, 16, 16)
    sr4, blur = degrade(x, "sr4", sigma_y=0.05), degrade(x, "deblur-gauss", sigma_y=0.05)
    restorer = Restorer.from_options(RestoreOptions(task="deblur-gauss", method="wiener"), load=False)
    results = {r.index: r for r in restorer.run([sr4, blur])}
    assert "the measurement is of task sr4, not these options' task deblur-gauss" in results[0].error
    assert results[1].error is None and results[1].samples.shape == (1, 3, 16, 16)
    mixed = replace(blur, operator_config=sr4.operator_config, y=sr4.y)
    (res,) = Restorer.from_options(RestoreOptions(method="wiener"), load=False).run([mixed])
    assert "task is deblur-gauss but its operator is 'sr4'" in res.error


def test_options_fill_the_default_method_from_the_task_preset():
    assert RestoreOptions(task="denoise").validate().method == "denoiser"
    assert RestoreOptions(task="sr4").validate().method == "pnp-gd-warm"
    with pytest.raises(ValueError, match="only solves the denoise task"):
        RestoreOptions(task="sr4", method="denoiser").validate()


@pytest.mark.parametrize("options, match", [
    ({"task": "sr4", "method": "wiener"}, "does not apply to task 'sr4'; for it: bicubic, classical, daps"),
    ({"task": "nope", "preset_file": "PRESET"}, "unknown task"),
    ({"task": "denoise", "method": "teacher-mmse", "nfe": 2}, "exactly 1"),
])
def test_combinations_that_cannot_work_are_refused_up_front(options, match, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("beta: 0.01\n")
    options = {k: (str(preset) if v == "PRESET" else v) for k, v in options.items()}
    with pytest.raises(ValueError, match=match):
        RestoreOptions(**options).validate()


def test_a_restorer_leaves_the_callers_options_alone_and_keeps_few_prepared_calls(monkeypatch):
    """from_options validated the caller's options in place (method "denoiser" filled in, so the same options for
    sr4 were refused); a restorer fed ever new noise levels kept one prepared call per level."""
    from dataclasses import replace

    from ncvsd_cli import restore

    options = RestoreOptions(task="denoise")
    Restorer.from_options(options, load=False)
    assert options.method is None and options.device == "cpu"
    assert Restorer.from_options(replace(options, task="sr4"), load=False).options.method == "pnp-gd-warm"
    monkeypatch.setattr(restore, "PREPARED_CALLS", 3)
    restorer = Restorer.from_options(RestoreOptions(task="sr4"), load=False)
    calls = [restorer.prepare("sr4", s) for s in (0.01, 0.02, 0.03, 0.04)]
    assert len(restorer._calls) == 3 and restorer.prepare("sr4", 0.04) is calls[-1]
    assert restorer.prepare("sr4", 0.01) is not calls[0]  # the oldest went first
    assert restorer.prepare("sr4", 0.03) is calls[2] and restorer.prepare("sr4", 0.02) is not calls[1]  # LRU


def test_a_library_refusal_names_params_for_the_commands_dash_p():
    from ncvsd_cli.restore import restore_image

    with pytest.raises(ValueError, match=r"-p seed=N .*params=\{'KEY': VALUE\}"):
        restore_image(torch.zeros(1, 3, 16, 16), "inpaint-random")


def test_a_blur_is_read_inside_a_callers_no_grad_and_inference_mode():
    """The blur-width reading fits with autograd: under torch.no_grad() (a service's usual wrapper) restore_image
    of a plain blurred image failed with torch's "element 0 of tensors does not require grad"."""
    from ncvsd_cli.restore import restore_image

    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 96, 96, generator=g) * 2 - 1, 3, 1, 1)
    outs = []
    for mode in (torch.enable_grad, torch.no_grad, torch.inference_mode):
        with mode():
            outs.append(restore_image(x, "deblur-gauss", method="wiener"))
    assert all(torch.equal(outs[0], o) for o in outs[1:])


def test_each_restored_group_hands_freed_memory_back(monkeypatch):
    """glibc keeps what images of many sizes freed (RSS 592 -> 1136 MB over 25 sr4 sizes, 704 MB with the trim):
    every group of measurements ends with `memory.return_freed_memory`, glibc's malloc_trim on Linux."""
    import sys

    from ncvsd_cli import memory

    calls = []
    monkeypatch.setattr(memory, "return_freed_memory", lambda: calls.append(1))
    prior = GaussianPrior(0.0, 0.5)
    restorer = Restorer(prior.denoiser, None, RestoreOptions(task="denoise", method="denoiser").validate())
    ms = [measurement_from_image(torch.zeros(1, 3, 8 + 2 * i, 8), "denoise", sigma_y=0.1) for i in range(3)]
    assert all(r.error is None for r in restorer.run(ms)) and len(calls) == 3  # three sizes: three groups
    monkeypatch.undo()
    memory.return_freed_memory()  # callable everywhere; on glibc Linux it is malloc_trim
    assert (memory._malloc_trim() is not None) == (sys.platform.startswith("linux") and "glibc" in
                                                   " ".join(__import__("platform").libc_ver()))


def test_the_preset_file_is_read_once(tmp_path):
    """Every input of a long batch sees the same settings, even if the YAML changes or vanishes meanwhile."""
    preset = tmp_path / "p.yaml"
    preset.write_text("warm_start: {sigma_max: 0.5}\n")
    options = RestoreOptions(task="sr4", preset_file=str(preset)).validate()
    preset.unlink()
    assert options.preset_file == {"warm_start": {"sigma_max": 0.5}}
    assert options.validate().preset_file == {"warm_start": {"sigma_max": 0.5}}


def test_class_label_needs_a_conditional_checkpoint():
    with pytest.raises(ValueError, match="unconditional"):
        Restorer.from_options(RestoreOptions(task="denoise", class_label=3), load=False)


def test_a_plain_blurred_image_is_restored_with_the_reflect_boundary():
    """A user's blurred photo does not wrap around its edges: restore's plain-image path builds blurs with
    boundary "reflect"; params may ask for "circular"."""
    y = torch.zeros(1, 3, 16, 16)
    for task in ("deblur-gauss", "deblur-motion"):
        assert measurement_from_image(y, task).operator().boundary == "reflect"
        assert measurement_from_image(y, task, {"boundary": "circular"}).operator().boundary == "circular"
    assert "boundary" not in measurement_from_image(y, "sr4").operator_config


def test_a_plain_image_to_deblur_motion_reads_its_kernel_unless_named():
    """deblur-motion of a plain image is no longer refused up front: its kernel is read (an image under 32 px fails
    then, pointing at deblur-kernel); -p seed draws the synthetic kernel as before."""
    from ncvsd_cli.measurement import plain_image_refusal

    for given in ({}, {"kernel_size": 9}, {"seed": 0}, {"kernel": [[1.0]]}):
        assert plain_image_refusal("deblur-motion", given) is None
    assert "deblur-motion" in plain_image_refusal("deblur-kernel", {})  # its hint names the reading task
    y = torch.zeros(1, 3, 16, 16)
    restorer = Restorer.from_options(RestoreOptions(task="deblur-motion", method="wiener"), load=False)
    with pytest.raises(ValueError, match="too small to read a motion blur.*deblur-kernel"):
        restorer.measurement(y, "deblur-motion")
    seeded = Restorer.from_options(RestoreOptions(task="deblur-motion", method="wiener", params={"seed": 4}),
                                   load=False)
    assert seeded.measurement(y, "deblur-motion").operator_config["seed"] == 4


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1, 0.2])
def test_noise_level_estimate(sigma):
    """White noise on a smooth image is read within 10 % (and 0.003 absolute); a clean smooth image reads ~0;
    a 1x1 image reads 0."""
    from ncvsd_cli.measurement import estimate_noise_sigma

    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 66), indexing="ij")
    x = torch.stack([0.5 * xx, 0.4 * yy, 0.3 * torch.sin(3 * xx * yy)])[None]
    noisy = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert abs(estimate_noise_sigma(noisy) - sigma) < 0.1 * sigma + 0.003
    assert estimate_noise_sigma(x) < 0.002 and estimate_noise_sigma(x[..., :1, :1]) == 0.0


@pytest.mark.parametrize("channels", [1, 3])
def test_noise_level_estimate_ignores_texture(channels):
    """Fine texture (a few strong patch directions, as fur or fabric) is not read as noise: a sharp striped and
    checked pattern with noise 0.01 reads within 15 %; the finest Haar details (the estimator replaced) read it
    above 0.05. Grey images read as colour ones do."""
    from ncvsd_cli.measurement import estimate_noise_sigma

    yy, xx = torch.meshgrid(torch.arange(61.0), torch.arange(67.0), indexing="ij")
    texture = 0.4 * torch.sin(2.7 * xx + 0.3 * yy) + 0.3 * torch.sign(torch.cos(1.9 * yy))
    x = torch.stack([texture, 0.8 * texture, -0.5 * texture][:channels])[None]
    noisy = x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert estimate_noise_sigma(noisy) == pytest.approx(0.01, rel=0.15)
    hh = (noisy[..., 0:60:2, 0:66:2] - noisy[..., 0:60:2, 1:67:2] - noisy[..., 1:61:2, 0:66:2]
          + noisy[..., 1:61:2, 1:67:2]) / 2
    assert float(hh.abs().median() / 0.6745) > 0.05


def test_noise_level_of_a_grey_photo_as_rgb_is_read_on_one_channel():
    """A grey photo given as RGB (three equal channels: three copies of one noise) reads as its single channel, and
    restore denoises it at that level: the copies' differences are noise-free, and reading all three channels
    together gave 0, so denoise returned the noisy input unchanged. Channels an 8-bit level apart (a grey JPEG's
    rounding) are copies too."""
    from ncvsd_cli.measurement import estimate_noise_sigma
    from ncvsd_cli.restore import Restorer

    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 61), torch.linspace(-1, 1, 67), indexing="ij")
    grey = (0.5 * xx + 0.3 * torch.sin(3 * xx * yy))[None, None]
    noisy = grey + 0.1 * torch.randn(grey.shape, generator=torch.Generator().manual_seed(3))
    rgb = noisy.repeat(1, 3, 1, 1)
    assert estimate_noise_sigma(noisy) == pytest.approx(0.1, rel=0.1)
    assert estimate_noise_sigma(rgb) == estimate_noise_sigma(noisy)
    jitter = torch.randint(-1, 2, (1, 2, 61, 67), generator=torch.Generator().manual_seed(4)) * 2 / 255
    jpeg_like = torch.cat([rgb[:, :1], rgb[:, 1:] + jitter], 1)
    assert estimate_noise_sigma(jpeg_like) == pytest.approx(0.1, rel=0.1)  # channels one 8-bit level apart
    m = Restorer(None, None, RestoreOptions(task="denoise").validate()).measurement(rgb, "denoise")
    assert m.sigma_y == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("channels", [1, 3])
def test_clipped_patches_can_be_left_out_of_a_noise_reading(channels):
    """Noise is cut off where a photo clips (a blown sky, a white backdrop, crushed shadows), and flat clipped
    areas pull a reading down. Given `clipped_pixels`, the readings (colour or grey, the luma, its 2x2 and 4x4
    means) leave those patches out: with 40 % of a 256-px image flat at white and 20 % at black, noise 0.1 reads
    within 10 %; by default every patch is read, as before (0.056-0.078). Where nearly everything clips, every
    patch is read; an unclamped tensor (values beyond +-1: never clipped) has no clipped pixels."""
    from ncvsd_cli.measurement import clipped_pixels, estimate_luma_noise_sigma, estimate_noise_sigma

    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 256), torch.linspace(-1, 1, 258), indexing="ij")
    base = torch.where(xx < -0.2, 1.0, torch.where(xx > 0.6, -1.0, 0.3 * torch.sin(3 * xx * yy)))
    x = base.expand(1, channels, -1, -1)
    noise = 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    noisy = (x + noise).clamp(-1, 1)
    assert estimate_noise_sigma(noisy) < 0.08 and estimate_luma_noise_sigma(noisy) < 0.08
    assert estimate_noise_sigma(noisy, clipped_pixels(noisy)) == pytest.approx(0.1, rel=0.1)
    for kwargs in ({}, {"coarse": True}, {"scale": 4}):
        assert estimate_luma_noise_sigma(noisy, skip_clipped=True, **kwargs) == pytest.approx(0.1, rel=0.1)
        assert estimate_luma_noise_sigma(noisy, **kwargs) < 0.08
    white = (0.99 + 0.1 * torch.randn(1, channels, 64, 66, generator=torch.Generator().manual_seed(6))).clamp(-1, 1)
    assert estimate_noise_sigma(white, clipped_pixels(white)) == estimate_noise_sigma(white)
    assert clipped_pixels(noisy).float().mean() > 0.3 and not clipped_pixels(x + noise).any()


def test_a_clipped_photo_gets_a_note_naming_its_reading_without_the_clipped_areas():
    """A noisy photo with blown highlights, as JPEG, keeps its level (the reading without the clipped areas can be
    a clean photo's texture: benchmarks/clipped-noise/) and a note names that reading, as the task takes a reading
    (a blur: at least the lossy floor; a JPEG's read on its luma as it is); a photo whose noise reads the same either way, or that is hardly
    clipped, gets none."""
    yy, xx = np.mgrid[0:192, 0:194] / 192
    scene = np.stack([0.5 + 0.2 * np.sin(6 * xx + 2 * yy), 0.5 + 0.2 * np.cos(5 * yy), 0.4 + 0.2 * xx * yy], -1)
    blown = np.where((xx < 0.45)[..., None], 1.2, scene)  # 45 % of it past white
    rng = np.random.default_rng(3)
    restorer = Restorer(None, None, RestoreOptions(task="denoise", method="classical").validate())

    def notes(rgb, quality=90):
        d = _jpeg(rgb, quality)
        m = restorer.measurement(d.tensor, "denoise", jpeg_sigma=d.jpeg_sigma, jpeg_coding=d.jpeg_coding)
        return m, [n for n in m.notes if "of the image is clipped" in n]

    m, said = notes(blown + rng.normal(0, 0.05, blown.shape))
    level = float(re.search(r"--sigma-y ([\d.]+)", said[0]).group(1)) if said else 0.0
    assert said and "45% of the image is clipped" in said[0] and 0.08 <= level <= 0.12, m.notes
    assert m.sigma_y < 0.8 * level  # the level taken is the one read with every patch
    assert not notes(blown)[1]  # clean: smooth where unclipped
    d = _jpeg(blown + np.random.default_rng(3).normal(0, 0.05, blown.shape), 90)
    for method, scale in (("pnp-gd", 1.0), ("classical", 1.0)):  # a JPEG's luma reading, a Wiener filter: as read
        deblur = Restorer(None, None, RestoreOptions(task="deblur-gauss", method=method, params={"sigma": 1.0})
                          .validate())
        blurred = deblur.measurement(d.tensor, "deblur-gauss", jpeg_sigma=d.jpeg_sigma, jpeg_coding=d.jpeg_coding)
        (said,) = [n for n in blurred.notes if "of the image is clipped" in n]
        assert "grainy or rings" in said and float(re.search(r"--sigma-y ([\d.]+)", said).group(1)) == \
            pytest.approx(scale * level, abs=0.005), blurred.notes
    assert not notes(scene + rng.normal(0, 0.05, scene.shape))[1]  # not clipped


def test_a_blur_restored_without_a_network_takes_the_noise_level_read_not_0_7x_it():
    """The 0.7x of the level read suits the generative sampler; a Wiener filter run at it amplified the noise
    (kite, Gaussian 2.5 px, noise 0.04: 27.1 dB at 0.7x, 29.6 at the level read, the blurred input 32.0)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96] / 96.0  # a smooth colour scene plus white noise 0.1 on the [-1, 1] scale
    scene = np.stack([0.5 * xx - 0.25, 0.4 * yy - 0.2, 0.3 * np.sin(6 * xx)])[None]
    y = torch.from_numpy(scene + rng.normal(0, 0.1, scene.shape)).float().clamp(-1, 1)
    levels = {}
    for method in ("pnp-gd", "wiener", "classical"):
        restorer = Restorer(None, None, RestoreOptions(task="deblur-gauss", method=method, params={"sigma": 1.0})
                            .validate())
        levels[method] = restorer.measurement(y, "deblur-gauss").sigma_y
    assert levels["wiener"] == levels["classical"] == pytest.approx(0.1, abs=0.01)
    assert levels["pnp-gd"] == pytest.approx(0.7 * levels["wiener"], abs=0.003)


@pytest.mark.parametrize("side", [17, 32, 64])
def test_noise_level_estimate_of_small_images(side):
    """Small images are read with smaller patches, at least 2x2 and 20x as many as their dimensions: white noise
    0.1 on a flat image reads within 15 % from 17x19 pixels on; 8x10 pixels are too small (1-px "patches" read a
    clean photo's colour variation as noise, 0.11-0.12 on 8-16 px photos)."""
    from ncvsd_cli.measurement import estimate_noise_sigma

    y = 0.1 * torch.randn(1, 3, side, side + 2, generator=torch.Generator().manual_seed(2))
    assert estimate_noise_sigma(y) == pytest.approx(0.1, rel=0.15)
    assert estimate_noise_sigma(y[..., :8, :10]) == 0.0


@pytest.mark.parametrize("size", [64, 128])
def test_a_grey_photo_is_read_on_its_weakly_textured_patches(size):
    """Grey photos have no colour redundancy, whose noise-free directions the patch reading rests on: the bundled
    photo in grey read 0.047-0.067 clean on all patches (denoised at that level, a grey photo with noise 0.02 came
    out worse than the input). Read again on the weakly textured patches (Liu et al. 2013): clean reads < 0.01,
    noise 0.02 and 0.05 within 20 %."""
    import torch.nn.functional as F

    from ncvsd_cli import images
    from ncvsd_cli.measurement import estimate_noise_sigma

    x = F.interpolate(images.load_image(images.example_path()), size=(size, size), mode="bicubic",
                      antialias=True).clamp(-1, 1)
    grey = (x * torch.tensor(images.LUMA_WEIGHTS).view(1, 3, 1, 1)).sum(1, keepdim=True)
    grey = torch.round((grey + 1) * 127.5) / 127.5 - 1
    assert estimate_noise_sigma(grey.expand(1, 3, -1, -1)) < 0.01
    for sigma in (0.02, 0.05):
        noisy = grey + sigma * torch.randn(grey.shape, generator=torch.Generator().manual_seed(0))
        assert estimate_noise_sigma(noisy.expand(1, 3, -1, -1)) == pytest.approx(sigma, rel=0.2)


@pytest.mark.parametrize("task", ["denoise", "sr4", "deblur-gauss"])
def test_an_image_too_small_to_read_keeps_the_preset_level(task):
    """An image too small to read (under 17 px per side in colour, 40 in grey) is restored at the task preset's
    level (0.05), and a note says so, rather than at a level of 0 (denoising nothing) or one read from 1-px patches."""
    from ncvsd_cli.measurement import noise_patch_side
    from ncvsd_cli.restore import Restorer

    y = 0.1 * torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert noise_patch_side(3, 4, 4) == 0 and noise_patch_side(1, 39, 80) == 0 and noise_patch_side(1, 40, 40) == 7
    assert noise_patch_side(3, 16, 16) == 0 and noise_patch_side(3, 17, 17) == 2 and noise_patch_side(3, 64, 64) == 7
    m = Restorer(None, None, RestoreOptions(task=task, params={"sigma": 1.0} if task == "deblur-gauss" else {})
                 .validate()).measurement(y, task)
    assert m.sigma_y == 0.05 and "too small to read" in m.notes[0]
    for side, readable in ((39, False), (40, True)):  # a grey image is read from 40 px per side
        grey = 0.1 * torch.randn(1, 1, side, side, generator=torch.Generator().manual_seed(0)).expand(1, 3, -1, -1)
        m = Restorer(None, None, RestoreOptions(task=task, params={"sigma": 1.0} if task == "deblur-gauss" else {})
                     .validate()).measurement(grey, task)
        assert any("too small" in n for n in m.notes) is not readable
        assert any(n.startswith("estimated noise level") for n in m.notes) is readable


def test_noise_level_of_a_large_image_is_read_on_its_centre_square():
    from ncvsd_cli.measurement import NOISE_WINDOW, estimate_noise_sigma

    y = torch.zeros(1, 3, NOISE_WINDOW + 41, NOISE_WINDOW + 100)
    top, left = 20, 50
    y[..., top:top + NOISE_WINDOW, left:left + NOISE_WINDOW] = 0.1 * torch.randn(
        3, NOISE_WINDOW, NOISE_WINDOW, generator=torch.Generator().manual_seed(0))  # noise only in the centre
    assert estimate_noise_sigma(y) == pytest.approx(0.1, rel=0.02)


def test_a_plain_noisy_image_is_restored_at_its_estimated_level():
    """Without --sigma-y (or a preset file's), denoise, blurs and super-resolution read the noise level from the
    image, and a note says so: denoise and super-resolution as read, blurs at 0.7x the level read, both within
    0.01-0.2; a given level keeps the usual rule; inpainting is at 0 (box, mask) or the preset's (random)."""
    from ncvsd_cli.restore import Restorer

    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    y = torch.stack([0.5 * xx, 0.4 * yy, 0.2 * xx * yy])[None]
    y = y + 0.2 * torch.randn(y.shape, generator=torch.Generator().manual_seed(1))

    def level(**options) -> tuple[float, list]:
        m = Restorer(None, None, RestoreOptions(**options).validate()).measurement(y, options["task"])
        return m.sigma_y, m.notes

    est, notes = level(task="denoise")
    assert abs(est - 0.2) < 0.03 and "estimated noise level" in notes[0]
    assert level(task="denoise", sigma_y=0.1) == (0.1, [])
    assert level(task="denoise", preset_file={"sigma_y": 0.07}) == (0.07, [])
    assert level(task="deblur-gauss", params={"sigma": 3.0}, sigma_y=0.05) == (0.05, [])
    lv, notes = level(task="sr4")  # as read, up to the cap
    assert abs(lv - 0.2) < 0.03 and "estimated noise level" in notes[0] and "blur" not in notes[0]
    lv, notes = level(task="deblur-gauss", params={"sigma": 3.0})
    assert abs(lv - 0.7 * 0.2) < 0.02 and "a blur is restored at 0.7x the level read" in notes[0]
    read, scaled = (float(v) for v in re.search(r"read (\d\.\d+).*the level read, (\d\.\d+)", notes[0]).groups())
    assert scaled == pytest.approx(0.7 * read, abs=2e-4), notes[0]  # the note names the level 0.7x gives
    very = y + 0.25 * torch.randn(y.shape, generator=torch.Generator().manual_seed(3))
    m = Restorer(None, None, RestoreOptions(task="sr4").validate()).measurement(very, "sr4")
    assert m.sigma_y == 0.2 and "at most 0.2" in m.notes[0]
    assert level(task="inpaint-box", params={"box_size": 4})[0] == 0  # the photo's own pixels, kept
    assert level(task="inpaint-random", params={"seed": 1})[0] == 0.05  # the preset's: a noisy `degrade` output
    clean = y - 0.2 * torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    blur = Restorer(None, None, RestoreOptions(task="deblur-kernel", params={"kernel": [[1.0, 1.0]]}).validate())
    m = blur.measurement(clean, "deblur-kernel")  # no noise: the floor
    assert m.sigma_y == 0.01 and "at least 0.01" in m.notes[0]
    mild = clean + 0.03 * torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    m = blur.measurement(mild, "deblur-kernel")  # within the bounds: 0.7x as read, to the nearest 0.0025
    assert abs(m.sigma_y - 0.021) < 0.004 and round(m.sigma_y / 0.0025, 6).is_integer() and "at most" not in m.notes[0]


@pytest.mark.parametrize("jpeg_sigma, floor", [(None, 0.01), (0.0, 0.01), (0.003, 0.01), (0.0114, 0.015),
                                               (0.024, 0.025), (0.028, 0.03), (0.3, 0.2)])
def test_a_jpegs_quantisation_raises_the_noise_floor(jpeg_sigma, floor):
    """The floor is sqrt(0.01^2 + jpeg_sigma^2) (independent errors add their variances) to the nearest 0.0025,
    within the cap; denoise has no floor and keeps reading the level alone."""
    from ncvsd_cli.restore import NOISE_CAP, NOISE_FLOOR, noise_level_floor

    assert noise_level_floor((NOISE_FLOOR, NOISE_CAP), jpeg_sigma) == floor
    assert noise_level_floor((0.0, math.inf), jpeg_sigma) == 0.0


def test_the_noise_floors_note_names_a_jpegs_coding():
    """The floor's note names a JPEG's quantisation where its tables are known; else the codings that raise it (a
    file's suffix may not be its format: a lossy WebP saved as .png)."""
    from ncvsd_cli import images
    from ncvsd_cli.restore import lossy_coding_name

    coding = images.JpegCoding(tables=((1,) * 64,), subsampling=2, colour=True)
    assert lossy_coding_name(coding) == "this JPEG's quantisation steps"
    assert lossy_coding_name(None) == "this file's lossy coding (JPEG steps, lossy WebP or AVIF, a palette)"


def test_a_plain_jpeg_is_restored_above_its_quantisation_error():
    """A noise-free blurred image read at 0.01 is restored at the JPEG floor when it came from a JPEG, with a note
    naming the quantisation; a level above the floor (0.7x the level read, for a blur) or a given level is kept."""
    from ncvsd_cli.restore import Restorer

    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    y = torch.stack([0.5 * xx, 0.4 * yy, 0.2 * xx * yy])[None]
    blur = Restorer(None, None, RestoreOptions(task="deblur-gauss", params={"sigma": 1.0}).validate())
    m = blur.measurement(y, "deblur-gauss", jpeg_sigma=0.0114)
    assert m.sigma_y == 0.015 and "at least 0.015" in m.notes[0] and "JPEG" in m.notes[0]
    assert blur.measurement(y, "deblur-gauss").sigma_y == 0.01
    noisy = y + 0.04 * torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    assert abs(blur.measurement(noisy, "deblur-gauss", jpeg_sigma=0.0114).sigma_y - 0.7 * 0.04) < 0.005
    given = Restorer(None, None, RestoreOptions(task="deblur-gauss", params={"sigma": 1.0}, sigma_y=0.02).validate())
    assert given.measurement(y, "deblur-gauss", jpeg_sigma=0.05).sigma_y == 0.02


@pytest.mark.parametrize("quality", [75, 90])
def test_a_noisy_jpegs_level_is_read_on_its_luma(tmp_path, quality):
    """Noise in a JPEG survives in the luma only (4:2:0 chroma, coarse fine-scale steps): the colour reading sees
    about none, the coarse luma reading the level; a blur is then restored at it (not at 0.7x it, as a lossless
    image's: benchmarks/jpeg-blur-level/), with a note, where it was restored at the floor (into worm-like noise).
    A clean JPEG still reads under the floor."""
    from ncvsd_cli import images
    from ncvsd_cli.measurement import estimate_luma_noise_sigma, estimate_noise_sigma
    from ncvsd_cli.restore import Restorer

    yy, xx = np.mgrid[0:128, 0:128] / 128
    clean = np.stack([0.5 + 0.3 * np.sin(6 * xx + 2 * yy), 0.5 + 0.3 * np.cos(5 * yy), 0.4 + 0.2 * xx * yy], -1)
    noisy = clean + np.random.default_rng(0).normal(0, 0.03, clean.shape)  # 0.06 on the [-1, 1] scale
    blur = Restorer(None, None, RestoreOptions(task="deblur-gauss", params={"sigma": 1.0}).validate())
    for name, arr in (("clean", clean), ("noisy", noisy)):
        Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(tmp_path / f"{name}.jpg",
                                                                                   quality=quality)
        d = images.read_image(str(tmp_path / f"{name}.jpg"))
        colour, luma = estimate_noise_sigma(d.tensor), estimate_luma_noise_sigma(d.tensor, coarse=True)
        m = blur.measurement(d.tensor, "deblur-gauss", jpeg_sigma=d.jpeg_sigma)
        if name == "clean":
            assert luma < 0.01 and "at least" in m.notes[0], (luma, m.notes)  # the JPEG's floor
        else:
            assert colour < 0.3 * 0.06 and 0.6 * 0.06 < luma < 1.4 * 0.06, (colour, luma)
            assert m.sigma_y == pytest.approx(luma, abs=0.0025) and "on the luma" in m.notes[0], m.notes
            assert "0.7x" not in m.notes[0]


def test_the_opaque_window_is_the_largest_opaque_rectangle():
    """`opaque_window` finds the largest all-opaque rectangle (brute force on small random masks); None for an
    opaque alpha; on a large disk the rectangle found on the coarse grid is all opaque and near the inscribed
    square (side r sqrt 2)."""
    import itertools

    from ncvsd_cli.measurement import opaque_window

    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = rng.integers(1, 8, 2)
        mask = rng.random((h, w)) < 0.7
        window = opaque_window(torch.tensor(mask, dtype=torch.float32)[None, None])
        if mask.all():
            assert window is None
            continue
        best = max([(r1 - r0) * (c1 - c0) for r0, r1 in itertools.combinations(range(h + 1), 2)
                    for c0, c1 in itertools.combinations(range(w + 1), 2) if mask[r0:r1, c0:c1].all()], default=0)
        rows, cols = window
        assert (rows.stop - rows.start) * (cols.stop - cols.start) == best and mask[rows, cols].all()
    yy, xx = np.mgrid[:900, :1200]
    disk = ((yy - 450) ** 2 + (xx - 600) ** 2 < 400**2).astype(np.float32)
    rows, cols = opaque_window(torch.tensor(disk)[None, None])
    assert disk[rows, cols].all() and (rows.stop - rows.start) * (cols.stop - cols.start) > 0.85 * 2 * 400**2


def test_a_cut_outs_noise_is_read_where_it_is_opaque():
    """A noisy photo cut out by a disk (composited on white, whose flat white holds no noise) reads its level on
    its opaque part: as the photo without transparency reads, not pulled down by the white (0.065 for 0.08)."""
    from ncvsd_cli import images
    from ncvsd_cli.restore import Restorer

    yy, xx = np.mgrid[0:96, 0:96] / 96
    photo = np.stack([0.5 + 0.3 * np.sin(6 * xx + 2 * yy), 0.5 + 0.3 * np.cos(5 * yy), 0.4 + 0.2 * xx * yy], -1)
    photo = photo + np.random.default_rng(0).normal(0, 0.04, photo.shape)  # 0.08 on the [-1, 1] scale
    disk = (((yy - 0.5) ** 2 + (xx - 0.5) ** 2) < 0.4**2).astype(np.float64)[..., None]
    y = images.from_unit(torch.tensor((photo * disk + 1 - disk).transpose(2, 0, 1), dtype=torch.float32)[None])
    alpha = torch.tensor(disk[..., 0], dtype=torch.float32)[None, None]
    denoise = Restorer(None, None, RestoreOptions(task="denoise").validate())
    plain = denoise.measurement(images.from_unit(torch.tensor(photo.transpose(2, 0, 1), dtype=torch.float32)[None]),
                                "denoise")
    cut = denoise.measurement(y, "denoise", alpha=alpha)
    assert abs(plain.sigma_y - 0.08) <= 0.01 and abs(cut.sigma_y - plain.sigma_y) <= 0.01, (plain.notes, cut.notes)
    assert "noise level read on its opaque" in cut.notes[0] and denoise.measurement(y, "denoise").sigma_y <= plain.sigma_y - 0.01


def test_a_blurred_cut_out_is_deblurred_without_a_rim_inside_its_outline():
    """A cut-out was deblurred composited on white: the white's edge along the outline is no blur's, and it rang
    into the opaque pixels (Wiener, a 3-px soft disk, sigma 1.2: 11.4 levels 0-3 px inside, 3.1 at 3-7). Now the
    photo is extended under its transparency and the result composited back: within a level of the plain photo's
    restoration, and white where transparent."""
    from scipy.ndimage import distance_transform_edt

    from ncvsd_cli import images
    from ncvsd_cli.restore import restore_image

    n = 64
    yy, xx = np.mgrid[0:n, 0:n] / n
    photo = np.stack([0.5 + 0.3 * np.sin(9 * xx + 2 * yy), 0.5 + 0.3 * np.cos(7 * yy), 0.3 + 0.4 * (xx > 0.5)], -1)
    blurred = operators.create("deblur-gauss", (3, n, n), sigma=1.2)(
        images.from_unit(torch.tensor(photo.transpose(2, 0, 1), dtype=torch.float32)[None]))
    alpha = torch.tensor(np.clip((22 - np.hypot(yy - 0.5, xx - 0.5) * n) / 3, 0, 1), dtype=torch.float32)[None, None]
    opts = {"method": "wiener", "params": {"sigma": 1.2}, "sigma_y": 0.01}
    plain = restore_image(blurred, "deblur-gauss", **opts)
    cut = restore_image(alpha * blurred + 1 - alpha, "deblur-gauss", alpha=alpha, **opts)
    inside = distance_transform_edt(alpha[0, 0].numpy() >= 1)
    error = (cut - plain).abs().mean(1)[0].numpy() * 127.5  # levels of 255
    assert error[(inside > 0) & (inside <= 3)].mean() < 1.5 and error[(inside > 3) & (inside <= 7)].mean() < 1
    assert torch.equal(cut[..., alpha[0, 0] == 0], torch.ones_like(cut[..., alpha[0, 0] == 0]))
    faint = torch.full_like(alpha, 0.04)  # nothing to extend from: restored composited, as before (it was
    again = restore_image(faint * blurred + 1 - faint, "deblur-gauss", alpha=faint, **opts)  # composited twice)
    assert float(again.std()) > 0.5 * float((faint * blurred).std())


def test_extending_under_transparency_keeps_the_stored_colour_and_fills_smoothly():
    """Pixels at least EXTEND_OPACITY opaque keep their own colour (a 0.2-opaque black shadow was repainted in the
    photo's colours when only half-opaque ones were kept); transparent ones take a smooth weighted mean of the kept
    colours (nearest-pixel streaks in a hole loosened Wiener's prior, fitted to the whole image), far ones the
    nearest kept pixel's."""
    from ncvsd_cli import images
    from ncvsd_cli.measurement import extend_under_transparency

    colour = torch.rand(1, 3, 5, 8) * 2 - 1
    alpha = torch.ones(1, 1, 5, 8)
    alpha[..., :, 4:] = torch.tensor([0.6, 0.2, 0.06, 0.0])  # columns 4-6 kept, 7 transparent
    y = images.from_unit(alpha * images.to_unit(colour) + 1 - alpha)
    out = extend_under_transparency(y, alpha)
    torch.testing.assert_close(out[..., :7], colour[..., :7])
    low, high = colour[..., :7].amin(dim=(2, 3), keepdim=True), colour[..., :7].amax(dim=(2, 3), keepdim=True)
    assert bool(((out[..., 7:] >= low - 1e-6) & (out[..., 7:] <= high + 1e-6)).all())
    flat = torch.full((1, 3, 40, 40), 0.3)  # a flat photo with a 20-px hole: filled flat, far pixels included
    hole = torch.ones(1, 1, 40, 40)
    hole[..., 10:30, 10:30] = 0
    torch.testing.assert_close(extend_under_transparency(images.from_unit(hole * images.to_unit(flat) + 1 - hole),
                                                         hole), flat)
    assert torch.equal(extend_under_transparency(y, torch.zeros(1, 1, 5, 8)), y)  # nothing to extend from


@pytest.mark.parametrize("case", ["no opaque pixel", "faded (alpha 0.8)", "a 1-px opaque line", "a thin ring"])
def test_a_transparent_input_without_a_readable_opaque_rectangle_is_read_whole(case):
    """Where the largest opaque rectangle is under 32 px a side (a faded overlay, a logo's thin strokes), the noise
    and blur are read on the whole image as before, with a note; never a crash on an empty rectangle."""
    from ncvsd_cli.restore import Restorer

    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 80), torch.linspace(-1, 1, 80), indexing="ij")
    y = torch.stack([0.5 * xx, 0.4 * yy, 0.2 * xx * yy])[None] + 0.08 * torch.randn(1, 3, 80, 80, generator=g)
    r = (xx**2 + yy**2).sqrt()
    alpha = {"no opaque pixel": torch.zeros(80, 80), "faded (alpha 0.8)": torch.full((80, 80), 0.8),
             "a 1-px opaque line": torch.full((80, 80), 0.5).index_fill(0, torch.tensor([40]), 1.0),
             "a thin ring": ((r > 0.6) & (r < 0.7)).float()}[case][None, None]
    for task in ("denoise", "deblur-gauss"):
        restorer = Restorer(None, None, RestoreOptions(task=task).validate())
        m = restorer.measurement(y, task, alpha=alpha)
        assert m.sigma_y == restorer.measurement(y, task).sigma_y  # as without the alpha
        assert any("too small to read" in n and "read on the whole image" in n for n in m.notes), m.notes


@pytest.mark.parametrize("quality", [60, 90])
def test_a_noisy_heics_level_is_read_on_its_luma(quality):
    """HEVC coding strips the noise from the colour as JPEG's does: a HEIC of a photo with noise 0.06 ([-1, 1]
    scale) read on its colour alone gave 0.0075 (8x low: denoising did nothing, a deblur made worm-like noise); it
    is read on the luma like JPEG, WebP and AVIF (with no floor of its own: a clean one stays low)."""
    pillow_heif = pytest.importorskip("pillow_heif")
    from ncvsd_cli import images
    from ncvsd_cli.restore import Restorer

    yy, xx = np.mgrid[0:128, 0:128] / 128
    clean = np.stack([0.5 + 0.3 * np.sin(6 * xx + 2 * yy), 0.5 + 0.3 * np.cos(5 * yy), 0.4 + 0.2 * xx * yy], -1)
    denoise = Restorer(None, None, RestoreOptions(task="denoise").validate())
    for noise in (0.0, 0.03):
        noisy = clean + np.random.default_rng(0).normal(0, noise, clean.shape)
        buf = io.BytesIO()
        pillow_heif.from_pillow(Image.fromarray((np.clip(noisy, 0, 1) * 255).round().astype(np.uint8))).save(
            buf, quality=quality)
        d = images.read_image(buf.getvalue())
        m = denoise.measurement(d.tensor, "denoise", jpeg_sigma=d.jpeg_sigma)
        if noise:
            assert 0.045 <= m.sigma_y <= 0.075 and "on the luma" in m.notes[0], m.notes
        else:
            assert m.sigma_y <= 0.01, m.notes


@pytest.mark.parametrize("task, width, radius, scale4, coarse", [
    ("deblur-gauss", 0.3, 5.0, 0.2, False), ("deblur-gauss", 1.5, 0.5, 0.2, True),
    ("deblur-gauss", None, None, 0.2, True), ("deblur-defocus", 3.0, 1.5, 0.2, False),
    ("deblur-defocus", 0.3, 2.5, 0.2, True), ("denoise", None, None, 0.2, False), ("denoise", None, None, 0.035, True),
    ("deblur-gauss", 0.3, 5.0, 0.035, True)])
def test_the_coarse_luma_reading_needs_a_blur_or_white_noise(monkeypatch, task, width, radius, scale4, coarse):
    """A JPEG's level is read on the luma's 2x2 means when the width read (the disk's std, radius / 2) is >= 1 px
    (or none could be read), or where the reading on its 4x4 means agrees (white noise, not a sharp photo's
    texture, which reads higher there); else on the finest scale alone."""
    from ncvsd_cli import blur_estimate, measurement

    reading = None if width is None else blur_estimate.BlurReading(width, radius, -1.0, 1000)
    monkeypatch.setattr(blur_estimate, "read_blur", lambda y, **kw: reading)
    levels = {1: 0.002, 2: 0.03, 4: scale4}
    monkeypatch.setattr(measurement, "estimate_luma_noise_sigma",
                        lambda y, coarse=False, scale=None: levels[scale or (2 if coarse else 1)])
    y = torch.rand(1, 3, 192, 192, generator=torch.Generator().manual_seed(0)) * 0.01
    m = Restorer(None, None, RestoreOptions(task=task).validate()).measurement(y, task, jpeg_sigma=0.01)
    from_coarse = levels[2]  # a lossy file's luma reading: a blur too is restored at it (not 0.7x it)
    assert (m.sigma_y == pytest.approx(from_coarse, abs=0.0025)) == coarse, (m.sigma_y, m.notes)
    if task != "denoise":  # without a network: the same reading, taken whole
        m = Restorer(None, None, RestoreOptions(task=task, method="wiener").validate()).measurement(
            y, task, jpeg_sigma=0.01)
        assert (m.sigma_y == pytest.approx(levels[2], abs=0.0025)) == coarse, (m.sigma_y, m.notes)


@pytest.mark.parametrize("task, jpeg, noted", [("denoise", 0.01, True), ("denoise", None, False),
                                                ("sr4", 0.01, False)])
def test_a_refused_coarse_luma_reading_of_a_lossy_denoise_is_named(monkeypatch, task, jpeg, noted):
    """Noise of 0.08 saved at JPEG quality 80 read 0.015: its 2x2 luma reading (0.079) varied like texture and was
    refused. When that reading is over twice the level taken (and 0.02), a lossy file's denoising names it as the
    level to give if the result stays grainy; never for lossless files or other tasks."""
    from ncvsd_cli import measurement
    from ncvsd_cli.restore import LOSSY_LEVEL_NOTE_MIN, lossy_level_notes

    levels = {1: 0.015, 2: 0.079, 4: 0.2}  # the 4x4 means read higher: texture-like, refused
    monkeypatch.setattr(measurement, "estimate_luma_noise_sigma",
                        lambda y, coarse=False, scale=None: levels[scale or (2 if coarse else 1)])
    monkeypatch.setattr(measurement, "estimate_noise_sigma", lambda y, clipped=None: 0.015)
    y = torch.rand(1, 3, 192, 192, generator=torch.Generator().manual_seed(0)) * 0.01
    m = Restorer(None, None, RestoreOptions(task=task).validate()).measurement(y, task, jpeg_sigma=jpeg)
    said = [n for n in m.notes if "2x2 means read 0.079" in n]
    assert bool(said) is noted, m.notes
    if noted:
        assert m.sigma_y == pytest.approx(0.015) and said[0].endswith("give --sigma-y 0.08")
    assert lossy_level_notes(0.031, 0.015) and not lossy_level_notes(0.03, 0.015)  # over 2x the level taken
    assert not lossy_level_notes(LOSSY_LEVEL_NOTE_MIN, 0.0025)  # and over 0.02: clean JPEGs read 0.005-0.013


@pytest.mark.parametrize("task, jpeg, taken", [("denoise", 0.01, True), ("sr4", 0.01, False),
                                               ("denoise", None, False)])
def test_a_lossy_denoise_takes_the_2x2_reading_up_to_twice_the_4x4(monkeypatch, task, jpeg, taken):
    """JPEG coding strips more noise at 2x2 than at 4x4: noisy JPEGs of training photos read 1.1-2.1x higher at 4x4,
    clean ones 2.3x and more. Denoising a lossy file takes the 2x2 reading up to a ratio of 2 (1.63 here); other
    tasks and lossless files keep the bound 1.4."""
    from ncvsd_cli import measurement

    levels = {1: 0.01, 2: 0.08, 4: 0.13}
    monkeypatch.setattr(measurement, "estimate_luma_noise_sigma",
                        lambda y, coarse=False, scale=None: levels[scale or (2 if coarse else 1)])
    monkeypatch.setattr(measurement, "estimate_noise_sigma", lambda y, clipped=None: 0.01)
    y = torch.rand(1, 3, 192, 192, generator=torch.Generator().manual_seed(0)) * 0.01
    m = Restorer(None, None, RestoreOptions(task=task).validate()).measurement(y, task, jpeg_sigma=jpeg)
    assert (m.sigma_y == pytest.approx(0.08)) is taken, (m.sigma_y, m.notes)
    levels[4] = 0.17  # 2.1x: texture, refused, and named in the note instead
    m = Restorer(None, None, RestoreOptions(task="denoise").validate()).measurement(y, "denoise", jpeg_sigma=0.01)
    assert m.sigma_y < 0.02 and any("2x2 means read 0.080" in n for n in m.notes), m.notes


def test_a_lossy_photos_kept_pixels_note_names_its_ripples():
    """inpaint-mask of a JPEG keeps its pixels at sigma_y 0, coding ripples beside the marks included: said, with
    the grow and the level that remove them; a lossless photo's note does not say it, nor inpaint-box's (the box
    is repainted whatever it holds: no mark beside it)."""
    mask = np.ones((40, 40))
    mask[10:20, 10:30] = 0
    restorer = Restorer(None, None, RestoreOptions(task="inpaint-mask", params={"mask": mask}).validate())
    y = torch.zeros(1, 3, 40, 40)
    jpeg = " ".join(restorer.measurement(y, "inpaint-mask", jpeg_sigma=0.01).notes)
    plain = " ".join(restorer.measurement(y, "inpaint-mask").notes)
    assert "kept as they are" in jpeg and "lossy coding smears the marks" in jpeg and "--sigma-y 0.05" in jpeg
    assert "-p grow=3" in jpeg
    grown = Restorer(None, None, RestoreOptions(task="inpaint-mask", params={"mask": mask, "grow": 3}).validate())
    assert "grow" not in " ".join(grown.measurement(y, "inpaint-mask", jpeg_sigma=0.01).notes)  # given: not advised
    assert "kept as they are" in plain and "smears" not in plain
    box = Restorer(None, None, RestoreOptions(task="inpaint-box").validate())
    assert "smears" not in " ".join(box.measurement(y, "inpaint-box", jpeg_sigma=0.01).notes)  # no mark beside it


def test_a_sharp_noisy_jpegs_level_is_read_where_its_coding_left_the_noise():
    """Denoising a sharp noisy JPEG read the level on the finest scale, whose noise quality 75-90 strips (0.005 for
    0.03-0.06): the output was the input. Its 2x2 means keep the noise, and the 4x4 means agree (white noise), so
    that level is used; a clean JPEG still reads none."""
    from ncvsd_cli import images
    from ncvsd_cli.restore import Restorer

    yy, xx = np.mgrid[0:192, 0:192] / 192
    clean = np.stack([0.5 + 0.3 * np.sin(6 * xx + 2 * yy), 0.5 + 0.3 * np.cos(5 * yy), 0.4 + 0.2 * xx * yy], -1)
    restorer = Restorer(None, None, RestoreOptions(task="denoise", method="classical").validate())
    for sigma in (0.0, 0.03, 0.06):  # on the [-1, 1] scale
        noisy = clean + np.random.default_rng(0).normal(0, sigma / 2, clean.shape)
        buf = io.BytesIO()
        Image.fromarray((np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=75)
        d = images.read_image(buf.getvalue())
        m = restorer.measurement(d.tensor, "denoise", jpeg_sigma=d.jpeg_sigma)
        if sigma:
            assert 0.8 * sigma < m.sigma_y < 1.25 * sigma, (sigma, m.sigma_y, m.notes)
        else:
            assert m.sigma_y <= 0.005, m.notes


def _bilinear_demosaic(raw: np.ndarray) -> np.ndarray:
    """(H, W) RGGB mosaic -> (H, W, 3) by bilinear interpolation (normalised convolution of each channel's samples:
    green from its 4 neighbours, red and blue from their 2 or 4)."""
    masks = np.zeros((3, *raw.shape))
    masks[0, 0::2, 0::2] = masks[2, 1::2, 1::2] = 1
    masks[1, 0::2, 1::2] = masks[1, 1::2, 0::2] = 1
    square = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]).double()
    kernels = torch.stack([square, torch.tensor([[0.0, 1, 0], [1, 4, 1], [0, 1, 0]]).double(), square])[:, None]
    spread = [torch.nn.functional.conv2d(torch.from_numpy(a)[None], kernels, padding=1, groups=3)[0].numpy()
              for a in (masks * raw, masks)]
    return (spread[0] / spread[1]).transpose(1, 2, 0)


def test_camera_noise_is_read_on_the_luma_and_texture_is_not():
    """A camera's demosaicing correlates its sensor noise across pixels and channels: the colour reading sees little
    of it and the level read left most of it in. A lossless colour photo's level is also read on the luma's 2x2
    means where the 4x4 means agree; a clean photo's fine texture, which reads higher at 4x4, is not taken for it."""
    from ncvsd_cli.measurement import coarse_luma_noise, estimate_noise_sigma
    from ncvsd_cli.restore import Restorer

    yy, xx = np.mgrid[0:192, 0:192] / 192
    scene = np.stack([0.5 + 0.3 * np.sin(6 * xx + 2 * yy), 0.5 + 0.3 * np.cos(5 * yy), 0.4 + 0.2 * xx * yy], -1)
    ii, jj = np.indices((192, 192)) % 2
    mosaic = np.where(ii + jj == 0, scene[..., 0], np.where(ii * jj == 1, scene[..., 2], scene[..., 1]))  # RGGB
    restorer = Restorer(None, None, RestoreOptions(task="denoise", method="classical").validate())

    def as_y(rgb):
        return torch.from_numpy(np.round(np.clip(rgb, 0, 1) * 255) / 127.5 - 1).permute(2, 0, 1)[None].float()

    reference = as_y(_bilinear_demosaic(mosaic))
    for seed in range(3):  # 4x4 / 2x2 readings 0.96-1.26 over seeds 0-9 (the test at 1.4); read 1.34-1.39x true
        noisy = as_y(_bilinear_demosaic(mosaic + np.random.default_rng(seed).normal(0, 0.04, mosaic.shape)))
        true = float((noisy - reference).std())
        m = restorer.measurement(noisy, "denoise")
        assert estimate_noise_sigma(noisy) < 0.2 * true, (estimate_noise_sigma(noisy), true)  # what was used alone
        assert 0.75 * true < coarse_luma_noise(noisy) < 1.5 * true, (coarse_luma_noise(noisy), true)
        assert m.sigma_y == pytest.approx(coarse_luma_noise(noisy), abs=0.0025) and "on the luma" in m.notes[0]
    assert restorer.measurement(reference, "denoise").sigma_y <= 0.005

    f = np.hypot(*np.meshgrid(np.fft.fftfreq(192), np.fft.fftfreq(192), indexing="ij"))
    phase = np.exp(2j * np.pi * np.random.default_rng(1).random((192, 192)))
    texture = np.fft.ifft2(phase / np.maximum(f, 1 / 192)).real  # 1/f amplitude: a natural photo's texture
    textured = as_y(scene + 0.15 * (texture / texture.std())[..., None])  # the same pattern in every channel
    assert coarse_luma_noise(textured) == 0.0
    m = restorer.measurement(textured, "denoise")  # the colour reading's level, as before
    assert m.sigma_y == pytest.approx(estimate_noise_sigma(textured), abs=0.0025) and "luma" not in m.notes[0]


def test_fine_texture_of_light_alone_is_not_read_as_camera_noise():
    """Clean grass, gravel or a stone wall at a photo's own resolution can be as fine as noise at 2x2 and 4x4 alike
    (the 4x4 test passes: real crops read 0.08-0.49 and were smeared at that level). Camera noise has colour at the
    2x2 cells' scale and such texture little: a pattern of light alone, white at the pixel scale, is refused, while
    camera noise is read (`test_camera_noise_is_read_on_the_luma_and_texture_is_not`). White RGB noise on it adds
    colour at 2x2 too, but as much at the pixel scale (demosaicing smooths that): read by the colour reading."""
    from ncvsd_cli.measurement import (
        CAMERA_COLOUR_RATIO,
        WHITE_COLOUR_RATIO,
        coarse_luma_is_noise,
        coarse_luma_noise,
        estimate_luma_noise_sigma,
        estimate_noise_sigma,
        noise_sigma_on_means,
    )
    from ncvsd_cli.restore import Restorer

    yy, xx = np.mgrid[0:193, 0:191] / 192
    scene = np.stack([0.5 + 0.2 * np.sin(6 * xx + 2 * yy), 0.5 + 0.2 * np.cos(5 * yy), 0.4 + 0.2 * xx * yy], -1)
    grain = np.random.default_rng(2).normal(0, 0.1, scene.shape[:2])[..., None]  # light only: every channel alike
    y = torch.from_numpy(np.round(np.clip(scene + grain, 0, 1) * 255) / 127.5 - 1).permute(2, 0, 1)[None].float()
    coarse = estimate_luma_noise_sigma(y, coarse=True)
    assert coarse > 0.1 and coarse_luma_is_noise(y, coarse)  # the 4x4 test alone took it for noise
    assert noise_sigma_on_means(y, 2) < CAMERA_COLOUR_RATIO * coarse and coarse_luma_noise(y) == 0.0
    restorer = Restorer(None, None, RestoreOptions(task="denoise", method="classical").validate())
    m = restorer.measurement(y, "denoise")
    assert m.sigma_y == pytest.approx(estimate_noise_sigma(y), abs=0.0025) and m.sigma_y < 0.02, m.notes
    noise = 0.05 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))  # white RGB noise: colour too
    for k in (1, 2, 4):  # white noise's std, read at each scale
        assert noise_sigma_on_means(noise, k) == pytest.approx(0.05, rel=0.12), k
    noisy = y + noise  # on the luma it adds to the grain (0.2 there); the colour reading reads it alone, as the
    colour = estimate_noise_sigma(noisy)  # 2x2 means' colour does: white, not demosaiced noise
    assert estimate_luma_noise_sigma(noisy, coarse=True) > 3 * colour and noise_sigma_on_means(noisy, 2) > 0.1 * coarse
    assert colour >= WHITE_COLOUR_RATIO * noise_sigma_on_means(noisy, 2) and coarse_luma_noise(noisy) == 0.0
    assert restorer.measurement(noisy, "denoise").sigma_y == pytest.approx(0.05, abs=0.005)


def _jpeg(rgb: np.ndarray, quality: int):
    """(H, W, 3) in [0, 1] saved as a JPEG of `quality` (Pillow, 4:2:0) and read back (`images.read_image`)."""
    from ncvsd_cli import images

    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return images.read_image(buf.getvalue())


def test_a_jpegs_coding_keeps_the_colour_of_strong_noise_only():
    """`coded_noise_colour`: a JPEG's coarse chroma steps zero the colour of weak noise and keep strong noise's, the
    more the finer its steps; a file without tables, or grey, cannot tell and backs every luma reading."""
    from ncvsd_cli.measurement import _coded_white_colour, coded_colour_backs, coded_noise_colour

    codings = {q: _jpeg(np.full((16, 16, 3), 0.5), q).jpeg_coding for q in (75, 85, 95)}
    kept = {q: [coded_noise_colour(c, level) for level in (0.05, 0.2, 0.5)] for q, c in codings.items()}
    for q, (weak, middle, strong) in kept.items():
        assert weak < 0.01 and weak < middle < strong and 0.1 < strong < 0.5, (q, kept[q])
    assert kept[75][1] < kept[85][1] < kept[95][1]
    first = coded_noise_colour(codings[85], 0.2)
    _coded_white_colour.cache_clear()
    assert coded_noise_colour(codings[85], 0.2) == first  # seeded: the same when simulated again
    grey = torch.zeros(1, 3, 32, 32)
    assert coded_colour_backs(grey, codings[85])(0.5) and coded_colour_backs(torch.rand(1, 3, 32, 32), None)(0.5)


@pytest.mark.parametrize("quality", [85, 95])
def test_a_jpegs_fine_texture_of_light_is_not_read_as_noise(quality):
    """The colour test of lossless photos (`test_fine_texture_of_light_alone_is_not_read_as_camera_noise`) cannot
    serve a JPEG, whose coding strips most of a noise's colour; clean grass and gravel JPEGs were read at 0.1-0.49
    on the luma and smeared. Noise strong enough to read that high keeps colour through the file's own tables
    (`coded_noise_colour`), a texture of light does not: its luma readings are refused (with a note naming them),
    white noise's are kept. Under CODED_COLOUR_MIN_LEVEL nothing is refused: a camera's chroma noise reduction leaves
    its noise a pattern of light too (here: light-only grain read 0.15, at quality 95 and 4:4:4, which keep colour)."""
    from ncvsd_cli import images
    from ncvsd_cli.measurement import CODED_COLOUR_MIN_LEVEL, coarse_luma_is_noise, estimate_luma_noise_sigma

    yy, xx = np.mgrid[0:193, 0:191] / 192
    scene = np.stack([0.5 + 0.2 * np.sin(6 * xx + 2 * yy), 0.5 + 0.2 * np.cos(5 * yy), 0.4 + 0.2 * xx * yy], -1)
    restorer = Restorer(None, None, RestoreOptions(task="denoise", method="classical").validate())
    rng = np.random.default_rng(2)
    for noise, light in ((rng.normal(0, 0.1, scene.shape[:2])[..., None], True), (rng.normal(0, 0.1, scene.shape), False)):
        d = _jpeg(scene + noise, quality)  # std 0.2 on the [-1, 1] scale: light alone, or white in each channel
        coarse = estimate_luma_noise_sigma(d.tensor, coarse=True)
        assert coarse > 0.18 and coarse_luma_is_noise(d.tensor, coarse, 2.0)  # the scale tests take both for noise
        m = restorer.measurement(d.tensor, "denoise", jpeg_sigma=d.jpeg_sigma, jpeg_coding=d.jpeg_coding)
        without = restorer.measurement(d.tensor, "denoise", jpeg_sigma=d.jpeg_sigma)  # no tables: as before
        assert without.sigma_y > 0.18, without.notes
        if light:  # one note: the level refused, as --sigma-y for noise whose colour was removed
            assert m.sigma_y < 0.02 and "on the luma" not in m.notes[0], m.notes
            assert "too little colour" in m.notes[1] and "--sigma-y 0.3" in m.notes[1] and len(m.notes) == 2, m.notes
        else:
            assert 0.18 < m.sigma_y < 0.25 and "on the luma" in m.notes[0], m.notes
    buf = io.BytesIO()  # grain of light of 0.1 (0.05 on [0, 1]): as a camera's noise after chroma noise reduction
    grain = np.clip(scene + rng.normal(0, 0.05, scene.shape[:2])[..., None], 0, 1)
    Image.fromarray((grain * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=95, subsampling=0)
    d = images.read_image(buf.getvalue())
    m = restorer.measurement(d.tensor, "denoise", jpeg_sigma=d.jpeg_sigma, jpeg_coding=d.jpeg_coding)
    assert 0.1 < m.sigma_y < CODED_COLOUR_MIN_LEVEL and "on the luma" in m.notes[0], m.notes


def test_memory_estimate_counts_the_reflect_blurs_buffers(monkeypatch):
    """A plain blurred image is restored with boundary "reflect", whose conjugate gradients hold more full-size
    tensors: the up-front memory check counts them (and not for circular)."""
    from ncvsd_cli import memory
    from ncvsd_cli.restore import Restorer

    monkeypatch.setattr(memory, "work_bytes", lambda *args, **kwargs: 0)
    monkeypatch.setattr(memory, "classical_bytes", lambda *args, **kwargs: 0)
    monkeypatch.setattr(memory, "model_bytes", lambda *args, **kwargs: 0)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 1)
    monkeypatch.setattr(restore_module, "SAMPLE_COPIES", 0)  # (the samples held: their own test)
    circular = Restorer.from_options(RestoreOptions(task="deblur-gauss", params={"boundary": "circular"}).validate(),
                                     load=False)
    reflect = Restorer.from_options(RestoreOptions(task="deblur-gauss").validate(), load=False)
    assert circular.memory_refusal((3, 64, 64)) is None
    assert "needs an estimated" in reflect.memory_refusal((3, 64, 64))
    sidecar = {"name": "deblur-gauss", "image_shape": [3, 64, 64], "shift": False}  # degrade's: circular
    assert reflect.memory_refusal((3, 64, 64), sidecar) is None
    assert "needs an estimated" in circular.memory_refusal((3, 64, 64), {**sidecar, "boundary": "reflect"})


@pytest.mark.parametrize("method", ["classical", "bicubic", "pnp-gd-warm", "pnp-gd-warm-mean8"])
def test_classical_estimates_are_checked_against_memory_too(monkeypatch, method):
    """A classical method had no memory check: a PNG whose header says 12000x12000 ran sr4 --method classical to
    12 GB and on (the network methods were refused at once). Its estimate (`memory.classical_bytes`, measured per
    output element) is checked, also as pnp-gd-warm's start; biharmonic inpainting costs about 10x the others."""
    from ncvsd_cli import memory
    from ncvsd_cli.restore import Restorer

    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 2 * 2**30)
    sr4 = Restorer.from_options(RestoreOptions(task="sr4", method=method).validate(), load=False)
    assert sr4.memory_refusal((3, 256, 256)) is None
    refusal = sr4.memory_refusal((3, 48000, 48000))
    assert refusal and "needs an estimated" in refusal, refusal
    assert memory.classical_bytes({"name": "inpaint-box"}, (1, 3, 64, 64)) > 5 * memory.classical_bytes(
        {"name": "sr4"}, (1, 3, 64, 64))
    assert memory.classical_bytes({"name": "sr4"}, (1, 3, 3000, 3000)) < 2 * 2**30 < memory.classical_bytes(
        {"name": "inpaint-box"}, (1, 3, 3000, 3000))  # what fits for super-resolution, not for a biharmonic fill
    if method != "bicubic":  # (bicubic solves super-resolution only)
        box = Restorer.from_options(RestoreOptions(task="inpaint-box", method=method).validate(), load=False)
        assert "needs an estimated" in box.memory_refusal((3, 3000, 3000))
    plain = Restorer.from_options(RestoreOptions(task="inpaint-box", method="pseudo-inverse").validate(), load=False)
    assert plain.memory_refusal((3, 3000, 3000)) is None  # a mask multiply, no biharmonic fill


def test_the_samples_an_input_holds_are_checked_against_memory(monkeypatch):
    """--samples 200000 of a 128-px output (39 GB of float32 held until the last is done) ran until the machine
    killed it; the samples held are costed, and a refusal they cause says to ask for fewer."""
    from ncvsd_cli import memory
    from ncvsd_cli.restore import SAMPLE_COPIES, Restorer

    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 2 * 2**30)
    held = SAMPLE_COPIES * 3 * 128 * 128 * 4  # per sample
    for samples, refused in ((8, False), (2 * 2**30 // held + 1, True)):
        restorer = Restorer.from_options(RestoreOptions(task="denoise", samples=samples).validate(), load=False)
        refusal = restorer.memory_refusal((3, 128, 128))
        assert bool(refusal) == refused and (not refused or f"--samples {samples} of a 128x128" in refusal), refusal


@pytest.mark.parametrize("method", ["classical", "pnp-gd"])
def test_a_long_super_resolution_axis_is_costed(monkeypatch, method):
    """sr4 of a 5000x1 strip (a 20000x4 output) peaked at 5.7 GB against an estimate of 11 MiB: the per-axis float64
    matrices (r x n, r = n/4) grow with the square of the longest side, whatever the method. Now refused up front
    on a 4 GiB machine; a 12-MP photo's sr4 output (4000x3000) costs them 0.36 GB."""
    import operators
    from ncvsd_cli import memory
    from ncvsd_cli.restore import Restorer

    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 4 * 2**30)
    sr4 = Restorer.from_options(RestoreOptions(task="sr4", method=method).validate(), load=False)
    msg = sr4.memory_refusal((3, 4, 20000))
    assert msg and "host memory for the operator" in msg, msg
    assert 5e9 < memory.operator_bytes({"name": "sr4"}, (3, 4, 20000)) < 7e9
    assert 0.8e9 < operators.get("sr4").setup_bytes((3, 1, 8000)) < 1.0e9  # measured 0.85 GB (peak RSS)
    assert memory.operator_bytes({"name": "sr4"}, (3, 3000, 4000)) < 0.4e9
    assert memory.operator_bytes({"name": "deblur-gauss"}, (3, 4, 20000)) == 0
    assert memory.operator_bytes({"name": "not-registered"}, (3, 4, 20000)) == 0


def test_a_sidecars_operator_is_costed_before_it_is_built(tmp_path, monkeypatch):
    """A measurement whose sr operator would not fit is refused before the operator is built (the check ran after
    `load_measurement` built it, with its 5.7 GB for a 20000-px axis)."""
    import operators
    from ncvsd_cli import measurement as meas
    from ncvsd_cli import memory

    x = torch.zeros(1, 3, 16, 16)
    meas.save_measurement(meas.degrade(x, "sr4", sigma_y=0.05), tmp_path / "m.png")
    built = []
    monkeypatch.setattr(operators.get("sr4"), "setup_bytes", classmethod(lambda cls, shape: 10**12))
    monkeypatch.setattr(meas.Measurement, "operator", lambda self: built.append(1))
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 2**30)
    with pytest.raises(ValueError, match="sr4 operator for a 16x16 output needs an estimated"):
        meas.load_measurement(tmp_path / "m.png")
    assert built == []


def test_a_classical_start_refusal_names_what_helps_for_its_task(monkeypatch):
    """An inpaint-box refusal said "restore a crop or at a smaller factor" (inpainting has none) and not that
    --method pnp-gd needs no classical start; a box fill was costed as a random mask's (measured 445-494 bytes per
    element, not 850)."""
    from ncvsd_cli import memory
    from ncvsd_cli.restore import Restorer

    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 2 * 2**30)
    box = Restorer.from_options(RestoreOptions(task="inpaint-box").validate(), load=False)
    msg = box.memory_refusal((3, 9000, 9000))
    assert "its classical start" in msg and "--method pnp-gd" in msg and "factor" not in msg, msg
    sr4 = Restorer.from_options(RestoreOptions(task="sr4", method="classical").validate(), load=False)
    msg = sr4.memory_refusal((3, 9000, 9000))
    assert "at a smaller factor" in msg and "--method pnp-gd" not in msg, msg
    shape = (1, 3, 1000, 1000)
    assert 445 * 3e6 < memory.classical_bytes({"name": "inpaint-box"}, shape) < memory.classical_bytes(
        {"name": "inpaint-random"}, shape)


def test_memory_refusal_says_whether_smaller_batches_and_tiles_can_help(monkeypatch):
    """The advice follows the estimate at batch 1 and the smallest tile: the flags when that fits, else that the
    output's size is the cost (a 100-megapixel sr8 output at --tile 64 was told to use a smaller --tile)."""
    from ncvsd_cli import memory
    from ncvsd_cli.restore import Restorer

    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 100)
    monkeypatch.setattr(restore_module, "SAMPLE_COPIES", 0)  # (the samples held: their own test)
    monkeypatch.setattr(memory, "classical_bytes", lambda *args, **kwargs: 0)  # the network's estimate alone
    monkeypatch.setattr(memory, "operator_bytes", lambda *args, **kwargs: 0)
    restorer = Restorer.from_options(RestoreOptions(task="sr4", batch_size=4).validate(), load=False)
    monkeypatch.setattr(memory, "work_bytes", lambda net, shape, *a, **k: 1000 if shape[0] > 1 else 50)
    assert "use a smaller --tile or --batch-size" in restorer.memory_refusal((3, 64, 64))
    monkeypatch.setattr(memory, "work_bytes", lambda net, shape, *a, **k: 1000 * shape[0])
    refusal = restorer.memory_refusal((3, 64, 64))
    assert "the output's size is the cost" in refusal and "smaller --tile" not in refusal, refusal


def test_without_a_task_each_measurement_runs_its_own_tasks_sampler():
    """`Restorer.run` with neither task nor method runs each measurement with its task preset's sampler (denoise:
    the denoiser, 1 call; sr4: pnp-gd-warm, 10), the same samples as with that task given; a task the options do
    not suit (a deterministic method's --samples) fails alone."""
    from ncvsd_cli.measurement import degrade

    prior = GaussianPrior(0.0, 0.5)
    x = 0.5 * torch.rand((1, 3, 12, 8), generator=torch.Generator().manual_seed(0)) - 0.25
    ms = [degrade(x, "denoise", sigma_y=0.1), degrade(x, "sr4", sigma_y=0.05)]
    mixed = list(Restorer(prior.denoiser, None, RestoreOptions(samples=2).validate()).run(ms))
    assert sorted(r.index for r in mixed) == [0, 1] and all(r.error is None for r in mixed)
    by_index = {r.index: r for r in mixed}
    assert by_index[0].nfe == 1 and by_index[1].nfe == 10
    for j, task in enumerate(("denoise", "sr4")):
        (alone,) = Restorer(prior.denoiser, None, RestoreOptions(task=task, samples=2).validate()).run([ms[j]])
        assert torch.equal(alone.samples, by_index[j].samples)
    forced = RestoreOptions(preset_file={"method": "denoiser"}).validate()  # suits denoise, not sr4
    results = {r.index: r for r in Restorer(prior.denoiser, None, forced).run(ms)}
    assert results[0].error is None and "only solves the denoise task" in results[1].error


def test_library_inputs_are_checked_and_cast(tmp_path):
    """float64 and (C, H, W) inputs are cast and batched; integer pixels, [0, 255] values, NaN, batches, numpy
    arrays are refused with a message naming the fix; a grey (1-channel) image is restored and returned grey."""
    from ncvsd_cli import images

    y = _noisy(0.1, 0)
    prior = GaussianPrior(0.0, 0.5)
    restorer = Restorer(prior.denoiser, None, RestoreOptions(task="denoise", sigma_y=0.1).validate())
    m64 = restorer.measurement(y.double()[0], "denoise")
    (res,) = restorer.run([m64])
    (ref,) = restorer.run([restorer.measurement(y, "denoise")])
    assert res.error is None and res.samples.dtype == torch.float32 and torch.equal(res.samples, ref.samples)
    for bad, match in [((y + 1) * 127.5, "from_unit\\(p / 255\\)"), (((y + 1) * 127.5).byte(), "uint8"),
                       (y * float("nan"), "NaN"), (y.expand(2, -1, -1, -1), "one image at a time"),
                       (y[0].numpy(), "torch tensor"), (y[:, :2], "C = 1 or 3")]:
        with pytest.raises(ValueError, match=match):
            images.as_image_tensor(bad)
        with pytest.raises(ValueError, match=match):
            restorer.measurement(bad, "denoise")
    with pytest.raises(ValueError, match="uint8"):
        images.to_uint8(((y + 1) * 127.5).byte())  # what save_image writes: not a white picture
    assert images.to_uint8(y * 50).max() == 255  # an output's outliers are clipped, not refused
    assert images.to_uint8(y.abs() + 9).min() == 255  # (one that goes one way only, within reason)
    for write in (images.to_uint8, images.to_uint16, lambda t: images.save_image(t, tmp_path / "white.png")):
        with pytest.raises(ValueError, match=r"\[0, 255\] scale .*from_unit\(p / 255\)"):
            write((y.clamp(-1, 1) + 1) * 127.5)  # a float [0, 255] image used to be written white
    assert not (tmp_path / "white.png").exists()


def test_daps_budgets_that_give_noise_are_refused_everywhere():
    """DAPS anneals from sigma 80: under DAPS_MIN_LEVELS levels its output is noise of std up to 40 (nfe 5: values
    of +-150), so restore, the method itself (a direct library call returned it silently) and bench refuse."""
    from ncvsd_cli.bench.runner import BenchConfig
    from ncvsd_cli.sampling.methods import DAPS_MIN_LEVELS, get_method

    for nfe in (5, 9, 5 * DAPS_MIN_LEVELS - 5):
        with pytest.raises(ValueError, match=f"at least {DAPS_MIN_LEVELS}"):
            RestoreOptions(task="sr4", method="daps", nfe=nfe).validate()
        with pytest.raises(ValueError, match=f"at least {DAPS_MIN_LEVELS}"):
            get_method("daps").prepare("sr4", nfe)
        with pytest.raises(ValueError, match="--baseline-nfe >= 50"):
            BenchConfig(methods=["daps"], baseline_nfe=nfe, tasks=["sr4"]).validate()
    RestoreOptions(task="sr4", method="daps", nfe=5 * DAPS_MIN_LEVELS).validate()
    assert get_method("daps").prepare("sr4", 5 * DAPS_MIN_LEVELS).kwargs["levels"] == DAPS_MIN_LEVELS
    assert get_method("daps").prepare("sr4", DAPS_MIN_LEVELS + 1).kwargs["levels"] == DAPS_MIN_LEVELS + 1
    BenchConfig(methods=["dps"], baseline_nfe=5, tasks=["sr4"]).validate()  # DPS runs any budget


def test_restore_image_returns_a_grey_image_grey():
    from ncvsd_cli.restore import restore_image

    grey = 0.5 * torch.rand((1, 1, 4, 3), generator=torch.Generator().manual_seed(0)) - 0.25
    out = restore_image(grey, "sr4", method="bicubic", sigma_y=0.05)
    colour = restore_image(grey.expand(1, 3, 4, 3), "sr4", method="bicubic", sigma_y=0.05)
    assert out.shape == (1, 1, 16, 12) and torch.allclose(out[0, 0], colour[0, 0], atol=1e-6)


def test_degrade_measures_a_grey_image_as_the_command_line_does():
    """A (1, 1, H, W) image is measured in colour with grey=True (it built a 1-channel operator that no network
    could restore: "the measurement has 1 channel(s) but the model has 3"); the restoration comes back grey."""
    from ncvsd_cli.measurement import degrade
    from ncvsd_cli.networks import network_config

    grey = 0.5 * torch.rand((1, 1, 13, 11), generator=torch.Generator().manual_seed(0)) - 0.25
    m = degrade(grey, "deblur-gauss", sigma_y=0.05)
    assert m.grey and m.y.shape == (1, 3, 13, 11)
    (res,) = Restorer(GaussianPrior().denoiser, network_config("generator", "tiny"),
                      RestoreOptions(method="pnp-gd-warm", nfe=2).validate()).run([m])
    assert res.error is None and res.samples.shape == (1, 1, 13, 11)


def test_a_classical_method_chosen_per_task_runs_on_the_image_itself():
    """Without a task, a preset file's classical method runs unpadded (it has no network whose size multiple would
    pad a 13x11 image; padded, wiener refused the operator)."""
    from ncvsd_cli.measurement import degrade
    from ncvsd_cli.networks import network_config

    x = 0.5 * torch.rand((1, 3, 13, 11), generator=torch.Generator().manual_seed(0)) - 0.25
    m = degrade(x, "deblur-gauss", sigma_y=0.05)
    options = RestoreOptions(preset_file={"method": "wiener"}).validate()
    (res,) = Restorer(GaussianPrior().denoiser, network_config("generator", "tiny"), options).run([m])
    assert res.error is None and res.samples.shape == (1, 3, 13, 11)


def test_a_restorer_without_network_or_checkpoint_says_how_to_get_one():
    """`Restorer(None, None, options)` for a network method fails per measurement naming the fix (was a TypeError)."""
    r = Restorer(None, None, RestoreOptions(task="sr4"))
    m = r.measurement(torch.rand(1, 3, 16, 16) * 2 - 1, "sr4")
    (res,) = list(r.run([m]))
    assert res.samples is None and "needs a generator network" in res.error and "from_options" in res.error


def test_a_grey_measurement_to_denoise_is_sampled_at_the_grey_scale_of_its_level():
    """Grey noise is the same in the three channels: along the grey a colour network sees sigma_y / ||w|| (1.5x for
    BT.601 luma) where it expects sigma_y, so a grey measurement to denoise (a 1-channel file or one saved as RGB)
    is sampled at 1.5x its level (grey validation photos, noise 0.05: LPIPS 0.048 -> 0.037); colour measurements,
    degrade's grey sidecars (noise drawn per channel) and other tasks keep theirs; the level reported is the
    measurement's, and a note says the scaling."""
    from ncvsd_cli.measurement import degrade
    from ncvsd_cli.restore import GREY_NOISE_SCALE

    r = Restorer(None, None, RestoreOptions(task="denoise", sigma_y=0.04).validate())
    y = (0.04 * torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))).expand(1, 3, 16, 16)
    grey, as_rgb = r.measurement(y, "denoise", grey=True), r.measurement(y, "denoise")  # L file; grey saved as RGB
    colour = r.measurement(0.04 * torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)), "denoise")
    assert GREY_NOISE_SCALE == pytest.approx(1 / math.sqrt(sum(w * w for w in (0.299, 0.587, 0.114))), abs=0.01)
    assert r.sampler_level(grey) == pytest.approx(0.06) and r.level(grey) == 0.04
    assert r.sampler_level(as_rgb) == pytest.approx(0.06)
    assert r.sampler_level(colour) == 0.04
    said = "a grey photo is denoised at 1.5x its noise level, 0.06: its noise is the same in the three channels"
    assert any(said in n for n in grey.notes) and any(said in n for n in as_rgb.notes)
    assert not any("a grey photo is denoised" in n for n in colour.notes)
    sr = Restorer(None, None, RestoreOptions(task="sr4", sigma_y=0.04).validate())
    assert sr.sampler_level(sr.measurement(torch.zeros(1, 3, 4, 4), "sr4", grey=True)) == 0.04
    # `degrade` of a grey image measures it as a grey photo: one noise field in the three channels, the preview's
    # (three fields were three looks, about 3 dB easier to restore than the preview the user sees); so 1.5x too
    from ncvsd_cli.images import match_channels
    from ncvsd_cli.measurement import preview

    for task in ("denoise", "sr4", "inpaint-random"):
        y = (made := degrade(torch.zeros(1, 1, 16, 16), task, sigma_y=0.04, seed=0)).y
        assert made.grey and y.shape[1] == 3 and torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 0], y[:, 2])
        assert torch.equal(match_channels(preview(made), 3), y.clamp(-1, 1))
    made = degrade(torch.zeros(1, 1, 16, 16), "denoise", sigma_y=0.04, seed=0)
    assert 0.03 < float(made.y.std()) < 0.05
    assert Restorer(None, None, RestoreOptions(task="denoise").validate()).sampler_level(made) == pytest.approx(0.06)


def test_restore_image_warns_of_an_image_on_the_unit_scale():
    """A [0, 1] tensor (the commonest slip: restore expects [-1, 1]) is restored as a washed-out picture: a warning
    says so; a [-1, 1] image is not warned about."""
    import warnings

    from ncvsd_cli.restore import restore_image

    x = torch.rand(1, 3, 12, 11, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match=r"expects \[-1, 1\]"):
        restore_image(x, "sr2", method="classical", sigma_y=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restore_image(x * 2 - 1, "sr2", method="classical", sigma_y=0.01)
        restore_image(0.25 + 0.4 * x, "sr2", method="classical", sigma_y=0.01)  # a bright [-1, 1] crop (sky)


def test_restore_image_warns_of_a_noisy_measurement_on_the_unit_scale():
    """A noisy measurement of a [0, 1] image strays below 0 by its noise: still warned about (its 0.1 % quantile);
    the same noise on a [-1, 1] image is not."""
    import warnings

    from ncvsd_cli.restore import restore_image

    g = torch.Generator().manual_seed(1)
    x = 0.1 + 0.8 * torch.rand(1, 3, 40, 41, generator=g)
    y = x + 0.05 * torch.randn(x.shape, generator=g)
    assert float(y.min()) < 0  # the old rule (no value below 0) missed it
    with pytest.warns(UserWarning, match=r"expects \[-1, 1\]"):
        restore_image(y, "denoise", method="classical", sigma_y=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restore_image(y * 2 - 1, "denoise", method="classical", sigma_y=0.05)


@pytest.mark.parametrize("task", ["sr2", "deblur-gauss", "inpaint-random", "denoise"])
def test_images_on_the_8bit_scale_are_refused_by_measure_and_samplers(task):
    """Operator.measure refuses a clean image far outside [-1, 1] (pixels on [0, 255]); a sampler refuses a pixel
    measurement as far out; phase retrieval's amplitudes are no pixels and pass."""
    import operators
    from ncvsd_cli.sampling.methods import get_method

    op = operators.create(task, (3, 9, 11))
    x255 = 255 * torch.rand(1, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"far outside \[-1, 1\].*p / 255"):
        op.measure(x255, 0.05, torch.Generator().manual_seed(0))
    y = op.forward(x255)
    method = get_method("classical")
    with pytest.raises(ValueError, match=r"measurement y: values reach .* far outside"):
        method.run(method.prepare(task, sigma_y=0.05), None, op, y, generator=torch.Generator())
    assert not operators.create("phase-retrieval", (3, 9, 11)).measures_pixels


def test_a_float64_measurement_runs_as_float32():
    """A float64 measurement (operators accept float64 images) runs through a sampler with the float32 network
    (it failed inside the likelihood step): cast, the same result as the float32 measurement."""
    import operators
    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.sampling.methods import get_method

    G, _ = load_checkpoint("builtin64-generator")
    op = operators.create("sr2", (3, 16, 16))
    y = op.measure(torch.zeros(1, 3, 16, 16), 0.05, torch.Generator().manual_seed(0))
    method = get_method("pnp-gd-warm")
    call = method.prepare("sr2", 3, sigma_y=0.05)
    a = method.run(call, G, op, y, generator=torch.Generator().manual_seed(2)).x
    b = method.run(call, G, op, y.double(), generator=torch.Generator().manual_seed(2)).x
    assert b.dtype == torch.float32 and torch.equal(a, b)


def test_restore_image_names_an_unknown_option():
    """A misspelt option (sigmay for sigma_y) is a ValueError naming it and the valid ones, not the dataclass's
    TypeError."""
    from ncvsd_cli.restore import restore_image

    with pytest.raises(ValueError, match=r"unknown option\(s\) sigmay.*sigma_y"):
        restore_image(torch.zeros(1, 3, 8, 8), "sr2", sigmay=0.1)


def test_restore_image_points_phase_retrieval_to_the_restorer():
    """Phase retrieval's y is Fourier amplitudes: restore_image refuses it naming the route that works (it said
    "values reach 5.4, far outside [-1, 1]", or spoke of the command line's sidecar)."""
    import operators
    from ncvsd_cli.restore import restore_image

    op = operators.create("phase-retrieval", (3, 16, 16))
    y = op.measure(torch.zeros(1, 3, 16, 16) + 0.5, 0.05, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"Fourier amplitudes.*Restorer\.from_options"):
        restore_image(y, "phase-retrieval", nfe=2)


def test_loading_a_checkpoint_leaves_the_global_random_stream_alone():
    """The network's random init before its weights load used to advance torch's global generator, shifting a
    user's seeded stream."""
    from ncvsd_cli.checkpoints import load_checkpoint

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_checkpoint("builtin64-generator")
    assert torch.equal(torch.rand(3), expected)


def test_degrade_warns_of_an_image_on_the_unit_scale_as_restore_image_does():
    import warnings

    from ncvsd_cli.measurement import degrade

    x = torch.rand(1, 3, 12, 11, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match=r"degrade expects \[-1, 1\]"):
        degrade(x, "sr2", sigma_y=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        degrade(x * 2 - 1, "sr2", sigma_y=0.01)
        degrade(x, "sr2", sigma_y=0.01, source="a.png")  # a file the command read: on [-1, 1] by construction


@pytest.mark.parametrize("method", ["pnp-gd", "pnp-gd-warm"])
def test_noiseless_denoising_returns_the_measurement(method):
    """At sigma_y 0 the identity's posterior is the measurement itself (`Denoise.exact_fit`); the warm start
    returned it changed by 0.09 before."""
    from ncvsd_cli.restore import restore_image

    x = torch.rand(1, 3, 11, 13, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = restore_image(x, "denoise", sigma_y=0.0, method=method, nfe=2, device="cpu")
    torch.testing.assert_close(out, x, rtol=0, atol=0)


@pytest.mark.parametrize("task", [t for t in operators.names() if t != "phase-retrieval"])
def test_output_alpha_follows_each_operator(task):
    """A transparent input's opacity at the restored image's size: bicubic for sr (a constant stays, a step rises
    monotonically); as it is for the others, inpainting included (a mask marks missing colour, not opacity)."""
    from ncvsd_cli.measurement import output_alpha
    from ncvsd_cli.sampling.classical import bicubic

    hole = np.ones((15, 13))
    hole[5:9, 2:6] = 0.0  # across the transparent band's edge
    params = {"deblur-kernel": {"kernel": np.ones((3, 3))}, "inpaint-mask": {"mask": hole},
              "inpaint-random": {"seed": 3}, "deblur-motion": {"seed": 3}}.get(task, {})
    f = int(getattr(operators.get(task), "factor", 1) or 1)
    op = operators.create(task, (3, 15 * f, 13 * f), **params)
    alpha = torch.ones(1, 1, 15, 13)
    alpha[..., :, :4] = 0.0  # a transparent left band
    out = output_alpha(alpha, op)
    assert out.shape == (1, 1, 15 * f, 13 * f) and 0 <= float(out.min()) and float(out.max()) <= 1
    if f > 1:
        assert torch.allclose(out, bicubic(None, op, alpha).x.clamp(0, 1))
        assert torch.allclose(output_alpha(torch.full((1, 1, 15, 13), 0.25), op), torch.full_like(out, 0.25))
        assert (out[..., 1:] >= out[..., :-1] - 1e-6).all()
    else:
        assert torch.equal(out, alpha)
    with pytest.raises(ValueError, match="create the operator for the restored image.s shape"):  # the input's shape: wrong
        output_alpha(torch.ones(1, 1, 15 * f + 1, 13 * f), op)


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_available_memory_is_the_cgroup_headroom_under_a_containers_limit(tmp_path, monkeypatch, version):
    """/proc/meminfo shows the host's memory: in a container limited to a few GiB the memory check let through runs
    that its limit then killed. The headroom counts reclaimable page cache (inactive_file) as free."""
    from ncvsd_cli import memory

    folder = tmp_path / version
    folder.mkdir()
    gib = 2**30
    names = {"v2": ("memory.max", "memory.current", "inactive_file"),
             "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")}[version]
    (folder / names[0]).write_text(f"{4 * gib}\n")
    (folder / names[1]).write_text(f"{3 * gib}\n")
    (folder / "memory.stat").write_text(f"anon 123\n{names[2]} {gib}\n")
    monkeypatch.setattr(memory, "CGROUP_V2_ROOT" if version == "v2" else "CGROUP_V1_ROOT", str(folder))
    monkeypatch.setattr(memory, "CGROUP_V1_ROOT" if version == "v2" else "CGROUP_V2_ROOT", str(tmp_path / "none"))
    assert memory.cgroup_headroom_bytes() == 2 * gib  # 4 - (3 - 1 reclaimable)
    assert memory.available_memory_bytes("cpu") <= 2 * gib
    (folder / names[0]).write_text("max\n" if version == "v2" else "9223372036854771712\n")  # no limit
    assert memory.cgroup_headroom_bytes() is None


def test_a_limit_on_a_parent_cgroup_counts_and_unreadable_files_are_ignored(tmp_path, monkeypatch):
    """Slurm and systemd put the limit on a parent of the process's cgroup, whose own memory.max says "max"."""
    from ncvsd_cli import memory

    gib = 2**30
    job, step = tmp_path / "job_1", tmp_path / "job_1" / "step_0"
    step.mkdir(parents=True)
    for folder, limit, usage in ((tmp_path, "max", 9 * gib), (job, str(6 * gib), 5 * gib), (step, "max", 4 * gib)):
        (folder / "memory.max").write_text(limit + "\n")
        (folder / "memory.current").write_text(f"{usage}\n")
    read = memory._read
    monkeypatch.setattr(memory, "_read", lambda path: "0::/job_1/step_0\n" if path == "/proc/self/cgroup"
                        else read(path))
    monkeypatch.setattr(memory, "CGROUP_V2_ROOT", str(tmp_path))
    monkeypatch.setattr(memory, "CGROUP_V1_ROOT", str(tmp_path / "none"))
    assert memory.cgroup_headroom_bytes() == gib  # job_1: 6 GiB limit, 5 used
    (job / "memory.current").write_text("\n")  # unreadable: that folder is left out, not an error
    assert memory.cgroup_headroom_bytes() is None


def test_available_memory_without_proc_meminfo_comes_from_psutil(tmp_path, monkeypatch):
    """macOS and Windows have no /proc/meminfo (nor os.sysconf's SC_AVPHYS_PAGES): the memory checks were skipped
    there and a too-large image swapped or was killed."""
    import psutil

    from ncvsd_cli import memory

    monkeypatch.setattr(memory, "MEMINFO", str(tmp_path / "absent"))
    monkeypatch.setattr(memory, "cgroup_headroom_bytes", lambda: None)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("VM", (), {"available": 3 * 2**30})())
    assert memory.available_memory_bytes("cpu") == 3 * 2**30


def test_a_library_sigma_above_1_is_warned_of_as_a_likely_0_255_level():
    """degrade(x, "denoise", sigma_y=25) and restore_image(..., sigma_y=25) (25: the papers' 0-255 level) ruined the
    result without a word; the command warned."""
    import warnings

    from ncvsd_cli.measurement import degrade
    from ncvsd_cli.restore import restore_image

    x = torch.zeros(1, 3, 16, 16)
    with pytest.warns(UserWarning, match=r"sigma_y 25 is on the \[-1, 1\] scale.*25 / 127.5 = 0.1961"):
        degrade(x, "denoise", sigma_y=25)
    with pytest.warns(UserWarning, match="restore_image: sigma_y 25 is on"):
        restore_image(x, "denoise", sigma_y=25, method="nl-means")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        degrade(x, "denoise", sigma_y=0.2)
        restore_image(x, "denoise", sigma_y=0.2, method="nl-means")


def test_the_first_library_calls_leave_the_callers_random_stream_alone():
    """The first restore_image (its memory model built a randomly initialised network) and the first LPIPS (its
    random init before the real weights) advanced torch's global generator: a user's seeded code gave other
    numbers depending on call order."""
    from ncvsd_cli import memory, metrics
    from ncvsd_cli.checkpoints import read_network_config, resolve_checkpoint

    memory._built.cache_clear()
    config = read_network_config(resolve_checkpoint("builtin64-generator", kind="generator", quiet=True))
    x = torch.zeros(1, 3, 32, 32)
    for call in (lambda: memory.network_shape(config), lambda: metrics.LPIPS("alex")(x, x)):
        torch.manual_seed(0)
        call()
        after = torch.rand(1)
        torch.manual_seed(0)
        assert torch.equal(after, torch.rand(1))


def test_a_given_noise_level_the_photo_belies_is_said():
    """restore --task denoise --sigma-y S took any S silently: 0.02 on a photo with noise 0.2 stayed grainy, 0.3 on
    a clean photo smoothed it. A level 3x off the reading is now said; a right one, or a lossy file's higher one
    (its coding strips noise), is not."""
    from ncvsd_cli.restore import given_level_notes

    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-0.6, 0.6, 96), torch.linspace(-0.5, 0.5, 96), indexing="ij")
    clean = torch.stack([xx, yy, 0.5 * (xx + yy)]).unsqueeze(0)
    noisy = clean + 0.2 * torch.randn(clean.shape, generator=g)
    assert "may stay grainy" in given_level_notes(noisy, 0.02, 3)[0]
    assert given_level_notes(noisy, 0.2, 3) == []
    assert "smoothed away" in given_level_notes(clean, 0.3, 3)[0]
    assert given_level_notes(clean, 0.3, 3, lossy=True) == [] and given_level_notes(clean, 0.02, 3) == []
    assert given_level_notes(noisy[..., :4, :4], 0.02, 3) == []  # too small to read
    cut_out = noisy.clamp(-1, 1)  # (as a file holds it)
    cut_out[..., 8:] = 1.0  # 92 % transparent, composited on white: it reads 0.03, under a third of 0.2
    assert given_level_notes(cut_out, 0.2, 3) == []
    r = Restorer(None, None, RestoreOptions(task="denoise", sigma_y=0.02).validate())
    assert any("may stay grainy" in n for n in r.measurement(noisy, "denoise").notes)
