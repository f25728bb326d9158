"""Parameter helpers shared by the operators: validation with messages that name the parameter, and arrays
(masks, kernels) that survive a JSON round trip bit for bit.

An array parameter may be given as a torch tensor, a numpy array, nested lists, a path (`.npy`, or any image
Pillow reads) or the dict written by `encode_array`. `encode_array` stores the raw little-endian bytes
(zlib-compressed, base64) with dtype and shape, so `decode_array(encode_array(a))` equals `a` exactly.
"""

from __future__ import annotations

import base64
import math
import operator
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

ARRAY_ENCODING = "zlib-base64"


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """JSON-serialisable, exact encoding of a numpy array (dtype, shape, zlib+base64 of the little-endian bytes)."""
    a = np.ascontiguousarray(a)
    le = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {"encoding": ARRAY_ENCODING, "dtype": a.dtype.str.lstrip("<>|="), "shape": list(a.shape),
            "data": base64.b64encode(zlib.compress(le.tobytes(), 9)).decode("ascii")}


def decode_array(d: dict[str, Any]) -> np.ndarray:
    """Inverse of `encode_array`."""
    if d.get("encoding") != ARRAY_ENCODING:
        raise ValueError(f"unknown array encoding {d.get('encoding')!r}; expected {ARRAY_ENCODING!r}")
    dtype = np.dtype(d["dtype"]).newbyteorder("<")
    raw = zlib.decompress(base64.b64decode(d["data"]))
    return np.frombuffer(raw, dtype=dtype).reshape(d["shape"]).astype(dtype.newbyteorder("="))


class MissingParameter(ValueError):
    """An operator parameter without a default was not given (inpaint-mask's mask, deblur-kernel's kernel);
    `name` is the parameter."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


class ImageSizeError(ValueError):
    """A mask or kernel image of the wrong size, told from its header (`load_gray_image`)."""


#: EXIF Orientation values (tag 0x0112) that turn the stored image by 90° (transpose, 90°, transverse, 270°).
TURNED_ORIENTATIONS = (5, 6, 7, 8)


def displayed_size(im) -> tuple[int, int]:
    """(H, W) of an opened Pillow image as it is shown: stored size, swapped when its EXIF orientation turns it by
    90° (what `ImageOps.exif_transpose` gives), read without decoding the pixels (Pillow's PNG `getexif` decodes
    them to look for an eXIf chunk after the pixel data: a PNG's orientation is read only from one before it)."""
    width, height = im.width, im.height
    if im.format == "TIFF" and 256 in im.tag_v2 and 257 in im.tag_v2:  # stored size: Pillow >= 13 reports a
        width, height = int(im.tag_v2[256]), int(im.tag_v2[257])  # turned TIFF's size already turned
        orientation = im.tag_v2.get(0x0112)
    elif im.format == "PNG":
        orientation = png_orientation(im)
    else:
        orientation = im.getexif().get(0x0112)
    return (width, height) if orientation in TURNED_ORIENTATIONS else (height, width)


def png_orientation(im) -> int | None:
    """The EXIF orientation of an opened Pillow PNG from an eXIf chunk before its pixels, without decoding them
    (Pillow's `getexif` would); None when there is none."""
    from PIL import Image

    exif = Image.Exif()
    if im.info.get("exif"):
        exif.load(im.info["exif"])
    return exif.get(0x0112)


#: How `load_gray_image` reads a colour pixel: the mean of R, G, B (a kernel's weight), its darkest channel (a mask
#: whose marks are drawn on white: a mark of a strong colour, bright yellow too, reads dark; a pastel one may not)
#: or its brightest (marks drawn on black: a strong colour, red too, reads bright; on a layer mostly transparent
#: the opacity alone tells the marks, of any colour).
COLOUR_READINGS = {"mean": np.mean, "darkest": np.min, "brightest": np.max}


#: A float image (a float TIFF) with values from 0 up to more than this is on a 0-255 or 0-65535 scale, not on 0-1
#: overshooting a little (a resampled mask's 1.02).
FLOAT_SCALE_FROM = 1.5


def load_gray_image(path: str | Path, shape: tuple[int, int] | None = None,
                    max_side: int | None = None, colour: str = "mean", float_scale: bool = False) -> np.ndarray:
    """A mask or kernel image as float64 in [0, 1], turned as its EXIF orientation says (as images are shown):
    colour images are read by `colour` (COLOUR_READINGS: "mean", "darkest" or "brightest" of R, G, B); transparency
    reads as black (times alpha: a transparent hole of a mask, nothing of a kernel); 8- and 16-bit images are
    scaled by their maximum code value, but an image of 0 / 1 codes (a label image) is taken as it is; with
    `float_scale` (a mask), a float image of values >= 0 reaching past FLOAT_SCALE_FROM by 255 or 65535 (the scale
    they fit; a kernel's float values are its own). A (H, W)
    `shape` other than
    the file's, or a side over `max_side`, is refused (ValueError) from the header, before the pixels are decoded."""
    from PIL import Image, ImageOps

    alpha = None
    with Image.open(path) as im:
        h, w = displayed_size(im)
        if shape is not None and (h, w) != tuple(shape):
            swapped = (w, h) == (shape[0], shape[1]) and h != w  # a photo turned upright by its EXIF orientation
            raise ImageSizeError(f"is {w}x{h} pixels, the image {shape[1]}x{shape[0]}: " + (
                "its sides are swapped (photos are restored as shown, turned upright by their EXIF orientation: "
                "draw the mask on the upright photo, or turn it the same way)" if swapped else
                "give a mask of the image's size (resize it, nearest neighbour, to match)"))
        if max_side is not None and max(h, w) > max_side:
            raise ImageSizeError(f"is {w}x{h} pixels, more than {max_side} on a side")
        im = ImageOps.exif_transpose(im)
        if shape is not None and (im.height, im.width) != tuple(shape):  # a PNG's eXIf after its pixels turned it
            raise ImageSizeError(f"is {im.width}x{im.height} pixels as shown, the image {shape[1]}x{shape[0]}")
        if im.mode in ("PA", "LA", "RGBA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            alpha = np.asarray(im)[..., 3] / 255.0
            im = im.convert("RGB")
        elif im.mode in ("P", "CMYK", "YCbCr", "1"):
            im = im.convert("RGB")
        a = np.asarray(im)
    if a.dtype.kind in "iu" and a.size and a.max() == 1:  # 0 / 1 labels (what cv2.imwrite writes of a 0/1 array)
        a = a.astype(np.float64)
    elif a.dtype == np.uint8:
        a = a / 255.0
    elif a.dtype == np.uint16:
        a = a / 65535.0
    elif a.dtype.kind in "iu":  # mode "I" (how Pillow opens some 16-bit PNGs): scale by the code range in use
        a = a / (65535.0 if a.max() > 255 else 255.0)
    elif float_scale and a.dtype.kind == "f" and a.size and np.isfinite(a).all() and a.min() >= 0 and \
            FLOAT_SCALE_FROM < a.max() <= 65535:  # a float TIFF saved on 0-255 or 0-65535, as photos are read
        a = a / (255.0 if a.max() <= 255 else 65535.0)
    a = np.asarray(a, dtype=np.float64)
    a = COLOUR_READINGS[colour](a, axis=-1) if a.ndim == 3 else a
    if alpha is not None and colour == "brightest" and 0 < (alpha >= 0.5).mean() < 0.5:  # marks on a transparent
        return alpha  # layer (most of it clear): its opacity alone tells them, black ones too
    return a if alpha is None else a * alpha


def as_array(value: Any, name: str, **image_checks: Any) -> np.ndarray:
    """Turn an array parameter (tensor, ndarray, nested list, path, encoded dict) into a numpy array; image files
    through `load_gray_image(path, **image_checks)`. ValueError for complex values (a kernel's Fourier transform
    saved by mistake was taken as its real part, with numpy's ComplexWarning) and, with `max_side`, for an array
    wider or taller than that (a .npy file's from its header, mapped: a 12000-px array took 1.6 GB and 9 s); with
    `shape` (H, W), for a .npy file whose last two axes are not that (also unread)."""
    array = _array(value, name, **image_checks)
    side = image_checks.get("max_side")
    if side is not None and array.ndim >= 2 and max(array.shape[-2:]) > side:
        raise ValueError(f"{name} is {array.shape[-1]}x{array.shape[-2]}, more than {side} on a side")
    shape = image_checks.get("shape")  # an image-sized array (a mask): a mapped .npy of another size unread
    if shape is not None and isinstance(array, np.memmap) and (array.ndim < 2 or array.shape[-2:] != tuple(shape)):
        raise ValueError(f"{name} must have shape (H, W) = {tuple(shape)} (or leading axes of 1 or the channels), "
                         f"got {array.shape}")
    if np.iscomplexobj(array):
        raise ValueError(f"{name} holds complex values (a Fourier transform, e.g. an OTF?): give the real-valued "
                         "array itself")
    return np.array(array) if isinstance(array, np.memmap) else array


def _array(value: Any, name: str, **image_checks: Any) -> np.ndarray:
    if isinstance(value, dict):
        return decode_array(value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (str, Path)):
        if str(value) in ("", "-"):  # (an empty path named the current folder; "-" is no file)
            raise ValueError(f"{name}: give an image or .npy file's path, not {str(value)!r}")
        path = Path(value).expanduser()  # (~ in a preset file, or quoted on the command line)
        if path.is_dir():
            raise ValueError(f"{name}: {path} is a folder; give an image or .npy file")
        if not path.is_file():
            raise ValueError(f"{name}: file not found: {path}")
        if path.suffix.lower() == ".npy":
            try:  # mapped: `as_array` checks its shape before a byte of it is read
                return np.load(path, allow_pickle=False, mmap_mode="r")
            except (OSError, ValueError, EOFError):  # numpy's own message advises unpickling: never done here
                raise ValueError(f"{name}: {path} is not a .npy array file (numpy.save's format; pickled "
                                 "objects are never read)") from None
        try:
            return load_gray_image(path, **image_checks)
        except ImageSizeError as exc:
            raise ValueError(f"{name}: {path} {exc}") from None
        except (OSError, ValueError) as exc:  # Pillow's UnidentifiedImageError is an OSError
            raise ValueError(f"{name}: cannot read {path} as .npy or image ({exc})") from None
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot convert {type(value).__name__} to an array ({exc})") from None


def flag(value: Any, name: str) -> bool:
    """`value` as a bool (True / False, numpy's bool too), or ValueError naming `name`: bool("false") is True, so a
    string is refused, not read (the command line's `-p shift=false` arrives as YAML's false)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def positive_int(value: Any, name: str) -> int:
    """`value` as an int >= 1, or ValueError naming `name`."""
    return integer(value, name, 1)


def integer(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int in [low, high] (None: no bound): Python or numpy integers, 0-d integer tensors and whole
    numbers (3.0); ValueError naming `name` otherwise, a bool too (np.int64(3) was refused as "got np.int64(3)")."""
    result = None
    if not isinstance(value, (bool, np.bool_, str, bytes)):  # "3" is no integer (typed text is parsed before)
        try:
            result = operator.index(value)
        except TypeError:
            try:
                whole = number(value, name)
            except ValueError:
                whole = math.nan
            result = int(whole) if whole.is_integer() else None
    if result is None or (low is not None and result < low) or (high is not None and result > high):
        bounds = (f" from {low} to {high}" if low is not None and high is not None else f" >= {low}"
                  if low is not None else f" <= {high}" if high is not None else "")
        raise ValueError(f"{name} must be {'a positive integer' if (low, high) == (1, None) else 'an integer'}"
                         f"{'' if (low, high) == (1, None) else bounds}, got {value!r}")
    return result


def number(value: Any, name: str) -> float:
    """float(value), or ValueError naming `name` (e.g. -p box_size=abc)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def positive_float(value: Any, name: str, allow_zero: bool = False) -> float:
    """`value` as a finite float > 0 (>= 0 with allow_zero), or ValueError naming `name`."""
    v = number(value, name)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return v


def check_likelihood_args(rho: float, sigma_p: float) -> None:
    """The likelihood step needs finite rho > 0 and sigma_p > 0 (docs/method.md §3.3; an infinite one gave NaN)."""
    if not 0 < rho < math.inf:
        raise ValueError(f"rho must be finite and > 0, got {rho}")
    if not 0 < sigma_p < math.inf:
        raise ValueError(f"sigma_p must be finite and > 0, got {sigma_p}")


def like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Buffer `t` in x's dtype. Operator buffers (matrices, kernels) are built in float64 so that they are exact;
    each call uses them in the input's dtype. They move with `.to(device)`."""
    return t if t.dtype == x.dtype else t.to(x.dtype)
