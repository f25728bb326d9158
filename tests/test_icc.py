"""ICC profiles made from HEIF nclx colour tags (`ncvsd_cli.icc`), checked through littlecms (Pillow's ImageCms)
against the colorimetry written out by hand."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from ncvsd_cli import icc

P3 = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
BT2020 = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
D65 = (0.3127, 0.3290)
COLOURS = np.array([[255, 255, 255], [128, 128, 128], [200, 120, 60], [60, 160, 90], [30, 40, 200], [0, 0, 0]],
                   np.uint8)


def _to_srgb(profile: bytes) -> np.ndarray:
    """COLOURS, read in `profile`, converted to sRGB by littlecms (relative colorimetric), as integers."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    transform = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), "RGB", "RGB",
                                        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    return np.asarray(ImageCms.applyTransform(Image.fromarray(COLOURS[None]), transform))[0].astype(int)


def _decode(v: np.ndarray, curve) -> np.ndarray:
    g, a, b, c, d = curve
    return np.where(v >= d, (a * v + b) ** g, c * v)


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    lin = np.clip(linear, 0, 1)
    return 255 * np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize(("primaries", "transfer"), [(P3, 13), (BT2020, 14), (icc.SRGB_CHROMATICITIES[:3], 13)])
def test_a_made_profile_converts_as_its_colorimetry(primaries, transfer):
    """Colours in a profile of these primaries (D65) and curve reach sRGB as the matrices and curves say: linear
    RGB -> XYZ -> linear sRGB (same white: no adaptation), within half a level; sRGB's own is the identity."""
    curve = icc.TRANSFER_CURVES[transfer]
    profile = icc.rgb_profile(primaries, D65, curve, "test")
    to_srgb = np.linalg.inv(icc.rgb_to_xyz(icc.SRGB_CHROMATICITIES[:3], D65)) @ icc.rgb_to_xyz(primaries, D65)
    expected = _srgb_encode(_decode(COLOURS / 255, curve) @ to_srgb.T)
    assert np.abs(_to_srgb(profile) - expected).max() <= 0.75


def test_the_bradford_adaptation_takes_the_white_to_d50():
    white = icc.rgb_to_xyz(P3, D65) @ np.ones(3)
    assert np.allclose(icc.bradford_to_d50(D65) @ white, icc.D50, atol=1e-4)
    assert np.allclose(icc.bradford_to_d50((0.3457, 0.3585)), np.eye(3), atol=2e-3)  # D50 itself


def _nclx(primaries: int, transfer: int, xy) -> dict:
    out = {"color_primaries": primaries, "transfer_characteristics": transfer}
    for name, (x, y) in zip(("red", "green", "blue", "white"), (*xy, D65)):
        out[f"color_primary_{name}_x"], out[f"color_primary_{name}_y"] = x, y
    return out


def test_nclx_tags_give_a_profile_only_where_untagged_rgb_is_wrong_and_a_curve_can_say_it():
    profile, name = icc.nclx_profile(_nclx(12, 13, P3))
    assert name == "Display P3" and profile is not None and profile[36:40] == b"acsp"
    assert icc.nclx_profile(_nclx(1, 13, icc.SRGB_CHROMATICITIES[:3])) == (None, None)  # sRGB: untagged is right
    assert icc.nclx_profile(_nclx(1, 2, icc.SRGB_CHROMATICITIES[:3])) == (None, None)  # unspecified curve: sRGB's
    assert icc.nclx_profile(_nclx(9, 16, BT2020)) == (None, "BT.2020 / PQ (HDR)")  # no SDR curve describes it
    assert icc.nclx_profile(_nclx(9, 99, BT2020)) == (None, "BT.2020 / transfer 99")
    assert icc.nclx_profile({"color_primaries": 12}) == (None, None)  # chromaticities missing
