"""ICC profiles made from colour tags: a HEIF's nclx box (ITU-T H.273 code points and chromaticities) names its
RGB space without an ICC profile, as a camera's EXIF names Adobe RGB (`adobe_rgb_profile`), and outputs (PNG,
JPEG, ...) carry colour only as ICC. `rgb_profile` writes the
equivalent ICC v4 display profile (ICC.1:2022 §9-10): the primaries' colorants adapted to the D50 connection
space by the Bradford transform (`chad`), a parametric tone curve (`para`) per channel, D50 media white."""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

import numpy as np

#: The profile connection space's white (ICC.1 §7.2.16), XYZ.
D50 = (0.9642, 1.0, 0.8249)
#: Bradford's cone response matrix (von Kries adaptation in that space).
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
#: The sRGB decoding curve (IEC 61966-2-1), ICC parametric type 3 (g, a, b, c, d: Y = (aX + b)^g for X >= d,
#: else cX).
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
#: Decoding curves (signal in [0, 1] -> linear light; type 3 as SRGB_CURVE, or type 0: g, Y = X^g) per H.273
#: TransferCharacteristics code. The BT.709 / BT.2020 codes (1, 6, 14, 15) name a camera's encoding, not a
#: display's: still images tagged so are shown with the sRGB curve (as browsers do), and get it here.
TRANSFER_CURVES = {
    **dict.fromkeys((2, 13, 1, 6, 14, 15), SRGB_CURVE),  # 2: unspecified
    4: (2.2,),
    5: (2.8,),
    8: (1.0,),  # linear
}
#: Transfer codes of HDR signals (PQ, HLG), which no ICC tone curve of an SDR display profile describes.
HDR_TRANSFERS = {16: "PQ (HDR)", 18: "HLG (HDR)"}
#: Names of H.273 ColourPrimaries codes, for messages.
PRIMARIES_NAMES = {1: "BT.709 / sRGB", 9: "BT.2020", 11: "DCI-P3", 12: "Display P3"}
#: BT.709 / sRGB chromaticities (red, green, blue, white), the space an untagged image is shown in.
SRGB_CHROMATICITIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), (0.3127, 0.3290))
#: Adobe RGB (1998) (Adobe's specification, 2005): primaries, D65 white and the decoding gamma 563/256.
ADOBE_RGB_CHROMATICITIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06), (0.3127, 0.3290))
ADOBE_RGB_CURVE = (563 / 256,)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _mluc(text: str) -> bytes:
    body = text.encode("utf-16-be")
    return b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(body), 28) + body


def _xyz(values: Sequence[float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in values)


def _para(params: Sequence[float]) -> bytes:
    return b"para" + bytes(4) + struct.pack(">HH", 0 if len(params) == 1 else 3, 0) + b"".join(_s15(v) for v in params)


def _xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(primaries: Sequence[tuple[float, float]], white: tuple[float, float]) -> np.ndarray:
    """The 3x3 matrix taking linear RGB of these primaries (red, green, blue chromaticities x, y) to XYZ, scaled
    so that RGB (1, 1, 1) is the white point with Y = 1."""
    p = np.stack([_xy_to_xyz(*c) for c in primaries], 1)
    return p * np.linalg.solve(p, _xy_to_xyz(*white))


def bradford_to_d50(white: tuple[float, float]) -> np.ndarray:
    """The 3x3 chromatic adaptation of XYZ from white point `white` (x, y) to D50 (Bradford)."""
    source, target = BRADFORD @ _xy_to_xyz(*white), BRADFORD @ np.asarray(D50)
    return np.linalg.inv(BRADFORD) @ np.diag(target / source) @ BRADFORD


def rgb_profile(primaries: Sequence[tuple[float, float]], white: tuple[float, float], curve: Sequence[float],
                name: str) -> bytes:
    """An ICC v4 RGB display profile (bytes) of these primaries and white point (chromaticities x, y in (0, 1))
    and decoding curve (`TRANSFER_CURVES` form, the same for the three channels), described as `name`."""
    chad = bradford_to_d50(white)
    colorants = chad @ rgb_to_xyz(primaries, white)
    trc = _para(curve)
    tags = [(b"desc", _mluc(name)), (b"cprt", _mluc("No copyright, use freely")), (b"wtpt", _xyz(D50)),
            (b"chad", b"sf32" + bytes(4) + b"".join(_s15(v) for v in chad.ravel())),
            (b"rXYZ", _xyz(colorants[:, 0])), (b"gXYZ", _xyz(colorants[:, 1])), (b"bXYZ", _xyz(colorants[:, 2])),
            (b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc)]
    offset, data, entries, shared = 128 + 4 + 12 * len(tags), b"", [], {}
    for signature, body in tags:
        if body not in shared:  # the three curves are one element (ICC.1 §7.3.5 allows shared data)
            shared[body] = offset
            data += body + bytes(-len(body) % 4)
            offset += len(body) + (-len(body) % 4)
        entries.append(signature + struct.pack(">II", shared[body], len(body)))
    table = struct.pack(">I", len(tags)) + b"".join(entries)
    header = (struct.pack(">I", 128 + len(table) + len(data)) + bytes(4) + struct.pack(">I", 0x04300000)
              + b"mntrRGB XYZ " + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + bytes(28)
              + b"".join(_s15(v) for v in D50) + bytes(48))
    return header + table + data


@functools.cache
def adobe_rgb_profile() -> bytes:
    """An ICC v4 profile of Adobe RGB (1998) (ADOBE_RGB_CHROMATICITIES, ADOBE_RGB_CURVE): the space a camera set to
    Adobe RGB stores without a profile, naming it in its EXIF instead (`images.exif_colour`)."""
    xy = ADOBE_RGB_CHROMATICITIES
    return rgb_profile(xy[:3], xy[3], ADOBE_RGB_CURVE, "Adobe RGB (1998) compatible (from the EXIF colour space)")


def nclx_profile(nclx: dict) -> tuple[bytes | None, str | None]:
    """For a HEIF's nclx colour tags (pillow-heif's dict: color_primaries, transfer_characteristics and the
    primaries' and white's chromaticities): (an equivalent ICC profile, or None where untagged RGB already means
    it, sRGB / BT.709 primaries with an SDR curve, or where no ICC curve can: PQ, HLG, unknown curves; a name of
    the space for messages, None for sRGB)."""
    primaries = nclx.get("color_primaries")
    transfer = nclx.get("transfer_characteristics")
    keys = ("red", "green", "blue", "white")
    try:
        xy = tuple((float(nclx[f"color_primary_{k}_x"]), float(nclx[f"color_primary_{k}_y"])) for k in keys)
        rgb_to_xyz(xy[:3], xy[3])  # unspecified primaries (code 2) come as zeros: no space, shown as sRGB
        usable = primaries != 2 and all(0 < x < 1 and 0 < y < 1 for x, y in xy)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        usable = False
    name = PRIMARIES_NAMES.get(primaries, f"primaries {primaries}")
    if not isinstance(transfer, int):  # incomplete tags: nothing said
        return None, None
    if transfer in HDR_TRANSFERS:
        return None, f"{name if usable else 'unspecified primaries'} / {HDR_TRANSFERS[transfer]}"
    curve = TRANSFER_CURVES.get(transfer)
    if curve is None:
        return None, f"{name if usable else 'unspecified primaries'} / transfer {transfer}"
    if not usable or (np.allclose(xy, SRGB_CHROMATICITIES, atol=2e-3) and curve == SRGB_CURVE):
        return None, None  # untagged RGB is shown as this
    return rgb_profile(xy[:3], xy[3], curve, f"{name} (from the HEIF's nclx tags)"), name
