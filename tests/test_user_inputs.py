"""A user's own inputs to `ncvsd restore`: masks (alpha, grey levels, none kept), kernels, seeds, sidecars with -p,
phase retrieval, and the photo's own pixels kept when a hole is filled (sigma_y 0 is fitted exactly)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_cli import FAST, _ckpt, _png, run

import operators
from ncvsd_cli.sampling.classical import biharmonic
from operators.padding import pad_operator
from operators.params import decode_array, encode_array


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _ckpt(tmp_path_factory.mktemp("ckpt"))


def _restore(*args, ok: bool = True) -> dict:
    res = run("restore", *args, "--json", "-q")
    assert (res.exit_code == 0) == ok, res.output
    return json.loads(res.stdout.splitlines()[-1])


def _hole_mask(path, h: int = 15, w: int = 13) -> np.ndarray:
    known = np.ones((h, w), bool)
    known[4:9, 3:8] = False
    Image.fromarray(np.where(known, 255, 0).astype(np.uint8)).save(path)
    return known


# ------------------------------------------------------------------------------------------------ exact fit
@pytest.mark.parametrize("name", sorted(operators.names()))
def test_exact_fit_meets_the_measurement_or_is_none(name):
    """Operator.exact_fit(x, y): inpainting returns the known pixels of y and x in the hole (a projection:
    A(fit) = y, idempotent); on a padded canvas too, the extra pixels untouched; denoise returns y (A = I).
    Other operators have none."""
    params = {"inpaint-mask": {"mask": torch.rand(1, 13, 11, generator=torch.Generator().manual_seed(1)) > 0.5},
              "deblur-kernel": {"kernel": np.ones((3, 3))}}.get(name, {})
    op = operators.create(name, (3, 13, 11), **params)
    g = torch.Generator().manual_seed(0)
    truth, guess = torch.rand(2, 3, 13, 11, generator=g) * 2 - 1, torch.rand(2, 3, 13, 11, generator=g) * 2 - 1
    y = op(truth)
    fit = op.exact_fit(guess, y)
    if name == "denoise":
        torch.testing.assert_close(fit, y, rtol=0, atol=0)
        padded = pad_operator(op, 8).exact_fit(torch.zeros(2, 3, 16, 16), y)
        torch.testing.assert_close(padded[..., :13, :11], y, rtol=0, atol=0)
        assert not padded[..., 13:, :].any() and fit.data_ptr() != y.data_ptr()
        return
    if not name.startswith("inpaint"):
        assert fit is None and pad_operator(op, 8).exact_fit(torch.zeros(2, 3, 16, 16), y) is None
        return
    torch.testing.assert_close(op(fit), y, rtol=0, atol=0)
    torch.testing.assert_close(fit * (1 - op.mask), guess * (1 - op.mask), rtol=0, atol=0)
    torch.testing.assert_close(op.exact_fit(fit, y), fit, rtol=0, atol=0)
    canvas = torch.rand(2, 3, 16, 16, generator=g)
    padded = pad_operator(op, 8).exact_fit(canvas, y)
    torch.testing.assert_close(padded[..., :13, :11], op.exact_fit(canvas[..., :13, :11], y), rtol=0, atol=0)
    torch.testing.assert_close(padded[..., 13:, :], canvas[..., 13:, :], rtol=0, atol=0)


def test_biharmonic_with_nothing_known_is_the_prior_mean():
    op = operators.create("inpaint-mask", (3, 9, 7), mask=np.zeros((9, 7)))
    out = biharmonic(None, op, torch.rand(1, 3, 9, 7))
    assert torch.equal(out.x, torch.zeros(1, 3, 9, 7))


def test_a_photos_own_pixels_are_kept_when_its_hole_is_filled(tmp_path, ckpt):
    """A plain photo to inpaint-mask is restored at sigma_y 0 (a note says so): the pixels outside the hole come back
    as they were, whatever the sampler did there; --sigma-y 0.05 lets the model retouch them (the tiny random
    network changes them); the hole is filled either way."""
    src = _png(tmp_path / "photo.png", 15, 13)
    known = _hole_mask(tmp_path / "mask.png")
    common = ["--task", "inpaint-mask", src, "-p", f"mask={tmp_path / 'mask.png'}", "-c", ckpt, *FAST, "--overwrite"]
    summary = _restore(*common, "-o", tmp_path / "kept.png")
    assert summary["results"][0]["sigma_y"] == 0 and any("own pixels are kept" in n
                                                         for n in summary["results"][0]["notes"])
    _restore(*common, "-o", tmp_path / "noisy.png", "--sigma-y", "0.05")
    before = np.asarray(Image.open(src))
    kept, noisy = (np.asarray(Image.open(tmp_path / f)) for f in ("kept.png", "noisy.png"))
    assert (kept[known] == before[known]).all() and (noisy[known] != before[known]).any()
    assert (kept[~known] != before[~known]).any()


def test_a_noiseless_sidecar_is_fitted_exactly_and_a_noisy_one_is_not(tmp_path, ckpt):
    """The fit applies to any measurement at sigma_y 0 (degrade --sigma-y 0), not to the benchmark's 0.05."""
    src = _png(tmp_path / "photo.png", 16, 16)
    for level in ("0", "0.05"):
        assert run("degrade", "--task", "inpaint-box", src, "--sigma-y", level, "-o", tmp_path / f"m{level}.png",
                   "-q").exit_code == 0
        _restore(tmp_path / f"m{level}.png", "-c", ckpt, *FAST, "-o", tmp_path / f"r{level}.png")
    op = operators.create("inpaint-box", (3, 16, 16))
    known = op.mask[0, 0].bool().numpy()
    measured, fitted, other = (np.asarray(Image.open(tmp_path / f)).astype(int)
                               for f in ("m0.png", "r0.png", "r0.05.png"))
    assert (fitted[known] == measured[known]).all() and (other[known] != measured[known]).any()


# ------------------------------------------------------------------------------------------------ masks
def test_a_mask_that_keeps_nothing_is_refused_in_words(tmp_path, ckpt):
    src = _png(tmp_path / "photo.png", 15, 13)
    Image.fromarray(np.zeros((15, 13), np.uint8)).save(tmp_path / "black.png")
    summary = _restore("--task", "inpaint-mask", src, "-p", f"mask={tmp_path / 'black.png'}", "-c", ckpt, *FAST,
                       "-o", tmp_path / "out.png", ok=False)
    error = summary["results"][0]["error"]
    assert "keeps no pixel" in error and "invert=true" in error and "reduction" not in error
    assert not (tmp_path / "out.png").exists()


def test_degrade_says_what_restore_says_of_a_mask_and_a_sidecar_without_known_pixels_is_refused(tmp_path, ckpt):
    """degrade of a mask that keeps no pixel fails as restore's plain path does (a later restore gave flat grey at
    exit 0); one that keeps every pixel, or few, is noted; a sidecar whose mask keeps nothing is refused; `-p
    mask=-` is a usage error, not a shape error of YAML's [None]."""
    src = _png(tmp_path / "photo.png", 15, 13)
    for name, value in (("black", 0), ("white", 255)):
        Image.fromarray(np.full((15, 13), value, np.uint8)).save(tmp_path / f"{name}.png")
    res = run("degrade", "--task", "inpaint-mask", "-p", f"mask={tmp_path / 'black.png'}", src, "-o",
              tmp_path / "black-m.png", "--json")
    assert res.exit_code == 1 and "keeps no pixel" in res.output and not (tmp_path / "black-m.png").exists()
    res = run("degrade", "--task", "inpaint-mask", "-p", f"mask={tmp_path / 'white.png'}", src, "-o",
              tmp_path / "white-m.png", "--json", "-q")  # a likely mistake: a warning, said under -q too
    assert res.exit_code == 0 and "keeps every pixel" in json.loads(res.stdout.splitlines()[0])["notes"][-1]
    assert "warning: " in res.stderr and "keeps every pixel" in res.stderr, res.stderr
    side = json.loads((tmp_path / "white-m.png.ncvsd.json").read_text())
    mask = decode_array(side["operator"]["mask"])
    side["operator"]["mask"] = encode_array(np.zeros_like(mask))
    (tmp_path / "white-m.png.ncvsd.json").write_text(json.dumps(side))
    summary = _restore(tmp_path / "white-m.png", "-c", ckpt, *FAST, "-o", tmp_path / "r.png", ok=False)
    assert "mask keeps no pixel" in summary["results"][0]["error"] and not (tmp_path / "r.png").exists()
    res = run("restore", "--task", "inpaint-mask", "-p", "mask=-", "-", "-c", ckpt, input=src.read_bytes())
    assert res.exit_code == 2 and "'-' is no value here" in res.output



def test_degrade_refuses_what_restore_would_and_says_what_restore_says_of_a_kernel(tmp_path, ckpt):
    """degrade wrote sidecars restore then refused: a box or random mask keeping no pixel, a kernel with
    normalize=false whose gain took y past the [0, 255] check (now scaled by the kernel's sum), and took a complex
    .npy kernel as its real part and a 3001-px .npy kernel (a 90 MB sidecar); restore's kernel notes are said."""
    src = _png(tmp_path / "photo.png", 15, 13)
    res = run("degrade", "--task", "inpaint-box", "-p", "box_size=[15,13]", src, "-o", tmp_path / "b.png")
    assert res.exit_code == 1 and "keeps no pixel of the 13x15 image" in res.output and "box_size" in res.output
    res = run("degrade", "--task", "inpaint-random", "-p", "fraction=0.999", src, "-o", tmp_path / "b.png")
    assert res.exit_code == 1 and "keeps no pixel" in res.output and not (tmp_path / "b.png").exists()
    for size in (["-p", "box_size=[15,13]"], []):  # restore repainted a box over the whole image (1x1: default)
        one = src if size else _png(tmp_path / "one.png", 1, 1)
        res = run("restore", "--task", "inpaint-box", *size, one, "-o", tmp_path / "r.png", "-c", ckpt)
        assert res.exit_code == 1 and "keeps no pixel" in res.output and not (tmp_path / "r.png").exists()
    np.save(tmp_path / "complex.npy", np.ones((3, 3), complex))
    np.save(tmp_path / "huge.npy", np.ones((2050, 1)))
    for kernel, said in (("complex.npy", "complex values"), ("huge.npy", "more than 2049 on a side")):
        res = run("degrade", "--task", "deblur-kernel", "-p", f"kernel={tmp_path / kernel}", src, "-o",
                  tmp_path / "k.png")
        assert res.exit_code == 2 and said in res.output, res.output
    line = np.zeros((5, 5))
    line[2] = 3.0  # sums to 15
    np.save(tmp_path / "line.npy", line)
    res = run("degrade", "--task", "deblur-kernel", "-p", f"kernel={tmp_path / 'line.npy'}", "-p",
              "normalize=false", src, "-o", tmp_path / "k.png", "--json")
    assert res.exit_code == 0 and "sums to 15" in json.loads(res.stdout.splitlines()[0])["notes"][-1]
    summary = _restore(tmp_path / "k.png", "-c", ckpt, *FAST, "-o", tmp_path / "r.png")
    assert summary["results"][0]["status"] == "ok" and (tmp_path / "r.png").exists()


def test_restore_image_takes_an_unnormalised_kernels_measurement(tmp_path, ckpt):
    """restore_image refused y of a normalize=false kernel (sum 15) as "a [0, 255] image", which the command line's
    sidecar restored; the range is now the sampler's, scaled by the kernel's sum, and a [0, 255] image is still
    refused."""
    from ncvsd_cli import measurement
    from ncvsd_cli.restore import restore_image

    line = np.zeros((5, 5))
    line[2] = 3.0
    params = {"kernel": line, "normalize": False}
    x = torch.rand(1, 3, 15, 13) * 2 - 1
    m = measurement.degrade(x, "deblur-kernel", params=params, sigma_y=0.02, seed=0)
    assert float(m.y.abs().max()) > 4
    out = restore_image(m.y, "deblur-kernel", params=params, sigma_y=0.02, checkpoint=str(ckpt), nfe=1, seed=0,
                        device="cpu")
    assert out.shape == (1, 3, 15, 13) and out.abs().max() < 3
    with pytest.raises(ValueError, match="0, 255"):
        restore_image((x + 1) * 127.5 * 15, "deblur-kernel", params=params, sigma_y=0.02, checkpoint=str(ckpt),
                      nfe=1, device="cpu")

def test_a_grey_photos_preview_holds_the_noise_level_asked_for(tmp_path):
    """A grey source's preview (the file written, and all that stdout gets) holds the noise at sigma_y (its
    channels share one noise field)."""
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(tmp_path / "grey.png")
    res = run("degrade", "--task", "denoise", "--sigma-y", "0.2", tmp_path / "grey.png", "-o", "-")
    assert res.exit_code == 0
    noisy = np.asarray(Image.open(__import__("io").BytesIO(res.stdout_bytes)), np.float64) / 127.5 - 1
    assert noisy.ndim == 2 and 0.18 < noisy.std() < 0.22
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "grey-rgb.png")  # a grey photo as RGB: one
    res = run("degrade", "--task", "denoise", "--sigma-y", "0.2", tmp_path / "grey-rgb.png", "-o", "-")  # field too
    noisy = np.asarray(Image.open(__import__("io").BytesIO(res.stdout_bytes)), np.float64) / 127.5 - 1
    assert res.exit_code == 0 and (noisy.ndim == 2 or np.ptp(noisy, axis=-1).max() == 0) and 0.18 < noisy.std() < 0.22
    res = run("degrade", "--task", "sr2", tmp_path / "grey.png", "-o", tmp_path / "g.png", "--json")
    shapes = json.loads(res.stdout.splitlines()[0])  # the files' shapes (it said [3, 64, 64] of a grey photo)
    assert res.exit_code == 0 and shapes["image_shape"] == [1, 64, 64] and shapes["measurement_shape"] == [1, 32, 32]


def test_marks_on_a_transparent_layer_are_explained_and_work_inverted_or_flattened(tmp_path, ckpt):
    """Red strokes on a transparent layer read as all hole (transparent = black): the error says -p invert=true
    reads them as the holes, or to flatten the layer onto white; either fills exactly the strokes."""
    src = _png(tmp_path / "photo.png", 15, 13)
    layer = np.zeros((15, 13, 4), np.uint8)
    layer[6:8, 2:11] = (220, 30, 30, 255)  # a red stroke; the rest transparent
    Image.fromarray(layer).save(tmp_path / "layer.png")
    summary = _restore("--task", "inpaint-mask", src, "-p", f"mask={tmp_path / 'layer.png'}", "-c", ckpt, *FAST,
                       "-o", tmp_path / "out.png", ok=False)
    error = summary["results"][0]["error"]
    assert "keeps no pixel" in error and "marks of any colour drawn on a transparent layer are read as the holes " \
        "with -p invert=true (or flatten the layer onto white first)" in error, error
    flat = Image.new("RGBA", (13, 15), "white")
    flat.alpha_composite(Image.open(tmp_path / "layer.png"))
    flat.convert("RGB").save(tmp_path / "flat.png")
    for mask in (["-p", f"mask={tmp_path / 'flat.png'}"], ["-p", f"mask={tmp_path / 'layer.png'}", "-p",
                                                             "invert=true"]):
        _restore("--task", "inpaint-mask", src, *mask, "-c", ckpt, "--method", "biharmonic", "-o",
                 tmp_path / "out.png", "--overwrite")
        out, before = np.asarray(Image.open(tmp_path / "out.png")), np.asarray(Image.open(src))
        hole = layer[..., 3] > 0
        assert (out[~hole] == before[~hole]).all() and (out[hole] != before[hole]).any()


def _erased(path, h: int = 15, w: int = 13, hole=(slice(4, 9), slice(3, 8))) -> tuple[np.ndarray, np.ndarray]:
    """A photo with a hole erased to transparency, its rim as a soft eraser leaves it (one pixel at 40 % opacity, a
    hole; one at 60 %, known, its stored colour intact), saved as RGBA PNG; returns its colour and alpha."""
    colour = np.asarray(Image.open(_png(path, h, w))).copy()
    alpha = np.full((h, w), 255, np.uint8)
    alpha[hole] = 0
    alpha[hole[0].start, hole[1].stop], alpha[hole[0].stop, hole[1].start] = 102, 153
    Image.fromarray(np.concatenate([colour, alpha[..., None]], -1)).save(path)
    return colour, alpha


def test_transparent_pixels_beside_a_given_mask_are_noted_as_not_filled(tmp_path, ckpt):
    """An erased photo restored with -p mask: its transparent part stayed white (and transparent) without a word."""
    _erased(tmp_path / "erased.png")
    mask = np.full((15, 13), 255, np.uint8)
    mask[:3, :3] = 0
    Image.fromarray(mask).save(tmp_path / "m.png")
    done = _restore("--task", "inpaint-mask", "-p", f"mask={tmp_path / 'm.png'}", tmp_path / "erased.png", "-c",
                    ckpt, "--method", "biharmonic", "-o", tmp_path / "out.png")
    assert "its transparent pixels are not filled: -p mask names the holes" in " ".join(done["results"][0]["notes"])
    plain = _restore("--task", "inpaint-mask", "-p", f"mask={tmp_path / 'm.png'}", _png(tmp_path / "o.png", 15, 13),
                     "-c", ckpt, "--method", "biharmonic", "-o", tmp_path / "o_out.png")
    assert "transparent" not in " ".join(plain["results"][0]["notes"])


def test_transparent_pixels_are_the_holes_without_a_mask(tmp_path, ckpt):
    """inpaint-mask without -p mask fills an input's pixels under half opaque and keeps the others with the colour
    the file stores (exactly, also under a soft rim's partial opacity); the output is opaque, with --flatten too; an
    opaque or nearly opaque input among them fails alone, and alone it is a usage error naming both ways; -p grow
    widens the holes; -p invert and an all-transparent input are refused; a mostly transparent one is warned of."""
    colour, alpha = _erased(tmp_path / "erased.png")
    _png(tmp_path / "opaque.png", 15, 13, seed=1)
    almost = np.concatenate([colour, np.full((15, 13, 1), 255, np.uint8)], -1)
    almost[0, 0, 3] = 254
    Image.fromarray(almost).save(tmp_path / "almost.png")
    summary = _restore("--task", "inpaint-mask", tmp_path / "erased.png", tmp_path / "opaque.png",
                       tmp_path / "almost.png", "-c", ckpt, "--method", "biharmonic", "-o", tmp_path / "out", ok=False)
    done = [r for r in summary["results"] if r["status"] == "ok"]
    failed = [r for r in summary["results"] if r["status"] != "ok"]
    assert len(done) == 1 and len(failed) == 2, summary
    assert "the holes are the input's pixels under half opaque (13.3% of the picture;" in " ".join(done[0]["notes"])
    assert "most of the picture is transparent" not in " ".join(done[0]["notes"])
    assert all("this input has no pixel under half opaque" in r["error"] for r in failed)
    out = np.asarray(Image.open(tmp_path / "out" / "erased.png"))
    known = alpha >= 128
    assert out.shape[-1] == 3 and np.array_equal(out[known], colour[known])  # opaque: written without alpha
    assert (out[~known] != 255).any()  # filled, not the white they were composited on
    res = run("restore", "--task", "inpaint-mask", tmp_path / "opaque.png", "-c", ckpt, *FAST)
    assert res.exit_code == 2 and "or an input whose holes are transparent" in res.stderr, res.output
    flat = _restore("--task", "inpaint-mask", tmp_path / "erased.png", "--flatten", "-c", ckpt, "--method",
                    "biharmonic", "-o", tmp_path / "flat.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "flat.png")), out), flat
    grown = _restore("--task", "inpaint-mask", tmp_path / "erased.png", "-p", "grow=1", "-c", ckpt, "--method",
                     "biharmonic", "-o", tmp_path / "grown.png")
    assert "% of the picture, widened by -p grow=1;" in " ".join(grown["results"][0]["notes"])
    refused = _restore("--task", "inpaint-mask", tmp_path / "erased.png", "-p", "invert=true", "-c", ckpt,
                       "--method", "biharmonic", "-o", tmp_path / "inv.png", ok=False)
    assert "without one, the input's transparent pixels are the holes" in refused["results"][0]["error"]
    Image.new("RGBA", (13, 15)).save(tmp_path / "clear.png")
    clear = _restore("--task", "inpaint-mask", tmp_path / "clear.png", "-c", ckpt, "--method", "biharmonic", "-o",
                     tmp_path / "clear_out.png", ok=False)
    assert "every pixel is transparent" in clear["results"][0]["error"]
    cut = np.concatenate([colour, np.zeros((15, 13, 1), np.uint8)], -1)
    cut[5:10, 4:9, 3] = 255  # a cut-out: 87 % transparent
    Image.fromarray(cut).save(tmp_path / "cut.png")
    res = run("restore", "--task", "inpaint-mask", tmp_path / "cut.png", "-q", "-c", ckpt, "--method", "biharmonic",
              "-o", tmp_path / "cut_out.png")
    assert res.exit_code == 0 and "warning: " in res.stderr and "most of the picture is transparent (87%)" in \
        res.stderr, res.output
    with open(tmp_path / "erased.png", "rb") as fh:
        res = run("restore", "--task", "inpaint-mask", "-", "-c", ckpt, "--method", "biharmonic", "-o",
                  tmp_path / "stdin.png", input=fh.read())
    assert res.exit_code == 0, res.output


def test_transparency_holes_are_the_pixels_under_half_opaque():
    from ncvsd_cli.measurement import transparency_holes

    alpha = torch.ones(1, 1, 3, 4)
    alpha[0, 0, 0, 0] = 0.5
    assert transparency_holes(alpha) is None and transparency_holes(None) is None
    alpha[0, 0, 1, 2], alpha[0, 0, 2, 0] = 32767 / 65535, 0.0
    known = transparency_holes(alpha)
    assert known.shape == (3, 4) and known.sum() == 10 and known[1, 2] == 0 and known[2, 0] == 0


def _exif_turned(path, arr: np.ndarray) -> None:
    """Save arr (H, W[, 3]) as a JPEG stored turned (W x H) with EXIF orientation 6, so that it shows as arr."""
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: stored as the picture turned back
    Image.fromarray(np.ascontiguousarray(np.rot90(arr, 1))).save(path, quality=95, exif=exif)


def test_masks_and_photos_turned_by_exif_are_read_as_shown(tmp_path, ckpt):
    """Phones store photos turned, with an EXIF orientation: the photo is restored as shown (portrait), so a mask
    drawn on it as shown fits (it was refused against the stored size), a mask file that is itself turned by EXIF
    is read as shown, and `image_size` agrees with the decoded image."""
    from ncvsd_cli import images

    photo = (np.random.default_rng(0).random((21, 14, 3)) * 255).astype(np.uint8)  # shown 14 wide, 21 tall
    _exif_turned(tmp_path / "phone.jpg", photo)
    assert Image.open(tmp_path / "phone.jpg").size == (21, 14)  # stored landscape
    assert images.image_size(tmp_path / "phone.jpg") == (21, 14) == images.read_image(
        tmp_path / "phone.jpg").tensor.shape[-2:]
    known = _hole_mask(tmp_path / "mask.png", 21, 14)
    summary = _restore("--task", "inpaint-mask", tmp_path / "phone.jpg", "-p", f"mask={tmp_path / 'mask.png'}", "-c",
                       ckpt, "--method", "biharmonic", "-o", tmp_path / "out.png")
    assert summary["results"][0]["size"] == [21, 14]
    _exif_turned(tmp_path / "mask.jpg", np.where(known, 255, 0).astype(np.uint8))
    op = operators.create("inpaint-mask", (3, 21, 14), mask=str(tmp_path / "mask.jpg"))
    assert torch.equal(op.mask[0, 0].bool(), torch.from_numpy(known))


def test_a_mask_or_kernel_file_of_the_wrong_size_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """A mask's size (and a kernel image's side) is checked from the header: a huge file is refused without
    decoding it (12000 x 12000 took 67 s and 5.6 GB before), and the message says how to fix it."""
    from PIL import Image as PILImage

    Image.new("L", (40, 30), 255).save(tmp_path / "big.png")
    Image.new("L", (2100, 3), 255).save(tmp_path / "wide.png")
    Image.new("L", (15, 13), 255).save(tmp_path / "stored.png")  # drawn on a photo's stored, unturned pixels
    monkeypatch.setattr(PILImage.Image, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(ValueError, match=r"mask: .*big.png is 40x30 pixels, the image 13x15: .*resize"):
        operators.create("inpaint-mask", (3, 15, 13), mask=str(tmp_path / "big.png"))
    with pytest.raises(ValueError, match=r"stored.png is 15x13 pixels, the image 13x15: its sides are swapped \("
                                         r"photos are restored as shown, turned upright by their EXIF orientation"):
        operators.create("inpaint-mask", (3, 15, 13), mask=str(tmp_path / "stored.png"))
    with pytest.raises(ValueError, match=r"kernel: .*wide.png is 2100x3 pixels, more than 2049 on a side"):
        operators.create("deblur-kernel", (3, 15, 13), kernel=str(tmp_path / "wide.png"))


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_the_mask_file_in_the_photos_folder_is_not_taken_for_a_photo(tmp_path, ckpt, command):
    """`-p mask=photos/mask.png photos/`: the mask is left out of the folder's inputs with a note (it was inpainted
    with itself); named on its own it is an input."""
    (tmp_path / "photos").mkdir()
    _png(tmp_path / "photos" / "a.png", 15, 13)
    _hole_mask(tmp_path / "photos" / "mask.png")
    extra = ("-c", ckpt, "--method", "biharmonic") if command == "restore" else ()
    res = run(command, "--task", "inpaint-mask", "-p", f"mask={tmp_path / 'photos' / 'mask.png'}", *extra,
              tmp_path / "photos", "-o", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.splitlines()[-1])
    assert [Path(r["input"]).name for r in summary["results"]] == ["a.png"]
    assert "the -p mask file, left out of the inputs" in res.stderr
    res = run(command, "--task", "inpaint-mask", "-p", f"mask={tmp_path / 'photos' / 'mask.png'}", *extra,
              tmp_path / "photos" / "mask.png", "-o", tmp_path / "named", "--json")
    assert res.exit_code == 0 and len(json.loads(res.stdout.splitlines()[-1])["results"]) == 1, res.output
    (tmp_path / "masks").mkdir()
    shutil.copy(tmp_path / "photos" / "mask.png", tmp_path / "masks" / "m.png")
    res = run(command, "--task", "inpaint-mask", "-p", f"mask={tmp_path / 'masks' / 'm.png'}", *extra,
              tmp_path / "masks", "-o", tmp_path / "none")
    assert res.exit_code != 0 and "has no image files but the -p file" in res.output, res.output
    if command == "restore":  # a preset file's mask is left out too
        (tmp_path / "p.yaml").write_text(f"operator: {{mask: {tmp_path / 'photos' / 'mask.png'}}}\n")
        res = run(command, "--task", "inpaint-mask", "--preset", tmp_path / "p.yaml", *extra, tmp_path / "photos",
                  "-o", tmp_path / "preset", "--json")
        assert res.exit_code == 0, res.output
        assert [Path(r["input"]).name for r in json.loads(res.stdout.splitlines()[-1])["results"]] == ["a.png"]


def test_a_transparent_part_of_a_mask_is_a_hole_and_grey_levels_are_noted(tmp_path, ckpt):
    """Editors export holes as transparency: a transparent square (white in RGB) is the hole; a soft mask is
    read as known above mid-grey and says so."""
    src = _png(tmp_path / "photo.png", 15, 13)
    rgba = np.full((15, 13, 4), 255, np.uint8)
    rgba[4:9, 3:8, 3] = 0  # transparent, still white in RGB
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    op = operators.create("inpaint-mask", (3, 15, 13), mask=str(tmp_path / "alpha.png"))
    assert op.mask[0, 0, 4:9, 3:8].eq(0).all() and op.mask.sum() == 15 * 13 - 25
    ramp = np.zeros((15, 13), np.uint8)  # a soft edge between black and white
    ramp[:, 5:7], ramp[:, 7:] = (85, 170), 255
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    summary = _restore("--task", "inpaint-mask", src, "-p", f"mask={tmp_path / 'ramp.png'}", "-c", ckpt,
                       "--method", "biharmonic", "-o", tmp_path / "out.png")
    assert any("grey levels" in n and "mid-grey" in n and "-p grow=1" in n for n in summary["results"][0]["notes"])
    summary = _restore("--task", "inpaint-mask", src, "-p", f"mask={tmp_path / 'alpha.png'}", "-c", ckpt,
                       "--method", "biharmonic", "-o", tmp_path / "out2.png")
    assert not any("grey levels" in n for n in summary["results"][0]["notes"])


def test_a_random_mask_named_by_its_seed_says_which_fraction_it_assumes(tmp_path, ckpt):
    src = _png(tmp_path / "photo.png", 16, 16)
    args = ["--task", "inpaint-random", src, "-c", ckpt, "--method", "biharmonic", "--overwrite", "-o",
            tmp_path / "o.png"]
    notes = _restore(*args, "-p", "seed=5")["results"][0]["notes"]
    assert any("drawn from seed 5 with fraction 0.7" in n for n in notes)
    assert not any("drawn from seed" in n for n in _restore(*args, "-p", "seed=5", "-p", "fraction=0.8")
                   ["results"][0]["notes"])
    res = run("restore", "--task", "inpaint-random", src, "-c", ckpt, "-o", tmp_path / "x.png")
    assert res.exit_code == 2 and "fraction=F" in res.stderr


# ------------------------------------------------------------------------------------------------ kernels, sidecars
@pytest.mark.parametrize(("taps", "normalize", "said"), [
    (np.pad(np.ones((3, 3)), 1), True, []),  # odd, positive, any sum: divided by it as documented
    (np.pad(np.ones((3, 3)), ((1, 2), (1, 2))), True, ["is 6x6, even-sized: its centre is taken at row 3, column 3"]),
    (np.array([[0.0, -0.1, 0.0], [0.3, 1.0, 0.3], [0.0, -0.1, 0.0]]), True, ["negative taps (11% of its weight)"]),
    (np.full((3, 3), 7.3 / 9), False, ["sums to 7.3, kept as it is (normalize=false): a gain"]),
    (np.outer(*[np.exp(-np.arange(-2.0, 3) ** 2 / 2)] * 2), True, []),  # a 5x5 Gaussian's tail is no black level
    (np.pad(np.ones((1, 9)), ((12, 12), (8, 8)), constant_values=1 / 200), True,  # a photographed line on a
     ["background is not black (its border is 0.5% of its peak), which holds about 26% of its weight"]),  # floor
    (np.pad(np.ones((1, 9)), ((2, 12), (1, 5))), True,  # a path cropped off-centre: the restoration moves
     ["weight centres -5.0 rows, -2.0 columns from its centre tap (row 7, column 7 from 0)"]),
])
@pytest.mark.parametrize("task", ["deblur-kernel", "deblur-motion"])
def test_a_users_kernel_that_may_be_wrong_is_noted(tmp_path, taps, normalize, said, task):
    """An even side moves the restoration up to a pixel, negative taps are no camera blur, an unnormalised kernel
    kept as it is changes contrast: each is said (once the image is restored), nothing for a plain odd kernel."""
    from ncvsd_cli.restore import RestoreOptions, Restorer

    if task == "deblur-motion" and not normalize:
        pytest.skip("deblur-motion always normalises a user's kernel")
    np.save(tmp_path / "k.npy", taps)
    params = {"kernel": str(tmp_path / "k.npy")} | ({} if task == "deblur-motion" else {"normalize": normalize})
    restorer = Restorer(None, None, RestoreOptions(task=task, method="wiener", params=params).validate())
    notes = [n for n in restorer.measurement(torch.zeros(1, 3, 40, 40), task).notes if "the kernel" in n]
    assert len(notes) == len(said) and all(s in n for s, n in zip(said, notes)), notes


def test_a_kernel_wider_than_the_image_is_refused(tmp_path, ckpt):
    src = _png(tmp_path / "photo.png", 16, 16)
    np.save(tmp_path / "big.npy", np.ones((40, 3)))
    res = run("restore", "--task", "deblur-kernel", src, "-p", f"kernel={tmp_path / 'big.npy'}", "-c", ckpt, *FAST,
              "-o", tmp_path / "o.png")
    assert res.exit_code != 0 and "more than the 16x16 image" in res.output and not (tmp_path / "o.png").exists()
    padded = np.zeros((60, 60))
    padded[20:23, 10:14] = 1  # a small kernel in a large zero frame is fine
    assert operators.create("deblur-kernel", (3, 16, 16), kernel=padded).kernel.shape == (60, 60)
    line = np.zeros((41, 41))
    line[20] = 1  # deblur-motion -p kernel= ran a 41-px shake over a 16-px image to garbage
    with pytest.raises(ValueError, match="spreads over 41x1 pixels, more than the 16x16 image"):
        operators.create("deblur-motion", (3, 16, 16), kernel=line)
    assert operators.create("deblur-motion", (3, 16, 16), kernel=padded[:60, :60]).kernel_size == 60
    stored = operators.create("deblur-motion", (3, 16, 16), seed=3)  # a drawn 61-px shake, restored from its config
    assert operators.from_config(stored.to_config()).kernel_size == 61


def test_a_label_mask_of_0_and_1_codes_and_a_home_relative_path_are_read(tmp_path, monkeypatch):
    """A PNG of 0 / 1 codes (cv2.imwrite of a 0/1 array) read as all hole, "keeps no pixel"; ~ in a -p path quoted
    or in a preset file was not expanded ("file not found")."""
    labels = np.ones((16, 16), np.uint8)
    labels[4:8, 4:8] = 0
    monkeypatch.setenv("HOME", str(tmp_path))
    Image.fromarray(labels).save(tmp_path / "m.png")
    op = operators.create("inpaint-mask", (3, 16, 16), mask="~/m.png")
    assert op.mask[0, 0].sum().item() == 256 - 16


def test_operator_parameters_given_with_a_sidecar_are_named_as_unused(tmp_path, ckpt):
    src = _png(tmp_path / "photo.png", 16, 16)
    assert run("degrade", "--task", "deblur-gauss", "-p", "sigma=2", src, "-o", tmp_path / "m.png").exit_code == 0
    res = run("restore", tmp_path / "m.png", "-p", "sigma=1", "-c", ckpt, "--method", "wiener", "-o",
              tmp_path / "o.png")
    assert res.exit_code == 0 and "sigma not used: the sidecar records the operator" in res.stderr, res.output
    res = run("restore", tmp_path / "m.png", "-p", "sigma=1", "-c", ckpt, "--method", "wiener", "-o",
              tmp_path / "j.png", "--json", "-q")
    (record,) = json.loads(res.stdout.splitlines()[-1])["results"]
    assert any("sigma not used" in n for n in record["notes"]), record  # the JSON said nothing of it


def test_earlier_outputs_beside_their_inputs_are_not_inputs_of_a_glob_into_another_folder(tmp_path, ckpt):
    folder = tmp_path / "p"
    folder.mkdir()
    _png(folder / "x.png", 16, 16)
    args = ["--task", "denoise", "-c", ckpt, "--method", "classical"]
    _restore(folder / "x.png", *args)  # writes p/x_denoise.png beside it
    summary = _restore(str(folder / "*"), *args, "-o", tmp_path / "out")
    assert summary["ok"] == 1 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png"]
    shutil.copy(folder / "x_denoise.png", folder / "y_denoise.png")  # no y.* beside it: a real input
    assert _restore(str(folder / "y*"), *args, "-o", tmp_path / "out2")["ok"] == 1


# ------------------------------------------------------------------------------------------------ phase retrieval
def test_phase_retrieval_preview_is_visible_classical_refused_and_the_ambiguity_noted(tmp_path, ckpt):
    src = _png(tmp_path / "photo.png", 16, 16)
    assert run("degrade", "--task", "phase-retrieval", src, "-o", tmp_path / "pr.png").exit_code == 0
    preview = np.asarray(Image.open(tmp_path / "pr.png"))
    assert np.percentile(preview, 99) > 128 and np.median(preview) < 32  # structure above a dark noise floor
    summary = _restore(tmp_path / "pr.png", "-c", ckpt, "--method", "classical", "-o", tmp_path / "o.png", ok=False)
    assert "no informative classical estimate" in summary["results"][0]["error"]
    res = run("restore", tmp_path / "pr.png", "-c", ckpt, *FAST, "-o", tmp_path / "o.png", "--json")
    assert res.exit_code == 0 and "180-degree turn" in res.stderr and "--samples K" in res.stderr, res.output
    assert "--method pnp-gd-fit4" in res.stderr and res.stderr.count("180-degree") == 1
    assert any("180-degree turn" in n for n in json.loads(res.stdout.splitlines()[0])["notes"])  # for --json too
    res = run("restore", tmp_path / "pr.png", "-c", ckpt, "--method", "pnp-gd-fit4", "--nfe", "8", "--device",
              "cpu", "-o", tmp_path / "fit.png")
    assert res.exit_code == 0 and "180-degree" not in res.stderr and (tmp_path / "fit.png").exists(), res.output
    res = run("restore", tmp_path / "pr.png", "-c", ckpt, "--method", "pnp-gd-fit4", "--nfe", "4", "--device",
              "cpu", "-o", tmp_path / "fit1.png")
    assert res.exit_code == 2 and "--nfe >= 8" in res.stderr, res.output


def test_a_180_degree_turn_fits_phase_retrieval_exactly_and_the_mean_is_taken_in_one_orientation():
    """The centred zero-padding makes rot180(x) an exact twin (same amplitudes: a reflection and a one-pixel
    circular shift), for odd and even sizes; `twin_fit` ranks the samples by their fit and turns those nearer the
    best one turned, so the mean of x and its twin is x, not a ghost of both."""
    from ncvsd_cli.measurement import Measurement
    from ncvsd_cli.restore import RestoreResult, twin_fit

    for shape in ((3, 9, 8), (1, 7, 11)):
        x = torch.rand(1, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
        op = operators.create("phase-retrieval", shape)
        m = Measurement(task="phase-retrieval", operator_config=op.to_config(), y=op.forward(x), sigma_y=0.0)
        samples = torch.cat([x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)),
                             x.flip(-2, -1), x])
        fit = twin_fit(m, samples)
        assert max(fit["residuals"][1:]) < 1e-6 < fit["residuals"][0]  # the twin fits as exactly as x
        best = min(range(3), key=fit["residuals"].__getitem__)
        assert set(fit["turned"]) == ({1} if best != 1 else {0, 2})
        mean = RestoreResult(0, samples=samples[1:], turned=tuple(i - 1 for i in fit["turned"] if i)).mean()
        assert torch.allclose(mean, (x if best != 1 else x.flip(-2, -1)).clamp(-1, 1), atol=1e-6)


def test_phase_retrieval_samples_name_their_fit_in_json(tmp_path, ckpt):
    src = _png(tmp_path / "photo.png", 16, 16)
    assert run("degrade", "--task", "phase-retrieval", src, "-o", tmp_path / "pr.png").exit_code == 0
    res = run("restore", tmp_path / "pr.png", "-c", ckpt, *FAST, "--samples", "3", "--mean", "-o", tmp_path / "k",
              "--json")
    record = json.loads(res.stdout.splitlines()[0])
    assert res.exit_code == 0 and len(record["fit_residuals"]) == 3 and all(r > 0 for r in record["fit_residuals"])
    best = min(range(3), key=record["fit_residuals"].__getitem__)
    assert f"sample s{best} fits the measurement best" in res.stderr and best not in record["turned"]
    assert "180-degree turn" in res.stderr  # the ambiguity is said with K samples too


def test_amplitudes_in_another_convention_are_warned_of_and_an_empty_measurement_refused(tmp_path, ckpt):
    """A user's own Fourier amplitudes saved through `save_measurement` restored as a blank image at exit 0 when
    they were in another convention (a raw FFT's scale), and all-zero amplitudes likewise: the first is warned of
    (its fit is far outside the noise level), the second refused; a y of the wrong shape is refused on saving,
    not on reading. The fit is the saved (clipped) image's."""
    from ncvsd_cli.cli.restore import _poor_fit
    from ncvsd_cli.measurement import Measurement, save_measurement
    from ncvsd_cli.restore import RestoreResult, twin_fit

    op = operators.create("phase-retrieval", (3, 16, 16))
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for name, y in (("raw", op.forward(x) * 32), ("zero", torch.zeros_like(op.forward(x)))):
        save_measurement(Measurement(task="phase-retrieval", operator_config=op.to_config(), y=y, sigma_y=0.05),
                         tmp_path / f"{name}.png")
    res = run("restore", tmp_path / "raw.png", "-c", ckpt, *FAST, "-o", tmp_path / "r.png", "--json", "-q")
    record = json.loads(res.stdout.splitlines()[0])
    assert res.exit_code == 0 and "warning: " in res.stderr and "fits its measurement poorly" in res.stderr
    assert any("intensities" in n for n in record["notes"]) and record["sidecar"] is True, record
    summary = _restore(tmp_path / "zero.png", "-c", ckpt, *FAST, "-o", tmp_path / "z.png", ok=False)
    assert "amplitudes are all <= 0" in summary["results"][0]["error"]
    with pytest.raises(ValueError, match="no measurement of its phase-retrieval operator"):
        save_measurement(Measurement(task="phase-retrieval", operator_config=op.to_config(), y=y[..., :20, :20],
                                     sigma_y=0.05), tmp_path / "cut.png")
    assert not (tmp_path / "cut.png").exists()
    fit = Measurement(task="phase-retrieval", operator_config=op.to_config(), y=op.forward(x), sigma_y=0.0)
    assert twin_fit(fit, 3 * x)["residuals"] == twin_fit(fit, (3 * x).clamp(-1, 1))["residuals"]
    assert _poor_fit(RestoreResult(0, residuals=[0.06, 0.3], sigma_y=0.05)) is None  # within 3x: a fit
    assert _poor_fit(RestoreResult(0, residuals=[0.04], sigma_y=0.0)) is None  # the floor at sigma_y 0
    assert "poorly" in _poor_fit(RestoreResult(0, residuals=[0.2], sigma_y=0.05))


def test_json_to_a_reader_that_went_away_is_one_line_not_an_internal_error(tmp_path):
    """`ncvsd degrade ... --json | head -1`: a closed standard output is named in one line, exit 1, no traceback."""
    import os
    import subprocess
    import sys

    src = _png(tmp_path / "photo.png", 16, 16)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        proc = subprocess.run([sys.executable, "-m", "ncvsd_cli", "degrade", "--task", "denoise", src, "-o",
                               tmp_path / "out", "--json"], stdout=write, stderr=subprocess.PIPE, timeout=120,
                               check=False)
    finally:
        os.close(write)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "broken pipe" in err and "internal error" not in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ the library
def test_library_misuse_is_refused_in_words(ckpt):
    """restore_image honours max_pixels and refuses an unavailable device (or resolves "auto"); operators refuse
    integer pixels and a NaN noise level instead of returning zeros or a noiseless measurement."""
    from ncvsd_cli.restore import RestoreOptions, restore_image

    y = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="8x8 input gives a 32x32 output, more than max_pixels 1000"):
        restore_image(y, "sr4", max_pixels=1000, checkpoint=str(ckpt), method="bicubic")
    assert RestoreOptions(task="sr4", device="auto").validate().device in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            restore_image(y, "sr4", device="cuda", checkpoint=str(ckpt))
    op = operators.create("sr4", (3, 16, 16))
    with pytest.raises(ValueError, match="float tensors"):
        op(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="finite"):
        op.measure(torch.zeros(1, 3, 16, 16), sigma_y=float("nan"))


def test_a_motion_kernel_named_by_its_seed_names_the_boundary_degrade_used(tmp_path, ckpt):
    src = _png(tmp_path / "photo.png", 16, 16)
    notes = _restore("--task", "deblur-motion", src, "-p", "seed=5", "-c", ckpt, "--method", "wiener", "-o",
                     tmp_path / "o.png")["results"][0]["notes"]
    assert any("kernel_size 61, intensity 0.5, boundary reflect" in n and "boundary=circular" in n for n in notes)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"alpha": torch.ones(1, 1, 4, 4)}, r"alpha: expected shape \(1, 1, 8, 8\)"),
    ({"alpha": torch.full((1, 1, 8, 8), 255.0)}, "values up to 255"),
    ({"alpha": torch.full((8, 8), float("nan"))}, "NaN"),
    ({"alpha": [[1.0]]}, "a tensor or numpy array"),
    ({"jpeg_sigma": -1.0}, "jpeg_sigma: a noise scale >= 0"),
    ({"jpeg_sigma": "a"}, "jpeg_sigma"),
    ({"jpeg_coding": "junk"}, "jpeg_coding: an images.JpegCoding")])
def test_restore_image_checks_its_file_arguments(ckpt, kwargs, match):
    """alpha of another size was taken silently (or failed as a RuntimeError), a numpy one as an AttributeError;
    jpeg_sigma / jpeg_coding were not checked."""
    from ncvsd_cli.restore import restore_image

    with pytest.raises(ValueError, match=match):
        restore_image(torch.zeros(1, 3, 8, 8), "denoise", checkpoint=str(ckpt), method="nl-means", **kwargs)


def test_restore_image_takes_a_numpy_alpha(ckpt):
    from ncvsd_cli.restore import restore_image

    out = restore_image(torch.zeros(1, 3, 8, 8), "denoise", checkpoint=str(ckpt), method="nl-means", sigma_y=0.05,
                        alpha=np.ones((8, 8), np.float32))
    assert out.shape == (1, 3, 8, 8)


def test_restore_image_refuses_an_oversized_output_before_any_work_at_its_size(ckpt, monkeypatch):
    """An sr4 of a 2000-px input took 87 s and 2.9 GB (the measurement built at 8000 px) to be refused by
    max_pixels; without it, a 32000-px output was built before the memory check refused it."""
    from ncvsd_cli import memory
    from ncvsd_cli.restore import Restorer, restore_image

    def no_measurement(*args, **kwargs):
        raise AssertionError("the measurement was built")

    monkeypatch.setattr(Restorer, "measurement", no_measurement)
    y = torch.zeros(1, 3, 1, 1).expand(1, 3, 2000, 2000)
    with pytest.raises(ValueError, match="2000x2000 input gives a 8000x8000 output, more than max_pixels 1000"):
        restore_image(y, "sr4", max_pixels=1000, checkpoint=str(ckpt))
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device: 2**30)
    with pytest.raises(ValueError, match="a 8000x8000 output needs an estimated"):
        restore_image(y, "sr4", checkpoint=str(ckpt), device="cpu")


def test_the_sampler_call_refuses_a_measurement_it_cannot_use(ckpt):
    """method(G, op, y, ...) checks y before any network call: its shape against the operator's measurements, NaN,
    integer values, and the operator's channels against the network's; A^T and A^+ check y's shape too."""
    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.sampling.methods import get_method

    net, _ = load_checkpoint(ckpt)
    method, op = get_method("pnp-gd"), operators.create("sr4", (3, 16, 16))
    call = method.prepare("sr4", 2)
    y = op.measure(torch.zeros(1, 3, 16, 16), 0.05)
    bad = {"measures (B, 3, 4, 4), got (1, 3, 16, 16)": torch.zeros(1, 3, 16, 16),
           "holds 1 NaN": y.clone().index_put_((torch.tensor([0]),) * 4, torch.tensor(float("nan"))),
           "float measurements, got torch.int64": y.long()}
    for words, value in bad.items():
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            method(net, op, value, call.sigmas, generator=None, **call.kwargs)
    grey = operators.create("sr4", (1, 16, 16))
    with pytest.raises(ValueError, match="1-channel images and the network draws 3-channel"):
        method(net, grey, grey.measure(torch.zeros(1, 1, 16, 16)), call.sigmas, generator=None, **call.kwargs)
    for name in ("adjoint", "pseudo_inverse"):
        with pytest.raises(ValueError, match="measures"):
            getattr(op, name)(torch.zeros(1, 3, 5, 5))
    assert op.pseudo_inverse(y).shape == (1, 3, 16, 16)


def test_checkpoint_loading_refuses_nan_weights_and_an_unknown_kind(tmp_path):
    from test_reliability import _tiny

    from ncvsd_cli.checkpoints import CheckpointError, load_checkpoint, resolve_checkpoint

    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_checkpoint(_tiny(tmp_path, nan=True))
    from ncvsd_cli.checkpoints import (
        checkpoint_info,  # info says so too (it showed such a file as fine, exit 0)
    )

    assert "unreadable: the weights contain NaN or inf" in checkpoint_info(_tiny(tmp_path, nan=True)).status
    assert "unreadable" not in checkpoint_info(_tiny(tmp_path)).status
    res = run("checkpoints", "info", _tiny(tmp_path, nan=True))
    assert res.exit_code == 3 and "NaN or inf" in res.stderr, res.output
    with pytest.raises(ValueError, match="kind must be one of"):
        load_checkpoint(_tiny(tmp_path), kind="generater")
    with pytest.raises(CheckpointError) as err:  # a mistyped generator path: no teacher suggested
        resolve_checkpoint(str(tmp_path / "builtin64-generatr.safetensors"), kind="generator")
    assert "teacher" not in str(err.value).split("; looked in")[0]
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="a zip archive, as torch.save writes"):
        load_checkpoint(tmp_path / "model.pt")
    _png(tmp_path / "photo.png", 8, 8)  # an image given as -c (it said "header too large")
    with pytest.raises(CheckpointError, match="it is a PNG image"):
        load_checkpoint(tmp_path / "photo.png")
    from ncvsd_cli.pickle_import import import_pickle

    with pytest.raises(CheckpointError, match="it is a zip archive, as torch.save writes, not a network pickle"):
        import_pickle(tmp_path / "model.pt", tmp_path / "out.safetensors")


def test_library_inputs_are_refused_with_a_remedy(ckpt):
    from ncvsd_cli.restore import restore_image

    y, fast = torch.zeros(1, 3, 8, 8), {"checkpoint": str(ckpt), "method": "bicubic"}
    cases = {"task: one of": (y, None, {}), "seed \\(--seed\\) must be an integer": (y, "sr4", {"seed": 1.5}),
             "the image is empty": (torch.zeros(1, 3, 0, 8), "sr4", {}),
             "drops the alpha": (torch.zeros(1, 4, 8, 8), "sr4", {}),
             "permute\\(2, 0, 1\\)": (torch.zeros(8, 8, 3), "sr4", {})}
    for words, (image, task, options) in cases.items():
        with pytest.raises(ValueError, match=words):
            restore_image(image, task, **{**fast, **options})
    import warnings

    with warnings.catch_warnings():  # a tensor that requires grad is restored without torch's scalar warning
        warnings.simplefilter("error")
        assert restore_image(torch.zeros(1, 3, 8, 8, requires_grad=True), "sr4", **fast).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="method 'denoiser-mean8' \\(the mean of 8 'denoiser' samples"):
        restore_image(y, "sr4", method="denoiser-mean8", checkpoint=str(ckpt))


def test_restore_image_logs_the_notes_restore_prints(ckpt, caplog):
    import logging

    from ncvsd_cli.restore import restore_image

    y = operators.create("denoise", (3, 40, 40)).measure(torch.zeros(1, 3, 40, 40), 0.1, torch.Generator())
    with caplog.at_level(logging.INFO, logger="ncvsd.restore"):
        restore_image(y, "denoise", checkpoint=str(ckpt), method="classical")
    assert any("estimated noise level sigma_y 0.09" in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.parametrize("task", ["sr4", "deblur-gauss", "deblur-motion"])
def test_a_noiseless_measurement_is_fitted_at_the_level_of_8_bit_rounding(task, ckpt):
    """sigma_y 0 scales beta as sigma_y = BETA_FLOOR_SIGMA (it kept the preset's beta, tuned at 0.05): the same
    sampler then meets the measurement more closely than with the preset's beta."""
    from ncvsd_cli.checkpoints import load_checkpoint
    from ncvsd_cli.sampling.methods import get_method
    from ncvsd_cli.sampling.presets import BETA_FLOOR_SIGMA, build_operator, task_settings

    preset = task_settings(task)
    for level in (0.0, 1e-4, BETA_FLOOR_SIGMA):
        floor = task_settings(task, sigma_y=level)["beta"]
        assert floor == pytest.approx(preset["beta"] * (BETA_FLOOR_SIGMA / preset["sigma_y"]) ** 2)
    net, method = load_checkpoint(ckpt)[0], get_method("pnp-gd")
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    residual = {}
    for name, extra in (("floor", {}), ("preset", {"beta": preset["beta"]})):
        call = method.prepare(task, 4, sigma_y=0.0, operator={"seed": 0} if task == "deblur-motion" else None,
                              **extra)
        op = build_operator(call.settings, (3, 16, 16))
        y = op.measure(x, 0.0)
        out = method.run(call, net, op, y, generator=torch.Generator().manual_seed(0)).x
        residual[name] = float((op(out) - y).pow(2).mean().sqrt())
    assert residual["floor"] < 0.8 * residual["preset"], residual  # the tiny random network: 0.70-0.75


def test_mask_notes_name_a_given_grow_and_do_not_advise_it_again():
    """A grow that widens the holes over every pixel is named in the refusal (the mask itself is fine); a grey mask
    restored with -p grow gets no advice to give it."""
    from ncvsd_cli.restore import mask_notes

    with pytest.raises(ValueError, match=r"keeps no pixel.*-p grow=40 widened the holes"):
        mask_notes(0.0, False, 0.0, grow=40.0)
    assert "-p grow=1 widens" in mask_notes(0.9, False, 0.2)[0]
    grey = "the mask has grey levels (20% of its pixels): read as known above mid-grey"
    assert mask_notes(0.9, False, 0.2, grow=2.0) == [grey]
    assert "grow=2 widened" in mask_notes(0.3, False, 0.0, grow=2.0)[-1]


def test_a_photo_given_as_the_mask_is_warned_of_and_a_coloured_background_is_not(tmp_path, ckpt):
    """A grey photo given as the mask repainted a third of the picture with a note about soft edges and grow; it
    is a warning (also under --quiet). A flat light-blue background with marks is grey levels too, not a photo."""
    from ncvsd_cli.restore import mask_grey_levels

    src = _png(tmp_path / "photo.png", 32, 32)
    Image.open(src).convert("L").save(tmp_path / "grey.png")
    res = run("restore", "--task", "inpaint-mask", src, "-p", f"mask={tmp_path / 'grey.png'}", "-c", ckpt, *FAST,
              "-o", tmp_path / "out.png", "-q")
    assert res.exit_code == 0 and "warning: " in res.stderr and "looks like a photo" in res.stderr, res.output
    blue = np.tile(np.array([173, 216, 230], np.uint8), (32, 32, 1))
    blue[8:20, 8:20] = (200, 0, 0)
    Image.fromarray(blue).save(tmp_path / "blue.png")
    soft, photo = mask_grey_levels(str(tmp_path / "blue.png"))
    assert soft > 0.5 and not photo


@pytest.mark.parametrize(("task", "typo"), [("inpaint-mask", "Mask"), ("deblur-kernel", "kernl")])
def test_a_mistyped_required_parameter_is_named(tmp_path, ckpt, task, typo):
    """`-p Mask=M.png` was answered "inpaint-mask needs the mask of the holes", never naming the typo."""
    src = _png(tmp_path / "photo.png", 16, 16)
    np.save(tmp_path / "k.npy", np.ones((3, 3)))
    res = run("restore", "--task", task, src, "-p", f"{typo}={tmp_path / 'k.npy'}", "-c", ckpt, *FAST, "-o",
              tmp_path / "o.png")
    assert res.exit_code == 2 and f"has no parameter {typo}" in res.stderr, res.output
    res = run("restore", "--task", "deblur-kernel", src, "-p", "normalize=false", "-c", ckpt, *FAST, "-o",
              tmp_path / "o.png")  # a parameter given, the kernel missing: the refusal that says what to give
    assert res.exit_code == 2 and "deblur-kernel needs the blur kernel: -p kernel=K.png" in res.stderr, res.output


# ------------------------------------------------------------------------------------------ unusual file names
def test_a_name_near_the_file_systems_limit_fails_alone(tmp_path, ckpt):
    """An input whose name fits but whose sidecar, output or temporary name would not (255 bytes) failed the whole
    batch as an internal error: its sidecar is absent, its output too long is refused alone in words, and an output
    that fits is written (its temporary name is shortened)."""
    ok = _png(tmp_path / "a.png", 9, 9)
    fits = shutil.copy(ok, tmp_path / ("f" * 244 + ".png"))  # output "f...f.png" in -o DIR fits, its sidecar not
    over = shutil.copy(ok, tmp_path / ("w" * 248 + ".png"))  # beside: "w...w_denoise.png", 260 bytes
    into = _restore("-t", "denoise", "--sigma-y", "0.1", "-c", ckpt, *FAST, ok, fits, "-o", tmp_path / "out",
                    ok=True)
    assert into["ok"] == 2 and (tmp_path / "out" / Path(fits).name).exists(), into
    beside = _restore("-t", "denoise", "--sigma-y", "0.1", "-c", ckpt, *FAST, ok, over, ok=False)
    (failed,) = [r for r in beside["results"] if r["status"] != "ok"]
    assert failed["input"] == str(over) and "bytes long, over this file system's" in failed["error"], beside
    assert (tmp_path / "a_denoise.png").exists()
    absent = _restore("-t", "denoise", "--sigma-y", "0.1", "-c", ckpt, *FAST, ok, tmp_path / ("x" * 300 + ".png"),
                      "-o", tmp_path / "out2", ok=False)  # a name no file can have: that input fails alone
    assert absent["ok"] == 1 and any("too long" in r.get("error", "") for r in absent["results"]), absent


def test_a_pipe_or_device_named_as_an_input_is_said_to_be_one(tmp_path, ckpt):
    """/dev/null (and /dev/stdin, a named pipe) read "no such file or directory" or "a broken symbolic link"."""
    res = run("restore", "-t", "denoise", "/dev/null", "-c", ckpt, "-o", tmp_path / "x.png")
    assert res.exit_code != 0 and "/dev/null: not a regular file (a pipe, device or socket)" in res.stderr, res.output


def test_a_users_photo_named_like_an_output_is_restored_and_never_replaced(tmp_path, ckpt):
    """Two photos a.png and a_denoise.png: the second was left out as "an earlier run's output" and, with
    --overwrite, replaced by the first's restoration. Only files carrying ncvsd's label are left out so; another
    input is never an output, --overwrite or not."""
    import hashlib

    a, named = _png(tmp_path / "a.png", 9, 9), _png(tmp_path / "a_denoise.png", 9, 9)
    before = hashlib.sha256(Path(named).read_bytes()).hexdigest()
    both = _restore("-t", "denoise", "--sigma-y", "0.1", "-c", ckpt, *FAST, a, named, "--overwrite", ok=False)
    status = {r["input"]: r for r in both["results"]}
    assert status[str(named)]["status"] == "ok" and "another input of this run" in status[str(a)]["error"], both
    assert hashlib.sha256(Path(named).read_bytes()).hexdigest() == before
    for given in ([str(tmp_path)], [str(tmp_path / "*.png")]):  # a folder, a glob: the same
        res = _restore("-t", "denoise", "--sigma-y", "0.1", "-c", ckpt, *FAST, *given, "--overwrite", ok=False)
        assert any("another input of this run" in r.get("error", "") for r in res["results"]), res
        assert hashlib.sha256(Path(named).read_bytes()).hexdigest() == before
    for p in tmp_path.glob("*_denoise_denoise.png"):
        p.unlink()
    Path(named).unlink()
    _restore("-t", "denoise", "--sigma-y", "0.1", "-c", ckpt, *FAST, a)  # now an output, labelled: left out
    again = _restore("-t", "denoise", "--sigma-y", "0.1", "-c", ckpt, *FAST, a, named, "--overwrite")
    assert {r["input"]: r["status"] for r in again["results"]} == {str(a): "ok", str(named): "skipped"}, again


@pytest.mark.parametrize("suffix", [".webp", ".heic", ".bmp"])
def test_an_output_is_told_by_its_label_wherever_the_format_puts_it(tmp_path, ckpt, suffix, monkeypatch):
    """WebP and HEIC put the XMP after the pixels, past the first MiB of a large output: their earlier outputs were
    taken for a user's photos. A format without XMP (BMP) can only be told by its name."""
    from ncvsd_cli import images

    if suffix == ".heic" and images.heif_module() is None:
        pytest.skip("no HEIF writer")
    a = _png(tmp_path / "a.png", 9, 9)
    _restore("-t", "denoise", "--sigma-y", "0.1", "-c", ckpt, *FAST, a, "--format", suffix[1:])
    out = tmp_path / f"a_denoise{suffix}"
    monkeypatch.setattr(images, "LABEL_SEARCH_HEAD", 8)  # as if the label lay past the searched start
    monkeypatch.setattr(images, "LABEL_SEARCH_TAIL", 4096)
    assert images.made_by_ncvsd(out) and not images.made_by_ncvsd(a)


def test_a_large_box_filled_by_the_shipped_model_says_what_to_expect(tmp_path, ckpt):
    """A 128-px box came back as smooth mush with no word (a photographer took it for a failure): with the shipped
    model's default sampler a box of LARGE_BOX px or more is said to be filled smoothly; not for another model or
    method, nor for a small box."""
    from ncvsd_cli.cli.restore import LARGE_BOX

    src = _png(tmp_path / "a.png", 64, 64)
    base = ["-t", "inpaint-box", "--device", "cpu", src, "-o", tmp_path / "o", "--overwrite"]
    said = _restore(*base, "-p", f"box_size={LARGE_BOX}")
    assert any("filled smoothly from its edges" in n for n in said["results"][0]["notes"]), said
    for other in (["-p", f"box_size={LARGE_BOX - 8}"], ["-p", f"box_size={LARGE_BOX}", "-c", ckpt],
                  ["-p", f"box_size={LARGE_BOX}", "--method", "pnp-gd", "--nfe", "2"]):
        quiet = _restore(*base, *other)
        assert not any("filled smoothly" in n for n in quiet["results"][0]["notes"]), (other, quiet)
