"""Measurements: what `ncvsd degrade` writes and `ncvsd restore` reads, callable from Python.

`degrade` makes y = A(x) + sigma_y n with the noise drawn from the stream `stream_seed("measurement", seed, key)`
(operators.noise; key = a hash of the clean image, so every input of a call gets its own noise and the same
image the same noise wherever it comes), which no restoration draws from. `save_measurement(m, "measured.png")` writes
- `measured.png`: a viewable 8-bit preview (the clipped measurement for image-shaped tasks: the small image
  for sr, the masked image for inpainting; for phase retrieval log|y| from its median to its 99.9th
  percentile, `preview`), with the
  source's ICC profile;
- `measured.png.ncvsd.json`: the sidecar: task, the operator's full `to_config()` (kernel, mask, seeds),
  sigma_y, seed, image and measurement shapes, the preview's file name, size and sha256, the source's bit depth
  and ICC profile, and the sha256 of
- `measured.png.ncvsd.safetensors`: the unclipped float measurement (tensor "y", shape measurement_shape).
`load_measurement` checks every field (a sidecar is untrusted input: types, ranges, sizes before any allocation)
and that the sidecar belongs to its preview, then rebuilds exactly that operator and y: `ncvsd restore
measured.png` restores what was measured, at the recorded sigma_y. `measurement_from_image` treats a plain image
as the measurement of a task.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import os
import stat
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncvsd_cli import images
from ncvsd_cli.errors import one_line

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

SIDECAR_SUFFIX = ".ncvsd.json"
TENSORS_SUFFIX = ".ncvsd.safetensors"
SIDECAR_FORMAT = "ncvsd-measurement"
SIDECAR_VERSION = 1
#: Largest sidecar JSON read (masks and kernels are stored in it, compressed).
MAX_SIDECAR_BYTES = 64 * 2**20
#: Largest decoded array (mask, kernel) a sidecar may hold, in bytes.
MAX_ARRAY_BYTES = 256 * 2**20


class MeasurementError(ValueError):
    """A sidecar is missing, unreadable, inconsistent with its files, or does not fit the model (one line)."""


@dataclass
class Measurement:
    """A measurement and the operator that made it.

    y: (1, *measurement_shape) float tensor, unclipped. operator_config: `Operator.to_config()` (name,
    image_shape, parameters). sigma_y >= 0: noise std on the [-1, 1] scale (restoration runs at it unless told
    otherwise). seed: the noise seed (None for real inputs). grey: the clean source was greyscale (outputs are
    then written as greyscale). notes: decoding remarks. built: the operator, once `operator()` has made it.
    bit_depth: bits per sample of the source (outputs keep 16 bits when > 8). icc_profile: the source's ICC
    colour profile, copied to the outputs. kernel_read: its blur kernel was read from the image (a camera shake,
    `restore.motion_notes`). alpha: (1, 1, h, w) opacity in [0, 1] of a plain image with transparency (y holds its
    colour composited on white), carried to the outputs by `output_alpha`; None otherwise. matte: that opacity where
    y was extended under the transparency (`extend_under_transparency`: blurs and super-resolution), whose
    restorations are composited back on white with it (`recomposite`); None otherwise. exif: the EXIF a plain
    photo's outputs keep (`images.exif_kept`; not saved in sidecars); xmp: its XMP packet, likewise
    (`images.xmp_kept`); dpi: its outputs' pixels per inch (the input's, `images.image_dpi`, times the operator's
    size factor: the same print size), likewise; lossless_webp: the input is a lossless WebP (WebP outputs are
    written lossless). read_seconds: the time `ncvsd restore` took to read it (the file, and its noise level,
    blur or camera shake), reported in its --json record.
    """

    task: str
    operator_config: dict[str, Any]
    y: torch.Tensor
    sigma_y: float
    seed: int | None = None
    source: str | None = None
    grey: bool = False
    notes: list[str] = field(default_factory=list)
    built: Any = field(default=None, repr=False, compare=False)
    bit_depth: int = 8
    icc_profile: bytes | None = field(default=None, repr=False)
    kernel_read: bool = field(default=False, compare=False)
    alpha: torch.Tensor | None = field(default=None, repr=False, compare=False)
    matte: torch.Tensor | None = field(default=None, repr=False, compare=False)
    exif: bytes | None = field(default=None, repr=False, compare=False)
    xmp: bytes | None = field(default=None, repr=False, compare=False)
    dpi: tuple[float, float] | None = field(default=None, repr=False, compare=False)
    read_seconds: float = field(default=0.0, repr=False, compare=False)
    lossless_webp: bool = field(default=False, repr=False, compare=False)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the image the operator acts on."""
        return tuple(int(v) for v in self.operator_config["image_shape"])  # type: ignore[return-value]

    def operator(self):
        """The operator rebuilt from `operator_config` (bit-identical measurements), built once and kept."""
        if self.built is None:
            import operators

            self.built = operators.from_config(self.operator_config)
        return self.built


def _accepts(cls: type, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def large_sigma_warning(sigma_y: float | None, name: str = "sigma_y") -> str | None:
    """The warning for a noise level `sigma_y` above 1 on the [-1, 1] scale (noise of half the image's range: most
    likely a level meant on the 0-255 scale, 25 there being 25 / 127.5 = 0.196 here), named `name`; None for a
    level of at most 1, or None."""
    if sigma_y is None or not sigma_y > 1:
        return None
    return (f"{name} {sigma_y:g} is on the [-1, 1] scale, where 1 is half the image's range: the image is buried in "
            f"noise; a level meant on the 0-255 scale is {sigma_y:g} / 127.5 = {sigma_y / 127.5:.4g} here")


def degrade(
    x: torch.Tensor,
    task: str,
    sigma_y: float = 0.05,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    source: str | None = None,
    grey: bool = False,
    bit_depth: int = 8,
    icc_profile: bytes | None = None,
) -> Measurement:
    """Measure a clean image: y = A(x) + sigma_y n, n from the stream `stream_seed("measurement", seed,
    tensor_key(x))` (its own noise per image; the same image and seed give the same floats).

    x: (1, C, H, W) in [-1, 1]; C = 1, a grey image, is measured as `ncvsd degrade` measures a grey photo: replicated
    to 3 channels with grey=True (restorable by the colour networks, written grey). task: an operator name
    (`operators.names()`). params: operator parameters; an operator that takes a `seed` parameter (random mask,
    motion kernel) gets `seed` unless params sets it.
    bit_depth, icc_profile: of the source, recorded so that restorations keep them.
    Raises ValueError for an unknown task, bad parameters or an image size the operator cannot take.
    """
    import torch

    import operators
    from operators.noise import MAX_SEED, stream_generators, tensor_key
    from operators.params import integer, number

    x = images.as_image_tensor(x, source or "degrade input")
    if source is None and images.spans_unit_range(x):  # a library call (the command reads files on [-1, 1])
        warnings.warn("degrade: x spans [0, 1], and degrade expects [-1, 1]: if x is a [0, 1] image, map it "
                      "(x * 2 - 1; images.from_unit does it)", stacklevel=2)
    if x.shape[1] == 1:
        x, grey = images.match_channels(x, 3), True
    seed, sigma_y = integer(seed, "seed", 0, MAX_SEED), number(sigma_y, "sigma_y")  # as load_measurement reads them
    if sigma_y < 0 or not math.isfinite(sigma_y):
        raise ValueError(f"sigma_y must be >= 0 and finite, got {sigma_y}")
    if source is None and (message := large_sigma_warning(sigma_y)):  # (the command says it once, as --sigma-y)
        warnings.warn(f"degrade: {message}", stacklevel=2)
    cls = operators.get(task)
    params = dict(params or {})
    if _accepts(cls, "seed") and "seed" not in params:
        params["seed"] = int(seed)
    op = operators.create(task, tuple(x.shape[1:]), **params)
    with torch.no_grad():
        y = measure_image(op, x, sigma_y, stream_generators("measurement", seed, [tensor_key(x)]), grey)
        if not type(op).__module__.startswith("operators."):  # a plug-in's: its sidecar must rebuild it
            _check_rebuilt(op, x)
    return Measurement(
        task=task,
        operator_config=op.to_config(),
        y=y.detach().cpu(),
        sigma_y=float(sigma_y),
        seed=int(seed),
        source=source,
        grey=grey,
        bit_depth=int(bit_depth),
        icc_profile=icc_profile,
    )


def measure_image(op: Any, x: torch.Tensor, sigma_y: float, generator: Any, grey: bool) -> torch.Tensor:
    """y = op.measure(x, sigma_y, generator); for a grey image (`grey`, x's channels one grey; a grey photo stored as
    RGB, three equal channels, too) one noise field shared by the three channels of y, as a grey photo has (each its
    own: three looks at the image, about 3 dB easier to restore than the photo; a plug-in measuring other channel
    counts: apart)."""
    from operators.noise import randn_like

    grey = grey or (x.dim() == 4 and x.shape[0] == 1 and x.shape[1] == 3 and distinct_channel_count(x[0]) == 1)
    y = op.measure(x, sigma_y=0.0 if grey else sigma_y, generator=generator)
    if grey and sigma_y > 0:
        shared = y.dim() >= 2 and y.shape[1] == 3
        y = y + sigma_y * (randn_like(y[:, :1], generator).expand_as(y) if shared else randn_like(y, generator))
    return y


def _check_rebuilt(op: Any, x: torch.Tensor) -> None:
    """ValueError naming a plug-in operator whose config (`to_config`, through JSON as a sidecar keeps it) does not
    rebuild it: a constructor parameter left out of `extra_config`, or a random draw not kept (restore silently
    rebuilt another operator and restored against it)."""
    import torch

    import operators
    from operators.base import all_finite

    if not all_finite(measured := op(x)):  # (it was said as "not rebuilt by its config")
        raise ValueError(f"operator '{op.name}' ({type(op).__module__}.{type(op).__qualname__}): forward returned "
                         "NaN or inf values for a finite image")
    rebuilt = operators.from_config(json.loads(json.dumps(op.to_config(), default=_json_default)))
    same = rebuilt(x)
    if same.shape != measured.shape or not bool(torch.allclose(same, measured, rtol=1e-5, atol=1e-6)):
        raise ValueError(f"operator '{op.name}' ({type(op).__module__}.{type(op).__qualname__}) is not rebuilt by "
                         f"its config {sorted(op.to_config())}: its extra_config must return every constructor "
                         "parameter, and what it draws at random must come from a parameter (e.g. a seed)")


def check_operator_params(task: str, image_shape: tuple[int, int, int], params: dict[str, Any] | None) -> None:
    """Build `task`'s operator for `image_shape` (C, H, W) with `params` once, so that a bad parameter is found
    before any work (ValueError naming it: unknown name, bad value, a kernel too large, ...)."""
    import operators

    operators.create(task, tuple(image_shape), **(params or {}))


def is_image_like(m: Measurement) -> bool:
    """Whether y is itself a picture (same value convention as images): all tasks but phase retrieval."""
    return m.task != "phase-retrieval" and m.y.dim() == 4 and m.y.shape[1] in (1, 3)


def preview(m: Measurement) -> torch.Tensor:
    """A viewable (1, C, h, w) image in [-1, 1] of a measurement: y clipped for image-like tasks, else the
    log-amplitude log|y| from black at its median (the noise floor of a noisy spectrum) to white at its 99.9th
    percentile (the few brightest values, the DC term, are clipped; mean over channels unless 1 or 3 channels).
    A grey source's image-like preview is y's first channel (`degrade` gives its three channels one noise field)."""
    import numpy as np
    import torch

    y = m.y.detach().float()
    if is_image_like(m):
        out = (y[:, :1] if m.grey else y).clamp(-1, 1)
    else:
        a = y.abs()
        while a.dim() > 4:
            a = a.flatten(1, 2)
        if a.dim() < 4:
            a = a.reshape(1, 1, *([1] * (3 - a.dim())), *a.shape[1:])
        if a.shape[1] not in (1, 3):
            a = a.mean(dim=1, keepdim=True)
        a = a.clamp_min(torch.finfo(a.dtype).tiny).log()
        lo, hi = (float(v) for v in np.percentile(a.flatten().numpy(), [50, 99.9]))
        out = images.from_unit(((a - lo) / (hi - lo)).clamp(0, 1) if hi > lo else a * 0)
    return images.match_channels(out, 1) if m.grey else out


def sidecar_paths(preview_path: str | os.PathLike) -> tuple[Path, Path]:
    """(`X.ncvsd.json`, `X.ncvsd.safetensors`) beside the preview image X."""
    p = Path(preview_path)
    return p.with_name(p.name + SIDECAR_SUFFIX), p.with_name(p.name + TENSORS_SUFFIX)


def input_identity(path: Path) -> tuple[Path, Path]:
    """(the path restore reads for an input `path`, the preview image it stands for): X.png.ncvsd.safetensors
    reads as its sidecar X.png.ncvsd.json; X.png, its sidecar and its tensors stand for X.png, one measurement
    (restored once when a glob such as 'measured/*' lists all three)."""
    if path.name.endswith(TENSORS_SUFFIX):
        path = path.with_name(path.name[: -len(TENSORS_SUFFIX)] + SIDECAR_SUFFIX)
    if path.name.endswith(SIDECAR_SUFFIX):
        return path, path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
    return path, path


def find_sidecar(path: str | os.PathLike) -> Path | None:
    """The sidecar of `path`: itself if it ends with .ncvsd.json, else `path + .ncvsd.json` if present."""
    p = Path(path)
    if p.name.endswith(SIDECAR_SUFFIX):
        return p
    side = sidecar_paths(p)[0]
    try:
        return side if side.is_file() else None
    except OSError:  # a name too long for the file system with the suffix: no sidecar can be there
        return None


def save_measurement(m: Measurement, path: str | os.PathLike, *, overwrite: bool = True) -> list[str]:
    """Write the preview image `path` plus its sidecar JSON and tensors (module docstring); returns the paths.

    All three files are written all-or-nothing (images.atomic_write_all): a failure leaves existing files intact;
    overwrite=False never replaces an existing file (images.OutputExistsError). path "-": only the preview goes to
    standard output (no sidecar). ValueError: y's shape is not the one its operator makes (such a sidecar would
    be refused on reading).
    """
    from safetensors.torch import save as st_save

    produced = list(m.operator().measurement_shape(1)[1:])
    if list(m.y.shape[1:]) != produced:  # (`load_measurement` refuses such a sidecar: refused before it is written)
        raise ValueError(f"y of shape {list(m.y.shape[1:])} is no measurement of its {m.task} operator, whose "
                         f"measurements of a {list(m.image_shape)} image have shape {produced}")
    pv = preview(m)
    png = images.encode_image(pv, images.format_for_path(path), icc_profile=m.icc_profile)
    if os.fspath(path) == "-":
        images.atomic_write_bytes("-", png)
        return ["-"]
    side, tens = sidecar_paths(path)
    blob = st_save({"y": m.y[0].detach().cpu().contiguous()})
    meta = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "task": m.task,
        "operator": m.operator_config,
        "sigma_y": m.sigma_y,
        "seed": m.seed,
        "image_shape": list(m.image_shape),
        "measurement_shape": list(m.y.shape[1:]),
        "measurement_dtype": str(m.y.dtype).replace("torch.", ""),
        "tensors": tens.name,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "preview": {
            "file": Path(path).name,
            "size": [int(pv.shape[-2]), int(pv.shape[-1])],
            "kind": "image" if is_image_like(m) else "log-amplitude",
            "sha256": hashlib.sha256(png).hexdigest(),
        },
        "source": m.source,
        "source_grey": m.grey,
        "source_bit_depth": int(m.bit_depth),
        "icc_profile": base64.b64encode(m.icc_profile).decode("ascii") if m.icc_profile else None,
        "value_range": "[-1, 1] image convention" if is_image_like(m) else
                       "the operator's output for an image x on the [-1, 1] scale (phase retrieval: Fourier "
                       "amplitudes of (x + 1) / 2 zero-padded, docs/method.md section 4.5)",
    }
    text = json.dumps(meta, indent=1, default=_json_default).encode()
    images.atomic_write_all([(Path(path), png), (side, text), (tens, blob)], overwrite=overwrite)
    return [str(path), str(side), str(tens)]


def _json_default(obj: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _read_sidecar(side: Path) -> dict[str, Any]:
    """The sidecar's JSON object, read with a size limit from a regular file; MeasurementError otherwise."""
    try:
        info = side.stat()
        if not stat.S_ISREG(info.st_mode):
            raise MeasurementError(f"{side}: not a regular file")
        if info.st_size > MAX_SIDECAR_BYTES:
            raise MeasurementError(f"{side}: sidecar is {info.st_size} bytes, more than the {MAX_SIDECAR_BYTES} "
                                   "a measurement needs")
        meta = json.loads(side.read_bytes().decode("utf-8"))
    except MeasurementError:
        raise
    except OSError as exc:
        raise MeasurementError(f"{side}: cannot read the sidecar: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MeasurementError(f"{side}: unreadable sidecar (invalid JSON): {one_line(str(exc), 120)}") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        raise MeasurementError(f"{side}: not an ncvsd measurement sidecar (format {SIDECAR_FORMAT!r})")
    return meta


def sidecar_task(path: str | os.PathLike) -> str:
    """The task recorded in the sidecar of `path` (no other check); MeasurementError when there is none."""
    side = find_sidecar(path)
    if side is None:
        raise MeasurementError(f"{path}: no measurement sidecar")
    task = _read_sidecar(side).get("task")
    if not isinstance(task, str) or not task:
        raise MeasurementError(f"{side}: the sidecar records no task")
    return task


def _field(meta: dict[str, Any], side: Path, key: str, kind: type | tuple, what: str) -> Any:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise MeasurementError(f"{side}: sidecar field {key!r} must be {what}, got {json.dumps(value)[:60]}")
    return value


def _int_list(value: Any, side: Path, key: str, n: int | None = None, lo: int = 0) -> list[int]:
    ok = isinstance(value, list) and (n is None or len(value) == n) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= lo for v in value)
    if not ok:
        raise MeasurementError(f"{side}: sidecar field {key!r} must be a list of {n or 'some'} integers >= {lo}, "
                               f"got {json.dumps(value)[:60]}")
    return list(value)


def _check_arrays(value: Any, side: Path, limit: int) -> None:
    """Every array encoded in an operator config (operators.params.encode_array) decodes to at most `limit` bytes:
    its declared shape is checked, and it is inflated with a cap, so a zlib bomb is refused before it grows."""
    import numpy as np

    if isinstance(value, list):
        for v in value:
            _check_arrays(v, side, limit)
        return
    if not isinstance(value, dict):
        return
    if "encoding" in value and "data" in value:
        try:
            shape = [int(d) for d in value["shape"]]
            size = int(np.prod(shape, dtype=np.float64)) * np.dtype(value["dtype"]).itemsize
            if min(shape, default=1) < 0 or size > limit:
                raise MeasurementError(f"{side}: an operator array of shape {shape} is larger than {limit} bytes")
            inflater = zlib.decompressobj()
            raw = inflater.decompress(base64.b64decode(value["data"], validate=True), size + 1)
            if len(raw) != size or inflater.unconsumed_tail:
                raise MeasurementError(f"{side}: an operator array holds other than its declared {size} bytes")
        except MeasurementError:
            raise
        except (KeyError, TypeError, ValueError, OverflowError, binascii.Error, zlib.error) as exc:
            raise MeasurementError(f"{side}: unreadable operator array: {one_line(str(exc), 100)}") from None
        return
    for v in value.values():
        _check_arrays(v, side, limit)


def _check_preview(meta: dict[str, Any], side: Path, notes: list[str]) -> None:
    """Bind the sidecar to its preview image: the recorded file name must be the one the sidecar is named after
    (else the preview's content hash must match: a consistently renamed set); an edited preview is noted."""
    pv = meta.get("preview")
    if not isinstance(pv, dict) or not isinstance(pv.get("file"), str) or not (
            pv.get("size") is None or isinstance(pv.get("size"), list)):
        raise MeasurementError(f"{side}: sidecar field 'preview' must be an object with a file name and a size")
    png = side.with_name(side.name[: -len(SIDECAR_SUFFIX)])
    data = None
    if png.is_file():
        try:
            data = png.read_bytes()
        except OSError:
            data = None
    digest = hashlib.sha256(data).hexdigest() if data is not None else None
    recorded = pv.get("sha256")
    plain = meta.get("task") != "phase-retrieval"  # (its preview shows amplitudes: no image to restore as it is)
    if pv["file"] != png.name and (recorded is None or digest != recorded):
        raise MeasurementError(
            f"{side}: this sidecar was written for {pv['file']!r}, not {png.name!r}, whose pixels differ from the "
            "ones it recorded (swapped sidecars, or an image renamed and edited?); "
            f"restore {pv['file']} with its own sidecar"
            + (f", or use --no-sidecar to restore {png.name} as a plain image" if plain else ""))
    if data is None:
        return
    if pv.get("size") is not None:
        size = list(images.image_size(data, name=str(png)))
        want = _int_list(pv["size"], side, "preview.size", 2)
        if size != want:
            raise MeasurementError(
                f"{png}: image is {size[1]}x{size[0]} but its sidecar recorded {want[1]}x{want[0]} "
                "(wrong size for its sidecar)")
    if recorded is not None and digest != recorded:
        notes.append(f"{png.name} was changed after `ncvsd degrade` wrote it; restoring the measurement recorded in "
                     f"{side.name}, not the edited pixels"
                     + (" (--no-sidecar restores the image as it is)" if plain else ""))


def load_measurement(path: str | os.PathLike, max_pixels: int | None = None) -> Measurement:
    """Read a measurement written by `save_measurement`: `path` is the preview image or its `.ncvsd.json`.

    Everything in the sidecar is checked before it is used: types and ranges of every field, the image size
    against `max_pixels` (H * W), the size of encoded masks and kernels, that the sidecar belongs to its preview
    (file name, or content hash after a rename; an edited preview is noted in `notes`), the tensors' sha256 and
    shape, and that the operator builds and produces that shape. Raises MeasurementError with a one-line message.
    """
    from safetensors.torch import load as st_load

    side = find_sidecar(path)
    if side is None or not side.is_file():
        raise MeasurementError(f"{path}: no measurement sidecar ({Path(path).name}{SIDECAR_SUFFIX}) found")
    meta = _read_sidecar(side)
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SIDECAR_VERSION:
        raise MeasurementError(f"{side}: sidecar version {version!r} is not supported")
    task = _field(meta, side, "task", str, "an operator name")
    cfg = _field(meta, side, "operator", dict, "an operator config object")
    if cfg.get("name") != task:
        raise MeasurementError(f"{side}: the operator {cfg.get('name')!r} is not the task {task!r}")
    shape_c, shape_h, shape_w = _int_list(cfg.get("image_shape"), side, "operator.image_shape", 3, lo=1)
    if shape_c not in (1, 3):
        raise MeasurementError(f"{side}: image with {shape_c} channels; 1 or 3 are supported")
    if max_pixels is not None and shape_h * shape_w > max_pixels:
        raise MeasurementError(f"{side}: output {shape_w}x{shape_h} exceeds --max-pixels {max_pixels}")
    shape = _int_list(meta.get("measurement_shape"), side, "measurement_shape")
    sigma_y = _field(meta, side, "sigma_y", (int, float), "a number >= 0")
    if not (math.isfinite(sigma_y) and sigma_y >= 0):
        raise MeasurementError(f"{side}: sigma_y must be finite and >= 0, got {sigma_y}")
    seed = meta.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise MeasurementError(f"{side}: seed must be an integer >= 0, got {json.dumps(seed)[:40]}")
    grey = meta.get("source_grey", False)
    bits = meta.get("source_bit_depth", 8)
    icc_text = meta.get("icc_profile")
    for key, value, ok, want in (
            ("source_grey", grey, isinstance(grey, bool), "true or false"),
            ("source_bit_depth", bits, isinstance(bits, int) and not isinstance(bits, bool) and 1 <= bits <= 32,
             "an integer 1-32"),
            ("icc_profile", icc_text, isinstance(icc_text, (str, type(None))), "base64 text or null")):
        if not ok:
            raise MeasurementError(f"{side}: {key} must be {want}, got {json.dumps(value)[:40]}")
    try:
        icc = base64.b64decode(icc_text, validate=True) if icc_text else None
    except (binascii.Error, ValueError):
        raise MeasurementError(f"{side}: icc_profile is not base64") from None
    notes: list[str] = []
    _check_preview(meta, side, notes)
    _check_arrays(cfg, side, MAX_ARRAY_BYTES)

    tens = sidecar_paths(side.with_name(side.name[: -len(SIDECAR_SUFFIX)]))[1]
    import numpy as np

    from operators.base import all_finite

    expected = int(np.prod(shape, dtype=np.float64)) * 8 + 2**16  # float64 at most, plus the header
    try:
        info = tens.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > expected:
            raise MeasurementError(f"{tens}: not a measurement of shape {shape} (a {info.st_size}-byte "
                                   f"{'file' if stat.S_ISREG(info.st_mode) else 'special file'})")
        blob = tens.read_bytes()
    except OSError as exc:
        raise MeasurementError(f"{side}: cannot read the measurement tensors {tens.name}: {exc.strerror or exc}") \
            from None
    if hashlib.sha256(blob).hexdigest() != meta.get("tensors_sha256"):
        raise MeasurementError(f"{tens}: sha256 does not match its sidecar; the measurement was modified")
    try:
        y = st_load(blob)["y"]
    except Exception as exc:
        raise MeasurementError(f"{tens}: unreadable measurement tensors: {one_line(str(exc), 120)}") from None
    if list(y.shape) != shape:
        raise MeasurementError(
            f"{tens}: measurement shape {list(y.shape)} differs from the sidecar's {shape}"
        )
    if not y.is_floating_point() or not all_finite(y):
        raise MeasurementError(f"{tens}: the measurement is not a finite float tensor")
    m = Measurement(task=task, operator_config=cfg, y=y[None], sigma_y=float(sigma_y), seed=seed, source=str(side),
                    grey=grey, notes=notes, bit_depth=bits, icc_profile=icc)
    _check_operator_memory(side, cfg)
    try:
        op = m.operator()
        produced = list(op.measurement_shape(1)[1:])
    except Exception as exc:  # an operator that cannot be built from this config is this input's problem only
        raise MeasurementError(f"{side}: the recorded operator cannot be rebuilt: {one_line(str(exc), 160)}") \
            from None
    if produced != shape:
        raise MeasurementError(f"{side}: the operator makes measurements of shape {produced}, the sidecar "
                               f"records {shape}")
    return m


def _check_operator_memory(side: Path, cfg: dict[str, Any]) -> None:
    """MeasurementError when building the recorded operator would need more host memory than is available
    (`memory.operator_bytes`: super-resolution's per-axis matrices; a 20000-px wide output's took 5.7 GB), said
    before it is built, as a plain image's restore says it."""
    from ncvsd_cli import memory

    shape = cfg.get("image_shape") or ()
    need = memory.operator_bytes(cfg, shape) if len(shape) == 3 else 0
    host = memory.available_memory_bytes("cpu") if need else None
    if host is not None and need > host:
        raise MeasurementError(f"{side}: its {cfg.get('name')} operator for a {shape[2]}x{shape[1]} output needs an "
                               f"estimated {memory.format_bytes(need)} of host memory but "
                               f"{memory.format_bytes(host)} is available: measure and restore a crop")


#: Side (px) of the centre square `estimate_noise_sigma` reads a larger image on; the side of its patches (at most)
#: and the most patches it reads (a stride thins them on large images: bounded time and memory).
NOISE_WINDOW, NOISE_PATCH, NOISE_MAX_PATCHES = 1024, 7, 1 << 16
#: The smallest side (px) of a grey image whose noise is read (a fur photo at 40 px reads 0.04-0.05 clean).
NOISE_GREY_MIN_SIDE = 40
#: Channels that differ from an earlier one by at most this everywhere ([-1, 1] scale: 2 levels of 8 bits) are
#: copies of it (a grey image as RGB); noise of 0.01 gives larger differences almost surely.
GREY_TOLERANCE = 4 / 255


def noise_patch_side(channels: int, height: int, width: int) -> int:
    """The side p of the patches `estimate_noise_sigma` reads an image of this shape with: NOISE_PATCH, or the
    largest p >= 2 giving at least 20x as many patches as their C p^2 dimensions (with fewer, pure noise's
    eigenvalues spread wide and it reads low); 0: too small to read, under 17 x 17 px in colour (1-px "patches"
    read a clean picture's colour variation as noise: 0.11-0.12 on 8-16 px photos) and under NOISE_GREY_MIN_SIDE
    in grey (too few weakly textured patches: clean grey photos of 16-20 px read 0.08-0.27)."""
    h, w = min(height, NOISE_WINDOW), min(width, NOISE_WINDOW)
    if channels == 1 and min(h, w) < NOISE_GREY_MIN_SIDE:
        return 0
    if channels < 1:
        return 0
    fits = (p for p in range(NOISE_PATCH, 1, -1) if min(h, w) >= p and (h - p + 1) * (w - p + 1) >= 20 * channels * p * p)
    return next(fits, 0)


def distinct_channels(z: torch.Tensor) -> torch.Tensor:
    """z (C, h, w) less the channels within GREY_TOLERANCE of an earlier one everywhere (a grey photo as RGB, a
    grey JPEG's rounding): the channels whose noise `estimate_noise_sigma` reads."""
    return z[_distinct(z)]


def distinct_channel_count(z: torch.Tensor) -> int:
    """len(distinct_channels(z)) without copying them: 1 for a grey image (also one stored as RGB), else 2-3."""
    return len(_distinct(z))


def _distinct(z: torch.Tensor) -> list[int]:
    return [c for c in range(len(z)) if all(_differ(z[c], z[k]) for k in range(c))]


def _differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two channels (h, w) differ by more than GREY_TOLERANCE somewhere: first on a grid of ~65k pixels (a
    colour photo's channels part there; a 48 MP image is not read whole three times; a strided view, no copy),
    else at every pixel."""
    step = max(1, math.isqrt(a.numel() // 65536))
    if (a[..., ::step, ::step] - b[..., ::step, ::step]).abs().max() > GREY_TOLERANCE:
        return True
    return bool((a - b).abs().max() > GREY_TOLERANCE)


#: Pixels with a channel within this of the range's ends ([-1, 1] scale: 1.5 levels of 8 bits) are clipped: noise
#: there is cut off, so a flat clipped area (a blown sky, a white backdrop, crushed shadows) shows little or none.
CLIP_MARGIN = 3 / 255


def clipped_pixels(y: torch.Tensor) -> torch.Tensor:
    """(1, 1, h, w) bool: the pixels of y (1, C, h, w, [-1, 1] scale) with a channel within CLIP_MARGIN of -1 or 1;
    none where y strays beyond [-1, 1] (values a file cannot hold: y was never clipped, e.g. x + noise in Python)."""
    beyond = bool((y.abs() > 1 + 1e-6).any())
    return ((y <= -1 + CLIP_MARGIN) | (y >= 1 - CLIP_MARGIN)).any(dim=1, keepdim=True) & (not beyond)


def estimate_noise_sigma(y: torch.Tensor, clipped: torch.Tensor | None = None) -> float:
    """The std (on the [-1, 1] scale, >= 0) of white Gaussian noise in y (1, C, h, w), from the eigenvalues of the
    covariance of its overlapping p x p patches, all channels together (Chen, Zhu & Heng, "An Efficient Statistical
    Method for Image Noise Level Estimation", ICCV 2015): white noise adds sigma^2 to every eigenvalue, a picture's
    structure lifts a few of them far above; the largest are dropped until the rest lie as many above their mean as
    below it, and sigma = sqrt(that mean). Texture, edges and fur barely move it (the median of the finest Haar
    details it replaced read +0.02 to +0.05 on fur: benchmarks/noise-estimator/); clipping at large noise biases it
    down (0.2 reads about 0.18-0.2). p = `noise_patch_side` (7, smaller on small images); images too small to read
    give 0. Large images are read on their centre NOISE_WINDOW-px square, thinned to NOISE_MAX_PATCHES patches.
    Channels within GREY_TOLERANCE of an earlier one everywhere (a grey photo as RGB, a grey JPEG's rounding) are
    read once: copies of the noise would leave their patches' differences noise-free and it would read 0.
    clipped: (1, 1, h, w), > 0 at y's clipped pixels (`clipped_pixels`): patches holding one are left out while at
    least 20 x C p^2 others remain (else every patch is read), the stride chosen from those kept. Not the default:
    a clean photo whose only flat areas clip then reads its texture as noise (benchmarks/clipped-noise/).
    One channel left (a grey photo) has no colour redundancy, whose noise-only directions the reading rests on:
    clean grey photos read 0.045-0.095 (validation photos at 256 px). It is then read again on the weakly textured
    patches only (Liu, Tanaka & Okutomi, "Single-Image Noise Level Estimation for Blind Denoising", IEEE TIP
    2013; gradient energy below WEAK_TEXTURE_QUANTILE of pure noise's at the level read, repeated until it
    settles): 0.002-0.023 clean, noise of 0.01-0.1 with a mean error of at most 0.006 (a grainy scan reads 0.025
    at 0.01; benchmarks/noise-estimator/grey.md)."""
    import torch

    z = distinct_channels(images.centre_crop(y[0], NOISE_WINDOW).double())
    c, h, w = z.shape
    p = noise_patch_side(c, h, w)
    if p == 0:
        return 0.0
    free = torch.ones(h - p + 1, w - p + 1, dtype=torch.bool)  # the patches read
    if clipped is not None:
        cut = images.centre_crop(clipped[0], NOISE_WINDOW).double()[None]  # (1, 1, h, w): > 0 where clipped
        unclipped = torch.nn.functional.max_pool2d(cut, p, stride=1)[0, 0] == 0
        free = unclipped if int(unclipped.sum()) >= 20 * c * p * p else free
    stride = max(1, math.ceil(math.sqrt(int(free.sum()) / NOISE_MAX_PATCHES)))
    kept = free[::stride, ::stride].flatten()
    patches = torch.nn.functional.unfold(z[None], p, stride=stride)[0][:, kept]  # (C p p, patches)
    var = _noise_variance(patches)
    if c == 1:  # one channel: no colour redundancy leaves noise-only directions, so texture reads as noise
        energy = _gradient_energy(z, p)[::stride, ::stride].flatten()[kept]
        for _ in range(WEAK_TEXTURE_ROUNDS):  # Liu, Tanaka & Okutomi 2013: re-read on the weak-texture patches
            weak = energy < var * _noise_energy_quantile(p)
            if int(weak.sum()) < 4 * p * p:
                break
            var, previous = _noise_variance(patches[:, weak]), var
            if abs(var - previous) <= 1e-4 * previous:
                break
    return math.sqrt(var)


#: The std of white RGB noise of std 1 on the luma (`images.LUMA_WEIGHTS`, BT.601): |w| = 0.668.
LUMA_NOISE_GAIN = math.sqrt(sum(w * w for w in images.LUMA_WEIGHTS))


def estimate_luma_noise_sigma(y: torch.Tensor, coarse: bool = False, *, scale: int | None = None,
                              skip_clipped: bool = False) -> float:
    """The per-channel std (on the [-1, 1] scale, >= 0) of white RGB noise in y (1, 3, h, w), read on its luma
    alone (`estimate_noise_sigma` of 0.299 R + 0.587 G + 0.114 B, a one-channel image) / LUMA_NOISE_GAIN; coarse:
    on the luma's 2 x 2 means, x 2 (white noise halves there). Made for JPEGs and camera noise. A JPEG's 4:2:0
    chroma and coarse high-frequency steps leave the colour directions, and in smooth areas the finest luma ones too,
    noise-free: the colour reading sees about none (0.003-0.007 for noise of 0.03-0.06 at quality 75-95 on
    validation photos). The luma reads it where the steps are finer than the noise (0.05-0.07 for 0.06 at quality
    85-95, sharp photos), the coarse luma at every quality and after a blur (0.03-0.05 for 0.03, 0.05-0.07 for 0.06,
    blurred by 1.5 px or not, quality 75-95). Clean JPEGs (27 training photos, quality 75-95) read: luma 0.002-0.04
    (median 0.003); coarse luma blurred by 2 px under 0.019, but sharp up to 0.15 (median 0.014), texture read as
    noise, so the caller uses it for blurred JPEGs, else only where the reading on the 4 x 4 means (scale=4: of
    those, x 4) agrees with it (`coarse_luma_is_noise`). A camera's demosaicing also leaves its noise in the coarse
    luma only (`coarse_luma_noise`). Images whose channels are one grey (`distinct_channels`) read as
    `estimate_noise_sigma`
    (coarse: of the 2 x 2 means, x 2). 0 for an image too small to read at that scale. skip_clipped: patches with a
    pixel clipped in y (`clipped_pixels`) are left out (`estimate_noise_sigma`'s `clipped`)."""
    k = scale or (2 if coarse else 1)
    y = images.centre_crop(y, k * NOISE_WINDOW)  # what is read, before any copy
    z = y.double()
    if y.shape[1] == 3 and distinct_channel_count(y[0]) == 3:
        z = sum(w * z[:, c : c + 1] for c, w in enumerate(images.LUMA_WEIGHTS)) / LUMA_NOISE_GAIN
    return noise_sigma_on_means(z, k, clipped_pixels(y) if skip_clipped else None)


def noise_sigma_on_means(y: torch.Tensor, k: int, clipped: torch.Tensor | None = None) -> float:
    """`estimate_noise_sigma` of y's k x k means (k >= 1), x k: the std (>= 0) of white noise in y as it shows at
    that scale (white noise's std falls by k there). y (1, C, h, w) is read on its centre k * NOISE_WINDOW square;
    `clipped` (1, 1, h, w) bool or None: as `estimate_noise_sigma`'s (a mean over a clipped pixel is clipped)."""
    import torch.nn.functional as F

    y = images.centre_crop(y, k * NOISE_WINDOW).double()
    clipped = None if clipped is None else images.centre_crop(clipped, k * NOISE_WINDOW).double()
    if k == 1:
        return estimate_noise_sigma(y, clipped)
    return k * estimate_noise_sigma(F.avg_pool2d(y, k), None if clipped is None else F.avg_pool2d(clipped, k))


def cell_colour(y: torch.Tensor) -> float:
    """The colour reading (>= 0) of y's 2 x 2 means, x 2 (`noise_sigma_on_means(., 2)`), on the pixels the colour
    reading reads (y's centre NOISE_WINDOW square): noise at the scale of a camera mosaic's 2 x 2 cells."""
    return noise_sigma_on_means(images.centre_crop(y, NOISE_WINDOW), 2)


#: White noise reads alike on the luma's 2 x 2 and 4 x 4 means (each x its side); a picture's texture reads higher
#: the coarser the scale. Noisy JPEGs (quality 80, 21 training photos at 384 px, noise 0.04): ratio 0.9-1.25 where
#: the 2 x 2 reading found the level (0.029-0.048), 1.4-6 on fur and foliage; clean ones: 1.0-1.3 only where the
#: photo has grain of its own, else 1.5-57 (benchmarks/noisy-jpeg/).
WHITE_NOISE_SCALE_RATIO = 1.4
#: The bound for denoising a lossy file: JPEG coding strips more of the noise at 2 x 2 than at 4 x 4, so noise
#: reads 1.1-2.1x higher there (6 scikit-image training photos at 256 px, noise 0.05-0.08, quality 75-90, seed 0:
#: benchmarks/noisy-jpeg/ratio.md), clean JPEGs of them 2.3x and more.
LOSSY_DENOISE_SCALE_RATIO = 2.0


def coarse_luma_is_noise(y: torch.Tensor, coarse: float, ratio: float = WHITE_NOISE_SCALE_RATIO) -> bool:
    """Whether `coarse`, the luma's reading on its 2 x 2 means (`estimate_luma_noise_sigma(y, coarse=True)`), is
    white noise and not texture: the reading on the 4 x 4 means is at most WHITE_NOISE_SCALE_RATIO x it (False for
    an image too small to read there). Lets a sharp JPEG's noise, which its coarse high-frequency steps strip from
    the finest scale, be read where it survives (a sharp photo's texture, read there, fails the test). `ratio`: the
    test's bound (a lossy file's denoising takes LOSSY_DENOISE_SCALE_RATIO)."""
    if coarse <= 0 or not noise_patch_side(1, y.shape[-2] // 4, y.shape[-1] // 4):
        return False
    return estimate_luma_noise_sigma(y, scale=4) <= ratio * coarse


def coarse_luma_noise(y: torch.Tensor, colour: float | None = None) -> float:
    """The noise level (>= 0, the [-1, 1] scale) of a colour photo y (1, 3, h, w) read on its luma's 2 x 2 means
    (`estimate_luma_noise_sigma(y, coarse=True)`) where the 4 x 4 means agree (`coarse_luma_is_noise`), the colour
    reading on the 2 x 2 means sees at least CAMERA_COLOUR_RATIO of it (noise, not texture) and `colour`, y's colour
    reading (`estimate_noise_sigma(y)`, read when None), is under WHITE_COLOUR_RATIO of that (demosaiced, not white
    noise, which the colour reading reads right), else 0: where a camera's demosaicing leaves its noise. Demosaicing makes each
    pixel's colours functions of neighbouring sensor values and smooths colour differences, so the colour reading
    sees little of the noise (0.009 / 0.014 for noise of std 0.04 / 0.08), the finest luma part of it, and the 2 x 2
    luma means about all (0.046 / 0.093; medians over the 106 training photos at 256 px, a simulated camera:
    benchmarks/camera-noise/). Within 0.7-1.5x the true std on 43-60 of them (noise 0.03-0.08; the colour reading
    alone 0-9); fur and foliage fail the 4 x 4 test and still read low, mostly in shrunk photos (68 photos not used
    to choose the test: 85-95 % within 0.7-1.5x in 512-px crops at their own resolution, 63-71 % as 256-px squares;
    where it applies it reads 1.2-1.3x the per-channel std). Demosaiced noise alone reads 1.2-1.3x higher at 4 x 4
    (flat grey, OpenCV's bilinear and edge-aware demosaicing), under the test's 1.4. Clean fine texture at a photo's
    own resolution (grass, gravel, a stone wall) can pass the 4 x 4 test (0.08-0.49 read on 6 of 522 crops of 174
    photos); the colour test refuses it. Noise whose colour a raw converter's chroma noise reduction removed fails
    that test too and reads low. The finest luma is not used: on small sharp images it reads texture as noise (64-px
    sr4 inputs of 12 training photos, a prototype: up to 0.065)."""
    coarse = estimate_luma_noise_sigma(y, coarse=True)
    if not coarse_luma_is_noise(y, coarse):
        return 0.0
    cells = cell_colour(y)
    colour = estimate_noise_sigma(y) if colour is None else colour
    return coarse if CAMERA_COLOUR_RATIO * coarse <= cells and colour < WHITE_COLOUR_RATIO * cells else 0.0


#: Demosaicing smooths the finest colour: camera noise's colour reading at the pixel scale is 0.05-0.82x its
#: reading on the 2 x 2 means (edge-aware and bilinear at most 0.74, VNG 0.36-0.82), white RGB noise's 0.86-1.22x
#: (1 % quantiles 0.86-0.97). Noise at least this strong there is white, read right by the colour reading: on the
#: luma it adds to a photo's texture (grass with noise of 0.05 read 0.48 there; benchmarks/camera-noise/colour-test/).
WHITE_COLOUR_RATIO = 0.9


#: Camera noise has colour at the scale of the mosaic's 2 x 2 cells, whose red, green and blue come from sensor sites
#: of their own: the colour reading on the 2 x 2 means sees 0.37-4.5x the luma's there with OpenCV's edge-aware and
#: bilinear demosaicing (1 % quantile 0.66, median 1.04-1.10), 0.105-1.6x with VNG, which smooths colour differences
#: wider (1 % quantile 0.23, median 0.33). A photo's fine texture is mostly one of light: clean crops of grass,
#: gravel, a stone wall whose 2 x 2 luma reading passes the 4 x 4 test (0.08-0.49) read 0.018-0.051x there
#: (benchmarks/camera-noise/colour-test/).
CAMERA_COLOUR_RATIO = 0.1


#: A colour JPEG's luma reading of at least CODED_COLOUR_MIN_LEVEL is noise only where the colour reading on the
#: 2 x 2 means sees at least this fraction of the colour that white noise of that level keeps through the file's own
#: coding (`coded_noise_colour`). Clean fine texture at a photo's own resolution (grass, gravel, fur, trees: 0.2-0.49
#: read on the luma on 256-px views of the 174 photos at quality 75-95) holds 0.004-0.03 there, 0.04-0.2x of it; no
#: reading of white or camera noise of 0.03-0.1 within 0.7-1.5x its std was refused (benchmarks/camera-noise/
#: jpeg-colour/).
CODED_COLOUR_RATIO = 0.5
#: Luma readings under this are not tested by colour: a camera's noise can reach a JPEG with little colour (in-camera
#: chroma noise reduction; demosaicing that smooths colour, as VNG does) and would be refused where the coding keeps
#: colour (quality 95, 4:4:4 or 4:2:2), yet it reads at most 0.17 at a true std of 0.1 (30 photos, a simulated camera,
#: chroma blurred by 2 px or not, quality 85 / 95, every subsampling: benchmarks/camera-noise/jpeg-colour/
#: camera-chroma.md); clean texture read as noise at 0.1-0.2 keeps passing.
CODED_COLOUR_MIN_LEVEL = 0.2
#: `coded_noise_colour` takes the least over white noise of these fractions of the level: readings run up to 1.5x
#: the noise, and the colour a coding keeps rises steeply (one simulation at quality 85: 0.008 at 0.1, 0.05 at 0.16).
CODED_LEVEL_FACTORS = (2 / 3, 0.8, 1.0)
#: Side (px) of the flat noise image `coded_noise_colour` codes.
CODED_NOISE_SIDE = 256


@functools.lru_cache(maxsize=4096)  # levels are rounded to 0.001: a few codings' worth
def _coded_white_colour(coding: images.JpegCoding, level: float) -> float:
    """The colour reading on the 2 x 2 means of white RGB noise of std `level` around mid-grey (CODED_NOISE_SIDE px,
    seed 0, 8 bits) after a round trip through `coding` (`images.jpeg_round_trip`)."""
    import numpy as np
    import torch

    noise = 127.5 + 127.5 * level * np.random.default_rng(0).standard_normal((CODED_NOISE_SIDE, CODED_NOISE_SIDE, 3))
    coded = images.jpeg_round_trip(np.clip(np.rint(noise), 0, 255).astype(np.uint8), coding)
    return noise_sigma_on_means(torch.from_numpy(coded).permute(2, 0, 1)[None].double() / 127.5 - 1, 2)


def coded_noise_colour(coding: images.JpegCoding, level: float) -> float:
    """How much of a noise's colour a colour JPEG's `coding` (its own tables and chroma subsampling) keeps: the
    colour reading on the 2 x 2 means (`noise_sigma_on_means(., 2)`, >= 0, the [-1, 1] scale) of white RGB noise
    around mid-grey coded with it, the least over CODED_LEVEL_FACTORS x `level` (>= 0; a single simulation of weak
    noise reads the few coefficients left erratically). Coarse chroma steps zero weak colour noise and let strong
    noise through (Pillow's quality 85, 4:2:0: 0.005 at a level of 0.1, 0.02 at 0.2, 0.09 at 0.3, 0.18 at 0.5)."""
    return min(_coded_white_colour(coding, round(level * f, 3)) for f in CODED_LEVEL_FACTORS)


def coded_colour_backs(y: torch.Tensor, coding: images.JpegCoding | None) -> Callable[[float], bool]:
    """A test of a noise level read on the luma of y (1, C, h, w), decoded from a JPEG of `coding`: whether y's
    colour can back it, the colour reading on y's 2 x 2 means (on the centre NOISE_WINDOW square, read once, when
    first asked) at least CODED_COLOUR_RATIO x what white noise of that level keeps through the same coding
    (`coded_noise_colour`). A photo's fine texture is mostly one of light: read as strong noise on the luma, its
    colour stays far below what such noise keeps. Passes levels under CODED_COLOUR_MIN_LEVEL (a camera's JPEG can
    hold such noise with little colour), and every level where colour cannot tell: no JPEG tables
    (`images.jpeg_coding`), a grey file or y. Noise of 0.2 and more whose colour a camera's chroma noise reduction
    removed fails it and reads low."""
    if coding is None or not coding.colour or y.shape[1] != 3 or distinct_channel_count(y[0]) < 3:
        return lambda level: True
    cells = functools.cache(lambda: cell_colour(y))
    return lambda level: (level < CODED_COLOUR_MIN_LEVEL
                          or cells() >= CODED_COLOUR_RATIO * coded_noise_colour(coding, level))


#: Rounds of weak-texture selection for a one-channel image (they converge in 2-4).
WEAK_TEXTURE_ROUNDS = 8
#: A patch is weakly textured when its gradient energy is below this quantile of pure noise's at the level read.
WEAK_TEXTURE_QUANTILE = 0.99


def _noise_variance(patches: torch.Tensor) -> float:
    """Chen et al.'s noise variance of patches (D, N): the mean of the covariance's smallest eigenvalues, the
    largest dropped until the rest lie as many above their mean as below it."""
    import torch

    patches = patches - patches.mean(dim=1, keepdim=True)
    eig = torch.linalg.eigvalsh(patches @ patches.T / patches.shape[1]).clamp_min(0)  # ascending
    for k in range(eig.numel(), 0, -1):
        tail = eig[:k]
        mean = tail.mean()
        if (tail > mean).sum() >= (tail < mean).sum():
            return float(mean)
    return 0.0  # not reached: one eigenvalue is its own mean


def _gradient_energy(z: torch.Tensor, p: int) -> torch.Tensor:
    """(h - p + 1, w - p + 1): the sum of squared horizontal and vertical pixel differences inside each p x p patch
    of z (C, h, w), over the channels (Liu et al.'s texture strength, tr of the gradient covariance)."""
    import torch.nn.functional as F

    dh = (z[:, :, 1:] - z[:, :, :-1]).pow(2).sum(0)[None, None]
    dv = (z[:, 1:, :] - z[:, :-1, :]).pow(2).sum(0)[None, None]
    n = p * (p - 1)
    return (F.avg_pool2d(dh, (p, p - 1), stride=1) + F.avg_pool2d(dv, (p - 1, p), stride=1))[0, 0] * n


@functools.cache
def _noise_energy_quantile(p: int) -> float:
    """WEAK_TEXTURE_QUANTILE of the gradient energy of a p x p patch of unit white noise (one channel), measured
    once on 256 x 256 noise of a fixed seed (the Gamma law Liu et al. fit is an approximation of the same)."""
    import torch

    noise = torch.randn(1, 256, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return float(_gradient_energy(noise, p).flatten().quantile(WEAK_TEXTURE_QUANTILE))


def plain_image_params(task: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The operator parameters a plain image of `task` is restored with: `params`, and for blurs boundary
    "reflect" unless they say otherwise (a photo's blur does not wrap around its edges; operators/blur.py)."""
    import operators
    from operators.blur import CircularBlur

    params = dict(params or {})
    if issubclass(operators.get(task), CircularBlur):
        params.setdefault("boundary", "reflect")
    return params


#: Why a plain image of a task cannot be restored unless one of the listed parameters names its operator.
PLAIN_IMAGE_REFUSALS: dict[str, tuple[frozenset[str], str]] = {
    "inpaint-random": (frozenset({"seed"}), (
        "inpaint-random needs to know which pixels of a plain image are missing: restore the sidecar `ncvsd "
        "degrade` wrote beside it, or name its random mask with -p seed=N (and -p fraction=F if degrade was given "
        "one); to fill holes of your own, mark them with --task inpaint-mask -p mask=M.png")),
    "inpaint-mask": (frozenset({"mask"}), (
        "inpaint-mask needs the mask of the holes: -p mask=M.png (white = known, black = hole; -p invert=true for a "
        "mask that paints the holes white), or an input whose holes are transparent (erased in an editor, saved as "
        "PNG, WebP or TIFF)")),
    "deblur-kernel": (frozenset({"kernel"}), (
        "deblur-kernel needs the blur kernel: -p kernel=K.png (the blur path bright on black) or -p kernel=K.npy; "
        "for an unknown blur try --task deblur-motion (a camera shake's kernel is read from the image) or "
        "deblur-gauss / deblur-defocus (their width is read)")),
    "phase-retrieval": (frozenset(), (
        "phase-retrieval measurements are not images: restore the sidecar written by `ncvsd degrade` (X.png with "
        "X.png.ncvsd.json beside it, or --measurement)")),
}


def plain_image_refusal(task: str, given: dict[str, Any] | None) -> str | None:
    """Why a plain image of `task` cannot be restored with the operator parameters the user `given` (-p or a
    preset file), or None. A random mask (inpaint-random's) drawn from the preset's seed has nothing to do with a
    photo's own holes; inpaint-mask and deblur-kernel need the user's mask and kernel; phase retrieval's
    measurement is not an image. (deblur-motion without its kernel or seed reads the kernel from the image,
    `Restorer.measurement`.)"""
    if task not in PLAIN_IMAGE_REFUSALS:
        return None
    names, why = PLAIN_IMAGE_REFUSALS[task]
    return None if names & set(given or {}) else why


#: Opacity below which a pixel of an input is a hole of inpaint-mask without a mask (a mask file's rule: known above
#: mid-grey); the pixels at or above it are known, with the colour the file stores under their opacity.
HOLE_OPACITY = 0.5


def transparency_holes(alpha: torch.Tensor | None) -> np.ndarray | None:
    """The known-pixel mask (H, W) of an input whose holes are its transparent pixels (inpaint-mask without a mask):
    1 where `alpha` (1, 1, H, W) in [0, 1] is at least HOLE_OPACITY, 0 below (an eraser's soft rim: its outer half
    is filled, its inner half keeps the colour the file stores, `opaque_colour`); None for no alpha or none below."""
    import numpy as np

    if alpha is None:
        return None
    known = alpha.detach().cpu().numpy()[0, 0] >= HOLE_OPACITY
    return None if known.all() else known.astype(np.float32)


def opaque_colour(y: torch.Tensor, alpha: torch.Tensor, least: float = HOLE_OPACITY) -> torch.Tensor:
    """y (1, C, H, W) in [-1, 1], composited on white with `alpha` (1, 1, H, W), made opaque: the colour the file
    stores, (y - 1 + a) / a on the [0, 1] scale (clipped), where a >= `least` (in (0, 1]); y itself elsewhere."""
    import torch

    a = alpha.to(y).clamp(min=least)
    colour = images.from_unit(((images.to_unit(y) - 1 + a) / a).clamp(0, 1))
    return torch.where(alpha.to(y) >= least, colour, y)


#: Opacity from which a transparent photo's own colour is kept under `extend_under_transparency` (a shadow or glow
#: keeps its colour; below, an 8-bit composite's colour is too coarse: 0.5 / 255 / 0.05 = 4 % of the range).
EXTEND_OPACITY = 0.05
#: Blur widths (px) of the extension's normalised convolution, finest first, and the share of kept pixels a width
#: needs around a pixel to fill it (farther pixels take the nearest kept one's colour).
EXTEND_SIGMAS, EXTEND_SUPPORT = (2.0, 4.0, 8.0, 16.0, 32.0), 0.05


def extend_under_transparency(y: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """y (1, C, H, W) in [-1, 1], composited on white with `alpha` (1, 1, H, W) in [0, 1], made a whole photo for an
    operator that spreads pixels (a blur, super-resolution): its own colour, (y - 1 + a) / a on the [0, 1] scale,
    where at least EXTEND_OPACITY opaque, beyond it their normalised convolution at EXTEND_SIGMAS (the nearest such
    pixel's where none is near enough). The white's edge along the outline is no
    blur's: deblurred, it rang into the opaque pixels (65 levels 0-3 px inside a soft disk, 20 at 3-7 px); the
    restoration is composited back on white (`recomposite`). y itself where no pixel is EXTEND_OPACITY opaque."""
    import numpy as np
    import torch
    from scipy.ndimage import distance_transform_edt

    colour = opaque_colour(y, alpha, EXTEND_OPACITY)
    known = alpha.detach()[0, 0].cpu().numpy() >= EXTEND_OPACITY
    if known.all() or not known.any():
        return colour if known.all() else y
    from scipy.ndimage import gaussian_filter

    c = colour[0].detach().cpu().double().numpy()
    _, (rows, cols) = distance_transform_edt(~known, return_indices=True)
    fill, todo, weight = c[:, rows, cols], ~known, known.astype(np.float64)  # nearest: the far pixels' fallback
    for sigma in EXTEND_SIGMAS:  # normalised convolution, finest first: smooth, no streaks (a hole's nearest-pixel
        support = gaussian_filter(weight, sigma, truncate=2.5)  # streaks loosened the Wiener prior fitted to the
        near = todo & (support > EXTEND_SUPPORT)  # whole image)
        if near.any():
            fill[:, near] = np.stack([gaussian_filter(ch * weight, sigma, truncate=2.5) for ch in c])[:, near] / \
                support[near]
        todo &= ~near
    return torch.from_numpy(np.where(known, c, fill)).to(y)[None]


def recomposite(x: torch.Tensor, matte: torch.Tensor, operator: Any) -> torch.Tensor:
    """Restorations x (N, C, H, W) of an image extended under its transparency (`extend_under_transparency`, opacity
    `matte` (1, 1, h, w) of the measurement) composited back on white: a x + (1 - a), a = `output_alpha`."""
    a = output_alpha(matte, operator).to(x)
    return a * x + (1 - a)


#: Opacity from which a pixel is read as the photo's own (8-bit 255, 16-bit 65535; 254/255 is not).
OPAQUE = 1.0 - 0.5 / 255
#: The coarse grid the opaque rectangle is searched on: at most this many cells along the longer side.
OPAQUE_GRID = 256


def opaque_window(alpha: torch.Tensor | None) -> tuple[slice, slice] | None:
    """The largest axis-aligned rectangle of opaque pixels (alpha >= OPAQUE) of `alpha` (1, 1, H, W) in [0, 1],
    as (rows, cols) slices, where a transparent input's noise is read: its transparent part, composited on flat
    white, holds no noise and would pull the reading down. None for no alpha or an opaque one; empty slices
    where no pixel is opaque. Searched on a grid of at most OPAQUE_GRID cells per side, a cell opaque when all its
    pixels are (largest rectangle under a histogram, row by row), so the rectangle found is all opaque."""
    import numpy as np
    import torch

    if alpha is None:
        return None
    opaque = alpha.detach()[0, 0].cpu() >= OPAQUE
    if bool(opaque.all()):
        return None
    h, w = opaque.shape
    cell = max(1, math.ceil(max(h, w) / OPAQUE_GRID))
    grid = -torch.nn.functional.max_pool2d(-opaque[None].float(), cell, ceil_mode=True)[0] > 0.5  # min-pool
    heights = np.zeros(grid.shape[1] + 1, int)  # a 0 sentinel closes every bar at the row's end
    best = (0, 0, 0, 0, 0)  # area, top, left, bottom, right (cells; bottom and right exclusive)
    for r, row in enumerate(grid.numpy()):
        heights[:-1] = np.where(row, heights[:-1] + 1, 0)
        stack: list[int] = []
        for c, height in enumerate(heights):
            while stack and heights[stack[-1]] >= height:
                top = heights[stack.pop()]
                left = stack[-1] + 1 if stack else 0
                if top * (c - left) > best[0]:
                    best = (top * (c - left), r + 1 - top, left, r + 1, c)
            stack.append(c)
    _, top, left, bottom, right = best
    return slice(top * cell, min(bottom * cell, h)), slice(left * cell, min(right * cell, w))


#: The side (px) of the image on which `size_factor` reads an operator's measurement size (a multiple of 1-6 and 8).
_PROBE_SIDE = 120


def size_factor(task: str, channels: int = 3, params: dict | None = None) -> int:
    """How many times larger than its measurement an image of `task` is per side: the operator's `factor` when
    above 1, else read off its measurement of a _PROBE_SIDE-px image (a plug-in down-sampler without `factor` was
    refused as "a 16x16 image is not a box2 measurement (expected (3, 8, 8))"), else 1. `params`: the operator's
    (`plain_image_params`), which may set the ratio."""
    import operators

    factor = getattr(operators.get(task), "factor", None)
    if isinstance(factor, int) and factor > 1:  # (a plug-in's `factor` may mean something else: a gain)
        return factor
    side = _PROBE_SIDE
    try:
        op = operators.create(task, (channels, side, side), **(params or {}))
        mh, mw = (int(v) for v in op.measurement_shape(1)[-2:])
    except Exception:  # noqa: BLE001 (a plug-in that cannot be probed so is taken as same-sized)
        return 1
    return side // mh if 0 < mh == mw and side % mh == 0 else 1


def measurement_from_image(
    y: torch.Tensor,
    task: str,
    params: dict[str, Any] | None = None,
    sigma_y: float | None = None,
    source: str | None = None,
    grey: bool = False,
) -> Measurement:
    """Treat a decoded image y (1, C, h, w) in [-1, 1] as the measurement of `task`, with noise std sigma_y
    (None: the task preset's).

    The operator is built for the image the measurement comes from: for sr* (operators with a `factor`, or a
    plug-in's whose measurement of a y-sized image is a whole fraction of it) that is factor x larger than y,
    otherwise the size of y. Blurs default to boundary "reflect" (params may say
    "circular"): a photo blurred by a camera does not wrap around its edges. Raises ValueError when the task's measurement is not
    an image (phase retrieval: use the sidecar) or y does not have the size the operator produces.
    """
    import operators

    if task == "phase-retrieval":
        raise ValueError(plain_image_refusal(task, params))
    c, h, w = (int(v) for v in y.shape[1:])
    f = size_factor(task, c, plain_image_params(task, params))
    op = operators.create(task, (c, h * f, w * f), **plain_image_params(task, params))
    expected = tuple(op.measurement_shape(1)[1:])
    if grey and c == 3 and expected == (1, h, w):  # a grey file, colourised, of a plug-in measuring one channel
        y = y[:, :1]
    elif expected != (c, h, w):
        raise ValueError(f"{source or 'input'}: a {w}x{h} image of {c} channel{'s' * (c != 1)} is not a {task} "
                         f"measurement (expected {expected}: channels, height, width)")
    if sigma_y is None:
        from ncvsd_cli.sampling.presets import task_settings

        sigma_y = task_settings(task)["sigma_y"]
    m = Measurement(task=task, operator_config=op.to_config(), y=y, sigma_y=float(sigma_y), source=source, grey=grey)
    m.built = op  # reused by `operator()`: the SR factors are computed once
    return m


def output_alpha(alpha: torch.Tensor, operator: Any) -> torch.Tensor:
    """The opacity (1, 1, H, W) in [0, 1] of an image restored through `operator` from a measurement whose alpha is
    `alpha` (1, 1, h, w) in [0, 1]: upscaled bicubically for super-resolution (`classical.bicubic`, the sr baseline,
    clipped to [0, 1]); as it is for the other operators, which keep the image's size and degrade its colour, not its
    opacity (an inpainting mask marks missing colour; holes made of transparency are filled opaque instead:
    `transparency_holes`). ValueError where `alpha` is not the size of the image the operator measured (its
    `image_shape`, or for super-resolution that divided by the factor, rounded up: the operator takes the restored
    image's shape, for sr2 of an h x w photo operators.create("sr2", (3, 2h, 2w)))."""
    from ncvsd_cli.sampling import classical
    from operators.resize import Downsample

    a = alpha.detach().float().clamp(0, 1)
    h, w = operator.image_shape[-2:]
    f = operator.factor if isinstance(operator, Downsample) else 1
    if tuple(a.shape[-2:]) != (-(-h // f), -(-w // f)):  # a Downsample measures ceil(H / f) x ceil(W / f)
        raise ValueError(f"alpha is {a.shape[-1]}x{a.shape[-2]} px, but operator '{operator.name}' restores {w}x{h} "
                         "px images" + (f" from {-(-w // f)}x{-(-h // f)} px measurements" if f > 1 else "") +
                         ": create the operator for the restored image's shape (for sr2 of an h x w photo, "
                         "(3, 2h, 2w))")
    if isinstance(operator, Downsample):
        return classical.bicubic(None, operator, a).x.float().clamp(0, 1)
    return a
