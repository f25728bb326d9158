"""Images in and out: the one place where files, bytes and arrays become (1, C, H, W) tensors in [-1, 1]
and back.

Decoding policy (`read_image`), stated once and tested in tests/test_images.py:

- Sources: a path, raw bytes, a binary file object, or "-" for standard input. Formats: whatever Pillow
  reads (PNG, JPEG, BMP, TIFF, WebP, GIF, ...); 16-bit PNGs go through pypng and TIFFs through tifffile,
  because Pillow reduces 16-bit colour to 8 bits. Multi-frame files: the first frame. EXIF orientation is
  applied.
- Bit depth: every integer sample is divided by its maximum (255 for 8-bit, 65535 for 16-bit, 1 for 1-bit),
  so a 16-bit image keeps all 16 bits of precision in [0, 1]; float TIFF/`F` images are taken as [0, 1]
  and clipped.
- Colour, driven by the model's channel count `channels`:
  channels = 3: greyscale is replicated to 3 channels; palette images become RGB; CMYK/YCbCr/LAB become RGB.
  channels = 1: colour is reduced to luminance with the ITU-R BT.601 weights (0.299, 0.587, 0.114), in float.
  `DecodedImage.grey` records a greyscale source so that outputs can be written back as greyscale.
- Alpha (RGBA, LA, palette with transparency): composited on white (what a viewer shows on a white page) and
  reported in `DecodedImage.notes`; a fully opaque alpha channel is dropped silently.

Writing (`save_image`): values are clipped to [-1, 1] and rounded to 8 bits; the format follows the suffix
(PNG by default, also for "-" = standard output); the file is written atomically (temporary file in the same
folder, then `os.replace`) so that an interrupted or failed write leaves no partial file; NaN/inf are refused.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from ncvsd_cli.errors import one_line

if TYPE_CHECKING:  # pragma: no cover
    import torch

ImageSource = str | os.PathLike | bytes | IO[bytes]
#: BT.601 luma weights used for colour -> greyscale.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")


class ImageError(ValueError):
    """An input is not a readable image (unknown format, truncated, too large); the message is one line."""


@dataclass
class DecodedImage:
    """A decoded image and what the policy did to it.

    tensor: (1, C, H, W) float32 in [-1, 1]. mode: the source layout, e.g. "RGB", "L", "RGBA", "P", "RGB;16".
    bit_depth: bits per source sample. grey: the source had one colour channel. notes: conversions worth
    telling the user about (alpha composited, first frame of N, ...).
    """

    tensor: torch.Tensor
    mode: str
    bit_depth: int
    grey: bool
    notes: list[str] = field(default_factory=list)

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


# ------------------------------------------------------------------------------------------------- decoding
def read_source_bytes(source: ImageSource) -> tuple[bytes, str]:
    """(bytes, display name) of a path, "-" (stdin), bytes or a binary stream; ImageError if unreadable."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        if os.fspath(source) == "-":
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


def _check_pixels(name: str, h: int, w: int, max_pixels: int | None) -> None:
    if h < 1 or w < 1:
        raise ImageError(f"{name}: empty image ({w}x{h})")
    if max_pixels is not None and h * w > max_pixels:
        raise ImageError(f"{name}: {w}x{h} = {h * w} pixels exceeds --max-pixels {max_pixels}")


def _decode_png16(data: bytes, name: str, max_pixels: int | None) -> tuple[np.ndarray, str, int]:
    import png  # pypng: Pillow would reduce 16-bit colour to 8 bits

    try:
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR
        _check_pixels(name, h, w, max_pixels)
        w, h, rows, info = png.Reader(bytes=data).read_flat()
        planes = int(info["planes"])
        arr = np.asarray(rows, dtype=np.float64).reshape(h, w, planes) / float(2 ** info["bitdepth"] - 1)
    except ImageError:
        raise
    except Exception as exc:  # pypng raises FormatError/ChunkError, zlib.error, ValueError on damaged files
        raise ImageError(
            f"{name}: cannot decode 16-bit PNG (truncated or corrupt): {one_line(exc, 200)}"
        ) from None
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[planes] + ";16"
    return arr, mode, 16


def _decode_tiff(data: bytes, name: str, max_pixels: int | None) -> tuple[np.ndarray, str, int]:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        shape = page.shape
        h, w = (shape[0], shape[1]) if len(shape) >= 2 and (len(shape) == 2 or shape[-1] <= 4) else shape[-2:]
        _check_pixels(name, int(h), int(w), max_pixels)
        arr = page.asarray()
    if arr.ndim == 3 and arr.shape[0] <= 4 and arr.shape[-1] > 4:  # planar (C, H, W)
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ImageError(f"{name}: unsupported TIFF layout {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        bits = arr.dtype.itemsize * 8
        arr = arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    elif arr.dtype == bool:
        bits, arr = 1, arr.astype(np.float64)
    else:
        bits, arr = arr.dtype.itemsize * 8, np.clip(arr.astype(np.float64), 0.0, 1.0)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]] + (f";{bits}" if bits != 8 else "")
    return arr, mode, bits


def _decode_pil(
    data: bytes, name: str, max_pixels: int | None, notes: list[str]
) -> tuple[np.ndarray, str, int]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            _check_pixels(name, im.height, im.width, max_pixels)
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                notes.append(f"first of {frames} frames used")
            im.load()
            im = ImageOps.exif_transpose(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: {one_line(exc, 200)}") from None
    except Exception as exc:  # OSError "image file is truncated", SyntaxError "broken PNG file", ...
        raise ImageError(f"{name}: cannot decode image (truncated or corrupt): {one_line(exc, 200)}") from None
    mode = im.mode
    if mode == "P" and "transparency" in im.info or mode == "PA":
        arr, bits = np.asarray(im.convert("RGBA")), 8
    elif mode == "P":
        arr, bits = np.asarray(im.convert("RGB")), 8
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
        return np.clip(np.asarray(im, dtype=np.float64)[..., None], 0.0, 1.0), mode, 32
    else:  # CMYK, YCbCr, LAB, HSV
        notes.append(f"{mode} converted to RGB")
        arr, bits = np.asarray(im.convert("RGB")), 8
    arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = arr[..., None]
    return (arr if mode == "1" else arr / 255.0), mode, bits


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
    elif data[:4] in _TIFF_SIGNATURES:
        try:
            arr, mode, bits = _decode_tiff(data, name, max_pixels)
        except ImageError:
            raise
        except Exception:  # compression tifffile cannot read without imagecodecs: let Pillow try
            arr, mode, bits = _decode_pil(data, name, max_pixels, notes)
    else:
        arr, mode, bits = _decode_pil(data, name, max_pixels, notes)
    n = arr.shape[-1]
    grey = n in (1, 2)
    if n in (2, 4):  # composite on white: c * a + 1 * (1 - a)
        colour, alpha = arr[..., :-1], arr[..., -1:]
        if (alpha < 1.0).any():
            notes.append("alpha channel composited on white")
        arr = colour * alpha + (1.0 - alpha)
    if channels == 3 and arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif channels == 1 and arr.shape[-1] == 3:
        arr = arr @ np.asarray(LUMA_WEIGHTS)[:, None]
        notes.append("colour reduced to greyscale (BT.601 luma)")
    tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float()[None]
    return DecodedImage(tensor=from_unit(tensor), mode=mode, bit_depth=bits, grey=grey, notes=notes)


def load_image(source: ImageSource, channels: int = 3, *, max_pixels: int | None = None) -> torch.Tensor:
    """(1, channels, H, W) float32 tensor in [-1, 1] from a path, bytes, stream or "-" (see `read_image`)."""
    return read_image(source, channels, max_pixels=max_pixels).tensor


def image_size(source: str | os.PathLike | bytes) -> tuple[int, int]:
    """(H, W) of an image from its header only (Pillow, any bit depth). Raises ImageError."""
    from PIL import Image, UnidentifiedImageError

    data = source if isinstance(source, bytes) else None
    name = "<bytes>" if data is not None else os.fspath(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data) if data is not None else name) as im:
                return im.height, im.width
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except Exception as exc:
        raise ImageError(f"{name}: cannot read image header: {one_line(exc, 200)}") from None


# ------------------------------------------------------------------------------------------------- encoding
def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) tensor in [-1, 1] -> (H, W) or (H, W, 3) uint8 array; clipped and rounded.

    Raises ValueError if x holds NaN or inf (never written as an image) or has other than 1 or 3 channels.
    """
    import torch

    t = x.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image (1, C, H, W), got a batch of shape {tuple(t.shape)}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (C, H, W) with C in (1, 3), got {tuple(x.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("the image contains NaN or inf values; refusing to write it")
    arr = (to_unit(t.float().clamp(-1, 1)) * 255).round().to(torch.uint8).cpu().numpy().transpose(1, 2, 0)
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def format_for_path(path: str | os.PathLike | None) -> str:
    """Pillow format name for an output path from its suffix; "PNG" for "-" or no suffix; else ValueError."""
    from PIL import Image

    suffix = Path(os.fspath(path)).suffix.lower() if path not in (None, "-") else ""
    if not suffix:
        return "PNG"
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise ValueError(f"unknown image format for suffix {suffix!r} in {os.fspath(path)!r}; use .png")
    return fmt


def encode_image(x: torch.Tensor, format: str = "PNG") -> bytes:
    """Encode a (1, C, H, W) image in [-1, 1] as 8-bit file bytes (PNG by default; JPEG at quality 95)."""
    from PIL import Image

    arr = to_uint8(x)
    buf = io.BytesIO()
    options = {"quality": 95} if format.upper() in ("JPEG", "WEBP") else {}
    Image.fromarray(arr).save(buf, format=format, **options)
    return buf.getvalue()


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the folder of `path`; on success rename it onto `path`, on any failure
    (including KeyboardInterrupt) delete it, so `path` is never left half written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temporary file, fsync, os.replace); "-" writes to stdout."""
    if os.fspath(path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return Path("-")
    with atomic_path(path) as tmp:
        _write_synced(tmp, data)
    return Path(path)


def atomic_write_all(files: Sequence[tuple[str | os.PathLike, bytes]]) -> None:
    """Write several files all-or-nothing: every temporary file is written first and renamed only when all
    writes succeeded, so a failure leaves every target (e.g. an older measurement and its sidecar) untouched."""
    with ExitStack() as stack:
        for target, data in files:
            _write_synced(stack.enter_context(atomic_path(target)), data)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_image(x: torch.Tensor, path: str | os.PathLike, *, format: str | None = None) -> Path:
    """Write a (1, C, H, W) or (C, H, W) image in [-1, 1] (C = 1 or 3) as an 8-bit file, atomically.

    path: the file, or "-" for standard output. format: a Pillow format name; default from the suffix, PNG
    when there is none. Raises ValueError for NaN/inf values or an unknown suffix, before anything is written.
    """
    data = encode_image(x, format or format_for_path(path))
    return atomic_write_bytes(path, data)


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
    import math

    import torch

    b, c, h, w = x.shape
    ncols = ncols or math.ceil(math.sqrt(b))
    nrows = math.ceil(b / ncols)
    grid = x.new_ones(c, nrows * (h + padding) + padding, ncols * (w + padding) + padding)
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
