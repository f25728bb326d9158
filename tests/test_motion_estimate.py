"""ncvsd_cli/motion_estimate.py: a camera shake's kernel read from the blurred image alone, on piecewise-flat
scenes (the sharp edges the reading rests on), through the operator, and in `restore`."""

import itertools
import json

import numpy as np
import pytest
import torch

import operators
from ncvsd_cli.motion_estimate import _kernel_step, kernel_similarity, read_motion_kernel


def shapes_scene(h: int, w: int, seed: int) -> torch.Tensor:
    """A colour scene (1, 3, h, w) in [-1, 1] of 30 overlapping flat discs of random colours (edges in every
    direction: a path is only told by edges across it)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((h, w))
    x = np.full((3, h, w), 0.2)
    for _ in range(30):
        r, c, radius = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, min(h, w) / 4)
        x[:, (rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = rng.uniform(-0.9, 0.9, (3, 1))
    return torch.from_numpy(x).float()[None]


def path_kernel(size: int, points: list[tuple[int, int]]) -> np.ndarray:
    """A size² kernel lit along the straight segments through `points` (row, col), summing to 1."""
    k = np.zeros((size, size))
    for (r0, c0), (r1, c1) in itertools.pairwise(points):
        for t in np.linspace(0, 1, 4 * size):
            k[round(r0 + t * (r1 - r0)), round(c0 + t * (c1 - c0))] = 1.0
    return k / k.sum()


KERNELS = {"line": path_kernel(11, [(2, 1), (8, 9)]), "bent": path_kernel(11, [(5, 1), (5, 6), (1, 9)])}


def test_the_kernel_step_recovers_the_operators_kernel_from_the_sharp_image():
    """Given the sharp image, the least-squares kernel step returns the kernel the circular operator blurred with,
    at the same taps (its convolution convention is the operator's)."""
    x = shapes_scene(80, 84, seed=3)[0, 0].double().numpy()
    for k in KERNELS.values():
        y = operators.create("deblur-kernel", (1, 80, 84), kernel=k)(torch.from_numpy(x)[None, None])[0, 0].numpy()
        read = _kernel_step(x, y, 11, np.ones_like(x))
        aligned = (read * k).sum() / np.sqrt((read**2).sum() * (k**2).sum())  # unshifted (the ridge blurs it a bit)
        assert aligned > 0.95 and aligned == pytest.approx(kernel_similarity(read, k))


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("boundary", ["reflect", "circular"])
def test_a_shake_is_read_from_the_blurred_image_alone(name, boundary):
    """A scene blurred by a path (with noise 0.01) reads back that path up to a shift: similarity >= 0.8, its
    extent within 2 px, its centre of mass within half a pixel of its middle, reliable."""
    k = KERNELS[name]
    x = shapes_scene(96, 97, seed=1)
    y = operators.create("deblur-kernel", (3, 96, 97), kernel=k, boundary=boundary)(x)
    y = y + 0.01 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    reading = read_motion_kernel(y, 15)
    assert reading.reliable and kernel_similarity(reading.kernel, k) >= 0.8, kernel_similarity(reading.kernel, k)
    assert abs(reading.extent - 9) <= 2 and reading.kernel.shape == (15, 15)
    assert reading.kernel.sum() == pytest.approx(1.0) and reading.kernel.min() >= 0
    rows, cols = np.indices(reading.kernel.shape)
    centre = [(reading.kernel * rows).sum(), (reading.kernel * cols).sum()]
    assert centre == pytest.approx([7, 7], abs=0.5)


def test_a_sharp_image_reads_a_point_and_bad_sizes_are_refused():
    """An unblurred scene reads a kernel of at most 2x2 px; an image under twice the size (or 32 px) is not read;
    even or out-of-range sizes are refused."""
    reading = read_motion_kernel(shapes_scene(64, 70, seed=2), 15)
    assert reading.reliable and reading.extent <= 2
    assert read_motion_kernel(shapes_scene(40, 70, seed=2), 21) is None
    assert read_motion_kernel(shapes_scene(30, 30, seed=2), 3) is None
    for size in (14, 1, 129):
        with pytest.raises(ValueError, match="odd and in"):
            read_motion_kernel(shapes_scene(64, 64, seed=2), size)


def test_an_unreliable_reading_is_refused_with_the_alternatives(monkeypatch):
    """A reading spread like noise (over MAX_TAPS_PER_SIDE taps per px of side; forced here) is refused by `restore` with a message
    naming the alternatives; images under 32 px are refused before any reading."""
    import ncvsd_cli.motion_estimate as motion
    from ncvsd_cli.restore import motion_notes

    y = shapes_scene(64, 64, seed=5)
    assert motion.read_motion_kernel(y, 15).reliable
    monkeypatch.setattr(motion, "MAX_TAPS_PER_SIDE", 0.0)
    assert not motion.read_motion_kernel(y, 15).reliable
    with pytest.raises(ValueError, match="no motion-blur kernel could be read.*deblur-kernel -p kernel=K.png"):
        motion_notes(y, {}, {})
    with pytest.raises(ValueError, match="too small to read a motion blur"):
        motion_notes(shapes_scene(31, 64, seed=5), {}, {})


def test_a_dark_photo_is_read_scaled_up_and_again_as_it_is_where_that_reads_a_point(monkeypatch):
    """An underexposed photo's luma is scaled up for the reading (the L0 weight is on contrast); where the scaled
    reading is a point (its noise, scaled too, drowning the shake: said as "looks unblurred"), the photo is read
    again as it is (then refused as noise, or read, as before the scaling)."""
    import ncvsd_cli.motion_estimate as motion

    h, w = 96, 98
    k = path_kernel(15, [(7, 0), (7, 14)])
    dark = operators.create("deblur-kernel", (3, h, w), kernel=k, boundary="reflect")(
        (shapes_scene(h, w, seed=1) + 1) * 0.25 - 1)
    scaled = read_motion_kernel(dark, 15)
    assert kernel_similarity(scaled.kernel, k) >= 0.8 and scaled.reliable
    as_is = read_motion_kernel(dark, 15, scaled=False)
    real, peaks = motion._kernel_step, []

    def point_when_scaled(x, y, size, inside):  # the scaled luma reads a point, the luma as it is its path
        peaks.append(float(y.max()))
        if y.max() > 0.3:
            kernel = np.zeros((size, size))
            kernel[size // 2, size // 2] = 1.0
            return kernel
        return real(x, y, size, inside)

    monkeypatch.setattr(motion, "_kernel_step", point_when_scaled)
    again = read_motion_kernel(dark, 15)
    assert max(peaks) > 0.3 and np.array_equal(again.kernel, as_is.kernel) and again.extent == as_is.extent


def test_a_long_reading_is_checked_against_the_photos_halves(monkeypatch):
    """A path of CHECK_EXTENT px or more is read again on each half of the photo: one shake over the whole photo
    reads alike in every half (agreement >= 0.8), a blur that differs between the halves (a horizontal shake on
    the left, a vertical one on the right) agrees less; a short path is not checked. `restore` refuses a reading
    whose agreement is under MIN_HALF_AGREEMENT (raised here above the split blur's) with the alternatives."""
    import ncvsd_cli.motion_estimate as motion
    from ncvsd_cli.restore import motion_notes

    h, w = 96, 98
    x = shapes_scene(h, w, seed=1)
    noise = 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))

    def shaken(k: np.ndarray) -> torch.Tensor:
        return operators.create("deblur-kernel", (3, h, w), kernel=k, boundary="reflect")(x) + noise

    across, down = path_kernel(21, [(10, 1), (10, 19)]), path_kernel(21, [(1, 10), (19, 10)])
    whole = read_motion_kernel(shaken(across), 21)
    split = torch.cat([shaken(across)[..., : w // 2], shaken(down)[..., w // 2 :]], dim=3)
    parts = read_motion_kernel(split, 21)
    assert whole.extent >= motion.CHECK_EXTENT and whole.agreement >= 0.8 and whole.reliable
    assert kernel_similarity(whole.kernel, across) >= 0.7
    assert parts.agreement == pytest.approx(motion.halves_agreement(split, parts.kernel))
    assert parts.agreement < whole.agreement - 0.15, (parts.agreement, whole.agreement)
    assert read_motion_kernel(shaken(KERNELS["line"]), 21).agreement is None  # a 9-px path: not checked
    assert motion.halves_agreement(split[..., :48, :], parts.kernel) is None  # 24-px halves: too small to read
    monkeypatch.setattr(motion, "MIN_HALF_AGREEMENT", (parts.agreement + whole.agreement) / 2)
    monkeypatch.setattr(motion, "read_motion_kernel", lambda y, size, check=True: parts if y is split else whole)
    (note,) = motion_notes(x, {}, {"kernel_size": 21})
    assert f"read in a 21x21 square, the photo's halves agreeing {whole.agreement:.2f};" in note
    with pytest.raises(ValueError, match=r"could be read reliably.*differ \(agreement 0\.\d\d on 0-1, 1 the same "
                       r"path; under 0\.\d+\).*"
                       r"deblur-kernel -p kernel=K.png"):
        motion_notes(split, {}, {"kernel_size": 21})


def test_restore_reads_a_plain_images_shake_unless_its_kernel_or_seed_is_given(tmp_path):
    """`restore --task deblur-motion` of a plain image reads its kernel (a note says so) and measures with it;
    -p kernel_size bounds the reading; -p seed / kernel are used as given (a sidecar's kernel as recorded:
    test_cli's test_a_plain_image_to_deblur_motion_too_small_to_read_its_kernel)."""
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app
    from ncvsd_cli.images import load_image, save_image
    from ncvsd_cli.restore import RestoreOptions, Restorer

    x = shapes_scene(72, 75, seed=4)
    save_image(operators.create("deblur-kernel", (3, 72, 75), kernel=KERNELS["bent"], boundary="reflect")(x),
               str(tmp_path / "b.png"))
    runner = CliRunner()

    def result(*args: str) -> dict:
        res = runner.invoke(app, ["restore", "--task", "deblur-motion", str(tmp_path / "b.png"), "--method", "wiener",
                                  "--json", "--overwrite", "-q", "--sigma-y", "0.01", *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout.splitlines()[-1])["results"][0]

    read = result("-o", str(tmp_path / "r.png"))
    assert any("estimated the motion-blur kernel" in n and "read in a 19x19 square" in n  # a quarter of 75 px
               and "not the default 31 (-p kernel_size=N reads up to 35)" in n for n in read["notes"])
    blurred = load_image(str(tmp_path / "b.png"))  # the restorer measures with exactly the kernel read
    m = Restorer.from_options(RestoreOptions(task="deblur-motion", method="wiener"), load=False).measurement(
        blurred, "deblur-motion")
    assert np.array_equal(m.operator().kernel, read_motion_kernel(blurred, 19).kernel) and m.kernel_read
    assert np.abs(np.asarray(read["blur_kernel"]) - m.operator().kernel).max() <= 5e-7  # --json hands it over
    assert kernel_similarity(np.asarray(read["blur_kernel"]), KERNELS["bent"]) > 0.8  # and it is the shake
    short = result("-p", "kernel_size=11", "-o", str(tmp_path / "s.png"))
    assert any("read in a 11x11 square" in n and "fills the square" not in n for n in short["notes"])
    tiny = result("-p", "kernel_size=5", "-o", str(tmp_path / "t.png"))
    assert any("fills the square, the shake may be longer (-p kernel_size=11" in n and "look at the result" in n
               for n in tiny["notes"])
    for given in (["-p", "seed=3"], ["-p", "kernel=[[1.0]]", "-p", "kernel_size=1"]):
        out = result(*given, "-o", str(tmp_path / "g.png"))
        assert not any("estimated the motion-blur kernel" in n for n in out["notes"]) and "blur_kernel" not in out
    shown = runner.invoke(app, ["restore", "--task", "deblur-motion", str(tmp_path / "b.png"), "--method", "wiener",
                                "--overwrite", "--sigma-y", "0.01", "-o", str(tmp_path / "p.png")],
                          env={"NCVSD_PROGRESS_INTERVAL": "0"})  # not a terminal: a status line per update
    assert shown.exit_code == 0 and "read the camera shake (deblur-motion): 1/1 img" in shown.stderr, shown.output
    assert shown.stderr.index("estimated the motion-blur kernel") < shown.stderr.index("restore deblur-motion: 1/1")


def test_a_flat_image_reads_a_point_not_nan():
    """A flat image (no edge at all; the kernel step's 0/0) reads the identity, reliable, without a warning; the
    note says it may hold no edges."""
    import warnings

    from ncvsd_cli.restore import motion_notes

    flat = torch.full((1, 3, 64, 80), 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reading = read_motion_kernel(flat, 15)
    assert reading.reliable and reading.extent == 1 and reading.kernel[7, 7] == 1.0
    params = {}
    (note,) = motion_notes(flat, params, {})
    assert "looks unblurred (or holds no edges" in note and params["kernel"][params["kernel_size"] // 2].max() == 1


@pytest.mark.parametrize("extent", [3, 6, 7])
def test_a_short_path_is_not_deconvolved(monkeypatch, extent):
    """A path read within SHORT_PATH_EXTENT px (3-6 px shakes read wrong by a tap or two, and deconvolving by them
    made photos worse than leaving them) is restored with the identity kernel, and the note says why and what to
    do; a longer one is kept as read."""
    import ncvsd_cli.motion_estimate as motion
    from ncvsd_cli.restore import SHORT_PATH_EXTENT, motion_notes

    def line(y, size, check=True):
        k = np.zeros((size, size))
        k[size // 2, size // 2 - extent // 2: size // 2 - extent // 2 + extent] = 1.0 / extent
        return motion.MotionReading(k, extent, extent)

    monkeypatch.setattr(motion, "read_motion_kernel", line)
    params = {}
    (note,) = motion_notes(shapes_scene(96, 96, seed=5), params, {})
    short = extent <= SHORT_PATH_EXTENT
    assert (params["kernel"].max() == 1.0) == short and params["kernel"].sum() == pytest.approx(1.0)
    assert ("too unreliably to deconvolve by" in note and "restored without deblurring" in note
            and "--task deblur-gauss" in note) == short, note


@pytest.mark.parametrize("noise", [0.02, 0.05])
@pytest.mark.parametrize("given", [{}, {"seed": 3}])
def test_a_shake_read_from_the_photo_is_deblurred_at_the_level_read_up_to_a_bound(monkeypatch, given, noise):
    """A blur is restored at 0.7x the noise level read (sharper); a kernel read from the photo is inexact, and
    sharpened so its error rippled along the shake: it is deblurred at the level read up to KERNEL_READ_LEVEL (0.7x
    above, where 1x smoothed too much). A synthetic kernel (-p seed) keeps the 0.7x."""
    import ncvsd_cli.motion_estimate as motion
    from ncvsd_cli.restore import BLUR_NOISE_SCALE, KERNEL_READ_LEVEL, RestoreOptions, Restorer, stepped_level

    def line(y, size, check=True):
        k = np.zeros((size, size))
        k[size // 2, size // 2 - 4: size // 2 + 5] = 1.0 / 9
        return motion.MotionReading(k, 9, 9)

    monkeypatch.setattr(motion, "read_motion_kernel", line)
    ramp = torch.linspace(-0.5, 0.5, 128).view(1, 1, 1, 128).expand(1, 3, 128, 128)  # (the reading is mocked)
    y = ramp + noise * torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    m = Restorer.from_options(RestoreOptions(task="deblur-motion", params=given), load=False).measurement(
        y, "deblur-motion")
    (note,) = [n for n in m.notes if n.startswith("estimated noise level")]
    read = float(note.split("(read ")[1].split(";")[0].split(")")[0])
    assert abs(read - noise) < 0.15 * noise, note
    raised = not given and read > BLUR_NOISE_SCALE * read < min(read, KERNEL_READ_LEVEL)
    assert raised == (noise == 0.02 and not given)
    level = min(read, KERNEL_READ_LEVEL) if raised else BLUR_NOISE_SCALE * read
    assert m.sigma_y == stepped_level(level) and ("a shake read from the photo" in note) == raised, note
    assert any("estimated the motion-blur kernel" in n for n in m.notes) != bool(given)


def test_motion_notes_wording_for_sizes_and_unused_parameters(monkeypatch):
    """kernel_size under 3 is named as such; a default square shrunk for a small image is not blamed on the user;
    a reading that fills the square suggests a larger one, never over MAX_READ_SIZE; -p intensity (synthetic
    kernels only) is named as unused; an unreliable reading that fills its square suggests a larger one too."""
    import ncvsd_cli.motion_estimate as motion
    from ncvsd_cli.restore import motion_notes

    y = shapes_scene(64, 64, seed=5)
    with pytest.raises(ValueError, match="kernel_size 1: a motion blur is read in a square of at least 3 px"):
        motion_notes(y, {}, {"kernel_size": 1})
    small = shapes_scene(48, 50, seed=5)
    (note,) = motion_notes(small, {}, {})
    assert "read in a 13x13 square" in note and "13 px, a quarter of this small image's side, not the default 31 " \
        "(-p kernel_size=N reads up to 23)" in note
    assert "kernel_size 31 does not fit" not in note
    for even, size in ((24, 23), (12, 13)):  # an even size reads at the odd one above, or below where that does not fit
        (note,) = motion_notes(small, {}, {"kernel_size": even})
        assert f"read in a {size}x{size} square" in note and "does not fit" not in note and "quarter" not in note
    (note,) = motion_notes(small, {}, {"kernel_size": 31, "intensity": 0.3})
    assert "kernel_size 31 does not fit twice in the image: read at 23" in note
    assert "-p intensity shapes only the synthetic kernel" in note

    def filled(y, size, check=True):  # a reading that spans its whole square
        k = np.zeros((size, size))
        k[size // 2, :] = 1.0 / size
        return motion.MotionReading(k, size, size)

    monkeypatch.setattr(motion, "read_motion_kernel", filled)
    big = torch.zeros(1, 3, 600, 600)
    (note,) = motion_notes(big, {}, {"kernel_size": 101})
    assert "(-p kernel_size=127 reads a longer one)" in note
    (note,) = motion_notes(big, {}, {"kernel_size": 127})
    assert "longer than the largest read, 127 px" in note
    def noisy(y, size, check=True):  # spread like noise: every tap lit
        return filled(y, size)._replace(taps=size**2)

    monkeypatch.setattr(motion, "read_motion_kernel", noisy)
    with pytest.raises(ValueError, match=r"fills the square: the shake may be longer than 31 px \(-p kernel_size=63\)"):
        motion_notes(big, {}, {"kernel_size": 31})
    with pytest.raises(ValueError, match=r"lights 961 taps of its 31x31 square.*fills the square, and a 63-px one read "
                       r"no reliable kernel either"):
        motion_notes(big, {}, {})


def test_a_reading_that_fills_its_square_is_read_again_in_one_twice_as_large(monkeypatch):
    """By default a path that fills its square is read again in one of twice the side + 1 (where the image holds
    it), taken when reliable (the note names both squares), else the first stands with a note saying so, or is
    refused naming both; a path inside its square, or a kernel_size given, is read once."""
    import ncvsd_cli.motion_estimate as motion
    from ncvsd_cli.restore import motion_notes

    calls, first, second = [], {}, {}

    def reading(y, size, check=True):  # up to 31 px: a path filling the square; larger: a 40-px path, `second`
        calls.append(size)
        k = np.zeros((size, size))
        extent = size if size <= 31 else 40
        k[size // 2, size // 2 - extent // 2 : size // 2 - extent // 2 + extent] = 1.0 / extent
        return motion.MotionReading(k, extent, extent, 0.9)._replace(**(second if size > 31 else first))

    monkeypatch.setattr(motion, "read_motion_kernel", reading)
    big, params = torch.zeros(1, 3, 300, 300), {}
    (note,) = motion_notes(big, params, {})
    assert calls == [31, 63] and params["kernel_size"] == 63 and params["kernel"].shape == (63, 63)
    assert ("a path within 40x40 px (read in a 63x63 square, after the path filled the 31-px one, the photo's halves "
            "agreeing 0.90;") in note
    assert "fills the square" not in note
    for unreliable in ({"agreement": 0.1}, {"taps": 63 * 63}):  # the halves disagree / spread like noise: not taken
        calls.clear()
        second.update(unreliable)
        (note,) = motion_notes(big, params, {})
        assert calls == [31, 63] and params["kernel_size"] == 31, unreliable
        assert "fills the square, the shake may be longer (a 63-px square read no reliable kernel)" in note
        assert "ghost edges" in note
        second.clear()
    first["agreement"], second["taps"] = 0.2, 63 * 63  # neither reliable: refused, both squares named
    with pytest.raises(ValueError, match=r"agreement 0.20 on 0-1, 1 the same path; under 0.5\).*a 63-px square read "
                       r"no reliable "
                       r"kernel either"):
        motion_notes(big, params, {})
    first.clear()
    second.clear()
    calls.clear()
    first["extent"] = 20  # inside its square: not read again
    (note,) = motion_notes(big, params, {})
    assert calls == [31] and params["kernel_size"] == 31 and "fills" not in note
    first.clear()
    calls.clear()
    (note,) = motion_notes(big, params, {"kernel_size": 31})
    assert calls == [31] and "(-p kernel_size=63 reads a longer one)" in note
    calls.clear()
    (note,) = motion_notes(torch.zeros(1, 3, 200, 200), params, {})  # 63 fits, but the 100-px halves check 49 at most
    assert calls == [31, 49] and params["kernel_size"] == 49 and "after the path filled the 31-px one" in note
    calls.clear()
    (note,) = motion_notes(torch.zeros(1, 3, 100, 100), params, {})  # 25 px, a quarter of the side: checked up to 25
    assert calls == [25] and "(a 25-px square" not in note and "a quarter of this small image's side" in note


def test_the_reading_kept_is_checked_once_and_an_unchecked_one_says_so(monkeypatch):
    """`restore` checks the reading it keeps on the photo's halves exactly once (refused under
    MIN_HALF_AGREEMENT), and a long path whose halves are too small to read it is named as unchecked."""
    import ncvsd_cli.motion_estimate as motion
    from ncvsd_cli.restore import motion_notes

    k = np.zeros((31, 31))
    k[15, 5:25] = 0.05  # a 20-px path inside its square
    monkeypatch.setattr(motion, "read_motion_kernel", lambda y, size, check=True: motion.MotionReading(k, 20, 20))
    checks = []

    def agreement(y, kernel, value=0.3):
        checks.append(kernel.shape)
        return value

    monkeypatch.setattr(motion, "halves_agreement", agreement)
    with pytest.raises(ValueError, match=r"differ \(agreement 0.30 on 0-1, 1 the same path; under 0.5\)"):
        motion_notes(torch.zeros(1, 3, 256, 256), {}, {})
    assert checks == [(31, 31)]
    monkeypatch.setattr(motion, "halves_agreement", lambda y, kernel: None)
    (note,) = motion_notes(torch.zeros(1, 3, 256, 256), {}, {})
    assert "unchecked: the image's halves are too small for the square" in note
    for value, weak in ((0.55, True), (0.65, True), (motion.WEAK_HALF_AGREEMENT, False), (0.9, False)):  # < 0.7
        monkeypatch.setattr(motion, "halves_agreement", lambda y, kernel, v=value: v)
        (note,) = motion_notes(torch.zeros(1, 3, 256, 256), {}, {})
        assert f"the photo's halves agreeing {value:.2f}" in note
        assert ("a weak agreement (under 0.7" in note) is weak and ("ghost copies of edges" in note) is weak
    assert motion.largest_checked_size(256, 256) == 63 and motion.largest_checked_size(100, 400) == 25
    assert motion.largest_checked_size(63, 64) == 0


def test_the_canvas_holds_the_photo_and_wraps_smoothly():
    """The canvas holds the photo unchanged with the margin on each side, and it wraps around without a jump
    larger than the photo's own steps."""
    from ncvsd_cli.motion_estimate import _canvas

    photo = np.random.default_rng(0).uniform(0, 1, (101, 97))
    canvas, (top, left) = _canvas(photo, 11)
    assert canvas.shape == (123, 119) and (top, left) == (11, 11)
    assert np.array_equal(canvas[11:112, 11:108], photo)
    assert np.abs(canvas[0] - canvas[-1]).max() < 0.2 and np.abs(canvas[:, 0] - canvas[:, -1]).max() < 0.2


def test_a_large_photos_shake_reading_is_announced(tmp_path, monkeypatch):
    """A photo over SHAKE_NOTE_PIXELS is told, before the reading (seconds per megapixel, before any progress
    bar), that its shake is being read; -q and a given kernel say nothing."""
    from typer.testing import CliRunner

    import ncvsd_cli.cli.restore as cli_restore
    from ncvsd_cli.cli import app
    from ncvsd_cli.images import save_image

    save_image(shapes_scene(64, 66, seed=2), str(tmp_path / "b.png"))
    monkeypatch.setattr(cli_restore, "SHAKE_NOTE_PIXELS", 64 * 66 - 1)
    runner = CliRunner()
    base = ["restore", "--task", "deblur-motion", str(tmp_path / "b.png"), "--method", "wiener", "--overwrite",
            "-o", str(tmp_path / "r.png")]
    res = runner.invoke(app, base)
    assert res.exit_code == 0 and "reading the camera shake of this 66x64 photo" in res.stderr, res.output
    assert "reading the camera shake" not in runner.invoke(app, [*base, "-q"]).stderr
    assert "reading the camera shake" not in runner.invoke(app, [*base, "-p", "seed=1"]).stderr
    monkeypatch.setattr(cli_restore, "SHAKE_NOTE_PIXELS", 64 * 66)
    assert "reading the camera shake" not in runner.invoke(app, base).stderr
