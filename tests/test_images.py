"""images.py: the decoding policy (colour, alpha, palette, bit depth), errors, atomic writes, padding."""

import errno
import io
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ncvsd_cli import images
from ncvsd_cli.images import ImageError, from_unit, read_image, save_image, to_unit


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _png16(arr: np.ndarray, alpha: bool = False) -> bytes:
    import png

    h, w = arr.shape[:2]
    planes = 1 if arr.ndim == 2 else arr.shape[2]
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=planes in (1, 2), alpha=alpha, bitdepth=16).write(
        buf, arr.reshape(h, w * planes).tolist()
    )
    return buf.getvalue()


@pytest.fixture
def rgb8():
    return np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------- value ranges
def test_unit_conversions_are_inverse():
    x = torch.linspace(-1, 1, 11)
    assert torch.allclose(to_unit(x), (x + 1) / 2)
    assert to_unit(x).min() == 0 and to_unit(x).max() == 1
    assert torch.allclose(from_unit(to_unit(x)), x, atol=1e-6)


def test_rgb_round_trip_is_exact_after_quantisation(tmp_path, odd_image):
    path = tmp_path / "x.png"
    save_image(odd_image, path)
    back = read_image(path)
    assert (
        back.tensor.shape == odd_image.shape and back.mode == "RGB" and back.bit_depth == 8 and not back.grey
    )
    expected = from_unit(torch.round(to_unit(odd_image.clamp(-1, 1)) * 255) / 255)
    assert torch.allclose(back.tensor, expected, atol=1e-6)
    assert (back.tensor - odd_image).abs().max() <= 1 / 255 + 1e-6


def test_rgb8_values(rgb8):
    t = read_image(_png_bytes(rgb8)).tensor
    assert torch.allclose(
        t, from_unit(torch.from_numpy(rgb8).permute(2, 0, 1)[None].double() / 255).float(), atol=1e-6
    )


# ---------------------------------------------------------------------------------------------- colour policy
def test_grey_is_replicated_for_rgb_models_and_kept_for_grey_models(rgb8):
    g = rgb8[..., 0]
    d3 = read_image(_png_bytes(g), channels=3)
    assert d3.grey and d3.tensor.shape == (1, 3, 7, 5)
    assert torch.equal(d3.tensor[:, 0], d3.tensor[:, 1]) and torch.equal(d3.tensor[:, 0], d3.tensor[:, 2])
    d1 = read_image(_png_bytes(g), channels=1)
    assert d1.tensor.shape == (1, 1, 7, 5)
    assert torch.allclose(to_unit(d1.tensor[0, 0]), torch.from_numpy(g).float() / 255, atol=1e-6)


def test_colour_to_grey_uses_bt601_luma(rgb8):
    d = read_image(_png_bytes(rgb8), channels=1)
    luma = (rgb8.astype(np.float64) / 255) @ np.array([0.299, 0.587, 0.114])
    assert torch.allclose(to_unit(d.tensor[0, 0]).double(), torch.from_numpy(luma), atol=1e-6)
    assert any("greyscale" in n for n in d.notes)


def test_rgba_is_composited_on_white_and_reported(rgb8):
    alpha = np.full((7, 5, 1), 255, np.uint8)
    alpha[0, 0] = 0
    alpha[1, 1] = 128
    d = read_image(_png_bytes(np.concatenate([rgb8, alpha], axis=-1)))
    u = to_unit(d.tensor[0]).permute(1, 2, 0).double().numpy()
    assert np.allclose(u[0, 0], 1.0)  # fully transparent -> white
    assert np.allclose(u[2, 2], rgb8[2, 2] / 255, atol=1e-6)  # opaque -> unchanged
    a = 128 / 255
    assert np.allclose(u[1, 1], rgb8[1, 1] / 255 * a + (1 - a), atol=1e-6)
    assert d.mode == "RGBA" and any("alpha" in n for n in d.notes)


def test_opaque_alpha_is_dropped_silently(rgb8):
    rgba = np.concatenate([rgb8, np.full((7, 5, 1), 255, np.uint8)], axis=-1)
    d = read_image(_png_bytes(rgba))
    assert d.notes == [] and torch.allclose(d.tensor, read_image(_png_bytes(rgb8)).tensor)


def test_grey_alpha(rgb8):
    la = np.stack([rgb8[..., 0], np.zeros((7, 5), np.uint8)], axis=-1)
    d = read_image(_png_bytes(la))
    assert d.grey and torch.allclose(d.tensor, torch.ones_like(d.tensor))


def _rgba(h: int = 7, w: int = 5, planes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random colour (h, w, planes) and alpha (h, w, 1) with every kind of opacity: 0, 1 level, partial, opaque."""
    rng = np.random.default_rng(seed)
    alpha = rng.integers(0, 256, (h, w, 1), dtype=np.uint8)
    alpha.flat[:3] = (0, 1, 255)
    return rng.integers(0, 256, (h, w, planes), dtype=np.uint8), alpha


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "PNG16"])
@pytest.mark.parametrize("planes", [1, 3])
def test_alpha_is_kept_and_written_back_exactly(fmt, planes):
    """read_image keeps a source's alpha; encode_image with it un-composites the colour from white: a lossless
    format gives back the source's samples wherever they are visible (alpha > 0), 8-bit or 16-bit."""
    colour, alpha = _rgba(planes=planes)
    src = np.concatenate([colour, alpha], axis=-1)  # LA or RGBA
    d = read_image(_png_bytes(src), channels=planes)
    assert d.alpha.shape == (1, 1, 7, 5) and torch.equal(d.alpha[0, 0], torch.from_numpy(alpha[..., 0] / 255.0).float())
    depth = 16 if fmt == "PNG16" else 8
    out = images.encode_image(d.tensor, fmt.removesuffix("16"), bit_depth=depth, alpha=d.alpha)
    back = read_image(out, channels=planes)
    assert back.mode == ("LA" if planes == 1 else "RGBA") + (";16" if depth == 16 else "")
    assert torch.allclose(back.alpha, d.alpha, atol=1e-7)
    visible = torch.from_numpy(alpha[..., 0] > 0)
    assert torch.allclose(back.tensor[..., visible], d.tensor[..., visible], atol=1e-6)
    with Image.open(io.BytesIO(out)) as im:
        if depth == 8:
            arr = np.asarray(im)
            assert np.array_equal(arr[..., :-1][alpha[..., 0] > 0], src[..., :-1][alpha[..., 0] > 0])


def test_uncomposite_clips_what_no_colour_explains_and_keeps_the_invisible():
    """c = (x - 1 + a) / a: a composite darker than 1 - a (no colour explains it) gives black; where a is 0 the
    colour written is the composite itself."""
    x = from_unit(torch.tensor([0.2, 0.8, 0.6, 0.2]).view(1, 1, 1, 4))
    a = torch.tensor([0.5, 0.5, 0.0, 1.0]).view(1, 1, 1, 4)
    arr = images.uncomposite(x, a)[0, :, 0].astype(int)
    assert list(arr) == [0, round(0.6 * 255), round(0.6 * 255), 51]
    assert list(images.uncomposite(x, a)[0, :, 1]) == [128, 128, 0, 255]
    with pytest.raises(ValueError, match="alpha"):
        images.uncomposite(x, torch.ones(1, 1, 2, 4))
    with pytest.raises(ValueError, match="alpha"):
        images.uncomposite(x, torch.full((1, 1, 1, 4), float("nan")))


def test_uncomposite_of_any_opacity_composites_back_within_half_a_level():
    """Opacities between 8-bit levels (an sr alpha, upscaled): a is rounded before c is computed, so the written
    pair composites back to x within c's own rounding (half a level), 8-bit and 16-bit."""
    g = torch.Generator().manual_seed(0)
    x = from_unit(0.5 + 0.5 * torch.rand(1, 3, 16, 16, generator=g))  # light: most of it explained by a colour
    alpha = torch.rand(1, 1, 16, 16, generator=g).double()
    for levels in (255, 65535):
        arr = images.uncomposite(x, alpha, levels).astype(np.float64) / levels
        c, a = arr[..., :3], arr[..., 3:]
        explained = (to_unit(x[0]).permute(1, 2, 0).double().numpy() >= 1 - a).all(-1)  # else c clips at 0
        error = np.abs(c * a + 1 - a - to_unit(x[0]).permute(1, 2, 0).double().numpy())[explained] * levels
        assert explained.sum() > 100 and error.max() <= 0.5 + 1e-3


def test_a_16_bit_alpha_keeps_its_16_bits():
    rgba = np.full((3, 4, 4), 30000, np.uint16)
    rgba[..., 3] = [[0, 1000, 1001, 65535]] * 3  # levels 8 bits cannot tell apart
    d = read_image(_png16(rgba, alpha=True))
    assert torch.allclose(d.alpha[0, 0, 0], torch.tensor([0, 1000, 1001, 65535]) / 65535.0)
    back = np.asarray(images.uncomposite(d.tensor, d.alpha, 65535))
    assert np.array_equal(back[..., 3], rgba[..., 3]) and np.array_equal(back[0, 1:, :3], rgba[0, 1:, :3])


def test_colour_key_and_associated_alpha_are_read_as_transparency(tmp_path):
    """A PNG's colour key (tRNS of an RGB or grey image) is transparency; a TIFF's associated (premultiplied) alpha
    is read as straight colour; the header check of transparency agrees with the decoder for both, for palette PNG
    and GIF, and for a float RGBA TIFF Pillow cannot open."""
    import tifffile

    rgb = np.full((4, 5, 3), 200, np.uint8)
    rgb[0, 0] = (0, 255, 0)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", transparency=(0, 255, 0))
    key = read_image(buf.getvalue())
    assert key.alpha is not None and float(key.alpha[0, 0, 0, 0]) == 0 and float(key.alpha.min(-1)[0][0, 0, 1]) == 1
    assert images.may_be_transparent(buf.getvalue()) and not images.may_be_transparent(_png_bytes(rgb))
    import png

    for bits, grey, key_value in ((8, True, 7), (1, True, 0), (16, True, 1000), (16, False, (1000, 2, 3))):
        top = 2**bits - 1
        values = np.full((3, 4) if grey else (3, 4, 3), top, np.int64)
        values[0, 0] = key_value
        buf = io.BytesIO()
        png.Writer(4, 3, greyscale=grey, bitdepth=bits, transparent=key_value).write(buf, values.reshape(3, -1).tolist())
        keyed = read_image(buf.getvalue())  # 1-bit through Pillow's mode "1", 16-bit through pypng
        assert images.may_be_transparent(buf.getvalue()) and keyed.alpha is not None, (bits, grey)
        assert float(keyed.alpha[0, 0, 0, 0]) == 0 and float(keyed.alpha[0, 0, 2, 3]) == 1
    colour, alpha = np.full((4, 5, 3), 0.8), np.full((4, 5, 1), 0.5)
    tifffile.imwrite(tmp_path / "assoc.tif", (np.concatenate([colour * alpha, alpha], -1) * 255).astype(np.uint8),
                     photometric="rgb", extrasamples=[1])
    d = read_image(tmp_path / "assoc.tif")
    assert np.allclose(to_unit(images.uncomposite(d.tensor, d.alpha)[..., :3] / 127.5 - 1), 0.8, atol=2 / 255)
    tifffile.imwrite(tmp_path / "float.tif", np.concatenate([colour, alpha], -1).astype(np.float32),
                     photometric="rgb", extrasamples=[2])
    assert images.may_be_transparent(tmp_path / "float.tif") and read_image(tmp_path / "float.tif").alpha is not None
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4)
    for fmt in ("PNG", "GIF"):
        pal.save(tmp_path / f"p.{fmt.lower()}", fmt, transparency=0)
        assert images.may_be_transparent(tmp_path / f"p.{fmt.lower()}")


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "BMP"])
def test_alpha_in_formats_without_it_or_lossy(fmt):
    """JPEG and BMP get the composite on white (the same bytes as without alpha); WebP keeps an exact alpha with a
    lossy colour, and grey with alpha as RGBA (WebP has no LA)."""
    colour, alpha = _rgba(16, 16)
    d = read_image(_png_bytes(np.concatenate([colour, alpha], axis=-1)))
    out = images.encode_image(d.tensor, fmt, alpha=d.alpha)
    if fmt != "WEBP":
        assert out == images.encode_image(d.tensor, fmt)
        return
    with Image.open(io.BytesIO(out)) as im:
        assert im.mode == "RGBA" and np.array_equal(np.asarray(im)[..., 3], alpha[..., 0])
    grey = read_image(_png_bytes(np.concatenate([colour[..., :1], alpha], axis=-1)), channels=1)
    with Image.open(io.BytesIO(images.encode_image(grey.tensor, "WEBP", alpha=grey.alpha))) as im:
        assert im.mode == "RGBA"


@pytest.mark.parametrize("channels", [3, 1])
def test_a_gif_keeps_transparency_as_its_clear_colour(channels):
    """A transparent input written as GIF came back opaque (composited on white), though GIF marks one colour
    clear: pixels under half opaque are written clear, the others in their own colour (not blended with white)."""
    colour, alpha = _rgba(16, 16)
    d = read_image(_png_bytes(np.concatenate([colour[..., :channels], alpha], axis=-1)), channels=channels)
    with Image.open(io.BytesIO(images.encode_image(d.tensor, "GIF", alpha=d.alpha))) as im:
        rgba = np.asarray(im.convert("RGBA")).astype(int)
    assert np.array_equal(rgba[..., 3] > 0, alpha[..., 0] >= 128)
    opaque = alpha[..., 0] == 255
    assert np.abs(rgba[..., :channels][opaque] - colour[..., :channels][opaque]).max() <= 8  # (a 255-colour palette)


def test_palette_becomes_rgb_and_transparent_palette_white():
    im = Image.new("P", (3, 2))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.putdata([0, 1, 2, 2, 1, 0])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    d = read_image(buf.getvalue())
    assert d.mode == "P" and d.tensor.shape == (1, 3, 2, 3)
    assert torch.allclose(to_unit(d.tensor[0, :, 0, 0]), torch.tensor([1.0, 0, 0]))
    assert torch.allclose(to_unit(d.tensor[0, :, 0, 2]), torch.tensor([0.0, 0, 1]))
    buf = io.BytesIO()
    im.save(buf, format="PNG", transparency=1)
    t = read_image(buf.getvalue())
    assert torch.allclose(to_unit(t.tensor[0, :, 0, 1]), torch.ones(3))  # index 1 transparent -> white
    assert any("alpha" in n for n in t.notes)


@pytest.mark.parametrize("transparent", [False, True])
def test_a_grey_palette_reads_grey(transparent):
    """A grey picture stored as a palette (PNG optimisers do that without loss) reads as grey, exactly, so that it
    is restored and written as grey; a palette with one colour in use among greys, or an unused colour, is
    colour / grey as used."""
    values = np.array([[0, 17, 128], [255, 64, 3]], np.uint8)
    im = Image.fromarray(values).convert("P")
    palette = im.getpalette()
    palette[3 * 200: 3 * 201] = [255, 0, 0]  # an unused colour entry
    im.putpalette(palette)
    buf = io.BytesIO()
    im.save(buf, format="PNG", **({"transparency": int(np.asarray(im)[0, 1])} if transparent else {}))
    d = read_image(buf.getvalue())
    assert d.grey and d.mode == "P" and torch.equal(d.tensor[0, 0], d.tensor[0, 2])
    opaque = np.ones(values.shape, bool)
    opaque[0, 1] = not transparent
    assert torch.allclose(to_unit(d.tensor[0, 0])[torch.from_numpy(opaque)] * 255,
                          torch.from_numpy(values[opaque]).float(), atol=1e-3)
    assert (d.alpha is not None) == transparent
    im.putdata([int(i) for i in np.asarray(im).ravel()[:-1]] + [200])  # the red entry used by one pixel
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    assert not read_image(buf.getvalue()).grey


def test_one_bit_image():
    im = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    d = read_image(buf.getvalue(), channels=1)
    assert d.bit_depth == 1 and torch.equal(d.tensor[0, 0], torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))


# -------------------------------------------------------------------------------------------------- 16 bits
VALUES16 = np.array([0, 1, 257, 32768, 65534, 65535, 1000, 40000, 12345, 54321, 2, 3], np.uint16)


def test_16bit_grey_png_keeps_16_bits():
    g = VALUES16.reshape(3, 4)
    d = read_image(_png16(g), channels=1)
    assert d.bit_depth == 16 and d.grey
    assert torch.allclose(to_unit(d.tensor[0, 0]).double(), torch.from_numpy(g / 65535.0), atol=1e-7)
    # neighbouring 16-bit values stay distinct (8-bit truncation would merge 0 and 1)
    assert d.tensor[0, 0, 0, 0] < d.tensor[0, 0, 0, 1]


def test_16bit_rgb_and_rgba_png_keep_16_bits():
    rgb = np.random.default_rng(1).integers(0, 65536, (3, 4, 3)).astype(np.uint16)
    d = read_image(_png16(rgb))
    assert d.mode == "RGB;16" and d.bit_depth == 16
    assert torch.allclose(
        to_unit(d.tensor[0]).permute(1, 2, 0).double(), torch.from_numpy(rgb / 65535.0), atol=1e-7
    )
    rgba = np.concatenate([rgb, np.full((3, 4, 1), 65535, np.uint16)], axis=-1)
    d2 = read_image(_png16(rgba, alpha=True))
    assert d2.notes == [] and torch.allclose(d2.tensor, d.tensor)


def test_16bit_tiff():
    import tifffile

    rgb = np.random.default_rng(2).integers(0, 65536, (3, 4, 3)).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, rgb, photometric="rgb")
    d = read_image(buf.getvalue())
    assert d.bit_depth == 16
    assert torch.allclose(
        to_unit(d.tensor[0]).permute(1, 2, 0).double(), torch.from_numpy(rgb / 65535.0), atol=1e-7
    )


def _tiff(arr: np.ndarray, **options) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **options)
    return buf.getvalue()


_PHOTO = np.random.default_rng(5).integers(0, 256, (9, 7, 3)).astype(np.uint8)  # odd-sized colour noise
_GREY = _PHOTO[..., 1].copy()


@pytest.mark.parametrize("kind", ["cmyk", "miniswhite", "palette", "ycbcr", "extra-channel", "extra-then-alpha"])
def test_tiffs_other_than_plain_grey_or_rgb_read_their_colours(kind):
    """tifffile's raw samples were taken as RGB(A): a CMYK TIFF's K became alpha (a transparent output), a
    MINISWHITE one a negative, palette indices grey levels, an unspecified extra channel alpha."""
    pil = Image.fromarray(_PHOTO)
    if kind in ("cmyk", "palette", "ycbcr"):
        buf = io.BytesIO()
        {"cmyk": pil.convert("CMYK"), "palette": pil.quantize(16), "ycbcr": pil.convert("YCbCr")}[kind].save(
            buf, "TIFF")
        data, truth = buf.getvalue(), np.asarray(Image.open(buf).convert("RGB"))
    elif kind == "miniswhite":
        data, truth = _tiff(255 - _GREY, photometric="miniswhite"), np.repeat(_GREY[..., None], 3, -1)
    else:  # a zero plane marked "unspecified" (a mask, depth), then perhaps a half-transparent alpha
        planes, extras = [_PHOTO, 0 * _GREY], ["unspecified"]
        if kind == "extra-then-alpha":
            planes, extras = [*planes, np.full_like(_GREY, 255)], [*extras, "unassalpha"]
        data, truth = _tiff(np.dstack(planes), photometric="rgb", extrasamples=extras), _PHOTO
    d = read_image(data)
    got = to_unit(d.tensor[0]).permute(1, 2, 0).numpy() * 255
    assert d.tensor.shape == (1, 3, 9, 7) and np.abs(got - truth).max() < (3 if kind == "ycbcr" else 0.51), d.notes
    assert ("not alpha left out" in " ".join(d.notes)) == kind.startswith("extra")


def test_tiff_layouts_and_models_a_review_found():
    """A planar RGBA TIFF 4 or 5 px wide (its shape guessed as contiguous: misread, or refused), a MINISWHITE float
    one on a 0-255 scale (inverted before scaling: black), a 16-bit CMYK one read at 8 bits unsaid, a 16-bit Lab
    one Pillow cannot read ("not an image")."""
    for width in (4, 5):
        planes = np.random.default_rng(width).integers(0, 65536, (4, 9, width)).astype(np.uint16)
        planes[3] = 65535
        d = read_image(_tiff(planes, photometric="rgb", planarconfig="separate", extrasamples=["unassalpha"]))
        assert d.tensor.shape == (1, 3, 9, width) and d.bit_depth == 16 and images.image_size(
            _tiff(planes, photometric="rgb", planarconfig="separate", extrasamples=["unassalpha"])) == (9, width)
        got = to_unit(d.tensor[0]).permute(1, 2, 0).double().numpy()
        assert np.abs(got - np.moveaxis(planes[:3], 0, -1) / 65535).max() < 1e-6
    d = read_image(_tiff(np.full((9, 7), 200.0, np.float32), photometric="miniswhite"))
    assert abs(float(to_unit(d.tensor).mean()) - (1 - 200 / 255)) < 1e-6
    d = read_image(_tiff(np.full((9, 7, 4), 20000, np.uint16), photometric="separated"))
    assert "read at 8 bits of its 16" in d.notes
    colour = np.random.default_rng(1).integers(0, 256, (9, 7, 3)).astype(np.uint8)  # numpy's colour array written
    d = read_image(_tiff(colour, photometric="minisblack", planarconfig="contig"))  # "grey" + 2 unspecified: RGB
    assert np.array_equal(images.to_uint8(d.tensor), colour) and d.notes == []
    with pytest.raises(ImageError, match=r"its colour model \(CIELAB, 16 bits\) is not read here: convert it to RGB"):
        read_image(_tiff(np.zeros((9, 7, 3), np.uint16), photometric="cielab"))


# ---------------------------------------------------------------------------------------------- sources
def test_sources_path_bytes_stream_stdin(tmp_path, rgb8, monkeypatch):
    data = _png_bytes(rgb8)
    (tmp_path / "a.png").write_bytes(data)
    ref = read_image(data).tensor
    assert torch.equal(images.load_image(tmp_path / "a.png"), ref)
    assert torch.equal(images.load_image(str(tmp_path / "a.png")), ref)
    assert torch.equal(images.load_image(io.BytesIO(data)), ref)

    class FakeStdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    assert torch.equal(images.load_image("-"), ref)


@pytest.mark.parametrize("case", ["text", "truncated", "empty", "missing", "directory", "truncated16"])
def test_bad_inputs_raise_one_line_image_error(tmp_path, rgb8, case):
    good = _png_bytes(np.tile(rgb8, (4, 4, 1)))
    path = tmp_path / "bad.png"
    if case == "text":
        path.write_text("hello, not an image")
    elif case == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif case == "truncated16":
        d16 = _png16(np.zeros((8, 8, 3), np.uint16))
        path.write_bytes(d16[:40])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "directory":
        path.mkdir()
    with pytest.raises(ImageError) as info:
        read_image(path)
    msg = str(info.value)
    assert "\n" not in msg and "bad.png" in msg


def test_max_pixels_is_checked_before_decoding(rgb8):
    data = _png_bytes(rgb8)
    read_image(data, max_pixels=35)
    with pytest.raises(ImageError, match="max-pixels"):
        read_image(data, max_pixels=34)
    assert images.image_size(data) == (7, 5)


# ------------------------------------------------------------------------------------------------ writing
def test_save_grey_jpeg_and_default_png(tmp_path, odd_image):
    save_image(odd_image[:, :1], tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode == "L"
    save_image(odd_image, tmp_path / "c.jpg")
    assert Image.open(tmp_path / "c.jpg").format == "JPEG"
    save_image(odd_image, tmp_path / "noext")
    assert Image.open(tmp_path / "noext").format == "PNG"
    with pytest.raises(ValueError, match="suffix"):
        save_image(odd_image, tmp_path / "x.notaformat")


def test_save_refuses_nan_and_leaves_nothing(tmp_path, odd_image):
    bad = odd_image.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        save_image(bad, tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_interrupted_write_keeps_old_file_and_leaves_no_temp(tmp_path, odd_image, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(images.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_image(odd_image, target)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.png"]


def test_written_file_has_normal_permissions(tmp_path, odd_image):
    save_image(odd_image, tmp_path / "p.png")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o666 & ~mask


def test_save_to_stdout(capsysbinary, odd_image):
    save_image(odd_image, "-")
    out = capsysbinary.readouterr().out
    assert out.startswith(b"\x89PNG") and read_image(out).tensor.shape == odd_image.shape


def test_match_channels_and_grid(odd_image):
    g = images.match_channels(odd_image, 1)
    assert g.shape == (1, 1, 13, 11)
    assert images.match_channels(g, 3).shape == (1, 3, 13, 11)
    grid = images.make_grid(torch.zeros(5, 3, 4, 4), padding=1)
    assert grid.shape == (1, 3, 2 * 5 + 1, 3 * 5 + 1)
    assert grid[0, :, 0, 0].tolist() == [1, 1, 1] and grid[0, :, 1, 1].tolist() == [0, 0, 0]


#: libjpeg's base luminance table at (0, 0), (0, 1), (1, 0), (1, 1) (ITU-T T.81 Annex K, row-major).
_BASE_LUMA_LOW = (16, 11, 12, 12)


@pytest.mark.parametrize("quality", [50, 60, 80, 95])
def test_jpeg_quantisation_sigma_follows_the_files_luma_table(quality):
    """rms of the 4 lowest luma steps / sqrt(12) / 127.5, the steps being libjpeg's base table scaled for the
    quality (scale 200 - 2q percent for q >= 50); grey JPEGs too; other formats and junk: None."""
    scale = 200 - 2 * quality
    steps = np.array([min(max((b * scale + 50) // 100, 1), 255) for b in _BASE_LUMA_LOW], dtype=float)
    expected = np.sqrt(np.mean(steps**2) / 12) / 127.5
    arr = (np.random.default_rng(0).random((17, 23, 3)) * 255).astype(np.uint8)
    for mode in ("RGB", "L"):
        buf = io.BytesIO()
        Image.fromarray(arr).convert(mode).save(buf, "JPEG", quality=quality)
        assert images.jpeg_quantization_sigma(buf.getvalue()) == pytest.approx(expected, rel=1e-9)
        assert read_image(buf.getvalue()).jpeg_sigma == pytest.approx(expected, rel=1e-9)
    assert images.jpeg_quantization_sigma(_png_bytes(arr)) is None and read_image(_png_bytes(arr)).jpeg_sigma is None
    assert images.jpeg_quantization_sigma(b"\xff\xd8\xff" + b"\x00" * 20) is None  # a truncated header


@pytest.mark.parametrize("variant, lossy", [("lossy", True), ("lossless", False), ("lossy-exif", True),
                                            ("animated-lossy", True), ("animated-lossless", False), ("png", False)])
def test_a_lossy_webp_gets_a_compression_noise_scale(tmp_path, variant, lossy):
    """Lossy WebP (VP8, also under VP8X and in an animation's first frame) is told apart from lossless (VP8L) and
    other formats by its RIFF chunks, and gets WEBP_LOSSY_SIGMA as its compression scale (the noise floor's)."""
    arr = (np.random.default_rng(2).random((16, 24, 3)) * 255).astype(np.uint8)
    im, path = Image.fromarray(arr), tmp_path / ("x.png" if variant == "png" else "x.webp")
    kw = {"lossless": "lossless" in variant}
    if variant == "lossy-exif":
        kw["exif"] = Image.Exif()
        kw["exif"][0x0112] = 1
    if variant.startswith("animated"):
        kw.update(save_all=True, append_images=[im.rotate(180)])
    im.save(path, **({} if variant == "png" else kw))
    assert images.is_lossy_webp(path.read_bytes()) is lossy
    assert read_image(path).jpeg_sigma == (images.WEBP_LOSSY_SIGMA if lossy else None)
    assert not images.is_lossy_webp(b"RIFF\x10\x00\x00\x00WEBPVP8 ")  # a truncated chunk header


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_a_palette_image_gets_a_compression_noise_scale(tmp_path, fmt):
    """A photo quantised to a palette (GIF, palette PNG, also with transparency) gets PALETTE_SIGMA; the same pixels
    as RGB, a grey image or a few-colour drawing stored as a palette (exact) get none."""
    arr = (np.random.default_rng(3).random((16, 24, 3)) * 255).astype(np.uint8)
    pal = Image.fromarray(arr).convert("P", palette=Image.ADAPTIVE, colors=128)
    Image.fromarray(arr).convert("L").convert("P").save(tmp_path / f"grey.{fmt.lower()}", fmt)
    pal.quantize(8).save(tmp_path / f"few.{fmt.lower()}", fmt)
    for name in (f"grey.{fmt.lower()}", f"few.{fmt.lower()}"):
        assert read_image(tmp_path / name).jpeg_sigma is None, name
    pal.save(tmp_path / f"p.{fmt.lower()}", fmt)
    pal.save(tmp_path / f"t.{fmt.lower()}", fmt, transparency=0)
    Image.fromarray(arr).save(tmp_path / "rgb.png")
    for name in (f"p.{fmt.lower()}", f"t.{fmt.lower()}"):
        assert read_image(tmp_path / name).jpeg_sigma == images.PALETTE_SIGMA, name
    assert read_image(tmp_path / "rgb.png").jpeg_sigma is None


@pytest.mark.parametrize("variant", ["progressive", "CMYK", "MPO", "exif-rotated"])
def test_jpeg_quantisation_sigma_of_other_jpeg_kinds(tmp_path, variant):
    """Progressive, CMYK, multi-picture (MPO, from cameras) and EXIF-rotated JPEGs read the same luma table."""
    arr = (np.random.default_rng(1).random((16, 24, 3)) * 255).astype(np.uint8)
    im, path = Image.fromarray(arr), tmp_path / "x.jpg"
    if variant == "progressive":
        im.save(path, quality=80, progressive=True)
    elif variant == "CMYK":
        im.convert("CMYK").save(path, quality=80)
    elif variant == "MPO":
        im.save(path, format="MPO", quality=80, save_all=True, append_images=[im.rotate(90)])
    else:
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees on display
        im.save(path, quality=80, exif=exif)
    plain = io.BytesIO()
    im.save(plain, "JPEG", quality=80)
    decoded = read_image(path)
    assert decoded.jpeg_sigma == pytest.approx(images.jpeg_quantization_sigma(plain.getvalue()))
    assert decoded.tensor.shape[-2:] == ((24, 16) if variant == "exif-rotated" else (16, 24))


@pytest.mark.parametrize("variant, subsampling", [("baseline", 2), ("progressive", 2), ("444", 0), ("422", 1),
                                                 ("grey", 0), ("CMYK", None), ("png", None)])
def test_jpeg_coding_reads_the_files_tables_and_subsampling(variant, subsampling):
    """`jpeg_coding` (and `read_image(...).jpeg_coding`): the file's quantisation tables (the luma's first; one for a
    grey JPEG), its chroma subsampling and colour, which re-saving reproduces; CMYK JPEGs and other formats: None."""
    arr = (np.random.default_rng(4).random((16, 24, 3)) * 255).astype(np.uint8)
    im, buf = Image.fromarray(arr), io.BytesIO()
    kw = {"quality": 70, "progressive": variant == "progressive"}
    kw.update({"subsampling": {"444": 0, "422": 1}[variant]} if variant in ("444", "422") else {})
    if variant == "png":
        im.save(buf, "PNG")
    else:
        (im.convert("L") if variant == "grey" else im.convert("CMYK") if variant == "CMYK" else im).save(buf, "JPEG",
                                                                                                            **kw)
    coding = images.jpeg_coding(buf.getvalue())
    assert read_image(buf.getvalue()).jpeg_coding == coding
    if subsampling is None:
        assert coding is None
        return
    with Image.open(io.BytesIO(buf.getvalue())) as src:
        assert coding.tables == tuple(tuple(t) for _, t in sorted(src.quantization.items()))
    assert (coding.subsampling, coding.colour, len(coding.tables)) == (subsampling, variant != "grey",
                                                                     1 if variant == "grey" else 2)
    again = io.BytesIO()
    Image.fromarray(arr).convert("RGB" if coding.colour else "L").save(
        again, "JPEG", qtables=[list(t) for t in coding.tables], subsampling=coding.subsampling)
    assert images.jpeg_coding(again.getvalue()) == coding
    assert images.jpeg_coding(b"\xff\xd8\xff" + b"\x00" * 20) is None  # a truncated header
    shared = io.BytesIO()  # a colour JPEG whose three components share one table
    Image.fromarray(arr).save(shared, "JPEG", qtables=[[7] * 64])
    assert images.jpeg_coding(shared.getvalue()).tables == ((7,) * 64, (7,) * 64)


def test_save_image_names_a_numpy_array(tmp_path):
    """A numpy array raised "AttributeError: 'numpy.ndarray' object has no attribute 'detach'"."""
    with pytest.raises(ValueError, match="expected a torch tensor.*got ndarray"):
        images.save_image(np.zeros((8, 8, 3)), tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("suffix", [".tif", ".tiff"])
@pytest.mark.parametrize("top, scale", [(1.0, 1.0), (1.3, 1.0), (2.0, 1.0), (3.8, 1.0), (255.0, 255.0),
                                        (65535.0, 65535.0)])
def test_a_float_image_on_a_0_255_scale_is_read_on_it_not_clipped_white(tmp_path, suffix, top, scale):
    """Float TIFFs (Pillow's mode F, tifffile's float RGB) hold [0, 1] or a 0-255 / 0-65535 scale: the latter was
    clipped to white; now divided, with a note. Values beyond, or NaN, are refused. An HDR or linear export of a
    0-1 image (99.9th percentile 1.95 at x2) was read as 0-255 and came out black: up to HDR_TOP it is 0-1, its
    highlights clipped with a note."""
    import tifffile

    ramp = np.linspace(0, top, 7 * 9, dtype=np.float32).reshape(7, 9)
    for i, arr in enumerate((ramp, np.stack([ramp] * 3, -1))):
        path = tmp_path / f"f{i}{suffix}"
        tifffile.imwrite(path, arr, photometric="rgb" if arr.ndim == 3 else "minisblack")
        read = images.read_image(path, channels=3)
        got = images.to_unit(read.tensor)[0, 0].numpy()
        np.testing.assert_allclose(got, np.clip(ramp / scale, 0, 1), atol=1e-6)
        assert any("0-255 scale" in n or "0-65535 scale" in n for n in read.notes) == (scale > 1)
        assert any("above 1" in n and "clipped to white" in n for n in read.notes) == (top > 1 and scale == 1)
    tifffile.imwrite(tmp_path / "big.tif", ramp * 1e6)
    with pytest.raises(images.ImageError, match="not on a 0-1, 0-255 or 0-65535 scale"):
        images.read_image(tmp_path / "big.tif")
    hot = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    hot[0, 0] = 2.0  # one HDR highlight in a [0, 1] image: clipped, the scale kept
    tifffile.imwrite(tmp_path / "hot.tif", hot)
    read = images.read_image(tmp_path / "hot.tif", channels=1)
    assert abs(float(images.to_unit(read.tensor).mean()) - 0.5) < 0.01 and not read.notes


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_tiffs_and_16_bit_pngs_as_pillow_turns_other_files(orientation):
    """TIFFs (tifffile) and 16-bit PNGs (pypng) were decoded unturned while their planned size was turned; every
    path now shows the picture as Pillow's exif_transpose does, and `image_size` agrees."""
    import io

    from PIL import Image

    rng = np.random.default_rng(orientation)
    grey8 = (rng.random((5, 7)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation

    def encoded(im: Image.Image, fmt: str) -> bytes:
        buf = io.BytesIO()
        im.save(buf, format=fmt, exif=exif.tobytes())
        return buf.getvalue()

    reference = images.read_image(encoded(Image.fromarray(grey8), "PNG"), channels=1).tensor  # Pillow's path
    for data in (encoded(Image.fromarray(grey8), "TIFF"),
                 encoded(Image.fromarray(grey8.astype(np.uint16) * 257), "PNG")):  # I;16: pypng's path
        decoded = images.read_image(data, channels=1)
        assert decoded.tensor.shape == reference.shape and images.image_size(data) == tuple(reference.shape[-2:])
        torch.testing.assert_close(decoded.tensor, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("L", 3), ("L", 1), ("RGB", 1)])
def test_8_bit_pictures_decode_to_the_float64_paths_values(mode, channels):
    """Opaque 8-bit pictures are scaled in float32 (a 108-MP JPEG read in 23 s, most of it float64 copies): every
    value equals the float64 path's, float32(2 * float32(v / 255) - 1), for all 256 levels."""
    levels = np.arange(256, dtype=np.uint8)
    arr = np.stack([np.roll(levels, k) for k in range(3)], -1)[None].repeat(3, 0)  # (3, 256, 3)
    im = Image.fromarray(arr if mode == "RGB" else arr[..., 0], mode)
    unit = np.asarray(im.convert("RGB")).astype(np.float64) / 255.0
    if channels == 1:
        unit = unit @ np.asarray(images.LUMA_WEIGHTS)[:, None] if mode == "RGB" else unit[..., :1]
    expected = from_unit(torch.from_numpy(np.ascontiguousarray(unit.transpose(2, 0, 1))).float()[None])
    got = read_image(_png_bytes(np.asarray(im)), channels=channels).tensor
    assert got.dtype == torch.float32 and got.is_contiguous() and torch.equal(got, expected)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "PNG", "PNG16"])
def test_max_pixels_names_the_size_as_shown(fmt):
    """A photo stored 7x5 and turned by its EXIF orientation (6) is 5x7 on screen: the --max-pixels refusal says
    5x7, as restore's messages do (degrade said the stored 7x5)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    pixels = np.zeros((5, 7), np.uint16) if fmt == "PNG16" else np.zeros((5, 7, 3), np.uint8)  # (I;16: pypng's path)
    Image.fromarray(pixels).save(buf, format=fmt[:4].rstrip("1"), exif=exif.tobytes())
    with pytest.raises(ImageError, match=r": 5x7 = 35 pixels exceeds --max-pixels 20"):
        read_image(buf.getvalue(), max_pixels=20)


def test_a_cmyk_colour_profile_is_not_copied_to_an_rgb_output():
    """A CMYK JPEG is converted to RGB without its profile; the profile (colour space "CMYK" in its header) is
    dropped with a note instead of being attached to the RGB output, where viewers misread it. RGB ones are kept."""
    import io

    from PIL import Image, ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cmyk = bytearray(srgb)
    cmyk[16:20] = b"CMYK"
    for profile, kept in ((srgb, True), (bytes(cmyk), False)):
        buf = io.BytesIO()
        Image.new("CMYK", (9, 7), (10, 20, 30, 0)).save(buf, format="JPEG", icc_profile=profile)
        read = images.read_image(buf.getvalue())
        assert (read.icc_profile == profile) == kept and (read.icc_profile is None) != kept
        assert any("CMYK colour profile is not kept" in n for n in read.notes) != kept, read.notes


@pytest.mark.parametrize(("fmt", "alpha", "kept"), [
    ("PNG", False, True), ("PNG", True, True), ("TIFF", False, True), ("WEBP", False, False),
    ("WEBP", True, False), ("HEIF", False, True), ("HEIF", True, False)])
def test_a_grey_profile_goes_only_into_grey_files(fmt, alpha, kept):
    """A grey image's grey ("GRAY") ICC profile is written where the file stays grey, and left out where the
    format stores the grey as RGB (WebP always; HEIC with alpha: no grey-alpha layout), which it would mislabel."""
    if fmt == "HEIF":
        pytest.importorskip("pillow_heif")
    grey = bytearray(b"\x00\x00\x02\x0cfake profile " + bytes(range(100)))
    grey[16:20], grey[36:40] = b"GRAY", b"acsp"
    x = torch.linspace(-1, 1, 35).reshape(1, 1, 5, 7)
    a = torch.full((1, 1, 5, 7), 0.5) if alpha else None
    written = images.encode_image(x, fmt, icc_profile=bytes(grey), alpha=a)
    with Image.open(io.BytesIO(written)) as im:
        assert (im.info.get("icc_profile") == bytes(grey)) == kept, (im.mode, im.info.keys())


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "HEIF"])
@pytest.mark.parametrize(("channels", "alpha"), [(3, False), (3, True), (1, False), (1, True)])
def test_deep_outputs_keep_their_bits_alpha_and_profile(fmt, channels, alpha):
    """bit_depth=16 writes PNG and TIFF with 16 bits, HEIC with 10 (DEEP_BITS): a smooth ramp comes back within
    half a step of those bits (HEIC: within its coding), grey stays grey (with alpha, TIFF and HEIC: RGBA), the
    alpha and the ICC profile are kept; Pillow opens each file."""
    if fmt == "HEIF":
        pytest.importorskip("pillow_heif")
    ramp = torch.linspace(-1, 1, 35 * 3 if channels == 3 else 35).reshape(1, channels, 5, 7)
    a = torch.linspace(0.2, 1, 35).reshape(1, 1, 5, 7) if alpha else None
    ramp = ramp if a is None else images.from_unit(to_unit(ramp) * a + 1 - a)  # composited on white, as read
    icc = b"\x00\x00\x02\x0cfake profile " + bytes(range(100))
    data = images.encode_image(ramp, fmt, bit_depth=16, icc_profile=icc, alpha=a)
    d = read_image(data)
    bits = images.DEEP_BITS[fmt]
    assert d.bit_depth == bits and d.icc_profile == icc and d.grey == (channels == 1 and not (alpha and fmt != "PNG"))
    images.open_plugins()
    with Image.open(io.BytesIO(data)) as im:  # other software opens it too (Pillow, at its own depth)
        assert im.size == (7, 5) and im.info.get("icc_profile") == icc
    tol = 0.5 / (2**bits - 1) + (3 / 1023 if fmt == "HEIF" else 1e-6)
    got = d.tensor[:, :channels] if channels == 3 else d.tensor[:, :1]
    if alpha:
        assert d.alpha is not None and (d.alpha - a).abs().max() <= tol
    assert (to_unit(got) - to_unit(ramp)).abs().max() <= tol + (2 / 1023 if alpha and fmt == "HEIF" else 0)


def _camera_exif() -> bytes:
    """A phone's EXIF: make, model, orientation 6, software, a maker note, sizes, capture date and a GPS position."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112], exif[0x0131] = "Apple", "iPhone 13", 6, "17.1"
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0xA002], sub[0xA003], sub[0x927C] = "2026:11:30 10:00:00", 7, 5, b"Apple iOS\x00maker"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 30.0, 0.0)})
    return exif.tobytes()


def test_exif_kept_is_what_the_photo_is_not_how_the_file_was_laid_out(rgb8):
    """`exif_kept`: camera, date and GPS are kept; orientation (applied to the pixels), software, sizes and the
    maker note are not; a TIFF's own tags (its layout) are not EXIF; a file without EXIF gives None."""
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, "JPEG", exif=_camera_exif())
    d = read_image(buf.getvalue())
    assert d.tensor.shape[-2:] == (5, 7)  # turned by orientation 6
    kept = Image.Exif()
    kept.load(d.exif)
    assert (kept.get(0x010F), kept.get(0x0110), kept.get(0x0112), kept.get(0x0131)) == ("Apple", "iPhone 13", None, None)
    assert dict(kept.get_ifd(0x8769)) == {0x9003: "2026:11:30 10:00:00"}
    assert kept.get_ifd(0x8825)[1] == "N"
    assert read_image(_png_bytes(rgb8)).exif is None
    tiff = io.BytesIO()
    Image.fromarray(rgb8).save(tiff, "TIFF")
    assert read_image(tiff.getvalue()).exif is None
    import tifffile

    described = io.BytesIO()
    tifffile.imwrite(described, rgb8, photometric="rgb")  # its description: the array's shape, as JSON
    assert read_image(described.getvalue()).exif is None


def test_windows_rating_and_tags_are_kept(rgb8):
    """The rating and the XP title / keywords Windows Explorer writes into the main directory are kept."""
    exif = Image.Exif()
    exif[0x4746], exif[0x4749] = 4, 75
    exif[0x9C9B], exif[0x9C9E] = "Bee".encode("utf-16-le") + b"\0\0", "bee;flower".encode("utf-16-le") + b"\0\0"
    kept = Image.Exif()
    kept.load(images.exif_kept(_png_bytes_with_exif(rgb8, exif.tobytes())))
    assert (kept[0x4746], kept[0x4749]) == (4, 75)
    assert bytes(kept[0x9C9E]).decode("utf-16-le").rstrip("\0") == "bee;flower"
    assert bytes(kept[0x9C9B]).decode("utf-16-le").rstrip("\0") == "Bee"


def test_a_large_exif_loses_its_comment_and_no_pointer_is_kept(rgb8):
    """An EXIF over a JPEG segment's 64 KiB loses its free-text comment, keeps the rest and is still written as a
    JPEG; the interoperability pointer (an offset into the original) is not kept."""
    exif = Image.Exif()
    exif[0x0110] = "iPhone 13"
    sub = exif.get_ifd(0x8769)
    sub[0x9286] = b"ASCII\x00\x00\x00" + b"x" * 70000
    sub[0x9003] = "2026:11:30 10:00:00"
    exif.get_ifd(0xA005)[1] = "R98"  # the interoperability directory
    kept = Image.Exif()
    kept.load(images.exif_kept(_png_bytes_with_exif(rgb8, exif.tobytes())))
    assert kept.get(0x0110) == "iPhone 13" and dict(kept.get_ifd(0x8769)) == {0x9003: "2026:11:30 10:00:00"}
    d = read_image(_png_bytes_with_exif(rgb8, exif.tobytes()))
    with Image.open(io.BytesIO(images.encode_image(d.tensor, "JPEG", exif=d.exif))) as im:
        assert im.getexif().get(0x0110) == "iPhone 13"


def _png_bytes_with_exif(arr: np.ndarray, exif: bytes) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "bits"), [("JPEG", 8), ("PNG", 8), ("PNG", 16), ("WEBP", 8), ("TIFF", 8),
                                           ("TIFF", 16), ("AVIF", 8), ("HEIF", 8), ("HEIF", 16)])
def test_exif_is_written_where_the_format_holds_it(fmt, bits, rgb8):
    """encode_image(exif=) writes the EXIF into JPEG, PNG (16-bit: an eXIf chunk), WebP, AVIF, HEIC (10-bit too)
    and TIFF (16-bit: its directories added to tifffile's file, which still reads the same pixels)."""
    from PIL import features

    if fmt == "HEIF":
        pytest.importorskip("pillow_heif")
    if fmt == "AVIF" and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF")
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, "JPEG", exif=_camera_exif())
    d = read_image(buf.getvalue())
    images.open_plugins()
    data = images.encode_image(d.tensor, fmt, bit_depth=bits, exif=d.exif)
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
    assert exif.get(0x0110) == "iPhone 13" and exif.get_ifd(0x8769)[0x9003] == "2026:11:30 10:00:00"
    assert exif.get_ifd(0x8825)[1] == "N"
    if (fmt, bits) == ("TIFF", 16):
        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            assert tif.pages[0].tags["ExifTag"].value == {"DateTimeOriginal": "2026:11:30 10:00:00"}
        same = images.read_image(data)
        assert same.bit_depth == 16 and torch.equal(same.tensor, images.read_image(
            images.encode_image(d.tensor, fmt, bit_depth=bits)).tensor)


def test_the_size_of_a_turned_tiff_pillow_cannot_open_is_the_decoded_size():
    """A float RGB TIFF (read by tifffile only) with EXIF orientation 6: `image_size` turns it as decoding does."""
    import io

    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.random.default_rng(0).random((5, 7, 3)).astype(np.float32), photometric="rgb",
                     extratags=[(274, "H", 1, 6, True)])
    data = buf.getvalue()
    assert images.image_size(data) == tuple(images.read_image(data).tensor.shape[-2:]) == (7, 5)


# ------------------------------------------------------------------------------------- HEIC / AVIF (phones, web)
DATA = os.path.join(os.path.dirname(__file__), "data")


def _avif_bytes(arr: np.ndarray) -> bytes:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="AVIF", quality=90)
    return buf.getvalue()


def test_heic_is_read_through_pillow_heif():
    """An iPhone's HEIC (tests/data/tiny.heic: a 17x13 gradient coded at quality 95 by pillow-heif) decodes to its
    source within the coding's error, without a lossy floor (a validation sweep found none better); its header
    gives the size, also read first in a fresh process."""
    import subprocess

    pytest.importorskip("pillow_heif")
    with open(os.path.join(DATA, "tiny.heic"), "rb") as fh:
        data = fh.read()
    source = np.asarray(Image.open(os.path.join(DATA, "tiny-heic-source.png")), np.float64) / 255
    d = read_image(data)
    assert d.tensor.shape == (1, 3, 13, 17) and images.heif_kind(data) == "heic"
    assert np.abs(to_unit(d.tensor[0]).permute(1, 2, 0).numpy() - source).mean() < 12 / 255
    assert d.jpeg_sigma == images.HEIC_LOSSY_SIGMA == 0.0 and images.image_size(data) == (13, 17)
    assert images.is_listed_image("IMG_0001.HEIC") and images.is_listed_image("a.avif")
    assert images.is_listed_image("canon.hif") and images.is_listed_image("b.heif")
    code = f"from ncvsd_cli import images; print(images.image_size({os.path.join(DATA, 'tiny.heic')!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(13, 17)"


def test_avif_is_read_and_written_with_its_lossy_floor(rgb8):
    data = _avif_bytes(np.repeat(np.repeat(rgb8, 4, 0), 4, 1))
    d = read_image(data)
    assert d.tensor.shape == (1, 3, 28, 20) and images.heif_kind(data) == "avif"
    assert d.jpeg_sigma == images.AVIF_LOSSY_SIGMA and images.format_for_path("x.avif") == "AVIF"
    assert images.heif_kind(_png_bytes(rgb8)) is None and read_image(_png_bytes(rgb8)).jpeg_sigma is None
    rgba = np.concatenate([rgb8, np.full((7, 5, 1), 128, np.uint8)], -1)
    written = images.encode_image(read_image(_png_bytes(rgba)).tensor, "AVIF", alpha=read_image(_png_bytes(rgba)).alpha,
                                  icc_profile=b"\x00\x00\x02\x0cfake profile " + bytes(range(100)))
    with Image.open(io.BytesIO(written)) as im:
        assert im.mode == "RGBA" and im.info.get("icc_profile", b"").startswith(b"\x00\x00\x02\x0cfake")
    with pytest.raises(ImageError, match="cannot decode this AVIF file"):
        read_image(data[: len(data) // 2])


@pytest.mark.parametrize(("brands", "kind"), [
    (b"heic" + b"\0" * 4 + b"mif1heic", "heic"), (b"mif1\0\0\0\0msf1heic", "heic"),  # major brand generic
    (b"avif\0\0\0\0mif1miaf", "avif"), (b"mif1\0\0\0\0mif1avif", "avif"),  # AVIF among compatible brands
    (b"msf1\0\0\0\0msf1avis", "avif"), (b"isom\0\0\0\0isomhvc1", None),  # a sequence; an HEVC video
    (b"qt  \0\0\0\0qt  ", None), (b"mp41\0\0\0\0mp41isom", None)])
def test_heif_kind_reads_every_brand(brands, kind):
    """heif_kind reads the ftyp box's major and compatible brands: AVIF before the generic HEIF brands; videos are
    not images."""
    box = (8 + len(brands)).to_bytes(4, "big") + b"ftyp" + brands
    assert images.heif_kind(box + b"\0" * 16) == kind


def test_heic_without_its_decoder_says_what_to_install(monkeypatch):
    """Without pillow-heif (a platform without its wheels) a HEIC input is one line naming the package, not "not an
    image"; with it, a damaged HEIC says it cannot be decoded; with a decoder that cannot write (pi-heif, the
    discontinued decode-only twin) a HEIC output is refused as read-only, naming what writes it."""
    import subprocess

    from PIL import Image

    code = ("import sys; sys.modules['pillow_heif'] = sys.modules['pi_heif'] = None\n"
            "from ncvsd_cli import images\n"
            f"try:\n    images.read_image({os.path.join(DATA, 'tiny.heic')!r})\n"
            "except images.ImageError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "a HEIC / HEIF image (iPhones' photos are): reading it needs pillow-heif (pip install pillow-heif" in out
    pytest.importorskip("pillow_heif")
    with open(os.path.join(DATA, "tiny.heic"), "rb") as fh:
        damaged = fh.read()[:400]
    with pytest.raises(ImageError, match="cannot decode this HEIC file"):
        read_image(damaged)
    images.open_plugins()
    monkeypatch.delitem(Image.SAVE, "HEIF")  # as pi-heif registers it: an opener, no writer
    with pytest.raises(ValueError, match=r"HEIF images \(.heic\) are read, not written \(pillow-heif writes them"):
        images.format_for_path("out.heic")


def test_ten_bit_heic_keeps_its_bits():
    """A 10-bit HEIC (cameras' .hif, HDR phone photos; tests/data/tiny10.heic: a 17x13 grey ramp of 10-bit levels
    (4 x + y) / 76 * 1023 rounded, coded losslessly by pillow-heif) is read at its 10 bits, exactly, where
    Pillow's plugin gives 8 (an error up to half an 8-bit level); bit_depth 10 makes outputs 16-bit PNGs."""
    pytest.importorskip("pillow_heif")
    d = read_image(os.path.join(DATA, "tiny10.heic"))
    yy, xx = np.mgrid[:13, :17]
    ramp = np.round((xx * 4 + yy) / 76 * 1023) / 1023
    assert (d.bit_depth, d.mode, d.tensor.shape) == (10, "RGB;10", (1, 3, 13, 17))
    assert np.abs(to_unit(d.tensor[0]).numpy() - ramp).max() < 1e-6
    assert np.abs(np.round(ramp * 255) / 255 - ramp).max() > 0.4 / 255  # what 8 bits would have lost


def _deep_heic(samples: np.ndarray, mode: str, bits: int = 10, **options) -> bytes:
    """(H, W, C) integer samples of `bits` bits coded as a HEIC by pillow-heif: lossless, 4:4:4 and RGB-coded
    (matrix 0), so that decoding gives them back exactly."""
    import pillow_heif

    pytest.importorskip("pillow_heif")
    h, w = samples.shape[:2]
    f = pillow_heif.from_bytes(mode=mode, size=(w, h), data=(samples.astype(np.uint16) << (16 - bits)).tobytes())
    buf = io.BytesIO()
    f.save(buf, quality=-1, chroma=444, matrix_coefficients=0, **options)
    return buf.getvalue()


@pytest.mark.parametrize("case", ["rgb", "straight alpha", "premultiplied alpha", "12 bits", "exif orientation 6"])
def test_deep_heic_colour_alpha_and_orientation(case, monkeypatch):
    """10- and 12-bit HEICs in colour decode exactly at their depth, channels in order; alpha (straight, or
    premultiplied: made straight) is composited on white and kept; an EXIF orientation is applied once."""
    from PIL import Image as PILImage

    pillow_heif = pytest.importorskip("pillow_heif")
    bits = 12 if case == "12 bits" else 10
    monkeypatch.setattr(pillow_heif.options, "SAVE_HDR_TO_12_BIT", bits == 12)
    top = 2**bits - 1
    yy, xx = np.mgrid[:12, :20]
    rgb = np.stack([xx * (top // 20), yy * (top // 12), top - xx * (top // 50) - yy * (top // 100)], -1)
    options, alpha = {}, None
    if case == "exif orientation 6":
        exif = PILImage.Exif()
        exif[0x0112] = 6
        options["exif"] = exif.tobytes()
    if "alpha" in case:
        alpha = np.full((12, 20, 1), top // 2)
        stored = np.round(rgb * alpha / top) if case.startswith("premultiplied") else rgb
        data = _deep_heic(np.concatenate([stored, alpha], -1), "RGBa;16" if "premult" in case else "RGBA;16", bits)
    else:
        data = _deep_heic(rgb, "RGB;16", bits, **options)
    d = read_image(data)
    want = rgb / top
    if alpha is not None:
        a = alpha / top
        want = want * a + 1 - a
        assert d.alpha is not None and np.abs(d.alpha[0, 0].numpy() - a[..., 0]).max() < 1e-6
    want = images._oriented(want, 6) if case.startswith("exif") else want
    assert d.bit_depth == bits and d.tensor.shape == (1, 3, *want.shape[:2])
    err = np.abs(to_unit(d.tensor[0]).permute(1, 2, 0).numpy() - want).max() * top
    assert err < (1.0 if "premult" in case else 1e-3), err  # premultiplied: the stored colour was rounded


def test_heic_colour_tags_without_a_profile():
    """A HEIC whose colour is named by nclx tags (no ICC profile): Display P3 gets an equivalent ICC profile, which
    the outputs carry (a note says so); HDR (PQ) cannot be one and gets the note that the outputs do not carry it;
    sRGB needs nothing."""
    ramp = np.repeat(np.arange(16)[None, :, None] * 60, 8, 0).repeat(3, -1)
    p3 = read_image(_deep_heic(ramp, "RGB;16", color_primaries=12, transfer_characteristics=13))
    assert p3.icc_profile is not None and p3.icc_profile[36:40] == b"acsp"
    assert any("its Display P3 colour (HEIF nclx tags" in n for n in p3.notes), p3.notes
    hdr = read_image(_deep_heic(ramp, "RGB;16", color_primaries=9, transfer_characteristics=16))
    assert any("colour tagged BT.2020 / PQ (HDR) (HEIF nclx, no ICC profile)" in n for n in hdr.notes), hdr.notes
    assert hdr.icc_profile is None
    plain = read_image(_deep_heic(ramp, "RGB;16", color_primaries=1, transfer_characteristics=13))
    assert not any("nclx" in n for n in plain.notes) and plain.icc_profile is None, plain.notes
    grey = read_image(_deep_heic(ramp[..., 0], "L;16", color_primaries=12, transfer_characteristics=13))
    assert grey.grey and grey.icc_profile is None  # an RGB profile would be refused on a grey output
    unspecified = read_image(_deep_heic(ramp, "RGB;16", color_primaries=2, transfer_characteristics=2))
    assert unspecified.icc_profile is None and not any("nclx" in n for n in unspecified.notes)  # (it crashed)


def test_heic_is_written_with_alpha_and_profile(rgb8):
    """With pillow-heif an output named .heic is a HEIC at quality 90 carrying the ICC profile and the alpha."""
    pytest.importorskip("pillow_heif")
    rgba = np.concatenate([rgb8, np.full((7, 5, 1), 128, np.uint8)], -1)
    d = read_image(_png_bytes(rgba))
    assert images.format_for_path("IMG_1.HEIC") == "HEIF"
    written = images.encode_image(d.tensor, "HEIF", alpha=d.alpha,
                                  icc_profile=b"\x00\x00\x02\x0cfake profile " + bytes(range(100)))
    with Image.open(io.BytesIO(written)) as im:
        assert im.format == "HEIF" and im.mode == "RGBA"
        assert im.info.get("icc_profile", b"").startswith(b"\x00\x00\x02\x0cfake")
    back = read_image(written)
    assert back.alpha is not None and abs(float(back.alpha.mean()) - 128 / 255) < 2 / 255


def test_jpeg_outputs_keep_full_resolution_chroma(rgb8):
    """encode_image writes JPEG at quality 95 with 4:4:4 chroma (OUTPUT_OPTIONS): a colour edge keeps its colour
    closer than Pillow's default 4:2:0 at the same quality."""
    from PIL import JpegImagePlugin

    x = from_unit(torch.from_numpy(np.kron(rgb8, np.ones((4, 4, 1), np.uint8))).permute(2, 0, 1)[None].float() / 255)
    with Image.open(io.BytesIO(images.encode_image(x, "JPEG"))) as im:
        assert JpegImagePlugin.get_sampling(im) == 0
        ours = np.asarray(im, dtype=float)
    buf = io.BytesIO()
    Image.fromarray(images.to_uint8(x)).save(buf, "JPEG", quality=95)
    default = np.asarray(Image.open(buf), dtype=float)
    truth = images.to_uint8(x).astype(float)
    assert np.abs(ours - truth).mean() < 0.5 * np.abs(default - truth).mean()


@pytest.mark.parametrize(("fmt", "bits"), [("JPEG", 8), ("PNG", 8), ("PNG", 16), ("TIFF", 8), ("TIFF", 16),
                                           ("WEBP", 8)])
def test_the_resolution_is_written_where_the_format_holds_it_and_read_back(fmt, bits, rgb8):
    """encode_image(dpi=) writes pixels per inch into JPEG (whole dots), PNG (pHYs, per metre: 16-bit too) and TIFF
    (16-bit too); WebP has no place for it; image_dpi reads it back."""
    x = from_unit(torch.from_numpy(rgb8).permute(2, 0, 1)[None].float() / 255)
    got = images.read_image(images.encode_image(x, fmt, bit_depth=bits, dpi=(300.0, 150.0))).dpi
    assert got is None if fmt == "WEBP" else got == pytest.approx((300.0, 150.0), abs=0.05)
    assert images.read_image(images.encode_image(x, fmt, bit_depth=bits)).dpi is None


def test_the_resolution_is_turned_with_the_pixels(rgb8):
    """A JPEG of 300 x 150 dpi shown turned by EXIF orientation 6 has 150 x 300 dpi as decoded."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, "JPEG", dpi=(300, 150), exif=exif.tobytes())
    assert images.read_image(buf.getvalue()).dpi == (150.0, 300.0)


def _jpeg_with(rgb8: np.ndarray, exif: dict, **options) -> bytes:
    tags = Image.Exif()
    tags.update(exif)
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, "JPEG", exif=tags.tobytes(), **options)
    return buf.getvalue()


@pytest.mark.parametrize(("exif", "options", "dpi"), [
    ({0x010F: "Apple"}, {}, None),  # no resolution stated (Pillow's info says 72)
    ({282: 300, 283: 150}, {}, (300.0, 150.0)),  # EXIF, inches by default
    ({282: 100, 283: 100, 296: 3}, {}, (254.0, 254.0)),  # per centimetre
    ({282: 300, 283: 300, 296: 1}, {}, None),  # no unit: an aspect ratio
    ({282: 300, 283: 300}, {"dpi": (600, 600)}, (600.0, 600.0)),  # JFIF's density first
])
def test_a_jpegs_resolution_is_what_it_states(exif, options, dpi, rgb8):
    assert images.image_dpi(_jpeg_with(rgb8, exif, **options)) == dpi


def test_a_large_windows_comment_goes_before_the_rest_of_the_exif(rgb8):
    """A PNG's EXIF with a 70 kB XPComment keeps its camera without the comment (it would not fit a JPEG)."""
    exif = Image.Exif()
    exif[0x0110], exif[0x9C9C] = "iPhone 13", "x".encode("utf-16-le") * 36000
    kept = Image.Exif()
    kept.load(images.exif_kept(_png_bytes_with_exif(rgb8, exif.tobytes())))
    assert kept.get(0x0110) == "iPhone 13" and 0x9C9C not in kept


def _camera_jpeg(rgb8: np.ndarray, space: int | None, index: str | None, icc: bytes | None = None) -> bytes:
    """A camera's JPEG: EXIF ColorSpace `space` and interoperability index `index` (DCF), an ICC profile if given."""
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    if space is not None:
        sub[0xA001] = space
    if index is not None:
        sub[0xA005] = {1: index}
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, "JPEG", exif=exif.tobytes(), **({"icc_profile": icc} if icc else {}))
    return buf.getvalue()


@pytest.mark.parametrize(("space", "index", "adobe"), [(0xFFFF, "R03", True), (2, None, True), (1, "R98", False),
                                                       (0xFFFF, None, False), (None, None, False)])
def test_a_cameras_adobe_rgb_named_by_exif_gets_an_equivalent_profile(space, index, adobe, rgb8):
    """Adobe RGB named by the EXIF (DCF: uncalibrated + R03; or ColorSpace 2) and no ICC profile: the Adobe RGB
    profile (colorants as Adobe's specification gives them adapted to D50, to its 4 decimals) with a note; sRGB or
    unnamed: none; a file's own profile comes first; a grey model gets none (its outputs are grey)."""
    from PIL import ImageCms

    from ncvsd_cli import icc

    d = images.read_image(_camera_jpeg(rgb8, space, index))
    assert (d.icc_profile == icc.adobe_rgb_profile()) == adobe and (d.icc_profile is None) != adobe
    assert any("Adobe RGB" in n for n in d.notes) == adobe
    if adobe:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(d.icc_profile)).profile  # as littlecms reads it
        colorants = [profile.red_colorant[0], profile.green_colorant[0], profile.blue_colorant[0]]
        assert np.array(colorants) == pytest.approx(np.array([[0.6097, 0.3111, 0.0195], [0.2053, 0.6257, 0.0609],
                                                              [0.1492, 0.0632, 0.7446]]), abs=1e-4)  # Adobe's
        own = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        assert images.read_image(_camera_jpeg(rgb8, space, index, icc=own)).icc_profile == own
        assert images.read_image(_camera_jpeg(rgb8, space, index), channels=1).icc_profile is None


@pytest.mark.parametrize("code", [errno.EPERM, errno.EINVAL, errno.EXDEV])
def test_no_clobber_writes_where_hard_links_cannot_be_made(tmp_path, monkeypatch, code):
    """FAT32 and exFAT drives on Windows refuse a hard link with EINVAL, which was not taken for "no hard links":
    every output there failed. The O_EXCL claim still refuses an existing name."""
    def no_links(src, dst):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "link", no_links)
    x = torch.zeros(1, 3, 5, 7)
    path = images.save_image(x, tmp_path / "a.png", overwrite=False)
    assert images.load_image(path).shape == (1, 3, 5, 7)
    with pytest.raises(images.OutputExistsError):
        images.atomic_write_bytes(tmp_path / "a.png", b"x", overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no temporary file left
    with pytest.raises(images.OutputExistsError, match=r"a.png exists, not replaced \(overwrite=True replaces"):
        images.save_image(x, tmp_path / "a.png", overwrite=False)  # it said "made while this ran" of an old file


def test_to_uint8_rounds_each_level_and_clips():
    """The in-place conversion gives each value the 8-bit level round(255 (clip(x, -1, 1) + 1) / 2), also at the
    half-way points between levels and just past them, for float16/32/64 inputs."""
    levels = torch.arange(256, dtype=torch.float64) / 255 * 2 - 1
    halves = (torch.arange(255, dtype=torch.float64) + 0.5) / 255 * 2 - 1
    v = torch.cat([levels, halves, halves + 1e-6, halves - 1e-6, torch.tensor([1.5, -1.5, 1 + 1e-7, -0.0])])
    for dtype in (torch.float16, torch.float32, torch.float64):
        x = v.to(dtype).repeat(3, 1)[:, None]
        unit = (x.double().float().clamp(-1, 1).double() + 1) / 2 * 255  # the float32 value the encoder rounds
        expected = torch.round(((x.float().clamp(-1, 1) + 1) / 2) * 255).to(torch.uint8)
        assert np.array_equal(images.to_uint8(x), expected.numpy().transpose(1, 2, 0))
        assert (expected.double() - unit).abs().max() <= 0.5 + 1e-4


@pytest.mark.parametrize(("values", "finite"), [([0.5, -1.0], True), ([float("nan"), 0.0], False),
                                                ([float("inf"), 0.0], False), ([float("-inf"), 1.0], False),
                                                ([3e38, 3e38], True), ([6e4, 6e4], True)])
def test_all_finite_is_exact_where_the_sum_overflows(values, finite):
    """`all_finite` reads a tensor's sum first: finite values whose sum overflows (float32 3e38 twice, float16
    6e4 twice) are still finite, NaN and inf are not; integer and empty tensors are."""
    from operators.base import all_finite

    t = torch.tensor(values, dtype=torch.float16 if values[0] == 6e4 else torch.float32)
    assert all_finite(t) is finite and all_finite(t.reshape(1, 1, 1, 2)) is finite
    assert all_finite(torch.zeros(0)) and all_finite(torch.tensor([2**62]))


@pytest.mark.parametrize("where", [(0, 0), (0, 1), (63, 70), (599, 600)])
def test_a_grey_image_with_one_coloured_pixel_is_colour(where):
    """distinct_channels reads a sparse grid of pixels first: a grey picture (R = G = B) with a single pixel of
    colour, on or off that grid, still has three distinct channels; within GREY_TOLERANCE it stays grey."""
    from ncvsd_cli.measurement import GREY_TOLERANCE, distinct_channel_count, distinct_channels

    z = torch.rand(1, 600, 601).expand(3, -1, -1).clone()  # 360600 pixels: the grid, every 2nd row and column
    z[2] += GREY_TOLERANCE / 2
    assert distinct_channel_count(z) == 1 and distinct_channels(z).shape == (1, 600, 601)
    z[1, where[0], where[1]] += 2 * GREY_TOLERANCE
    assert distinct_channel_count(z) == 2 and distinct_channels(z).shape == (2, 600, 601)


def test_a_tiff_tifffile_cannot_decode_says_what_reads_it(tmp_path, monkeypatch):
    """A 16-bit LZW TIFF (tifffile needs imagecodecs for LZW) was read by Pillow at 8 bits without a word, and a
    float one was "not an image"."""
    import tifffile

    path = tmp_path / "a16.tif"
    tifffile.imwrite(path, (np.arange(5 * 7 * 3).reshape(5, 7, 3) * 300).astype(np.uint16), photometric="rgb")

    def lzw(*args, **kwargs):
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(images, "_decode_tiff", lzw)
    read = images.read_image(path)
    assert read.bit_depth == 8 and any("read at 8 bits of its 16" in n and "pip install imagecodecs" in n
                                  for n in read.notes), read.notes
    (tmp_path / "f.tif").write_bytes(b"II*\x00" + bytes(60))  # a TIFF header Pillow cannot read either
    with pytest.raises(images.ImageError, match="pip install imagecodecs"):
        images.read_image(tmp_path / "f.tif")


def test_every_format_written_is_named_in_the_messages():
    """`-o x.ppm` and `--format ppm` work, but the unknown-suffix message listed BMP and GIF and not PPM."""
    from PIL import Image

    Image.init()
    named = images.suffix_choice()
    assert ".ppm" in named and ".bmp" in named and ".gif" in named
    written = {f for f in ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF", "PPM") if f in Image.SAVE}
    assert written <= set(images.OUTPUT_SUFFIXES)


def test_a_16_bit_colour_ppm_says_it_is_read_at_8_bits():
    """Pillow reads a 16-bit colour PPM (maxval 65535) at 8 bits, a PGM at 16: the first was reduced without a word."""
    pixels = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1000).astype(">u2")
    ppm = b"P6\n# a comment\n5 4\n65535\n" + pixels.tobytes()
    read = images.read_image(ppm)
    assert read.bit_depth == 8 and any("16-bit colour PPM, read at 8 bits" in n for n in read.notes), read.notes
    assert not images.read_image(b"P6\n5 4\n255\n" + bytes(60)).notes
