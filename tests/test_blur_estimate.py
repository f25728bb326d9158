"""ncvsd_cli/blur_estimate.py: the Gaussian blur width read from the image alone, on fields whose spectrum the
model describes exactly (a power law), through the operator, after JPEG, and in `restore`."""

import io
import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

import operators
from ncvsd_cli.blur_estimate import (
    MIN_SIZE,
    RADIUS_STEP,
    BlurReading,
    estimate_defocus_radius,
    estimate_gaussian_blur,
    read_blur,
)
from ncvsd_cli.images import load_image


def power_law_field(h: int, w: int, blur: float, seed: int, alpha: float = 2.0) -> torch.Tensor:
    """A Gaussian random field (1, 3, h, w) with power spectrum f^-alpha, blurred by a Gaussian of std `blur` px
    (Fourier-domain transfer exp(-2 pi^2 blur^2 f^2)), scaled to std 0.3."""
    g = torch.Generator().manual_seed(seed)
    fy, fx = torch.fft.fftfreq(h)[:, None], torch.fft.fftfreq(w)[None]
    f = (fy**2 + fx**2).sqrt().clamp(min=1.0 / max(h, w))
    transfer = f ** (-alpha / 2) * torch.exp(-2 * math.pi**2 * blur**2 * f**2)
    x = torch.fft.ifft2(torch.fft.fft2(torch.randn(h, w, generator=g, dtype=torch.float64)) * transfer).real
    x = (x - x.mean()) / x.std() * 0.3
    return x.float().expand(1, 3, h, w).clone()


@pytest.mark.parametrize("blur", [0.8, 1.5, 3.0, 5.0])
@pytest.mark.parametrize("alpha", [1.8, 2.6])
def test_power_law_field_blur_is_recovered(blur, alpha):
    y = power_law_field(131, 157, blur, seed=int(blur * 10), alpha=alpha)
    y = y + 0.003 * torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    assert estimate_gaussian_blur(y) == pytest.approx(blur, abs=0.1 + 0.1 * blur)


def test_unblurred_and_white_noise_read_sharp_tiny_and_flat_images_are_not_estimated():
    assert estimate_gaussian_blur(power_law_field(128, 128, 0.0, seed=3)) < 0.5
    assert estimate_gaussian_blur(torch.zeros(1, 3, MIN_SIZE - 1, 64)) is None
    assert estimate_gaussian_blur(torch.full((1, 3, 64, 64), 0.3)) is None  # flat: no evidence either way
    assert estimate_gaussian_blur(0.1 * torch.randn(1, 1, 40, 300, generator=torch.Generator().manual_seed(0))) < 0.3


@pytest.mark.parametrize(("blur", "quality"), [(1.5, 95), (3.0, 85)])
def test_operator_blur_with_reflect_edges_and_jpeg(blur, quality, tmp_path):
    """Blurred by the deblur-gauss operator (mirrored edges, noise), then saved as JPEG: the 8x8 blocks' error,
    which falls with frequency, must not read as a sharp image (with a white noise floor, 3 px at quality 85
    read 0)."""
    x = power_law_field(144, 160, 0.0, seed=5)
    op = operators.create("deblur-gauss", (3, 144, 160), sigma=blur, boundary="reflect")
    y = op(x) + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    assert estimate_gaussian_blur(y) == pytest.approx(blur, abs=0.1 + 0.1 * blur)
    rgb = ((y[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    (tmp_path / "b.jpg").write_bytes(buf.getvalue())
    assert estimate_gaussian_blur(load_image(str(tmp_path / "b.jpg"))) == pytest.approx(blur, abs=0.2 + 0.15 * blur)


def test_restore_estimates_a_plain_images_blur_unless_given(tmp_path):
    """`restore --task deblur-gauss` of a plain image reads the blur width from it (a note says so); -p sigma or a
    sidecar's operator are used as given."""
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app
    from ncvsd_cli.images import save_image

    x = power_law_field(64, 72, 0.0, seed=7)
    op = operators.create("deblur-gauss", (3, 64, 72), sigma=2.0, boundary="reflect")
    save_image(op(x).clamp(-1, 1), str(tmp_path / "b.png"))
    runner = CliRunner()

    def result(*args: str) -> dict:
        res = runner.invoke(app, ["restore", *args, "--method", "wiener", "--json", "--overwrite", "-q"])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout.splitlines()[-1])["results"][0]

    estimated = result("--task", "deblur-gauss", str(tmp_path / "b.png"), "-o", str(tmp_path / "r.png"))
    assert estimated["blur_sigma"] == pytest.approx(2.0, abs=0.5)
    assert any(f"blur sigma {estimated['blur_sigma']:.2f} px" in n and "under 128 px holds little evidence" in n
               for n in estimated["notes"])  # 64 px: the reading's spread is named
    assert not any("cuts off" in n for n in estimated["notes"])  # the preset's 61 px hold it
    short = result("--task", "deblur-gauss", "-p", "kernel_size=7", str(tmp_path / "b.png"), "-o",
                   str(tmp_path / "k.png"))
    assert any("kernel_size 7 cuts off" in n for n in short["notes"]), short["notes"]
    given = result("--task", "deblur-gauss", "-p", "sigma=1.7", str(tmp_path / "b.png"), "-o", str(tmp_path / "g.png"))
    assert given["blur_sigma"] == 1.7 and not any("blur sigma" in n for n in given["notes"])
    (tmp_path / "p.yaml").write_text("operator: {sigma: 2.5}\n")
    preset = result("--task", "deblur-gauss", "--preset", str(tmp_path / "p.yaml"), str(tmp_path / "b.png"), "-o",
                    str(tmp_path / "p.png"))
    assert preset["blur_sigma"] == 2.5 and not any("blur sigma" in n for n in preset["notes"])
    assert runner.invoke(app, ["degrade", "--task", "deblur-gauss", str(tmp_path / "b.png"), "-o",
                               str(tmp_path / "m.png"), "-q"]).exit_code == 0
    recorded = result(str(tmp_path / "m.png"), "-o", str(tmp_path / "mr.png"))
    assert recorded["blur_sigma"] == 3.0 and not any("blur sigma" in n for n in recorded["notes"])
    x = power_law_field(128, 130, 0.0, seed=7)
    save_image(operators.create("deblur-gauss", (3, 128, 130), sigma=2.0, boundary="reflect")(x).clamp(-1, 1),
               str(tmp_path / "big.png"))
    big = result("--task", "deblur-gauss", str(tmp_path / "big.png"), "-o", str(tmp_path / "bigr.png"))
    assert any("blur sigma" in n for n in big["notes"]) and not any("little evidence" in n for n in big["notes"])


def test_large_images_are_read_on_their_centre_square():
    from ncvsd_cli.blur_estimate import MAX_SIZE

    y = power_law_field(MAX_SIZE + 40, MAX_SIZE + 100, 2.0, seed=4)
    centre = y[..., 20:20 + MAX_SIZE, 50:50 + MAX_SIZE]
    assert estimate_gaussian_blur(y) == estimate_gaussian_blur(centre) == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize("seed", [0, 1])
def test_heavy_noise_does_not_hide_the_blur_and_pure_noise_reads_sharp(seed):
    """At sigma_y 0.2 a 2-px blur must still read about 2 (a fit in s, whose slope vanishes at s = 0, stayed at 0);
    white noise carries no blur evidence and reads 0 (not an arbitrary width up to 8)."""
    y = power_law_field(128, 136, 2.0, seed=seed)
    y = y + 0.2 * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    assert estimate_gaussian_blur(y) == pytest.approx(2.0, abs=0.6)
    assert estimate_gaussian_blur(torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(seed))) == 0.0


@pytest.mark.parametrize("radius", [2.0, 4.5, 9.0])
@pytest.mark.parametrize("boundary", ["circular", "reflect"])
def test_defocus_disk_radius_is_recovered_and_tells_itself_from_a_gaussian(radius, boundary):
    """A power-law field blurred by the deblur-defocus operator (an anti-aliased disk): the radius reads to the
    grid step, the disk fits better than any Gaussian, and the Gaussian fit reads the disk far too narrow for
    large radii (its spectral zeros look like noise)."""
    x = power_law_field(141, 163, 0.0, seed=int(radius * 3))
    op = operators.create("deblur-defocus", (3, 141, 163), radius=radius, boundary=boundary)
    y = op(x) + 0.003 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert estimate_defocus_radius(y) == pytest.approx(radius, abs=RADIUS_STEP)
    reading = read_blur(y)
    assert reading.radius == pytest.approx(radius, abs=RADIUS_STEP) and reading.defocus_nats > 100
    if radius >= 4.5:
        assert estimate_gaussian_blur(y) < 0.8 * radius / 2


def test_a_faint_defocused_sky_reads_its_radius():
    """A faint, steep spectrum (a sky: alpha 3.2, std 0.05) under noise 0.04: the coarse nuisance grid ranked a
    radius of 1 px first, hundreds of nats off the refined fits, and the disk of radius 4 read as 1 px ("looks
    unblurred")."""
    x = power_law_field(192, 192, 0.0, seed=3, alpha=3.2) * (0.05 / 0.3)
    op = operators.create("deblur-defocus", (3, 192, 192), radius=4.0, boundary="reflect")
    y = op(x) + 0.04 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert read_blur(y).radius == pytest.approx(4.0, abs=RADIUS_STEP)


@pytest.mark.parametrize("blur", [1.5, 3.0])
def test_a_gaussian_blur_is_not_taken_for_defocus(blur):
    y = power_law_field(141, 163, blur, seed=7) + 0.003 * torch.randn(1, 3, 141, 163,
                                                                      generator=torch.Generator().manual_seed(1))
    assert read_blur(y).defocus_nats < 0


def test_defocus_reads_none_on_tiny_or_flat_images_and_at_most_a_pixel_on_sharp_ones():
    assert estimate_defocus_radius(torch.zeros(1, 3, MIN_SIZE - 1, 64)) is None
    assert read_blur(torch.full((1, 3, 64, 64), 0.3)) is None
    assert estimate_defocus_radius(0.1 * torch.randn(1, 1, 48, 200, generator=torch.Generator().manual_seed(0))) <= 1
    assert estimate_defocus_radius(power_law_field(128, 128, 0.0, seed=3)) <= 1


def test_restore_reads_a_defocus_radius_and_deblur_gauss_names_defocus(tmp_path):
    """`restore --task deblur-defocus` of a plain image reads the disk's radius (note, `blur_radius` in --json);
    `--task deblur-gauss` of the same image notes that a disk fits better; -p radius is used as given."""
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app
    from ncvsd_cli.images import save_image

    x = power_law_field(136, 140, 0.0, seed=9)
    op = operators.create("deblur-defocus", (3, 136, 140), radius=5.0, boundary="reflect")
    save_image((op(x) + 0.005 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).clamp(-1, 1),
               str(tmp_path / "d.png"))
    runner = CliRunner()

    def result(*args: str) -> dict:
        res = runner.invoke(app, ["restore", *args, str(tmp_path / "d.png"), "--method", "wiener", "--json", "-q",
                                  "-o", str(tmp_path / f"r{args[1]}{len(args)}.png")])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout.splitlines()[-1])["results"][0]

    read = result("--task", "deblur-defocus")
    assert read["blur_radius"] == pytest.approx(5.0, abs=RADIUS_STEP)
    assert any(f"estimated defocus radius {read['blur_radius']:g} px" in n for n in read["notes"]), read["notes"]
    gauss = result("--task", "deblur-gauss")
    assert any("looks like defocus" in n and "--task deblur-defocus" in n for n in gauss["notes"]), gauss["notes"]
    res = runner.invoke(app, ["restore", "--task", "deblur-gauss", str(tmp_path / "d.png"), "--method", "wiener",
                              "-q", "-o", str(tmp_path / "q.png")])  # a Gaussian deblur of it gets halos: a
    assert res.exit_code == 0 and "warning: " in res.stderr and "looks like defocus" in res.stderr  # warning
    given = result("--task", "deblur-defocus", "-p", "radius=3")
    assert given["blur_radius"] == 3 and not any("defocus radius" in n for n in given["notes"])


@pytest.mark.parametrize(("radius", "seed"), [(1.0, 11), (1.0, 3), (1.5, 11)])
def test_small_disks_read_true_with_the_operators_own_transfer(radius, seed):
    """The fit uses the operator's disk transfer (pixel coverage, aliasing included), not the continuous jinc²:
    with jinc² alone radius 1.0 read 1.25 (0.75, hardly told from 1.0, reads either)."""
    x = power_law_field(160, 150, 0.0, seed=seed)
    y = operators.create("deblur-defocus", (3, 160, 150), radius=radius)(x)
    y = y + 0.002 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    assert estimate_defocus_radius(y) == pytest.approx(radius, abs=RADIUS_STEP / 2)


def test_disk_transfer_is_the_direction_averaged_dft_of_the_kernel():
    from ncvsd_cli.blur_estimate import disk_transfer
    from operators.blur import disk_kernel

    for radius in (1.0, 3.0):
        k = disk_kernel(radius)
        c = np.arange(k.shape[0]) - k.shape[0] // 2
        rings, power = disk_transfer(radius)
        for f in (0.1, 0.3):
            theta = (np.arange(64) + 0.5) * np.pi / 128
            dft = [abs((k * np.exp(-2j * np.pi * f * (np.cos(t) * c[None] + np.sin(t) * c[:, None]))).sum()) ** 2
                   for t in theta]
            assert np.interp(f, rings, power) == pytest.approx(np.mean(dft), rel=0.01, abs=1e-4)


@pytest.mark.parametrize(("task", "reading", "says", "not_says"), [
    ("deblur-gauss", BlurReading(0.6, 6.0, 500.0, 50000), "looks like defocus", "unblurred"),
    ("deblur-gauss", BlurReading(2.0, 2.5, 500.0, 50000), "sigma 2.00 px", "defocus"),  # a small disk: alike
    ("deblur-gauss", BlurReading(0.3, 0.5, -5.0, 50000), "looks unblurred", "defocus"),
    ("deblur-gauss", BlurReading(8.0, 16.0, -900.0, 50000), "the widest the reading covers", "defocus"),
    ("deblur-defocus", BlurReading(2.5, 5.0, -500.0, 50000), "a Gaussian of sigma 2.50 px fits", "unblurred"),
    ("deblur-defocus", BlurReading(0.8, 2.0, -500.0, 50000), "radius 2 px", "Gaussian"),  # small: alike
    ("deblur-defocus", BlurReading(2.5, 5.0, -50.0, 50000), "radius 5 px", "Gaussian"),  # too close to call
    ("deblur-defocus", BlurReading(0.0, 0.0, 0.0, 50000), "radius 0.5 px (-p radius=R sets it): the image looks unblurred",
     "Gaussian"),
    ("deblur-defocus", BlurReading(1.0, 16.0, 900.0, 50000), "the widest the reading covers", "Gaussian"),
    ("deblur-gauss", BlurReading(1.0, 2.0, 0.0, 50000, capped=True),
     "sigma 1.00 px (lowered to what the image's steepest edges allow", "defocus"),
    ("deblur-defocus", BlurReading(1.0, 2.0, 0.0, 50000, radius_capped=True), "radius 2 px (lowered to what",
     "Gaussian"),
    ("deblur-gauss", BlurReading(1.0, 2.0, 0.0, 50000, radius_capped=True), "sigma 1.00 px (-p sigma", "lowered"),
    ("deblur-defocus", BlurReading(1.0, 2.0, 0.0, 50000, capped=True), "radius 2 px (-p radius", "lowered"),
    ("deblur-gauss", BlurReading(2.0, 2.0, 0.0, 50000), "sigma 2.00 px (-p sigma", "lowered"),
])
def test_blur_notes_name_the_better_model_only_when_it_is_clearly_better(task, reading, says, not_says):
    from ncvsd_cli.restore import blur_notes

    params = {}
    notes = " | ".join(blur_notes(task, reading, params, (256, 256)))
    assert says in notes and not_says not in notes, notes
    assert params == ({"sigma": max(round(reading.width, 2), 0.25)} if task == "deblur-gauss" else
                      {"radius": max(reading.radius, 0.5)})


def test_a_defocus_hint_from_a_jpeg_says_it_is_unsure():
    """JPEGs of 3-px Gaussian blurs fit a disk better on all 6 training views: from a lossy file the hint says so."""
    from ncvsd_cli.restore import blur_notes

    reading = BlurReading(0.6, 6.0, 500.0, 50000)
    plain = " ".join(blur_notes("deblur-gauss", reading, {}, (256, 256)))
    jpeg = " ".join(blur_notes("deblur-gauss", reading, {}, (256, 256), lossy=True))
    assert "looks like defocus" in plain and "unsure" not in plain
    assert "may be defocus" in jpeg and "JPEG coding makes Gaussian blurs fit a disk too" in jpeg


def test_from_a_lossy_file_no_gaussian_is_suggested_and_an_unblurred_look_may_hide_a_blur():
    """A noisy JPEG's disk can fit a Gaussian better (following that cost 7.6 dB): not suggested from a lossy
    file; "looks unblurred" from a lossy file says the coding may hide the blur and how to give it."""
    from ncvsd_cli.restore import blur_notes

    disk = BlurReading(2.5, 5.0, -500.0, 50000)
    assert "a Gaussian of sigma" in " ".join(blur_notes("deblur-defocus", disk, {}, (256, 256)))
    assert "Gaussian" not in " ".join(blur_notes("deblur-defocus", disk, {}, (256, 256), lossy=True))
    for task, reading, option in (("deblur-defocus", BlurReading(0.0, 0.0, 0.0, 50000), "-p radius=R"),
                                  ("deblur-gauss", BlurReading(0.3, 0.5, -5.0, 50000), "-p sigma=S")):
        plain = blur_notes(task, reading, {}, (256, 256))[0]
        jpeg = blur_notes(task, reading, {}, (256, 256), lossy=True)[0]
        assert plain.endswith("looks unblurred to a round blur (a camera shake's streaks read so: --task "
                              "deblur-motion reads them)") and "hides the blur" not in plain
        assert "lossy coding (with noise) hides the blur" in jpeg and jpeg.endswith(f"give {option}"), jpeg


def test_a_small_images_defocus_note_does_not_quote_the_gaussians_numbers():
    from ncvsd_cli.restore import blur_notes

    gauss = blur_notes("deblur-gauss", BlurReading(1.5, 3.0, 0.0, 5000), {}, (64, 80))[0]
    disk = blur_notes("deblur-defocus", BlurReading(1.5, 3.0, 0.0, 5000), {}, (100, 120))[0]
    assert "read 0.9-1.8" in gauss and "little evidence of the radius" in disk and "0.9-1.8" not in disk


@pytest.mark.parametrize(("task", "said"), [
    ("deblur-gauss", "a blur width from (under 32 px): give the width, -p sigma=S"),
    ("deblur-defocus", "a defocus radius from (under 96 px"),
])
def test_a_blur_is_not_guessed_for_an_image_too_small_to_read_it(tmp_path, task, said):
    """A 40x30 thumbnail was deconvolved with the preset's 3-px Gaussian (the reading needs 32 px): worm-like
    stripes at 8.8 dB where the input had 35. It fails alone, asking for the width; a flat image keeps the preset."""
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app
    from ncvsd_cli.images import save_image
    from ncvsd_cli.restore import blur_notes

    with pytest.raises(ValueError, match=re.escape(f"40x30 px is too small to read {said}")):
        blur_notes(task, None, {}, (30, 40))
    key = "sigma" if task == "deblur-gauss" else "radius"
    flat = f"blur {'width' if key == 'sigma' else 'radius'} not estimated (a flat image): {key} 3.0 px"
    assert blur_notes(task, None, {key: 3.0}, (128, 128)) == [flat]
    save_image(power_law_field(30, 40, 0.0, seed=2), str(tmp_path / "thumb.png"))
    args = ["restore", "--task", task, "--method", "wiener", "-q", str(tmp_path / "thumb.png"), "-o",
            str(tmp_path / "out.png")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "too small to read" in res.stderr and not (tmp_path / "out.png").exists()
    assert CliRunner().invoke(app, [*args, "-p", f"{key}=1"]).exit_code == 0


def test_a_defocus_radius_is_not_read_from_an_image_under_96_px(tmp_path):
    """Sharp 64-px photo crops read as 4-7 px disks and were restored to ringing stripes (8 dB below the input):
    under DEFOCUS_READ_MIN_SIDE the image fails alone with a message asking for -p radius; -p radius restores it."""
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app
    from ncvsd_cli.images import save_image
    from ncvsd_cli.restore import DEFOCUS_READ_MIN_SIDE, blur_notes

    with pytest.raises(ValueError, match="too small to read a defocus radius"):
        blur_notes("deblur-defocus", BlurReading(0.9, 4.25, 50.0, 3000), {}, (64, DEFOCUS_READ_MIN_SIDE + 10))
    save_image(power_law_field(64, 70, 0.0, seed=2), str(tmp_path / "small.png"))
    save_image(power_law_field(DEFOCUS_READ_MIN_SIDE, 100, 0.0, seed=2), str(tmp_path / "large.png"))
    args = ["restore", "--task", "deblur-defocus", "--method", "wiener", "-q", str(tmp_path / "small.png"),
            str(tmp_path / "large.png"), "-o", str(tmp_path / "out")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "small.png: 70x64 px is too small" in res.stderr and "-p radius=R" in res.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["large.png"], res.output
    assert CliRunner().invoke(app, [*args, "-p", "radius=2", "--overwrite"]).exit_code == 0


def _jpeg(y: torch.Tensor, **kw) -> bytes:
    """y (1, C, h, w) in [-1, 1] (C = 1: grey) saved by Pillow as a JPEG with keywords kw (quality, ...)."""
    pixels = ((y[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels if pixels.shape[-1] == 3 else pixels[..., 0]).save(buf, "JPEG", **kw)
    return buf.getvalue()


def test_coding_gain_interpolates_in_log_power_and_keeps_its_end_values():
    """`CodingGain.__call__`: each bin's log gain linear in log power between the table's levels, the end rows
    beyond them, differentiable in the power (the fit's L-BFGS-B needs the slope)."""
    from ncvsd_cli.blur_estimate import CodingGain

    gain = CodingGain(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64),
                      torch.tensor([[0.0, -4.0], [-1.0, -2.0], [-3.0, 0.0]], dtype=torch.float64))
    log_m = torch.tensor([[0.5, 1.5], [-7.0, 9.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    out = gain(log_m)
    assert torch.allclose(out.detach(), torch.tensor([[-0.5, -1.0], [0.0, 0.0], [-1.0, 0.0]], dtype=torch.float64))
    out[0].sum().backward()
    assert log_m.grad[0].tolist() == [-1.0, 2.0]


def test_a_jpegs_gain_is_near_one_for_unit_steps_and_strips_weak_fine_frequencies():
    """The simulated gain (`_coding_gains`): steps of 1 (4:4:4) pass grey noise of any power above 8-bit rounding
    (gain within 25 % above 0.05 cycles/px, where the bins hold many periodogram values); quality 10 zeroes weak noise above 0.3 cycles/px (gain < 0.05) but passes a strong one's
    low frequencies; 4:2:0 strips a colour noise's chroma above 0.25 cycles/px, which leaves its luma part there:
    more power in the channels' mean (0.447 / 0.333 of it), where grey noise is not raised."""
    from ncvsd_cli.blur_estimate import _CODING_LEVELS, _coding_gains
    from ncvsd_cli.images import JpegCoding, jpeg_coding

    exact = JpegCoding(((1,) * 64, (1,) * 64), 0, True)
    f, gains = _coding_gains(exact, False)
    assert gains[_CODING_LEVELS >= 1e-4][:, f > 0.05].exp().sub(1).abs().max() < 0.25  # the lowest bins: few values
    f, gains = _coding_gains(jpeg_coding(_jpeg(torch.zeros(1, 3, 16, 16), quality=10)), False)
    weak, strong = int((_CODING_LEVELS - 1e-5).abs().argmin()), int((_CODING_LEVELS - 1e-1).abs().argmin())
    assert gains[weak, f > 0.3].exp().max() < 0.05
    assert gains[strong, f < 0.1].exp().min() > 0.5
    subsampled = JpegCoding(exact.tables, 2, True)
    f, colour = _coding_gains(subsampled, True)
    _, grey = _coding_gains(subsampled, False)
    high, mid = int((_CODING_LEVELS - 1e-3).abs().argmin()), (f > 0.3) & (f < 0.45)
    assert colour[high, mid].exp().mean() == pytest.approx(0.447 / 0.333, rel=0.15)
    assert grey[high, mid].exp().mean() == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize(("blur", "channels"), [(2.0, 3), (3.0, 3), (2.0, 1)])
def test_a_noisy_jpegs_blur_reads_through_its_coding(blur, channels):
    """Noise 0.04 in each channel, then JPEG quality 75 (colour: 4:2:0; also a grey JPEG): the coding strips the
    noise's finest frequencies, a steep fall that the plain model reads as a sharp image's spectrum (the width far
    too small); read through the file's coding (`images.jpeg_coding`), that model fits better and the width comes
    back. A clean JPEG of the same blur keeps its plain reading."""
    from ncvsd_cli.images import jpeg_coding

    x = power_law_field(192, 208, 0.0, seed=11)[:, :channels]
    blurred = operators.create("deblur-gauss", (channels, 192, 208), sigma=blur, boundary="reflect")(x)
    noisy = _jpeg(blurred + 0.04 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3)), quality=75)
    y = load_image(noisy)
    plain, coded = read_blur(y, defocus=False), read_blur(y, defocus=False, coding=jpeg_coding(noisy))
    assert plain.width < 0.7 * blur and not plain.coded
    assert coded.coded and coded.width == pytest.approx(blur, rel=0.2)
    clean = _jpeg(blurred, quality=75)
    reading = read_blur(load_image(clean), defocus=False, coding=jpeg_coding(clean))
    assert reading.width == pytest.approx(blur, rel=0.2)


def test_restore_reads_a_noisy_jpegs_blur_through_its_coding(tmp_path, caplog):
    """`ncvsd restore --task deblur-gauss` of a noisy JPEG reads the width through the file's coding (a note says
    so), as `restore_image(..., jpeg_coding=read_image(...).jpeg_coding)` does; a PNG of it has no coding to use."""
    import logging

    from typer.testing import CliRunner

    from ncvsd_cli.cli import app
    from ncvsd_cli.images import read_image
    from ncvsd_cli.restore import restore_image

    x = power_law_field(192, 208, 0.0, seed=11)
    blurred = operators.create("deblur-gauss", (3, 192, 208), sigma=2.0, boundary="reflect")(x)
    (tmp_path / "b.jpg").write_bytes(_jpeg(blurred + 0.04 * torch.randn(x.shape, generator=torch.Generator()
                                                                         .manual_seed(3)), quality=75))
    res = CliRunner().invoke(app, ["restore", "--task", "deblur-gauss", str(tmp_path / "b.jpg"), "-o",
                                   str(tmp_path / "r.png"), "--method", "wiener", "--json", "-q"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout.splitlines()[-1])["results"][0]
    assert result["blur_sigma"] == pytest.approx(2.0, rel=0.2)
    assert any("read through this JPEG's quantisation, whose steps" in n for n in result["notes"]), result["notes"]
    decoded = read_image(tmp_path / "b.jpg")
    with caplog.at_level(logging.INFO, logger="ncvsd.restore"):
        restore_image(decoded.tensor, "deblur-gauss", method="wiener", jpeg_sigma=decoded.jpeg_sigma,
                      jpeg_coding=decoded.jpeg_coding)
    assert any("read through this JPEG's quantisation, whose steps" in r.getMessage() for r in caplog.records)


def test_a_coding_that_cannot_be_simulated_leaves_the_plain_reading(monkeypatch):
    """Where Pillow cannot code with a file's tables (`_coding_gains` raises), `read_blur` reads as without them."""
    from ncvsd_cli import blur_estimate
    from ncvsd_cli.images import JpegCoding

    def refuse(coding, colour_noise):
        raise OSError("encoder error -2 when writing image file")

    monkeypatch.setattr(blur_estimate, "_coding_gains", refuse)
    y = operators.create("deblur-gauss", (3, 96, 96), sigma=2.0, boundary="reflect")(power_law_field(96, 96, 0.0, 4))
    coding = JpegCoding(((1,) * 64, (1,) * 64), 2, True)
    reading, plain = read_blur(y, defocus=False, coding=coding), read_blur(y, defocus=False)
    assert (reading.width, reading.coded) == (plain.width, False) and plain.width > 1  # radius: nan, not fitted


@pytest.mark.parametrize("channels", [1, 3])
def test_a_grey_reading_of_a_colour_jpeg_is_not_read_through_its_colour_coding(monkeypatch, channels):
    """`Restorer.measurement` passes a colour JPEG's coding to `read_blur` for a colour image only: a grey model
    reads the luma, not the channels' mean the coding was simulated on."""
    from ncvsd_cli import blur_estimate
    from ncvsd_cli.images import JpegCoding
    from ncvsd_cli.restore import RestoreOptions, Restorer

    seen = []
    monkeypatch.setattr(blur_estimate, "read_blur", lambda y, coding=None, **kw: seen.append(coding))
    coding = JpegCoding(((1,) * 64, (1,) * 64), 2, True)
    y = power_law_field(64, 64, 0.0, seed=2)[:, :channels]
    Restorer(None, None, RestoreOptions(task="deblur-gauss", sigma_y=0.05).validate()).measurement(
        y, "deblur-gauss", jpeg_sigma=0.01, jpeg_coding=coding)
    assert seen == [coding if channels == 3 else None]


@pytest.mark.parametrize("cell", [23, 40, 0])
def test_a_cut_out_read_whole_is_not_checked_by_its_outline(monkeypatch, cell):
    """A transparent image whose largest opaque rectangle is under 32 px is read whole, composited on white: its
    outline's sharp steps are not the photo's, so its edges do not check the blur reading (a 3-px blur read 1.0);
    on an opaque rectangle of 32 px or more they do, and so on an alpha that is nowhere under half opaque (254/255
    everywhere: no rectangle counts as opaque, but no outline is drawn either; cell 0)."""
    from ncvsd_cli import blur_estimate
    from ncvsd_cli.restore import RestoreOptions, Restorer

    seen = []
    monkeypatch.setattr(blur_estimate, "read_blur", lambda y, coding=None, **kw: seen.append(kw["edges"]))
    alpha = torch.zeros(1, 1, 96, 96) if cell else torch.full((1, 1, 96, 96), 254 / 255)
    alpha[..., 4:4 + cell, 4:4 + cell] = 1.0
    Restorer(None, None, RestoreOptions(task="deblur-gauss", sigma_y=0.05).validate()).measurement(
        power_law_field(96, 96, 2.0, seed=2), "deblur-gauss", alpha=alpha)
    assert seen == [cell >= 32 or cell == 0]


def test_the_edge_check_gives_up_on_a_noisy_image():
    """Steps of a noise above EDGE_MAX_NOISE (luma) are the noise's: no evidence, so a true 6-px blur under noise 0.2
    is not capped (it read 4.4-5.8 px without this gate); a sharp, clean image gives its evidence."""
    from ncvsd_cli.blur_estimate import EDGE_MAX_NOISE, _luma_noise, edge_width

    g = torch.Generator().manual_seed(0)
    sharp = blurred_edges(96, 96, 0.0)
    noisy = sharp + 0.2 * torch.randn(sharp.shape, generator=g)
    assert _luma_noise(noisy[0].mean(0).double().numpy()) > EDGE_MAX_NOISE and edge_width(noisy, 6.0) is None
    assert _luma_noise((sharp + 0.02 * torch.randn(sharp.shape, generator=g))[0].mean(0).double().numpy()) == \
        pytest.approx(0.02 / math.sqrt(3), rel=0.2)  # each channel's noise: the luma's is 1/sqrt(3) of it
    assert edge_width(sharp, 6.0) == pytest.approx(0.0, abs=0.15)


@pytest.mark.parametrize("coded_gauss, expected", [((-40.0, 2.3), (2.0, False)), ((-80.0, 2.3), (2.3, True))])
def test_a_gaussian_fit_worse_than_sharp_is_a_missed_search_and_the_other_models_width_is_read(
        monkeypatch, coded_gauss, expected):
    """The coding's model is chosen by its best fit, a disk here; its Gaussian fit, worse than its own sharp fit
    (width 0), is a search that missed (a blurred cheetah JPEG read 0 px): the plain model's width is read, and the
    reading is not said to be coded. A Gaussian fit better than sharp stands."""
    from ncvsd_cli import blur_estimate
    from ncvsd_cli.images import JpegCoding

    plain, coded = (-100.0, 2.0, -50.0, -90.0, 3.0), (*coded_gauss, -60.0, -200.0, 2.75)  # (gauss, w, sharp, disk, r)
    monkeypatch.setattr(blur_estimate.CodingGain, "of", classmethod(lambda cls, *a, **k: None))
    monkeypatch.setattr(blur_estimate, "_fits", lambda spectrum, defocus, gains: plain if gains is None else coded)
    reading = read_blur(power_law_field(64, 64, 0.0, seed=2), coding=JpegCoding(((1,) * 64, (1,) * 64), 2, True),
                        edges=False)  # the field is sharp: its edges would cap these made-up widths
    assert (reading.width, reading.coded) == expected and reading.radius == 2.75, reading


def blurred_edges(h: int, w: int, blur: float) -> torch.Tensor:
    """(1, 3, h, w) in [-1, 1]: a vertical and a horizontal step edge of contrast 1, each blurred by a Gaussian of
    std `blur` px (0: sharp), the exact erf profile at the pixel centres, edges between pixels."""
    def profile(n: int) -> torch.Tensor:
        t = torch.arange(n, dtype=torch.float64) - (n // 2 - 0.5)
        return 0.5 * torch.erf(t / (blur * math.sqrt(2))) if blur > 0 else 0.5 * torch.sign(t)
    z = 0.5 * (profile(w)[None, :] + profile(h)[:, None])
    return z.float().expand(1, 3, h, w).clone()


@pytest.mark.parametrize("blur", [0.0, 1.0, 2.0, 3.0, 4.0])
def test_edge_width_of_a_blurred_step_is_its_blur(blur):
    """A step edge blurred by a Gaussian of std s makes one-pixel steps of erf(1 / (2 √2 s)) of its contrast, the
    steepest a blur of s allows: its edges read s (0 for a sharp step), whatever width the window is set for."""
    from ncvsd_cli.blur_estimate import edge_width

    y = blurred_edges(67, 81, blur)
    for width in (blur, 3.0):
        assert edge_width(y, width) == pytest.approx(blur, abs=0.15)


def test_edge_width_needs_contrast():
    """A flat or faint image (range under EDGE_MIN_CONTRAST) gives no evidence: None, and no limit."""
    from ncvsd_cli.blur_estimate import edge_limit, edge_width

    assert edge_width(torch.full((1, 3, 64, 64), 0.2), 2.0) is None
    assert edge_width(0.2 * blurred_edges(64, 64, 0.0), 2.0) is None and edge_limit(0.2 * blurred_edges(64, 64, 0.0), 2.0) == math.inf


def test_a_reading_the_edges_rule_out_is_replaced_by_the_other_models_or_capped(monkeypatch):
    """A sharp JPEG's spectrum read through its coding 2.8 px (a pyramid against a flat sky, deconvolved into a
    maze): its steep edges rule that out, and the plain model's reading, which they allow, is taken (and not said
    to be read through the coding); where both
    models read too wide, the width is the edges' limit (EDGE_SLOPE x their width + EDGE_OFFSET) and a disk's
    radius twice it, on the radius grid. A blurred step's true width stands."""
    from ncvsd_cli import blur_estimate
    from ncvsd_cli.blur_estimate import EDGE_OFFSET, edge_limit
    from ncvsd_cli.images import JpegCoding

    coding = JpegCoding(((1,) * 64, (1,) * 64), 2, True)
    monkeypatch.setattr(blur_estimate.CodingGain, "of", classmethod(lambda cls, *a, **k: None))
    sharp = blurred_edges(64, 72, 0.0)
    plain, coded = (-100.0, 0.03, -50.0, -90.0, 1.25), (-300.0, 2.82, -250.0, -320.0, 4.75)  # (gauss, w, sharp, disk, r)
    monkeypatch.setattr(blur_estimate, "_fits", lambda spectrum, defocus, gains: plain if gains is None else coded)
    reading = read_blur(sharp, coding=coding)
    assert (reading.width, reading.radius, reading.capped, reading.radius_capped, reading.coded) == \
        (0.03, 1.25, True, True, False)
    assert read_blur(sharp, coding=coding, edges=False)[:2] == (2.82, 4.75)
    plain = (-100.0, 2.5, -50.0, -90.0, 4.0)
    reading = read_blur(sharp, coding=coding)
    limit = edge_limit(sharp, 2.82)
    assert reading.width == pytest.approx(limit) and limit == pytest.approx(EDGE_OFFSET, abs=0.2) and reading.capped
    assert reading.radius % RADIUS_STEP == 0 and reading.radius <= 2 * edge_limit(sharp, 2.375)
    plain, coded = (-100.0, 0.8, -50.0, -90.0, 1.5), (-300.0, 0.9, -250.0, -320.0, 4.75)  # the width allowed
    reading = read_blur(sharp, coding=coding)
    assert (reading.width, reading.capped, reading.coded) == (0.9, False, True)
    assert (reading.radius, reading.radius_capped, reading.radius_coded) == (1.5, True, False)  # the plain disk
    from ncvsd_cli.restore import blur_notes
    (note,) = blur_notes("deblur-defocus", reading, {}, (256, 256), lossy=True)[:1]
    assert "lowered to what" in note and "quantisation" not in note
    blurred, coded = blurred_edges(64, 72, 3.0), (-300.0, 3.0, -250.0, -320.0, 6.0)
    reading = read_blur(blurred, coding=coding)
    assert (reading.width, reading.radius, reading.capped, reading.radius_capped) == (3.0, 6.0, False, False)


@pytest.mark.parametrize("blur", [2.0, 3.0])
def test_a_strongly_coded_noisy_jpegs_blur_reads_at_the_total_powers_gain(blur):
    """Noise 0.08 then JPEG quality 50: detail and noise have alike powers at the coarse steps, and the quantiser
    acts on their sum, so each part's gain is taken at the total power (the gain of each part alone read these
    0.1-0.2 px)."""
    from ncvsd_cli.images import jpeg_coding

    x = power_law_field(192, 208, 0.0, seed=11)
    blurred = operators.create("deblur-gauss", (3, 192, 208), sigma=blur, boundary="reflect")(x)
    noisy = _jpeg(blurred + 0.08 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3)), quality=50)
    reading = read_blur(load_image(noisy), defocus=False, coding=jpeg_coding(noisy))
    assert reading.coded and reading.width == pytest.approx(blur, rel=0.2)


def test_a_cut_outs_blur_is_read_where_it_is_opaque():
    """A blurred photo cut out by a disk (soft 3-px rim, composited on white): its outline is a sharp edge of the
    cut, not of the photo, and read with it a 3-px blur read about 1 px (training photos: 0.9-1.7 for 3); the blur
    is read on the largest opaque rectangle (`measurement.opaque_window`), as the whole photo reads."""
    from ncvsd_cli import images
    from ncvsd_cli.restore import RestoreOptions, Restorer

    y = power_law_field(160, 160, 3.0, seed=5)
    yy, xx = torch.meshgrid(torch.arange(160.0), torch.arange(160.0), indexing="ij")
    alpha = torch.nn.functional.avg_pool2d((((yy - 80) ** 2 + (xx - 80) ** 2).sqrt() < 70).float()[None, None], 3, 1, 1)
    cut = images.from_unit(images.to_unit(y) * alpha + 1 - alpha)
    blur = Restorer(None, None, RestoreOptions(task="deblur-gauss", sigma_y=0.01).validate())
    whole = blur.measurement(y, "deblur-gauss").operator().sigma
    kept = blur.measurement(cut, "deblur-gauss", alpha=alpha)
    assert whole == pytest.approx(3.0, abs=0.5) and kept.operator().sigma == pytest.approx(whole, abs=0.3), kept.notes
    assert any("blur read on its opaque" in n for n in kept.notes), kept.notes
    assert blur.measurement(cut, "deblur-gauss").operator().sigma < whole - 0.8  # the outline read as sharp


def test_a_pixel_sharp_drawing_reads_at_most_half_a_pixel():
    """A flat-colour cartoon's spectrum read 1.04 px, let through at 1.0 (any reading up to EDGE_OFFSET was): its
    outlines rang (12.9 dB against the input, 36.6 at 0.5). Its steepest edges are pixel-sharp (SHARP_RATIO); a
    power-law field blurred 0.8 px stays near 0.8 (test_power_law_field_blur_is_recovered)."""
    from PIL import ImageDraw

    from ncvsd_cli.blur_estimate import SHARP_LIMIT, read_blur

    im = Image.new("RGB", (192, 192), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    draw.ellipse([30, 20, 160, 150], fill=(255, 220, 0), outline=(0, 0, 0), width=3)
    draw.ellipse([65, 60, 80, 80], fill=(0, 0, 0))
    draw.ellipse([110, 60, 125, 80], fill=(0, 0, 0))
    draw.arc([60, 80, 130, 130], 20, 160, fill=(0, 0, 0), width=3)
    draw.rectangle([10, 160, 180, 185], fill=(0, 170, 255), outline=(0, 0, 0), width=2)
    y = torch.from_numpy(np.asarray(im, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    reading = read_blur(y)
    assert reading.width <= SHARP_LIMIT and reading.radius <= 2 * SHARP_LIMIT, reading
