"""Images in and out: the one place where files, bytes and arrays become (1, C, H, W) tensors in [-1, 1]
and back.

Decoding policy (`read_image`), stated once and tested in tests/test_images.py:

- Sources: a path, raw bytes, a binary file object, or "-" for standard input. Formats: whatever Pillow
  reads (PNG, JPEG, BMP, TIFF, WebP, GIF, AVIF, ...) and HEIC (pillow-heif); 16-bit PNGs go through pypng, TIFFs
  through tifffile and HEICs of 10 or 12 bits through pillow-heif's own arrays, because Pillow reduces them to 8
  bits. Multi-frame files and multi-page TIFFs: the first frame (with
  a note). EXIF orientation is applied. An embedded ICC colour profile is kept in `DecodedImage.icc_profile`
  (pixel values are not converted: the model works on the file's own RGB values).
- Bit depth: every integer sample is divided by its maximum (255 for 8-bit, 1023 for 10-bit, 65535 for 16-bit,
  1 for 1-bit), so a 16-bit image keeps all 16 bits of precision in [0, 1]; float TIFF/`F` images are taken as [0, 1]
  and clipped.
- Colour, driven by the model's channel count `channels`:
  channels = 3: greyscale is replicated to 3 channels; palette images become RGB; CMYK/YCbCr/LAB become RGB.
  channels = 1: colour is reduced to luminance with the ITU-R BT.601 weights (0.299, 0.587, 0.114), in float.
  `DecodedImage.grey` records a greyscale source so that outputs can be written back as greyscale.
- Alpha (RGBA, LA, palette with transparency): composited on white (what a viewer shows on a white page) and
  reported in `DecodedImage.notes`, the alpha kept in `DecodedImage.alpha` (`encode_image(..., alpha=)` writes it
  back); a fully opaque alpha channel is dropped silently.

Writing (`save_image`): values are clipped to [-1, 1] and rounded to 8 bits, or with `bit_depth=16` to 16 bits
for PNG (pypng) and TIFF (tifffile), 10 for HEIC (`DEEP_BITS`); an ICC profile is embedded when given (PNG,
JPEG, TIFF, WebP, AVIF, HEIC; other formats have no place for it); the format follows the suffix (PNG by
default, also for "-" = standard output); NaN/inf are refused; with `alpha` (PNG, WebP, TIFF, AVIF, HEIC) the
colour is un-composited from white (`uncomposite`) and written with its alpha channel. Files are written
atomically: a temporary file in the same folder, fsync, then published under the final name: with
`overwrite=False` by a hard link that fails if the name exists (no-clobber: two writers never replace each
other's file), else by `os.replace`. Any exception (KeyboardInterrupt and the CLI's signal exceptions included)
deletes the temporary file, so no partial or stray file is left.
"""

from __future__ import annotations

import errno
import functools
import importlib
import io
import math
import os
import re
import struct
import sys
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ncvsd_cli.errors import one_line

if TYPE_CHECKING:  # pragma: no cover
    import PIL.Image
    import torch

ImageSource = str | os.PathLike | bytes | IO[bytes]
#: BT.601 luma weights used for colour -> greyscale.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: Suffixes of ISO-BMFF images (AVIF through Pillow, HEIC / HEIF through pillow-heif: `open_plugins`).
HEIF_SUFFIXES = (".avif", ".heic", ".heif", ".hif")
#: File suffixes read as images (folders of inputs, datasets).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm",
                  *HEIF_SUFFIXES)
#: The note of a source whose transparency was composited on white.
ALPHA_NOTE = "alpha channel composited on white"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")


class ImageError(ValueError):
    """An input is not a readable image (unknown format, truncated, too large); the message is one line."""


@dataclass
class DecodedImage:
    """A decoded image and what the policy did to it.

    tensor: (1, C, H, W) float32 in [-1, 1]. mode: the source layout, e.g. "RGB", "L", "RGBA", "P", "RGB;16".
    bit_depth: bits per source sample (1, 8, 16 or 32). grey: the source had one colour channel. notes:
    conversions worth telling the user about (alpha composited, first frame of N, ...). icc_profile: the
    embedded ICC colour profile (bytes) or None. jpeg_sigma: the noise scale of a lossy file's coding
    (`compression_sigma`: a JPEG's quantisation steps, a lossy WebP, AVIF, HEIC (0), a palette), else None (lossless).
    jpeg_coding: a JPEG's quantisation tables and chroma subsampling (`jpeg_coding`), else None. alpha: (1, 1, H, W)
    float32 opacity in [0, 1] of a source with transparency (the tensor holds its colour composited on white), else
    None. exif: the EXIF its restorations keep (`exif_kept`: camera, dates, exposure, GPS), else None. xmp: the XMP
    packet they keep (`xmp_kept`: title, caption, keywords, rating, creator, rights, place), else None. dpi: the
    (horizontal, vertical) pixels per inch the file states (`image_dpi`; a scan's print size), else None.
    lossless_webp: the file is a lossless WebP (its WebP outputs are written lossless too: `encode_image`).
    """

    tensor: torch.Tensor
    mode: str
    bit_depth: int
    grey: bool
    notes: list[str] = field(default_factory=list)
    icc_profile: bytes | None = None
    jpeg_sigma: float | None = None
    jpeg_coding: JpegCoding | None = None
    alpha: torch.Tensor | None = None
    exif: bytes | None = field(default=None, repr=False)
    xmp: bytes | None = field(default=None, repr=False)
    dpi: tuple[float, float] | None = None
    lossless_webp: bool = False

    @property
    def output_bit_depth(self) -> int:
        """16 for sources with more than 8 bits per sample (16-bit, float), else 8: what outputs keep."""
        return 16 if self.bit_depth > 8 else 8

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return int(self.tensor.shape[-2]), int(self.tensor.shape[-1])


# ----------------------------------------------------------------------------------------------- value ranges
def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]: (x + 1) / 2 (no clipping)."""
    return (x + 1) / 2


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]: 2 x - 1 (no clipping)."""
    return x * 2 - 1


#: An image whose values reach beyond this magnitude is not on the [-1, 1] scale (noisy measurements pass
#: [-1, 1] by a few sigma_y; a [0, 255] image does not fit).
RANGE_LIMIT = 4.0


def spans_unit_range(x: torch.Tensor) -> bool:
    """Whether an image tensor looks like a [0, 1] image given where [-1, 1] is expected: its 0.1 % and 99.9 %
    quantiles (noise may stray) span more than half of [0, 1] from near 0 (a photo's dark pixels). A bright
    [-1, 1] crop, all above mid-grey, is rarely that; one that is passes unseen (a heuristic, for warnings)."""
    import torch

    v = x.detach().flatten().float()[:: max(1, x.numel() // 1_000_000)]
    low, high = (float(q) for q in torch.quantile(v, torch.tensor([0.001, 0.999])))
    return -0.1 <= low < 0.15 and 0.5 < high - low and high <= 1.1


def as_image_tensor(x: Any, what: str = "input", check_range: bool = True) -> torch.Tensor:
    """x as one float32 image (1, C, H, W) on the [-1, 1] scale (C = 1 or 3; a (C, H, W) tensor gains the batch
    axis; float16/64 are cast). ValueError naming the problem otherwise: not a torch tensor (files:
    `load_image`), a batch, another channel count, integer pixels (8-bit: `from_unit(t / 255)`), NaN/inf, or,
    with `check_range` (inputs), values beyond +-RANGE_LIMIT (a [0, 255] image)."""
    import torch

    from operators.base import all_finite

    if not isinstance(x, torch.Tensor):
        raise ValueError(  # noqa: TRY004 (callers catch ValueError for every bad input)
            f"{what}: expected a torch tensor (1, C, H, W) in [-1, 1], got {type(x).__name__} (read a file with "
            "images.load_image; an (H, W, 3) uint8 array a with from_unit(torch.from_numpy(a).permute(2, 0, 1)[None] "
            "/ 255))")
    t = x[None] if x.dim() == 3 else x
    if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3):
        hint = (" (one image at a time)" if t.dim() == 4 and t.shape[0] > 1 else
                " (RGBA: x[:, :3] drops the alpha)" if t.dim() == 4 and t.shape[1] == 4 else
                " (an (H, W, C) array: x.permute(2, 0, 1))" if x.dim() == 3 and x.shape[-1] in (1, 3, 4) else "")
        raise ValueError(f"{what}: expected one image (1, C, H, W) or (C, H, W) with C = 1 or 3, got shape "
                         f"{tuple(x.shape)}{hint}")
    if t.numel() == 0:
        raise ValueError(f"{what}: the image is empty (shape {tuple(x.shape)})")
    if not t.is_floating_point():
        raise ValueError(f"{what}: expected float values in [-1, 1], got {t.dtype} (8-bit pixels p: "
                         "from_unit(p / 255))")
    t = t.detach().float()  # a tensor that requires grad: restoring it needs no graph
    if not all_finite(t):
        raise ValueError(f"{what}: the image contains NaN or inf values")
    if check_range and float(t.abs().max()) > RANGE_LIMIT:
        raise ValueError(f"{what}: values reach {float(t.abs().max()):.4g}, far outside [-1, 1] (a [0, 255] image "
                         "p: from_unit(p / 255); [0, 1]: from_unit(p))")
    return t


def is_listed_image(name: str, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> bool:
    """Whether a file a folder or zip lists (`name`: its relative path, "/"-separated) is one of its images: an
    image suffix, and no part of the path hidden (".x": notebook checkpoint copies, "._x" macOS resource forks)
    or "__MACOSX" (the resource-fork folder of zips made on a Mac)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]  # "./a.png" as some zip tools write it
    return (name.lower().endswith(tuple(suffixes)) and "__MACOSX" not in parts
            and not any(p.startswith(".") for p in parts))


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The centre of x (..., H, W), at most `size` px (>= 1) on each side (a view; smaller sides kept whole)."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top:top + size, left:left + size]


# ------------------------------------------------------------------------------------------------- decoding
def read_source_bytes(source: ImageSource) -> tuple[bytes, str]:
    """(bytes, display name) of a path, the string "-" (stdin; a Path("-") is a file named "-", as `./-` on the
    command line), bytes or a binary stream; ImageError if unreadable."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and source == "-":
            return sys.stdin.buffer.read(), "<stdin>"
        path = Path(source)
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise ImageError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ImageError(f"{path}: is a directory, not an image") from None
        except OSError as exc:
            raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if hasattr(source, "read"):
        return source.read(), getattr(source, "name", "<stream>")
    raise TypeError(f"an image source must be a path, bytes or a binary stream, got {type(source).__name__}")


class OutputExistsError(FileExistsError):
    """A no-clobber write found its target already there (another process wrote it first); `target` names it."""

    def __init__(self, message: str, target: str | os.PathLike = "") -> None:
        super().__init__(message)
        self.target = str(target)


def _check_pixels(name: str, h: int, w: int, max_pixels: int | None, orientation: Any = None) -> None:
    """ImageError for an empty image or one over `max_pixels`, named by its size as shown (an EXIF `orientation`
    that turns it swaps the stored width and height: restore's messages give the shown size)."""
    from operators.params import TURNED_ORIENTATIONS

    if orientation in TURNED_ORIENTATIONS:
        h, w = w, h
    if h < 1 or w < 1:
        raise ImageError(f"{name}: empty image ({w}x{h})")
    if max_pixels is not None and h * w > max_pixels:
        raise ImageError(f"{name}: {w}x{h} = {h * w} pixels exceeds --max-pixels {max_pixels}")


def _shown_size(im: Any) -> tuple[int, int]:
    """(H, W) of an opened Pillow image as shown (`operators.params.displayed_size`: no pixel decoded, a PNG's
    included); the stored size where its EXIF does not read."""
    from operators.params import displayed_size

    try:
        return displayed_size(im)
    except Exception:  # noqa: BLE001 (damaged EXIF: exif_transpose decides later; the size check needs no more)
        return im.height, im.width


def _decode_png16(data: bytes, name: str, max_pixels: int | None) -> tuple[np.ndarray, str, int]:
    import png  # pypng: Pillow would reduce 16-bit colour to 8 bits

    try:
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR
        _check_pixels(name, h, w, max_pixels, _png_orientation(data))
        w, h, rows, info = png.Reader(bytes=data).asDirect()  # a colour key (tRNS) becomes an alpha plane
        planes = int(info["planes"])
        arr = np.asarray(list(rows), dtype=np.float64).reshape(h, w, planes) / float(2 ** info["bitdepth"] - 1)
    except ImageError:
        raise
    except Exception as exc:  # pypng raises FormatError/ChunkError, zlib.error, ValueError on damaged files
        raise ImageError(
            f"{name}: cannot decode 16-bit PNG (truncated or corrupt): {one_line(exc, 200)}"
        ) from None
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[planes] + ";16"
    return arr, mode, 16


def _tiff_hw(page: Any) -> tuple[int, int]:
    """(H, W) of a tifffile page, from its axes (planar "SYX" or contiguous "YXS"; guessing from the shape took
    a planar image 4 px wide for a 4-channel one)."""
    axes, shape = str(getattr(page, "axes", "")), tuple(page.shape)
    if "Y" in axes and "X" in axes and len(axes) == len(shape):
        return int(shape[axes.index("Y")]), int(shape[axes.index("X")])
    if len(shape) >= 2 and (len(shape) == 2 or shape[-1] <= 4):
        return int(shape[0]), int(shape[1])
    return int(shape[-2]), int(shape[-1])


def _tiff_bits(data: bytes) -> int:
    """The bits per sample of a TIFF's first page, from its header (0 where it cannot be read)."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return int(tif.pages[0].bitspersample)
    except Exception:  # noqa: BLE001 (a header tifffile cannot parse: no claim made)
        return 0


def _decode_tiff(data: bytes, name: str, max_pixels: int | None,
                 notes: list[str] | None = None) -> tuple[np.ndarray, str, int]:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        h, w = _tiff_hw(page)
        tag = page.tags.get(274)  # EXIF orientation, applied below as Pillow's exif_transpose would
        orientation = tag.value if tag is not None else None
        _check_pixels(name, h, w, max_pixels, orientation)
        photometric = int(page.photometric)
        if photometric not in TIFF_PLAIN_PHOTOMETRIC:  # CMYK, palette, YCbCr, Lab, ...: Pillow converts them
            raise _ColourModel(f"its colour model ({page.photometric.name}, {page.bitspersample} bits) is not read "
                               "here: convert it to RGB")
        arr = page.asarray()
        extras = tuple(int(e) for e in page.extrasamples or ())  # 0 unspecified, 1 associated, 2 straight alpha
        planar = str(page.axes).startswith("S") and arr.ndim == 3  # (C, H, W)
        pages = len(tif.pages)
        if pages > 1 and notes is not None:
            notes.append(f"first of {pages} TIFF pages used")
    if planar:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[..., None]
    colour = 3 if photometric == TIFF_RGB else 1
    if photometric != TIFF_RGB and extras[:2] == (0, 0) and arr.ndim == 3:  # grey + 2 unspecified: read as RGB
        colour, extras = 3, extras[2:]  # (numpy writers' colour arrays; read so before extra channels were read)
    alpha = [colour + i for i, e in enumerate(extras) if e in (1, 2)][:1]  # the first alpha; a mask, depth: dropped
    if arr.ndim == 3 and arr.shape[-1] == colour + len(extras) and extras:
        if notes is not None and len(extras) > len(alpha):
            notes.append(f"{len(extras) - len(alpha)} extra TIFF channel(s) that are not alpha left out")
        arr = arr[..., [*range(colour), *alpha]]
    associated = bool(alpha) and extras[alpha[0] - colour] == 1  # premultiplied (associated) alpha
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ImageError(f"{name}: unsupported TIFF layout {arr.shape}")
    arr = _oriented(arr, orientation)
    if np.issubdtype(arr.dtype, np.integer):
        bits = arr.dtype.itemsize * 8
        arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    elif arr.dtype == bool:
        bits, arr = 1, arr.astype(np.float64)
    else:
        bits, arr = arr.dtype.itemsize * 8, _float_to_unit(arr.astype(np.float64), name, notes)
    if photometric == TIFF_MINISWHITE:  # 0 is white (on the [0, 1] scale: a float file's own range read first)
        arr[..., 0] = 1.0 - arr[..., 0]
    if associated and arr.shape[-1] in (2, 4):  # straight colour, as the rest of the policy has it
        arr = _straight_alpha(arr)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]] + (f";{bits}" if bits != 8 else "")
    return arr, mode, bits


class _ColourModel(ValueError):
    """A TIFF in a colour model tifffile's samples do not give as grey or RGB (`_decode_tiff`): Pillow converts it."""


#: TIFF photometric interpretations read by tifffile here (MINISWHITE, MINISBLACK, RGB); others go to Pillow.
TIFF_MINISWHITE, TIFF_RGB = 0, 2
TIFF_PLAIN_PHOTOMETRIC = (TIFF_MINISWHITE, 1, TIFF_RGB)


def _straight_alpha(arr: np.ndarray) -> np.ndarray:
    """(H, W, C + 1) samples on [0, 1] with premultiplied (associated) alpha last, as straight colour: c / a,
    clipped to [0, 1] (kept as it is where a is 0: invisible)."""
    alpha = arr[..., -1:]
    return np.concatenate([np.clip(arr[..., :-1] / np.where(alpha > 0, alpha, 1.0), 0.0, 1.0), alpha], axis=-1)


def _png_orientation(data: bytes) -> int | None:
    """The EXIF orientation of a PNG decoded by pypng (16-bit), as `image_size` reads it
    (`operators.params.png_orientation`); None when absent or unreadable."""
    from PIL import Image

    from operators.params import png_orientation

    try:
        with Image.open(io.BytesIO(data)) as im:
            return png_orientation(im)
    except Exception:  # the pixels were decoded already; an unreadable orientation is none
        return None


def _oriented(arr: np.ndarray, orientation: int | None) -> np.ndarray:
    """(H, W, C) samples turned as they are shown for EXIF `orientation` (as Pillow's ImageOps.exif_transpose):
    2 mirrored, 3 turned 180°, 4 flipped, 5 transposed, 6 turned 90° clockwise, 7 transversed, 8 anticlockwise."""
    return {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
            8: lambda a: np.rot90(a, 1)}.get(orientation, lambda a: a)(arr)


#: A float image whose 99.9th percentile is at most this is on a 0-1 scale with highlights beyond 1 (an HDR or
#: linear export: x2 and x4 exposures of a photo read 1.95 and 3.76 and came out black as 0-255 images); above it,
#: on a 0-255 (or 0-65535) scale. (A 0-255 image this dark, under 3 % of white, is read as overexposed instead.)
HDR_TOP = 8.0
#: Share of a 0-1 float image's samples above 1 from which their clipping is noted.
HDR_NOTE_SHARE = 0.001


def _float_to_unit(arr: np.ndarray, name: str, notes: list[str] | None) -> np.ndarray:
    """A float image's samples on [0, 1]: as they are on a 0-1 scale, highlights beyond 1 clipped to white (with a
    note naming their share from HDR_NOTE_SHARE), else divided by 255 or 65535 when written on that scale (with a
    note). The scale is read from the 99.9th percentile (HDR_TOP: up to it, 0-1), so a few bright pixels do not
    change it. ImageError for NaN / inf or values beyond those scales."""
    if not np.isfinite(arr).all():
        raise ImageError(f"{name}: a float image with NaN or inf values; save it as an 8- or 16-bit image")
    top = float(np.percentile(arr, 99.9)) if arr.size else 0.0
    scale = 1.0 if top <= HDR_TOP else 255.0 if top <= 1.01 * 255 else 65535.0 if top <= 1.01 * 65535 else None
    if scale is None:
        raise ImageError(f"{name}: a float image with values up to {top:g} (99.9th percentile): not on a 0-1, "
                         "0-255 or 0-65535 scale; save it as an 8- or 16-bit image")
    over = float((arr > 1.0).mean()) if scale == 1 and arr.size else 0.0
    if notes is not None and scale > 1:
        notes.append(f"float image read on a 0-{scale:.0f} scale (99.9th percentile {top:g})")
    elif notes is not None and over >= HDR_NOTE_SHARE:
        notes.append(f"float image on a 0-1 scale with {over:.1%} of its samples above 1 (up to {arr.max():.3g}: HDR "
                     "highlights or a linear exposure), clipped to white: tone-map or scale it into 0-1 first to "
                     "keep them (the restoration reads the values as sRGB-encoded)")
    return np.clip(arr / scale, 0.0, 1.0)


@functools.cache
def heif_module() -> Any:
    """The HEIF library: pillow-heif (a dependency where it has wheels; reads and writes HEIC), else pi-heif (its
    discontinued decode-only twin, same API), else None (`unreadable_format` then says what to install)."""
    for name in ("pillow_heif", "pi_heif"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


@functools.cache
def open_plugins() -> bool:
    """Register the codecs Pillow lacks, where installed: HEIC / HEIF (iPhones' photos) through `heif_module`.
    Idempotent; called before Pillow opens an input or names an output's format. Returns whether a HEIF decoder
    is registered."""
    heif = heif_module()
    if heif is None:
        return False
    heif.register_heif_opener()
    return True


def _deep_heif(data: bytes, im: Any) -> tuple[np.ndarray, str, int] | None:
    """A HEIF image of more than 8 bits per sample (cameras' 10-bit .hif, HDR phone photos) decoded at its own
    depth, as (H, W, C) samples on [0, 1], its mode (e.g. "RGB;10") and bits: Pillow's plugin gives 8 bits. None
    for any other image `im` (opened by Pillow from `data`, not yet decoded nor turned by its EXIF orientation,
    which is applied here as Pillow would), or if the two decodings disagree on the size."""
    bits = int(im.info.get("bit_depth") or 8) if im.format == "HEIF" else 8
    if bits <= 8 or heif_module() is None:
        return None
    heif = heif_module().open_heif(io.BytesIO(data), convert_hdr_to_8bit=False, hdr_to_16bit=False)
    arr = np.asarray(heif).astype(np.float64) / (2**bits - 1)
    arr = arr[..., None] if arr.ndim == 2 else arr
    if arr.shape[:2] != (im.height, im.width):
        return None
    if getattr(heif, "premultiplied_alpha", False):  # mode "RGBa;10": colour times alpha
        arr = _straight_alpha(arr)
    # libheif has applied the file's rotation and mirroring, and the plugin reports EXIF orientation 1 then;
    # another orientation is applied as Pillow's exif_transpose would
    return _oriented(arr, im.getexif().get(0x0112)), str(heif.mode), bits


#: The start of the note on colour tags the outputs do not carry (`heif_colour`; the CLI says it as a warning).
UNTAGGED_COLOUR = "colour tagged"


def exif_colour(data: bytes) -> tuple[bytes | None, str | None]:
    """For a file without an ICC profile whose EXIF names Adobe RGB, as cameras set to it do (DCF 2.0: ColorSpace
    0xFFFF "uncalibrated" with the interoperability index "R03"; some write ColorSpace 2): (the Adobe RGB profile,
    `icc.adobe_rgb_profile`; the note saying so). (None, None) otherwise: sRGB, a profile, no or unreadable EXIF."""
    from ncvsd_cli.icc import adobe_rgb_profile

    def named(im: Any) -> bool:
        exif = im.getexif()
        space, index = exif.get_ifd(0x8769).get(0xA001), exif.get_ifd(0xA005).get(0x0001)
        return space == 2 or (space == 0xFFFF and str(index).strip("\x00 ") == "R03")

    if not _from_header(data, named) or icc_profile(data):
        return None, None
    return adobe_rgb_profile(), ("its Adobe RGB colour (named by its EXIF, no ICC profile) is carried to the outputs "
                                 "that hold a profile as an equivalent ICC profile")


def heif_colour(data: bytes) -> tuple[bytes | None, str | None]:
    """For a HEIF file without an ICC profile whose nclx colour tags name another space than sRGB: (the
    equivalent ICC profile, `icc.nclx_profile`, or None where none can describe it: HDR PQ / HLG, unknown curves;
    the note saying which). (None, None) for sRGB, a file with an ICC profile, or tags that cannot be read."""
    from PIL import Image

    from ncvsd_cli.icc import nclx_profile

    try:
        open_plugins()
        with Image.open(io.BytesIO(data)) as im:
            info = dict(im.info)
        nclx = info.get("nclx_profile")
        if not isinstance(nclx, dict) or info.get("icc_profile"):
            return None, None
        profile, name = nclx_profile(nclx)
    except Exception:  # noqa: BLE001 (decoded already; colour tags are optional)
        return None, None
    if name is None:
        return None, None
    if profile is None:
        return None, (f"{UNTAGGED_COLOUR} {name} (HEIF nclx, no ICC profile): restored as stored and written "
                      "untagged, so viewers show it as sRGB (flatter, duller)")
    return profile, (f"its {name} colour (HEIF nclx tags, no ICC profile) is carried to the outputs that hold a "
                     "profile as an equivalent ICC profile")


#: ISO-BMFF brands (the `ftyp` box's major and compatible brands) of HEIF images: HEVC-coded ones and the
#: generic image / sequence brands (an AVIF lists "avif" besides them, checked first).
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}


def heif_kind(data: bytes) -> str | None:
    """"avif" or "heic" for an ISO-BMFF image file (an `ftyp` box first, read by its major and compatible brands;
    AVIF's "avif" / "avis" first, as AVIF files also list the generic "mif1"), else None (videos: "isom", "qt  ")."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    end = min(int.from_bytes(data[:4], "big"), len(data), 256)
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}
    return "avif" if brands & {b"avif", b"avis"} else "heic" if brands & _HEIC_BRANDS else None


def unreadable_format(data: bytes, name: str) -> ImageError:
    """The error for a file Pillow does not recognise: for a HEIC or AVIF file what to install when its decoder is
    missing, else that the file cannot be decoded; otherwise "not an image"."""
    from PIL import features

    kind = heif_kind(data)
    if kind == "heic" and not open_plugins():
        return ImageError(f"{name}: a HEIC / HEIF image (iPhones' photos are): reading it needs pillow-heif (pip "
                          "install pillow-heif), or export it as JPEG")
    if kind == "avif" and not features.check("avif"):
        return ImageError(f"{name}: an AVIF image: reading it needs a Pillow with AVIF (recent Pillow wheels have "
                          "it: pip install -U pillow), or export it as PNG / JPEG")
    if kind:
        return ImageError(f"{name}: cannot decode this {kind.upper()} file (truncated, damaged, or an image sequence "
                          "or codec the decoder lacks)")
    if name == "<stdin>" and _looks_like_names(data):  # `cat list.txt | ncvsd restore -`
        return ImageError(f"{name}: holds text, not an image (a list of file names? '-' reads one image from "
                          "standard input; give the names as arguments, e.g. xargs ncvsd restore -t sr4 -o out/ < "
                          "list.txt)")
    return ImageError(f"{name}: not an image (unrecognised format)")


def _looks_like_names(data: bytes) -> bool:
    """Whether `data` is UTF-8 text of printable lines, one at least an image file's name (a list of names)."""
    try:
        lines = [line.strip() for line in data[:65536].decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        return False
    return all(len(line) < 4096 and line.isprintable() for line in lines) and any(
        line.lower().endswith(IMAGE_SUFFIXES) for line in lines)


def _decode_pil(
    data: bytes, name: str, max_pixels: int | None, notes: list[str]
) -> tuple[np.ndarray, str, int]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    open_plugins()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            _check_pixels(name, *_shown_size(im), max_pixels)
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                notes.append(f"first of {frames} frames used")
            deep = _deep_heif(data, im)  # (before Pillow decodes it at 8 bits)
            if deep is None:
                im.load()
                im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise unreadable_format(data, name) from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: {one_line(exc, 200)}") from None
    except Exception as exc:  # OSError "image file is truncated", SyntaxError "broken PNG file", ...
        raise ImageError(f"{name}: cannot decode image (truncated or corrupt): {one_line(exc, 200)}") from None
    if deep is not None:
        return deep
    mode = im.mode
    grey = "L" if mode in ("P", "PA") and _grey_palette(im) else "RGB"  # a grey photo a PNG optimiser made a palette
    if mode == "P" and "transparency" in im.info or mode == "PA":
        arr, bits = np.asarray(im.convert(grey.replace("RGB", "RGBA").replace("L", "LA"))), 8
    elif mode == "P":
        arr, bits = np.asarray(im.convert(grey)), 8
    elif mode in ("1", "L", "RGB") and "transparency" in im.info:  # a PNG's colour key (tRNS): that colour is clear
        arr, bits = np.asarray(im.convert("RGBA" if mode == "RGB" else "LA")), 8
    elif mode in ("1", "L", "LA", "RGB", "RGBA"):
        arr, bits = np.asarray(im), 1 if mode == "1" else 8
    elif mode in ("La", "RGBa"):  # premultiplied alpha
        arr, bits = np.asarray(im.convert(mode.replace("a", "A"))), 8
    elif mode.startswith("I;16"):
        arr, bits = np.asarray(im).astype(np.float64), 16
        return arr[..., None] / 65535.0, mode, bits
    elif mode == "I":
        arr = np.asarray(im).astype(np.float64)
        bits = 16 if arr.max(initial=0) <= 65535 else 32
        return np.clip(arr[..., None] / float(2**bits - 1), 0.0, 1.0), mode, bits
    elif mode == "F":
        return _float_to_unit(np.asarray(im, dtype=np.float64)[..., None], name, notes), mode, 32
    else:  # CMYK, YCbCr, LAB, HSV
        notes.append(f"{mode} converted to RGB")
        arr, bits = np.asarray(im.convert("RGB")), 8
    if arr.ndim == 2:
        arr = arr[..., None]
    return (arr.astype(np.float64) if bits == 1 else arr), mode, bits  # 8 bits: uint8, read_image scales it


def _grey_palette(im: PIL.Image.Image) -> bool:
    """Whether every palette colour that palette image `im` uses is grey (R = G = B)."""
    palette = np.asarray(im.getpalette("RGB") or [], dtype=np.int32).reshape(-1, 3)
    used = np.unique(np.asarray(im.getchannel(0) if im.mode == "PA" else im))
    used = used[used < len(palette)]
    return bool(len(used)) and bool((palette[used] == palette[used, :1]).all())


def read_image(
    source: ImageSource, channels: int = 3, *, max_pixels: int | None = None, name: str | None = None
) -> DecodedImage:
    """Decode `source` into a (1, channels, H, W) float32 tensor in [-1, 1] under the module's policy.

    channels: 1 or 3 (the model's channel count). max_pixels: refuse images with more than H*W pixels, checked
    from the header before the pixels are decoded. name: used in messages (default: the path).
    Raises ImageError (a ValueError) with a one-line message naming the source.
    """
    import torch

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    data, default_name = read_source_bytes(source)
    name = name or default_name
    if not data:
        raise ImageError(f"{name}: empty input")
    notes: list[str] = []
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 26 and data[24] == 16:
        arr, mode, bits = _decode_png16(data, name, max_pixels)
        arr = _oriented(arr, _png_orientation(data))  # (Pillow's exif_transpose does it on its own path)
    elif data[:4] in _TIFF_SIGNATURES:
        try:
            arr, mode, bits = _decode_tiff(data, name, max_pixels, notes)
        except ImageError:
            raise
        except Exception as exc:  # compression tifffile cannot read without imagecodecs: let Pillow try
            notes.clear()
            codec = ("; tifffile reads this file's compression with the imagecodecs package (pip install imagecodecs)"
                     if "imagecodecs" in str(exc) else "")
            try:
                arr, mode, bits = _decode_pil(data, name, max_pixels, notes)
            except ImageError as err:
                raise ImageError(f"{name}: {exc}" if isinstance(exc, _ColourModel) else f"{err}{codec}") from None
            stored = _tiff_bits(data)
            if stored > bits:  # Pillow reads a 16-bit or float colour TIFF (CMYK too) at 8 bits
                notes.append(f"read at {bits} bits of its {stored}{codec}")
    else:
        arr, mode, bits = _decode_pil(data, name, max_pixels, notes)
        deep = re.match(rb"P[36]\s+(?:#[^\n]*\s+)*\d+\s+(?:#[^\n]*\s+)*\d+\s+(?:#[^\n]*\s+)*(\d+)", data[:512])
        if deep and int(deep[1]) > 255 and bits == 8:  # Pillow reads a 16-bit colour PPM at 8 bits (a PGM at 16)
            notes.append("a 16-bit colour PPM, read at 8 bits (Pillow's reader): save it as a 16-bit PNG or TIFF to "
                         "keep its depth")
    n = arr.shape[-1]
    grey = n in (1, 2)
    kept_alpha = None
    if arr.dtype == np.uint8 and n in (1, 3) and (channels == 3 or n == 1):  # an opaque 8-bit picture (most photos)
        with warnings.catch_warnings():  # Pillow's read-only array: only read (the float copy is written)
            warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
            pixels = torch.from_numpy(arr)
        unit = pixels.permute(2, 0, 1).contiguous().float().div_(255.0)[None]  # in float32: value for value the
        # float64 path's (all 256 levels checked), in a fraction of its time and memory (a 108-MP JPEG: 23 s -> 4 s)
        tensor = unit.expand(-1, channels, -1, -1).contiguous() if channels != n else unit
        return _decoded(data, tensor, mode, bits, grey, notes, kept_alpha)
    if arr.dtype == np.uint8:
        arr = arr / 255.0
    if n in (2, 4):  # composite on white: c * a + 1 * (1 - a)
        colour, alpha = arr[..., :-1], arr[..., -1:]
        if (alpha < 1.0).any():
            notes.append(ALPHA_NOTE)
            kept_alpha = torch.from_numpy(np.ascontiguousarray(alpha[..., 0])).float()[None, None]
        arr = colour * alpha + (1.0 - alpha)
    if channels == 3 and arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif channels == 1 and arr.shape[-1] == 3:
        arr = arr @ np.asarray(LUMA_WEIGHTS)[:, None]
        notes.append("colour reduced to greyscale (BT.601 luma)")
    tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float()[None]
    return _decoded(data, tensor, mode, bits, grey, notes, kept_alpha)


def _decoded(data: bytes, tensor: torch.Tensor, mode: str, bits: int, grey: bool, notes: list[str],
             kept_alpha: torch.Tensor | None) -> DecodedImage:
    """`read_image`'s result from the decoded (1, C, H, W) float32 tensor in [0, 1] and the file's metadata."""
    icc = _kept_profile(icc_profile(data), notes)
    kind = heif_kind(data)  # colour named by a HEIC's nclx tags or a camera's EXIF (not an AVIF's: its colour box
    if icc is None and not grey and tensor.shape[1] == 3 and kind != "avif":  # names it): an equivalent profile
        icc, note = heif_colour(data) if kind == "heic" else exif_colour(data)
        notes += [note] if note else []
    return DecodedImage(tensor=from_unit(tensor), mode=mode, bit_depth=bits, grey=grey, notes=notes,
                        icc_profile=icc, jpeg_sigma=compression_sigma(data, mode), jpeg_coding=jpeg_coding(data),
                        alpha=kept_alpha, exif=exif_kept(data), xmp=xmp_kept(data), dpi=image_dpi(data),
                        lossless_webp=data[:4] == b"RIFF" and data[8:12] == b"WEBP" and not is_lossy_webp(data))


def may_be_transparent(source: str | os.PathLike | bytes) -> bool:
    """Whether an image file has an alpha channel or a transparent palette colour, from its header (Pillow; no
    pixel decoded): it may hold transparent pixels. False for a file Pillow cannot open."""
    from PIL import Image

    open_plugins()
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    except (OSError, ValueError, SyntaxError):
        pass
    try:  # a TIFF Pillow cannot open (float, 16-bit grey with alpha): tifffile's header
        import tifffile

        with tifffile.TiffFile(io.BytesIO(source) if isinstance(source, bytes) else source) as tif:
            page = tif.pages[0]
            return bool(page.extrasamples) or page.samplesperpixel in (2, 4)
    except Exception:  # noqa: BLE001 (not a TIFF either, or a damaged one: read_image reports it)
        return False


def compression_sigma(data: bytes, mode: str) -> float | None:
    """The noise scale of a file's lossy coding, which raises the lowest noise level restored at
    (`restore.noise_level_floor`): a JPEG's `jpeg_quantization_sigma`, WEBP_LOSSY_SIGMA for a lossy WebP,
    AVIF_LOSSY_SIGMA for an AVIF, HEIC_LOSSY_SIGMA (0: lossy, no floor) for a HEIC, PALETTE_SIGMA for a photo quantised to a palette (mode "P" / "PA",
    `_photo_palette`); None for lossless sources."""
    if is_lossy_webp(data):
        return WEBP_LOSSY_SIGMA
    kind = heif_kind(data)
    if kind:
        return AVIF_LOSSY_SIGMA if kind == "avif" else HEIC_LOSSY_SIGMA
    if mode in ("P", "PA"):
        return PALETTE_SIGMA if _photo_palette(data) else None
    return jpeg_quantization_sigma(data)


#: A palette image with fewer used colours than this is a drawing or an exact (lossless) palette: no floor.
PALETTE_MIN_COLOURS = 64


def _photo_palette(data: bytes) -> bool:
    """True when a palette image uses at least PALETTE_MIN_COLOURS colours, not all grey: a photo quantised to a
    palette. A grey image or a few-colour drawing stored as a palette (PNG optimisers do that without loss) is
    exact. Unreadable: False."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            used = [index for _, index in im.getcolors(256) or []]
            palette = im.getpalette() or []
    except (OSError, ValueError, SyntaxError):  # the pixels were decoded already; this is a refinement
        return False
    rgb = [tuple(palette[3 * i : 3 * i + 3]) for i in used if 3 * i + 3 <= len(palette)]
    return len(set(rgb)) >= PALETTE_MIN_COLOURS and any(len(set(c)) > 1 for c in rgb)


#: The compression noise scale given to a lossy WebP (its quantiser is not readable without a VP8 decoder): the
#: JPEG floor's role at a fixed level, √(0.01² + 0.028²) = 0.03. Validation photos blurred by 2 px, WebP quality 60
#: / 90 (error std 0.020-0.029 / 0.012-0.015), deblurred at σ_y 0.01 / 0.015 / 0.025 / 0.03 / 0.035: 18.67 / 21.38 /
#: 23.81 / 24.26 / 24.50 dB and 24.01 / 25.44 / 25.74 / 25.72 / 25.68 dB (benchmarks/noisy-jpeg/webp-floor.md).
WEBP_LOSSY_SIGMA = 0.028
#: The same for AVIF (AV1 intra coding, 4:2:0 in browsers' and phones' files; a lossless AVIF is rare and not told
#: apart): √(0.01² + 0.0112²) = 0.015. Validation photos blurred by 2 px, AVIF (Pillow) at quality 60 / 90 (error std
#: 0.012-0.019 / 0.008-0.011), deblurred at σ_y 0.01 / 0.015 / 0.025 / 0.035: 23.86 / 24.85 / 25.38 / 25.44 dB, LPIPS
#: 0.273 / 0.242 / 0.236 / 0.244 and 26.07 / 26.13 / 26.00 / 25.84 dB, 0.203 / 0.211 / 0.225 / 0.237: mean LPIPS best
#: at 0.015.
AVIF_LOSSY_SIGMA = 0.0112
#: HEIC (HEVC intra coding) is lossy, so its level is also read on the luma, where the coding leaves the noise, but
#: its floor is the plain one: at quality 90 0.01 was best (26.52 dB, LPIPS 0.196; 0.015: 26.40, 0.207) and at 60
#: 0.015 no better than 0.01 by LPIPS (0.221 / 0.223; noisy-jpeg/heif-floor.md).
HEIC_LOSSY_SIGMA = 0.0
#: The same for a palette image (GIF, palette PNG: an adaptive 256-colour palette errs by std 0.016-0.033 on
#: validation photos blurred by 2 px): deblurred at σ_y 0.015 / 0.025 / 0.035 / 0.05, 24.59 / 25.39 / 25.50 /
#: 25.42 dB (before, 0.7x the level read: 0.01-0.018); benchmarks/noisy-jpeg/palette-floor.md.
PALETTE_SIGMA = 0.028


def is_lossy_webp(data: bytes) -> bool:
    """True for a WebP whose (first) image is lossy VP8 (RIFF chunk "VP8 ", also inside VP8X / an animation's first
    frame), False for lossless VP8L and every other format. Lossy WebP stores 4:2:0 chroma, as JPEG does."""
    if len(data) < 16 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    at = 12
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if kind in (b"VP8 ", b"VP8L"):
            return kind == b"VP8 "
        at += 8 + (16 if kind == b"ANMF" else size + (size & 1))  # ANMF: 16 bytes of frame header, then its chunks
    return False


#: The lowest-frequency luma DCT steps (row-major positions in the 8x8 table: DC, (0, 1), (1, 0), (1, 1)): a
#: blurred or smooth image has little energy above them, so their quantisation error is the one it keeps.
JPEG_LOW_FREQUENCIES = (0, 1, 8, 9)


class JpegCoding(NamedTuple):
    """A JPEG's coding as Pillow reads it: its quantisation `tables` (64 steps each; the luma's first) and chroma
    `subsampling` (Pillow's code: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0); `colour`: YCbCr, not one grey channel."""
    tables: tuple[tuple[int, ...], ...]
    subsampling: int
    colour: bool


def _jpeg_header(data: bytes) -> tuple[dict[int, list[int]], str, int] | None:
    """(quantisation tables by index, mode, Pillow's subsampling code) of a JPEG file's bytes, from Pillow's header
    parsing; None for other formats or an unreadable header."""
    from PIL import Image, JpegImagePlugin

    if not data.startswith(b"\xff\xd8\xff"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                tables = {k: [int(q) for q in t] for k, t in (getattr(im, "quantization", None) or {}).items()}
                return tables, im.mode, JpegImagePlugin.get_sampling(im)
    except Exception:  # noqa: BLE001  (the pixels were decoded already; the tables are optional)
        return None


def jpeg_coding(data: bytes) -> JpegCoding | None:
    """The `JpegCoding` of a baseline or progressive JPEG file's bytes (a colour file's luma and first chroma table;
    one table shared: twice); None for other formats, a JPEG whose tables or subsampling Pillow cannot read or
    encode (4:4:0, 4:1:1), or one that is neither grey nor YCbCr (CMYK)."""
    header = _jpeg_header(data)
    if header is None:
        return None
    tables, mode, subsampling = tuple(tuple(t) for _, t in sorted(header[0].items())), header[1], header[2]
    if mode not in ("L", "RGB") or not tables or any(len(t) != 64 for t in tables):
        return None
    colour = mode == "RGB"
    if colour and subsampling < 0:  # 4:4:0, 4:1:1: not Pillow's to encode
        return None
    return JpegCoding((tables * 2)[:2] if colour else tables[:1], max(subsampling, 0), colour)


def jpeg_round_trip(pixels: np.ndarray, coding: JpegCoding) -> np.ndarray:
    """8-bit pixels (H, W) grey or (H, W, 3) RGB saved as a JPEG with `coding`'s own quantisation tables and chroma
    subsampling (Pillow) and decoded: what that file's coding makes of them, as uint8 of the same shape."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", qtables=[list(t) for t in coding.tables], subsampling=coding.subsampling)
    with Image.open(buf) as im:
        return np.array(im).reshape(pixels.shape)


def jpeg_quantization_sigma(data: bytes) -> float | None:
    """A JPEG's quantisation as a noise scale on the [-1, 1] scale: rms(q) / sqrt(12) / 127.5 over the luma
    steps q at JPEG_LOW_FREQUENCIES, the std of one coefficient's uniform rounding error at those steps. A heuristic
    scale, not the pixel error (that sums all 64 coefficients' errors / 64 and depends on the image; measured on
    blurred photos: 0.007-0.010 / 0.010-0.017 / 0.015-0.024 at quality 95 / 80 / 60), checked by a validation sweep
    (benchmarks/jpeg-inputs/). About 0.003 at Pillow's quality 95, 0.011 at 80, 0.024 at 60, 0.15 at 10.
    None for other formats or a JPEG without a readable luma table (Pillow's header parsing)."""
    header = _jpeg_header(data)
    luma = [] if header is None else header[0].get(0, [])
    if len(luma) != 64:
        return None
    steps = np.asarray([luma[k] for k in JPEG_LOW_FREQUENCIES], dtype=np.float64)
    return float(np.sqrt(np.mean(steps**2) / 12.0) / 127.5)


#: Largest ICC profile kept (real profiles are 0.5-600 kB); a bigger one is dropped.
MAX_ICC_BYTES = 4 * 2**20


def icc_profile(data: bytes) -> bytes | None:
    """The ICC colour profile embedded in an image file's bytes (PNG iCCP, JPEG APP2, TIFF tag 34675, WebP
    ICCP, via Pillow's header parsing), or None when there is none, it is unreadable or larger than MAX_ICC_BYTES."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                icc = im.info.get("icc_profile")
    except Exception:  # the pixels were decoded already; a profile is optional
        icc = None
        if data[:4] in _TIFF_SIGNATURES:  # TIFFs Pillow cannot open (float RGB, ...)
            try:
                import tifffile

                with tifffile.TiffFile(io.BytesIO(data)) as tif:
                    tag = tif.pages[0].tags.get(34675)  # InterColorProfile
                    icc = tag.value if tag is not None else None
            except Exception:
                icc = None
    return bytes(icc) if isinstance(icc, (bytes, bytearray)) and 0 < len(icc) <= MAX_ICC_BYTES else None


#: EXIF tags of the main directory that outputs keep: what the photo is (description, camera make and model,
#: date, artist, copyright; Windows' rating and its title, comment, author, keywords and subject, which Explorer
#: shows), not how the file lays it out nor its orientation (the pixels are turned already); with the Exif
#: directory (exposure, dates, lens) and the GPS one.
EXIF_KEPT_TAGS = (0x010E, 0x010F, 0x0110, 0x0132, 0x013B, 0x8298, 0x4746, 0x4749, 0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E,
                  0x9C9F)
#: Tags of the Exif directory left out: the pixel size and pixel positions (subject area and location, focal plane
#: resolution: a restoration may turn or resize the image), the image's unique ID (a restoration is another image),
#: the interoperability directory's pointer and the maker note (offsets into the original file).
EXIF_DROPPED_TAGS = (0xA002, 0xA003, 0x9214, 0xA214, 0xA20E, 0xA20F, 0xA210, 0xA420, 0xA005, 0x927C)
#: The largest EXIF kept (a JPEG's APP1 segment holds 65533 bytes); a larger one loses its free-text comments
#: (UserComment, ImageDescription) and, still too large, is dropped.
MAX_EXIF_BYTES = 65533
#: Formats `encode_image` writes a resolution (dpi) into (JPEG's JFIF density, PNG's pHYs, TIFF's tags).
DPI_FORMATS = ("JPEG", "PNG", "TIFF")
#: Formats `encode_image` writes EXIF into (8-bit TIFF through Pillow, 16-bit through `_with_exif`).
EXIF_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF")


def _from_header(data: bytes, read: Callable[[Any], Any]) -> Any:
    """`read(im)` of the file opened by Pillow (its header parsed, its pixels not decoded; plugins open, warnings
    silenced), or None where Pillow cannot open it or `read` fails: metadata is optional, an unreadable block is
    left out."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            open_plugins()
            with Image.open(io.BytesIO(data)) as im:
                return read(im)
    except Exception:  # noqa: BLE001
        return None


def exif_kept(data: bytes) -> bytes | None:
    """The EXIF an image file's restorations keep, as bytes for Pillow's `exif=` ("Exif\\0\\0" and a TIFF
    structure): EXIF_KEPT_TAGS of the main directory with the Exif (less EXIF_DROPPED_TAGS) and GPS directories,
    at most MAX_EXIF_BYTES; None when the file has none of them or its EXIF cannot be read. A TIFF's own tags (its
    layout; a description, which tifffile fills with the array's shape) are not kept."""
    return _from_header(data, _kept_exif)


def _kept_exif(im: Any) -> bytes | None:
    """`exif_kept` of a Pillow image."""
    from PIL import Image

    src = im.getexif()
    main = {t: src[t] for t in EXIF_KEPT_TAGS if t in src and not (t == 0x010E and im.format == "TIFF")}
    exif_ifd = {k: v for k, v in src.get_ifd(0x8769).items() if k not in EXIF_DROPPED_TAGS}
    gps_ifd = dict(src.get_ifd(0x8825))
    if not (main or exif_ifd or gps_ifd):
        return None
    for comments in ((), (0x9286, 0x010E, *range(0x9C9B, 0x9CA0))):  # free text goes first when too large
        out = Image.Exif()
        out.update({t: v for t, v in main.items() if t not in comments})
        if exif_ifd:
            out.get_ifd(0x8769).update({t: v for t, v in exif_ifd.items() if t not in comments})
        if gps_ifd:
            out.get_ifd(0x8825).update(gps_ifd)
        block = out.tobytes()
        if len(block) <= MAX_EXIF_BYTES:
            return block
    return None


def image_dpi(data: bytes) -> tuple[float, float] | None:
    """The (horizontal, vertical) pixels per inch an image file states for its pixels as shown (turned by its EXIF
    orientation): a JPEG's JFIF density, else its EXIF resolution (`_jpeg_dpi`), PNG's pHYs, TIFF's resolution
    (through Pillow; per centimetre converted); None where it states none (or only an aspect ratio), a value <= 1,
    or cannot be read."""
    return _from_header(data, _stated_dpi)


def _stated_dpi(im: Any) -> tuple[float, float] | None:
    """`image_dpi` of a Pillow image."""
    exif = im.getexif()
    if im.format in ("JPEG", "MPO"):  # (Pillow's "dpi" makes up 72 where neither states one)
        dpi = _jpeg_dpi(im.info, exif)
    elif im.format == "TIFF" and not (282 in im.tag_v2 and 283 in im.tag_v2):  # (Pillow: 1 dpi)
        dpi = None
    else:
        dpi = im.info.get("dpi")
    if dpi is None:
        return None
    x, y = (float(v) for v in dpi)
    from operators.params import TURNED_ORIENTATIONS

    turned = exif.get(0x0112) in TURNED_ORIENTATIONS
    return None if not (x > 1 and y > 1 and math.isfinite(x + y)) else ((y, x) if turned else (x, y))


def _jpeg_dpi(info: dict, exif: Any) -> tuple[float, float] | None:
    """A JPEG's pixels per inch: its JFIF density where the unit is inches (1) or centimetres (2), else its EXIF
    X / YResolution in inches (ResolutionUnit 2, the default) or centimetres (3); None where neither states one."""
    to_inch = {1: 1.0, 2: 2.54}.get(info.get("jfif_unit"))
    if to_inch and info.get("jfif_density"):
        return tuple(float(v) * to_inch for v in info["jfif_density"])
    to_inch = {2: 1.0, 3: 2.54}.get(exif.get(296, 2))
    if to_inch and 282 in exif and 283 in exif:
        return float(exif[282]) * to_inch, float(exif[283]) * to_inch
    return None


def xmp_kept(data: bytes) -> bytes | None:
    """The XMP an image file's restorations keep (`ncvsd_cli.xmp.kept_xmp`: the picture's title, caption, keywords,
    rating, creator, rights and place, not the file's layout, orientation, edits or embedded extras), read through
    Pillow (JPEG APP1, PNG iTXt, WebP, TIFF tag 700, AVIF, HEIF), with what a JPEG's or TIFF's IPTC-IIM block and a
    PNG's title, author, description and copyright text chunks add,
    as UTF-8 bytes for `encode_image(..., xmp=)`; None when the file has neither, nothing is kept or it cannot be
    read."""
    return _from_header(data, _kept_xmp)


#: Bytes of a file's start, then of its end, searched for restore's label (`made_by_ncvsd`).
LABEL_SEARCH_HEAD, LABEL_SEARCH_TAIL = 1 << 18, 1 << 20


def made_by_ncvsd(path: str | os.PathLike) -> bool:
    """Whether the image file `path` may be an output of `ncvsd restore`: it carries the label restore writes (its
    ncvsd XMP namespace with the Task; kept by --strip-metadata too), searched as bytes in the file's start, then
    its end (WebP and HEIC put the XMP after the pixels); True also for a format that holds no XMP (BMP, GIF,
    PPM: only its name can tell); False where the label is missing or the file cannot be read."""
    try:
        return format_for_path(path) not in EXIF_FORMATS or _label_bytes(path) is not None
    except (OSError, ValueError, KeyError):  # unreadable, or a suffix that names no format
        return False


def labelled_task(path: str | os.PathLike) -> str | None:
    """The task an ncvsd output's label names (its ncvsd:Task, `made_by_ncvsd`), or None: no label, a format
    without XMP, or an unreadable file."""
    import re

    try:
        data = _label_bytes(path) if format_for_path(path) in EXIF_FORMATS else None
    except (OSError, ValueError, KeyError):
        return None
    found = None if data is None else re.search(
        rb"<ncvsd:Task>([^<]{1,100})</ncvsd:Task>|ncvsd:Task=\"([^\"]{1,100})\"", data)
    return None if found is None else (found.group(1) or found.group(2)).decode("utf-8", "replace")


def _label_bytes(path: str | os.PathLike) -> bytes | None:
    """The part of the file `path` (its start, else its end) that holds the ncvsd label, or None."""
    with open(path, "rb") as fh:
        head = fh.read(LABEL_SEARCH_HEAD)
        if _has_label(head):
            return head
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(len(head), size - LABEL_SEARCH_TAIL))
        tail = fh.read()
        return tail if _has_label(tail) else None


def _has_label(data: bytes) -> bool:
    from ncvsd_cli.xmp import NCVSD_NS

    return NCVSD_NS.encode() in data and (b"<ncvsd:Task>" in data or b"ncvsd:Task=" in data)


def _kept_xmp(im: Any) -> bytes | None:
    """`xmp_kept` of a Pillow image."""
    from PIL import IptcImagePlugin

    from ncvsd_cli.xmp import kept_xmp

    packet = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if not packet and im.format == "TIFF":
        packet = im.tag_v2.get(700)
    iim = IptcImagePlugin.getiptcinfo(im) if im.format in ("JPEG", "MPO", "TIFF") else None
    text = im.info if im.format == "PNG" else None  # (the text chunks before the pixels)
    return kept_xmp(packet if isinstance(packet, (bytes, bytearray, str)) else None, iim, text)


def _kept_profile(icc: bytes | None, notes: list[str]) -> bytes | None:
    """An input's ICC profile when it describes what is written (an RGB or grey image: its colour space, bytes
    16-20 of the header, is "RGB " or "GRAY"); a CMYK or Lab one is dropped with a note (the pixels were converted
    to RGB without it, and a viewer would misread an RGB file that carried it)."""
    if icc is None or icc[36:40] != b"acsp" or icc[16:20] in (b"RGB ", b"GRAY"):  # (not a profile header:
        return icc  # passed on as before)
    notes.append(f"its {icc[16:20].decode('latin-1').strip() or 'unknown'} colour profile is not kept (the output "
                 "is RGB)")
    return None


def load_image(source: ImageSource, channels: int = 3, *, max_pixels: int | None = None) -> torch.Tensor:
    """(1, channels, H, W) float32 tensor in [-1, 1] from a path, bytes, stream or "-" (see `read_image`)."""
    return read_image(source, channels, max_pixels=max_pixels).tensor


def image_size(source: str | os.PathLike | bytes, name: str | None = None) -> tuple[int, int]:
    """(H, W) of an image as `read_image` decodes it (turned by its EXIF orientation, as it is shown), from its
    header only (Pillow; tifffile for the TIFFs Pillow cannot open, e.g. float RGB), for every file `read_image`
    decodes. name: used in messages (default: the path, or "input"). Raises ImageError ("empty file" for 0 bytes)."""
    from PIL import Image, UnidentifiedImageError

    from operators.params import TURNED_ORIENTATIONS, displayed_size

    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or "input"
    else:
        name = name or os.fspath(source)
        data = read_source_bytes(source)[0]
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes), not an image")
    open_plugins()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return displayed_size(im)
    except Exception as exc:
        if data[:4] in _TIFF_SIGNATURES:
            try:
                import tifffile

                with tifffile.TiffFile(io.BytesIO(data)) as tif:
                    h, w = _tiff_hw(tif.pages[0])
                    tag = tif.pages[0].tags.get(274)  # turned as `_decode_tiff` turns it
                    return (w, h) if tag is not None and tag.value in TURNED_ORIENTATIONS else (h, w)
            except Exception:
                pass
        if isinstance(exc, UnidentifiedImageError):
            raise unreadable_format(data, name) from None
        raise ImageError(f"{name}: cannot read image header: {one_line(exc, 200)}") from None


# ------------------------------------------------------------------------------------------------- encoding
def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) tensor in [-1, 1] -> (H, W) or (H, W, 3) uint8 array; clipped and rounded.

    Raises ValueError if x holds NaN or inf (never written as an image) or has other than 1 or 3 channels.
    """
    import torch

    t = _checked_image(x)
    # to_unit(clamp(t, -1, 1)) * 255 rounded, in place: t + 1 rounds alike and the / 2 is exact, so (t + 1) * 127.5
    # is the same float as ((t + 1) / 2) * 255 and each value rounds to the same level
    arr = t.float().add(1).mul_(127.5).clamp_(0, 255).round_().to(torch.uint8).cpu().numpy().transpose(1, 2, 0)
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def _checked_image(x: torch.Tensor) -> torch.Tensor:
    """x as one (C, H, W) image with C in (1, 3) and finite float values (`as_image_tensor`; values beyond
    [-1, 1] are clipped when written, as samples are not), else ValueError: nothing is written. A float image on
    the [0, 255] scale (no value below -1.5, some above 16: not an output's overshoot, which goes both ways) is
    refused: clipped, it would be written white."""
    t = as_image_tensor(x.detach(), "image", check_range=False)[0]
    lo, hi = float(t.min()), float(t.max())
    if lo >= -1.5 and hi > 16:
        raise ValueError(f"image: values in [{lo:.4g}, {hi:.4g}], on a [0, 255] scale rather than [-1, 1] (written, "
                         "it would be white): give from_unit(p / 255)")
    return t


def format_for_path(path: str | os.PathLike | None) -> str:
    """Pillow format name for an output path from its suffix; "PNG" for "-" or no suffix; else ValueError (an
    unknown suffix, or a format Pillow reads but cannot write, e.g. HEIC with only pi-heif)."""
    from PIL import Image

    suffix = Path(os.fspath(path)).suffix.lower() if path not in (None, "-") else ""
    if not suffix:
        return "PNG"
    problem = output_format_problem(suffix)
    if problem:
        raise ValueError(f"{problem} (the suffix of {os.fspath(path)!r})")
    return Image.registered_extensions()[suffix]


#: The suffix named for each output format in messages, in the order they are named.
OUTPUT_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "AVIF": ".avif", "HEIF": ".heic", "TIFF": ".tif",
                   "BMP": ".bmp", "GIF": ".gif", "PPM": ".ppm"}


def suffix_choice(formats: Sequence[str] = tuple(OUTPUT_SUFFIXES)) -> str:
    """The suffixes of those `formats` this installation writes, for messages: ".png, .webp or .tif"."""
    from PIL import Image

    open_plugins()
    Image.init()  # every writer registered (Pillow loads its plugins lazily)
    names = [OUTPUT_SUFFIXES[f] for f in OUTPUT_SUFFIXES if f in formats and f in Image.SAVE]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def output_format_problem(suffix: str) -> str | None:
    """Why images cannot be written with the file suffix `suffix` (".heic" where only pi-heif, which decodes,
    is installed: read, not written), or None."""
    from PIL import Image

    open_plugins()
    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        return f"unknown image format {suffix!r}; use {suffix_choice()}"
    if fmt not in Image.SAVE:
        writer = " (pillow-heif writes them: pip install pillow-heif)" if fmt == "HEIF" else ""
        return f"{fmt} images ({suffix}) are read, not written{writer}; use {suffix_choice()}"
    return None


#: The longest side each format's encoder writes (libwebp 16383, libjpeg 65500, GIF's 16-bit header, AVIF 65536);
#: the others' limits are far beyond what fits in memory.
MAX_SIDE = {"WEBP": 16383, "JPEG": 65500, "GIF": 65535, "AVIF": 65536}


def size_problem(fmt: str, height: int, width: int) -> str | None:
    """Why a `height` x `width` px image cannot be written in the Pillow format `fmt` (a side beyond the format's
    limit, `MAX_SIDE`), or None: checked before the work, as the encoder fails only when writing."""
    limit = MAX_SIDE.get(fmt)
    if limit is None or max(height, width) <= limit:
        return None
    return f"a {width}x{height} px image is too large for {fmt} (at most {limit} px a side); use PNG or TIFF"


def grid_shape(count: int, height: int, width: int, padding: int = 2, ncols: int | None = None) -> tuple[int, int]:
    """(height, width) of `make_grid`'s sheet of `count` images of `height` x `width` px, `ncols` per row (default
    ceil(sqrt(count)))."""
    ncols = ncols or math.ceil(math.sqrt(count))
    nrows = math.ceil(count / ncols)
    return nrows * (height + padding) + padding, ncols * (width + padding) + padding


#: Formats whose files can carry an ICC profile (Pillow's `icc_profile` save option).
ICC_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "AVIF", "HEIF")


def to_uint16(x: torch.Tensor) -> np.ndarray:
    """Like `to_uint8`, rounded to 16 bits (0..65535)."""
    t = _checked_image(x)
    arr = (to_unit(t.double().clamp(-1, 1)) * 65535).round().cpu().numpy().astype(np.uint16).transpose(1, 2, 0)
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def _png16(arr: np.ndarray, icc: bytes | None, exif: bytes | None = None, xmp: bytes | None = None,
           dpi: tuple[float, float] | None = None) -> bytes:
    """A 16-bit PNG of an (H, W) or (H, W, C) uint16 array, C = 1 / 2 (grey, with alpha) or 3 / 4 (RGB, with
    alpha) (pypng), with an iCCP chunk after IHDR when `icc`, an eXIf chunk when `exif` (Pillow's bytes) and an
    iTXt chunk "XML:com.adobe.xmp" when `xmp` (UTF-8) and a pHYs chunk when `dpi` (pixels per inch)."""
    import png

    h, w = arr.shape[:2]
    planes = 1 if arr.ndim == 2 else arr.shape[2]
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=planes in (1, 2), alpha=planes in (2, 4), bitdepth=16).write(
        buf, arr.reshape(h, w * planes))
    if not icc and not exif and not xmp and not dpi:
        return buf.getvalue()
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    if dpi:  # pixels per metre, unit 1 (metre)
        chunks.insert(1, (b"pHYs", struct.pack(">IIB", *(round(v / 0.0254) for v in dpi), 1)))
    if xmp:  # keyword, NUL, uncompressed (0, 0), no language nor translated keyword (NUL, NUL), the text
        chunks.insert(1, (b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
    if exif:  # the TIFF structure, without the "Exif\0\0" of JPEG's APP1
        chunks.insert(1, (b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    if icc:
        chunks.insert(1, (b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))  # name, NUL, method 0 (deflate)
    out = io.BytesIO()
    png.write_chunks(out, chunks)
    return out.getvalue()


#: The quality lossy outputs are written at (Pillow's scale; AVIF's 90 is about JPEG's 95 by eye and size, HEIC's
#: 90 1.6-1.7x JPEG 95's size with a higher PSNR: outputs are kept close to the restoration).
OUTPUT_QUALITY = {"JPEG": 95, "WEBP": 95, "AVIF": 90, "HEIF": 90}
#: Options of the 8-bit lossy writers beyond the quality: JPEG with full-resolution chroma (4:4:4, as GIMP and
#: Photoshop write their highest qualities; Pillow's default is 4:2:0): 1.3 dB closer to sr4 restorations (2.3 dB
#: to photos) for 27 % (22 %) larger files (benchmarks/output-coding.md). AVIF and HEIC stay 4:2:0, which every
#: decoder reads (4:4:4 HEIC needs HEVC's range extensions, which phones' decoders lack).
OUTPUT_OPTIONS = {"JPEG": {"subsampling": 0}}
#: Formats written with an alpha channel when `encode_image` is given one (others get the composite on white).
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF", "AVIF", "HEIF")
#: Formats that mark one palette colour clear instead (GIF): a pixel is written clear where it is under half opaque.
CLEAR_FORMATS = ("GIF",)


def checked_alpha(alpha: Any, height: int, width: int) -> torch.Tensor:
    """An image's opacity given by a library caller as a (1, 1, H, W) float32 tensor: a tensor or numpy array of
    shape (H, W), (1, H, W) or (1, 1, H, W) with finite values in [0, 1]; ValueError naming what is wrong otherwise
    (a wrong size was taken silently, a numpy array failed as "has no attribute 'detach'")."""
    import torch

    from operators.base import all_finite

    if isinstance(alpha, np.ndarray):
        alpha = torch.from_numpy(alpha)
    if not isinstance(alpha, torch.Tensor):
        raise ValueError(  # noqa: TRY004 (a ValueError, as every bad argument here)
            f"alpha: a tensor or numpy array of opacities in [0, 1], got {type(alpha).__name__}")
    if tuple(alpha.shape[-2:]) != (height, width) or alpha.numel() != height * width or alpha.dim() > 4:
        raise ValueError(f"alpha: expected shape (1, 1, {height}, {width}) (the image's size), got "
                         f"{tuple(alpha.shape)}")
    a = alpha.detach().to("cpu", torch.float32).reshape(1, 1, height, width)
    if not all_finite(a) or float(a.min()) < 0 or float(a.max()) > 1:
        top = float(a.nan_to_num(0).max())
        raise ValueError("alpha: expected finite opacities in [0, 1]" + (
            f", got values up to {top:g} (8-bit alpha a: a / 255)" if top > 1 else ", got NaN, inf or negatives"))
    return a


def uncomposite(x: torch.Tensor, alpha: torch.Tensor, levels: int = 255) -> np.ndarray:
    """The colour c and opacity a whose composite on white, c a + (1 - a), is the image x: an (H, W, C + 1) array
    of integers 0..levels (C = 1 or 3, a last). x: (1, C, H, W) in [-1, 1] (clipped); alpha: (1, 1, H, W) in [0, 1]
    (clipped). a is rounded first and c = (x - 1 + a) / a, clipped to [0, 1], from it, so that the written pair
    composites to x within rounding; where a rounds to 0 the colour is x itself (invisible; a viewer that ignores
    alpha shows the composite). ValueError if alpha's size differs from x's or holds NaN."""
    t = to_unit(_checked_image(x).double().clamp(-1, 1)).cpu().numpy()  # (C, H, W)
    a = alpha.detach().double().cpu().numpy().reshape(-1, *alpha.shape[-2:])
    if a.shape != (1, *t.shape[1:]) or not np.isfinite(a).all():
        raise ValueError(f"alpha: expected finite values of shape (1, 1, {t.shape[1]}, {t.shape[2]}), got "
                         f"{tuple(alpha.shape)}")
    a = np.round(np.clip(a, 0.0, 1.0) * levels) / levels
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(a > 0, np.clip((t - 1 + a) / a, 0.0, 1.0), t)
    return np.round(np.concatenate([c, a]) * levels).astype(np.uint16 if levels > 255 else np.uint8).transpose(1, 2, 0)


#: Bits per sample `encode_image(..., bit_depth=16)` writes in each format that holds more than 8: PNG (pypng) and
#: TIFF (tifffile) 16, HEIC (pillow-heif, HEVC Main 10) 10.
DEEP_BITS = {"PNG": 16, "TIFF": 16, "HEIF": 10}


def _to_srgb(arr: np.ndarray, icc: bytes) -> np.ndarray:
    """8-bit RGB samples (H, W, 3) in the colour space of the RGB profile `icc`, converted to sRGB (relative
    colorimetric, LittleCMS through Pillow's ImageCms), for a format that cannot carry the profile: a Display P3 or
    Adobe RGB photo written as BMP kept its numbers and showed off by up to 36 ΔE. With a grey ("GRAY") profile,
    grey samples (H, W), or (H, W, 3 or 4) with equal colour channels (a grey photo in a format storing RGB, WebP):
    a gamma-2.2 grey showed up to 8.5 levels off in the shadows. As it is where the profile does not parse."""
    from PIL import Image, ImageCms

    grey = icc[16:20] == b"GRAY"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        rgb = ImageCms.profileToProfile(Image.fromarray(arr if not grey or arr.ndim == 2 else arr[..., 0]), source,
                                        ImageCms.createProfile("sRGB"), outputMode="RGB",
                                        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return arr
    if not grey:
        return np.asarray(rgb)
    neutral = np.asarray(rgb)[..., 1]  # (sRGB's grey axis: the three equal within a level)
    return neutral if arr.ndim == 2 else np.concatenate([np.repeat(neutral[..., None], 3, -1), arr[..., 3:]], -1)


def _grey_samples(arr: np.ndarray) -> bool:
    """Whether the (H, W) or (H, W, 3 or 4) samples `arr` are grey: one channel, or equal colour channels."""
    return arr.ndim == 2 or bool((np.ptp(arr[..., :3], axis=-1) == 0).all())


def _profile_for(icc: bytes | None, rgb: bool) -> bytes | None:
    """`icc` for a file that stores RGB (`rgb`) or grey samples: a grey ("GRAY") profile would mislabel RGB ones,
    an RGB one grey ones (PNG forbids it; a grey model's output of a colour photo)."""
    space = icc[16:20] if icc else None
    return None if icc and ((rgb and space == b"GRAY") or (not rgb and space == b"RGB ")) else icc


def _without_grey_alpha(arr: np.ndarray, icc: bytes | None) -> tuple[np.ndarray, bytes | None]:
    """(H, W, 2) grey with alpha as (H, W, 4) RGBA, for writers without that layout, and the profile that fits."""
    if arr.ndim == 3 and arr.shape[2] == 2:
        arr = arr[..., [0, 0, 0, 1]]
    return arr, _profile_for(icc, arr.ndim == 3)


def _tiff16(arr: np.ndarray, icc: bytes | None, exif: bytes | None = None, xmp: bytes | None = None,
            dpi: tuple[float, float] | None = None) -> bytes:
    """A 16-bit TIFF (deflate) of an (H, W) or (H, W, C) uint16 array, C = 1 / 2 / 3 / 4 (grey, grey with alpha as
    RGBA: Pillow opens no 16-bit grey with alpha, RGB, RGB with alpha: unassociated), with the ICC profile `icc`
    (tag 34675) when given (a grey one only on a grey image), the XMP packet `xmp` (tag 700) and the EXIF `exif`
    (`_with_exif`: tifffile writes no Exif directory) and the resolution `dpi` (pixels per inch)."""  # (one page)
    import tifffile

    arr, icc = _without_grey_alpha(arr, icc)
    planes = 1 if arr.ndim == 2 else arr.shape[2]
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, photometric="minisblack" if planes <= 2 else "rgb", compression="zlib",
                     extrasamples=("unassalpha",) if planes in (2, 4) else None, iccprofile=icc or None,
                     metadata=None,  # (no shape description)
                     **({"resolution": dpi, "resolutionunit": "INCH"} if dpi else {}),
                     extratags=[(700, "B", len(xmp), xmp, True)] if xmp else ())
    return _with_exif(buf.getvalue(), exif) if exif else buf.getvalue()


def _ifd_entries(data: bytes, at: int, order: str) -> dict[int, bytes]:
    """{tag: its 12-byte entry} of the classic TIFF directory at byte `at` of `data` (byte order `order`)."""
    n = struct.unpack(order + "H", data[at : at + 2])[0]
    return {struct.unpack(order + "H", data[at + 2 + 12 * i : at + 4 + 12 * i])[0]: data[at + 2 + 12 * i : at + 14 + 12 * i]
            for i in range(n)}


def _with_exif(tiff: bytes, exif: bytes) -> bytes:
    """A classic TIFF's bytes with the EXIF `exif` (Pillow's bytes: main-directory tags, Exif and GPS directories)
    added: Pillow lays the EXIF's directory out after the file (its data at their final offsets), and a new first
    directory, the file's own entries with the EXIF's others, sorted, follows it; the header points at that one
    (the old directory stays, unreferenced). Unchanged for a BigTIFF or an EXIF Pillow cannot read."""
    from PIL import Image

    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        return tiff
    try:
        tags = Image.Exif()
        tags.load(exif)
        tags.endian = order
        tiff += b"\0" * (len(tiff) % 2)  # (directories start on a word boundary)
        block = tags.tobytes(len(tiff))[14:]  # past "Exif\0\0" and its TIFF header: a directory at len(tiff)
        block += b"\0" * (len(block) % 2)
        entries = {**_ifd_entries(block, 0, order), **_ifd_entries(tiff, struct.unpack(order + "I", tiff[4:8])[0], order)}
    except Exception:  # noqa: BLE001 (metadata is optional: an EXIF that cannot be laid out is left out)
        return tiff
    first = struct.pack(order + "H", len(entries)) + b"".join(entries[t] for t in sorted(entries)) + b"\0" * 4
    return tiff[:4] + struct.pack(order + "I", len(tiff) + len(block)) + tiff[8:] + block + first


def _heif10(arr: np.ndarray, icc: bytes | None, exif: bytes | None = None, xmp: bytes | None = None,
            dpi: tuple[float, float] | None = None) -> bytes:
    """A 10-bit HEIC (quality OUTPUT_QUALITY) of an (H, W) or (H, W, C) uint16 array (grey, grey with alpha as RGBA,
    RGB, RGBA), with the ICC profile `icc` when given (a grey one only on a grey image), `exif` and `xmp` (`dpi`:
    HEIF has no place for it)."""
    arr, icc = _without_grey_alpha(arr, icc)  # no grey-with-alpha layout in HEIF
    mode = {2: "L;16", 3: "RGB;16", 4: "RGBA;16"}[arr.ndim if arr.ndim == 2 else arr.shape[2]]
    data = np.ascontiguousarray(arr).tobytes()
    heif = heif_module().from_bytes(mode=mode, size=(arr.shape[1], arr.shape[0]), data=data)
    if icc:
        heif.info["icc_profile"] = icc
    if exif:
        heif.info["exif"] = exif
    if xmp:
        heif.info["xmp"] = xmp
    buf = io.BytesIO()
    heif.save(buf, quality=OUTPUT_QUALITY["HEIF"])
    return buf.getvalue()


def encode_image(x: torch.Tensor, format: str = "PNG", *, bit_depth: int = 8,
                 icc_profile: bytes | None = None, alpha: torch.Tensor | None = None,
                 exif: bytes | None = None, xmp: bytes | None = None,
                 dpi: tuple[float, float] | None = None, lossless: bool = False) -> bytes:
    """Encode a (1, C, H, W) image in [-1, 1] as file bytes (PNG by default; JPEG and WebP at quality 95, AVIF and
    HEIC at 90).

    bit_depth: 8, or 16: PNG and TIFF are written with 16 bits, HEIC with 10 (DEEP_BITS), other formats with 8.
    icc_profile: embedded in formats that hold one (ICC_FORMATS), else left out (a grey profile also where the
    file stores RGB). alpha: (1, 1, H, W) opacity in [0, 1] of the image x, which is taken as composited on white:
    written as an alpha channel with the colour `uncomposite`d in ALPHA_FORMATS (grey: LA; WebP and HEIC, which
    have no LA: RGBA), in CLEAR_FORMATS as their clear colour where under half opaque (GIF), ignored in the
    others (x, the composite, is written). exif: EXIF bytes (`exif_kept`),
    written into EXIF_FORMATS. xmp: an XMP packet (`xmp_kept`), written into
    EXIF_FORMATS (16-bit TIFF too; into a JPEG up to `xmp.JPEG_XMP_BYTES`, a larger one as its AI label alone,
    `xmp.label_only`), its regions' image size set to
    the written one (`xmp.sized`). dpi: (horizontal, vertical) pixels per inch, written into
    DPI_FORMATS (a print size; JPEG: up to 65535), else left out. lossless: a WebP is written lossless (VP8L) instead of at quality
    95 (other formats: no effect; PNG and TIFF are lossless anyway).
    """
    import torch
    from PIL import Image

    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch tensor (1, C, H, W) in [-1, 1], got {type(x).__name__}")  # noqa: TRY004
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    fmt = format.upper()
    open_plugins()  # (HEIF's writer)
    deep = bit_depth == 16 and fmt in DEEP_BITS and (fmt != "HEIF" or heif_module() is not None)
    levels = 65535 if deep else 255
    clear = alpha is not None and fmt in CLEAR_FORMATS  # (a palette with a clear entry, `_clear_palette`)
    arr = uncomposite(x, alpha, levels) if alpha is not None and (fmt in ALPHA_FORMATS or clear) else (
        to_uint16(x) if deep else to_uint8(x))
    if xmp:  # regions' image size: the written one; a JPEG holds one segment's worth (no extended XMP)
        from ncvsd_cli.xmp import JPEG_XMP_BYTES, label_only, sized

        xmp = sized(xmp, arr.shape[1], arr.shape[0])
        xmp = label_only(xmp) if fmt == "JPEG" and len(xmp) > JPEG_XMP_BYTES else xmp  # (the AI label stays)
    dpi = dpi if dpi and all(0 < v < 2**31 / 40 for v in dpi) else None  # (PNG: a 32-bit count per metre)
    if deep:
        write = {"PNG": _png16, "TIFF": _tiff16, "HEIF": _heif10}[fmt]
        return write(arr, icc_profile, exif, xmp, dpi)
    buf = io.BytesIO()
    options: dict = {"quality": OUTPUT_QUALITY[fmt], **OUTPUT_OPTIONS.get(fmt, {})} if fmt in OUTPUT_QUALITY else {}
    if lossless and fmt == "WEBP":  # (Pillow's default effort)
        options = {"lossless": True}
    planes = arr.shape[-1] if arr.ndim == 3 else 1
    icc = _profile_for(icc_profile, planes >= 3 or fmt == "WEBP" or (fmt == "HEIF" and planes == 2))  # WebP: no
    if icc and fmt in ICC_FORMATS:  # grey; HEIF: no grey with alpha
        options["icc_profile"] = icc
    elif not clear:  # BMP, GIF, PPM hold no profile, WebP no grey one: sRGB samples
        arr = _as_srgb(arr, icc_profile)
    if exif and fmt in EXIF_FORMATS:
        options["exif"] = exif
    if xmp and fmt == "TIFF":  # tag 700 beside the EXIF's (Pillow writes `exif` or `tiffinfo`, not both)
        tags = Image.Exif()
        tags.load(exif or b"")
        tags[700] = xmp
        options["exif"] = tags
    elif xmp and fmt in EXIF_FORMATS:  # (PNG: an iTXt chunk)
        options.update({"pnginfo": png_xmp(xmp)} if fmt == "PNG" else {"xmp": xmp})
    if dpi and fmt in DPI_FORMATS:  # (JPEG's JFIF density is whole dots per inch)
        if fmt != "JPEG":
            options["dpi"] = dpi
        elif all(v < 65535.5 for v in dpi):  # (JFIF: whole dots per inch, 16 bits)
            options["dpi"] = tuple(max(1, round(v)) for v in dpi)
    if clear:
        _clear_palette(arr, icc_profile).save(buf, format=format, transparency=255, **options)
    else:
        Image.fromarray(arr).save(buf, format=format, **options)
    return buf.getvalue()


def _as_srgb(arr: np.ndarray, icc: bytes | None) -> np.ndarray:
    """8-bit samples (H, W[, C]) for a file that holds no profile: an RGB profile's colours (C = 3), or a grey
    profile's grey samples (not C = 2), converted to sRGB (`_to_srgb`); colour samples keep a grey profile's
    numbers (it is dropped); as they are without a profile."""
    space = (icc or b"")[16:20]
    planes = arr.shape[-1] if arr.ndim == 3 else 1
    if space == b"RGB " and planes == 3 or space == b"GRAY" and planes != 2 and _grey_samples(arr):
        return _to_srgb(arr, icc)
    return arr


def _clear_palette(arr: np.ndarray, icc: bytes | None) -> Any:
    """A palette image for a GIF of the `uncomposite`d samples `arr` (H, W, C + 1), its last channel the opacity:
    the pixels under half opaque the clear entry 255, the others in their own colour (an edge's, not its blend
    with white; in sRGB, `_as_srgb`, as GIF holds no profile) reduced to an adaptive palette of 255."""
    from PIL import Image

    colour, clear = arr[..., :-1], arr[..., -1] < 128
    colour = np.ascontiguousarray(np.repeat(colour, 3, axis=-1) if colour.shape[-1] == 1 else colour)
    palette = Image.fromarray(_as_srgb(colour, icc)).quantize(255)
    index = np.asarray(palette).copy()
    index[clear] = 255
    out = Image.fromarray(index, "P")
    entries = (palette.getpalette() or [])[:765]
    out.putpalette(entries + [255] * (768 - len(entries)))  # (entry 255, the clear one: white)
    return out


def png_xmp(xmp: bytes) -> Any:
    """Pillow's PngInfo holding the XMP packet `xmp` (UTF-8) as the iTXt chunk "XML:com.adobe.xmp"."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
    return info


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def nearest_existing(path: Path) -> Path:
    """`path` itself, or its nearest ancestor that exists (the root at worst): where a file or folder to be made
    at `path` would go, for checks of it before any work."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


#: The characters of an output's name its temporary file's name starts with (then 8 random ones and ".tmp").
TEMPORARY_NAME_CHARS = 60


def _temporary(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    name = target.name[:TEMPORARY_NAME_CHARS]  # (a name near the file system's 255 bytes fits; its temporary too)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(tmp)


def _made_meanwhile(target: Path) -> OutputExistsError:
    """The error for an output name taken after the commands' check of their outputs, before it was written."""
    return OutputExistsError(f"{target} exists, made while this ran (by another run writing the same output?); "
                             "--overwrite replaces it (overwrite=True in Python)", target)


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Give the finished temporary file its final name: os.replace, or with overwrite=False a hard link that
    fails when the name exists (OutputExistsError); where a hard link cannot be made (any other error: FAT32 and
    exFAT drives and some shares on Windows give EINVAL, others EPERM, ENOTSUP, EXDEV...), the name is claimed
    with O_EXCL first and then replaced (a real problem such as a full disk or a missing folder fails there)."""
    os.chmod(tmp, _default_mode())
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise _made_meanwhile(target) from None
    except OSError:
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            raise _made_meanwhile(target) from None
        try:
            os.replace(tmp, target)
        except BaseException:  # (an interruption here: no empty file that --skip-existing would take as done)
            Path(target).unlink(missing_ok=True)
            raise
    else:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the folder of `path`; on success publish it as `path` (replacing an existing
    file only with `overwrite`), on any exception (KeyboardInterrupt and signals included) delete it, so `path`
    is never left half written and no temporary file stays behind."""
    target = Path(path)
    tmp = _temporary(target)
    try:
        yield tmp
        _publish(tmp, target, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def _stdout_buffer():
    if sys.stdout is None:
        raise OSError("standard output is closed")
    return sys.stdout.buffer


def write_stdout(data: bytes) -> None:
    """Write `data` to standard output. A reader that went away (broken pipe) is an OSError with a plain message;
    standard output is then pointed at /dev/null so that Python's final flush does not print a traceback."""
    try:
        buf = _stdout_buffer()
        view = memoryview(data)
        while view:  # a pipe's reader that goes away can leave a short write without an error: write the rest
            written = buf.write(view)
            if not written:
                raise BrokenPipeError(errno.EPIPE, "short write")
            view = view[written:]
        buf.flush()
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        raise OSError("standard output was closed before the whole image was written (broken pipe)") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write `data` to `path` atomically (temporary file, fsync, publish; no-clobber unless `overwrite`);
    "-" writes to stdout."""
    if os.fspath(path) == "-":
        write_stdout(data)
        return Path("-")
    with atomic_path(path, overwrite=overwrite) as tmp:
        _write_synced(tmp, data)
    return Path(path)


def atomic_write_all(files: Sequence[tuple[str | os.PathLike, bytes]], *, overwrite: bool = True) -> None:
    """Write several files all-or-nothing: every temporary file is written first and published only when all
    writes succeeded, so a failure leaves every target (e.g. an older measurement and its sidecar) untouched.
    With overwrite=False no existing file is replaced; if one of the names is taken meanwhile, the files this
    call already published are removed again (OutputExistsError)."""
    temps: list[tuple[Path, Path]] = []
    published: list[Path] = []
    try:
        for target, data in files:
            temps.append((_temporary(Path(target)), Path(target)))
            _write_synced(temps[-1][0], data)
        for tmp, target in temps:
            _publish(tmp, target, overwrite)
            published.append(target)
    except BaseException:
        if not overwrite:
            for target in published:
                target.unlink(missing_ok=True)
        raise
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_image(x: torch.Tensor, path: str | os.PathLike, *, format: str | None = None, overwrite: bool = True,
               bit_depth: int = 8, icc_profile: bytes | None = None, alpha: torch.Tensor | None = None,
               exif: bytes | None = None, xmp: bytes | None = None, dpi: tuple[float, float] | None = None) -> Path:
    """Write a (1, C, H, W) or (C, H, W) image in [-1, 1] (C = 1 or 3) as a file, atomically.

    path: the file, or "-" for standard output. format: a Pillow format name; default from the suffix, PNG
    when there is none. overwrite=False: never replace an existing file (OutputExistsError). bit_depth 16: a
    16-bit PNG or TIFF, a 10-bit HEIC (8 bits in other formats). icc_profile, exif, xmp, dpi: embedded where the format
    allows (`encode_image`). alpha: (1, 1, H, W) opacity in [0, 1] of x composited on white, written as an alpha
    channel where the format has one. Raises ValueError for NaN/inf values or an unknown suffix, before anything
    is written.
    """
    if not overwrite and os.fspath(path) != "-" and os.path.lexists(path):  # before encoding (one made meanwhile:
        raise OutputExistsError(f"{path} exists, not replaced (overwrite=True replaces it)", path)  # atomic_write)
    data = encode_image(x, format or format_for_path(path), bit_depth=bit_depth, icc_profile=icc_profile,
                        alpha=alpha, exif=exif, xmp=xmp, dpi=dpi)
    return atomic_write_bytes(path, data, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------- channels
def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, channels, H, W): 1 -> 3 replicates; 3 -> 1 takes BT.601 luma (as in decoding)."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        w = x.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {c} channels to {channels}")


def make_grid(x: torch.Tensor, ncols: int | None = None, padding: int = 2) -> torch.Tensor:
    """Tile a batch (B, C, H, W) into one (1, C, H', W') image, `ncols` per row (default ceil(sqrt(B))),
    separated by `padding` pixels of white (+1)."""
    import torch

    b, c, h, w = x.shape
    ncols = ncols or math.ceil(math.sqrt(b))
    grid = x.new_ones(c, *grid_shape(b, h, w, padding, ncols))
    for i in range(b):
        r, col = divmod(i, ncols)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    return torch.as_tensor(grid)[None]


def example_path(name: str = "astronaut") -> Path:
    """Path of a bundled example image (ncvsd_cli/examples/<name>.png; see its README for provenance)."""
    from importlib import resources

    path = Path(str(resources.files("ncvsd_cli") / "examples" / f"{name}.png"))
    if not path.is_file():
        raise ValueError(f"no bundled example image {name!r} (looked for {path})")
    return path
