"""ICC profiles made from HEIF nclx colour tags (`ncvsd_cli.icc`): the bytes against ICC.1 v4 and reference values,
the conversion through littlecms (Pillow's ImageCms) against the colorimetry written out by hand."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from ncvsd_cli import icc

P3 = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
BT2020 = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
D65 = (0.3127, 0.3290)
COLOURS = np.array([[255, 255, 255], [128, 128, 128], [200, 120, 60], [60, 160, 90], [30, 40, 200], [0, 0, 0]],
                   np.uint8)
#: Display P3 COLOURS in sRGB (colour-science 0.4.7 and littlecms agree on these within 0.64 levels).
P3_IN_SRGB = np.array([[255, 255, 255], [128, 128, 128], [213, 115, 42], [0, 163, 82], [27, 40, 208], [0, 0, 0]])
#: The Bradford adaptation D65 -> ICC D50 (0.9642, 1, 0.8249) as Apple's Display P3 profile's chad has it,
#: rounded to 4 places.
BRADFORD_D65_D50 = np.array([[1.0479, 0.0229, -0.0502], [0.0296, 0.9905, -0.0171], [-0.0092, 0.0151, 0.7517]])


def _to_srgb(profile: bytes) -> np.ndarray:
    """COLOURS, read in `profile`, converted to sRGB by littlecms (relative colorimetric), as integers."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    transform = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "RGB", "RGB",
                                        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    return np.asarray(ImageCms.applyTransform(Image.fromarray(COLOURS[None]), transform))[0].astype(int)


def _tags(profile: bytes) -> dict[bytes, bytes]:
    count = struct.unpack(">I", profile[128:132])[0]
    table = [struct.unpack(">4sII", profile[132 + 12 * i : 144 + 12 * i]) for i in range(count)]
    return {sig: profile[offset : offset + size] for sig, offset, size in table}


def _s15(data: bytes) -> np.ndarray:
    return np.array(struct.unpack(f">{len(data) // 4}i", data)) / 65536


def test_a_display_p3_profile_is_what_the_spec_and_references_say():
    """The Display P3 profile: v4 display class, RGB to XYZ, D50 illuminant; wtpt D50, chad the Bradford D65 ->
    D50 matrix, the sRGB curve as para type 3 with its published constants; littlecms takes colours to sRGB as
    colour-science does."""
    profile = icc.rgb_profile(P3, D65, icc.SRGB_CURVE, "Display P3")
    assert struct.unpack(">I", profile[:4])[0] == len(profile) and profile[8:12] == b"\x04\x30\x00\x00"
    assert profile[12:24] == b"mntrRGB XYZ " and profile[36:40] == b"acsp"
    assert np.allclose(_s15(profile[68:80]), [0.9642, 1.0, 0.8249], atol=1e-4)
    tags = _tags(profile)
    assert np.allclose(_s15(tags[b"wtpt"][8:]), [0.9642, 1.0, 0.8249], atol=1e-4)
    assert np.allclose(_s15(tags[b"chad"][8:]).reshape(3, 3), BRADFORD_D65_D50, atol=1e-4)
    para = tags[b"rTRC"]
    assert para[:4] == b"para" and struct.unpack(">H", para[8:10])[0] == 3 and tags[b"gTRC"] == para
    assert np.allclose(_s15(para[12:]), [2.4, 0.947867, 0.052133, 0.077399, 0.04045], atol=2e-5)
    assert np.abs(_to_srgb(profile) - P3_IN_SRGB).max() <= 1


def _decode(v: np.ndarray, curve) -> np.ndarray:
    if len(curve) == 1:
        return v ** curve[0]
    g, a, b, c, d = curve
    return np.where(v >= d, (a * v + b) ** g, c * v)


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    lin = np.clip(linear, 0, 1)
    return 255 * np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize(("primaries", "transfer"), [(P3, 13), (BT2020, 14), (icc.SRGB_CHROMATICITIES[:3], 8),
                                                     (BT2020, 4)])
def test_a_made_profile_converts_as_its_colorimetry(primaries, transfer):
    """Colours in a profile of these primaries (D65) and curve reach sRGB as the matrices and curves say: linear
    RGB -> XYZ -> linear sRGB (same white: no adaptation), within a level."""
    curve = icc.TRANSFER_CURVES[transfer]
    profile = icc.rgb_profile(primaries, D65, curve, "test")
    to_srgb = np.linalg.inv(icc.rgb_to_xyz(icc.SRGB_CHROMATICITIES[:3], D65)) @ icc.rgb_to_xyz(primaries, D65)
    expected = _srgb_encode(_decode(COLOURS / 255, curve) @ to_srgb.T)
    assert np.abs(_to_srgb(profile) - expected).max() <= 1.0


def _nclx(primaries: int, transfer: int, xy) -> dict:
    out = {"color_primaries": primaries, "transfer_characteristics": transfer}
    for name, (x, y) in zip(("red", "green", "blue", "white"), (*xy, D65)):
        out[f"color_primary_{name}_x"], out[f"color_primary_{name}_y"] = x, y
    return out


def test_nclx_tags_give_a_profile_only_where_untagged_rgb_is_wrong_and_a_curve_can_say_it():
    """A profile for other primaries or another curve than sRGB's; none for sRGB (the BT.709 curve codes and the
    unspecified one shown as sRGB, as browsers do), for unspecified primaries (pillow-heif's zeros), for HDR or
    unknown curves (named, for the warning) and for incomplete tags."""
    profile, name = icc.nclx_profile(_nclx(12, 13, P3))
    assert name == "Display P3" and profile is not None and profile[36:40] == b"acsp"
    assert icc.nclx_profile(_nclx(9, 14, BT2020))[0] is not None  # BT.2020 primaries, shown with the sRGB curve
    srgb = icc.SRGB_CHROMATICITIES[:3]
    for transfer in (13, 2, 1, 6, 14, 15):
        assert icc.nclx_profile(_nclx(1, transfer, srgb)) == (None, None)
    linear, name = icc.nclx_profile(_nclx(1, 8, srgb))  # linear light: untagged it would show far too dark
    assert linear is not None and name == "BT.709 / sRGB"
    zeros = {f"color_primary_{k}_{c}": 0.0 for k in ("red", "green", "blue", "white") for c in "xy"}
    assert icc.nclx_profile({"color_primaries": 2, "transfer_characteristics": 2, **zeros}) == (None, None)
    assert icc.nclx_profile(_nclx(9, 16, BT2020)) == (None, "BT.2020 / PQ (HDR)")
    assert icc.nclx_profile(_nclx(9, 99, BT2020)) == (None, "BT.2020 / transfer 99")
    assert icc.nclx_profile({"color_primaries": 12}) == (None, None)


def test_the_bradford_adaptation_takes_the_white_to_d50():
    white = icc.rgb_to_xyz(P3, D65) @ np.ones(3)
    assert np.allclose(icc.bradford_to_d50(D65) @ white, icc.D50, atol=1e-4)
    assert np.allclose(icc.bradford_to_d50((0.3457, 0.3585)), np.eye(3), atol=2e-3)  # D50 itself


@pytest.mark.parametrize("fmt", ["BMP", "PPM", "GIF"])
def test_a_format_without_a_profile_gets_srgb_samples(fmt):
    """A Display P3 photo written as BMP, PPM or GIF kept its P3 numbers without the profile, and showed off by up
    to 36 ΔE: those formats get its colours converted to sRGB; PNG keeps the numbers and the profile."""
    import torch

    from ncvsd_cli import images

    profile = icc.rgb_profile(P3, D65, icc.SRGB_CURVE, "Display P3")
    x = torch.from_numpy(COLOURS.astype(np.float32) / 127.5 - 1).permute(1, 0)[None, :, None, :]  # (1, 3, 1, 6)
    written = Image.open(io.BytesIO(images.encode_image(x, fmt, icc_profile=profile))).convert("RGB")
    assert "icc_profile" not in written.info
    assert np.abs(np.asarray(written)[0].astype(int) - P3_IN_SRGB).max() <= 2
    png = Image.open(io.BytesIO(images.encode_image(x, "PNG", icc_profile=profile)))
    assert png.info["icc_profile"] == profile and np.abs(np.asarray(png)[0].astype(int) - COLOURS).max() <= 1


def _grey_profile(gamma: float) -> bytes:
    """An ICC v4 grey display profile (kTRC: x^gamma), as image editors embed in grey photos (Gray Gamma 2.2)."""
    tags = [(b"desc", icc._mluc("Grey gamma")), (b"cprt", icc._mluc("none")), (b"wtpt", icc._xyz(icc.D50)),
            (b"kTRC", icc._para([gamma]))]
    offset, data, entries = 128 + 4 + 12 * len(tags), b"", []
    for signature, body in tags:
        entries.append(signature + struct.pack(">II", offset, len(body)))
        data += body + bytes(-len(body) % 4)
        offset += len(body) + (-len(body) % 4)
    table = struct.pack(">I", len(tags)) + b"".join(entries)
    header = (struct.pack(">I", 128 + len(table) + len(data)) + bytes(4) + struct.pack(">I", 0x04300000)
              + b"mntrGRAYXYZ " + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + bytes(28)
              + b"".join(icc._s15(v) for v in icc.D50) + bytes(48))
    return header + table + data


@pytest.mark.parametrize("fmt, channels", [("WEBP", 1), ("BMP", 1), ("PPM", 3), ("PNG", 1)])
def test_a_grey_profile_that_cannot_be_embedded_becomes_srgb_samples(fmt, channels):
    """A grey photo with a gamma-2.2 grey profile written as WebP (RGB: the grey profile was dropped) or BMP / PPM
    (no profile) kept its numbers: up to 8.5 levels too dark in the shadows. PNG keeps the numbers and profile."""
    import torch

    from ncvsd_cli import images

    profile, levels = _grey_profile(2.2), np.array([0, 4, 16, 40, 90, 128, 200, 255], np.uint8)
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    expected = np.asarray(ImageCms.profileToProfile(Image.fromarray(levels[None]), source, ImageCms.createProfile(
        "sRGB"), outputMode="RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC))[0].astype(int)
    assert np.abs(expected[:, 1] - levels).max() >= 5  # (the case matters: the grey gamma is not sRGB's curve)
    x = torch.from_numpy(levels.astype(np.float32) / 127.5 - 1)[None, None, None].expand(1, channels, 1, -1)
    written = Image.open(io.BytesIO(images.encode_image(x, fmt, icc_profile=profile)))
    got = np.asarray(written.convert("RGB"))[0].astype(int)
    if fmt == "PNG":
        assert written.info["icc_profile"] == profile and np.abs(got[:, 0] - levels).max() == 0
    else:
        assert "icc_profile" not in written.info and np.abs(got - expected).max() <= (2 if fmt == "WEBP" else 1)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "PPM"])
def test_a_grey_profile_on_colour_samples_is_dropped_and_the_colours_kept(fmt):
    """A colour photo carrying a grey profile (it does not describe its samples): the colours are written as they are
    (a first version of the grey conversion took the red channel as the grey one: red came out white)."""
    import torch

    from ncvsd_cli import images

    colours = np.array([[255, 0, 0], [0, 255, 0], [40, 90, 200]], np.uint8)
    blocks = np.repeat(np.repeat(colours[None], 16, 0), 16, 1)  # 16x16 of each: lossy chroma keeps them
    x = torch.from_numpy(blocks.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    written = Image.open(io.BytesIO(images.encode_image(x, fmt, icc_profile=_grey_profile(2.2))))
    got = np.asarray(written.convert("RGB"))[8, 8::16].astype(int)
    assert "icc_profile" not in written.info and np.abs(got - colours).max() <= (12 if fmt in ("JPEG", "WEBP") else 0)
