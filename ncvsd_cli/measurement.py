"""Measurements: what `ncvsd degrade` writes and `ncvsd restore` reads, callable from Python.

`degrade` makes y = A(x) + sigma_y n with the noise from a per-image generator seeded with `seed`.
`save_measurement(m, "measured.png")` writes
- `measured.png`: a viewable 8-bit preview (the clipped measurement for image-shaped tasks: the small image
  for sr, the masked image for inpainting; for phase retrieval log(1 + |y|) scaled to [0, 1]);
- `measured.png.ncvsd.json`: the sidecar: task, the operator's full `to_config()` (kernel, mask, seeds),
  sigma_y, seed, image and measurement shapes, the preview's size, and the sha256 of
- `measured.png.ncvsd.safetensors`: the unclipped float measurement (tensor "y", shape measurement_shape).
`load_measurement` rebuilds exactly that operator and y: `ncvsd restore measured.png` restores what was measured,
at the recorded sigma_y. `measurement_from_image` treats a plain image as the measurement of a task.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncvsd_cli import images

if TYPE_CHECKING:  # pragma: no cover
    import torch

SIDECAR_SUFFIX = ".ncvsd.json"
TENSORS_SUFFIX = ".ncvsd.safetensors"
SIDECAR_FORMAT = "ncvsd-measurement"
SIDECAR_VERSION = 1


class MeasurementError(ValueError):
    """A sidecar is missing, unreadable, inconsistent with its files, or does not fit the model (one line)."""


@dataclass
class Measurement:
    """A measurement and the operator that made it.

    y: (1, *measurement_shape) float tensor, unclipped. operator_config: `Operator.to_config()` (name,
    image_shape, parameters). sigma_y >= 0: noise std on the [-1, 1] scale (restoration runs at it unless told
    otherwise). seed: the noise seed (None for real inputs). grey: the clean source was greyscale (outputs are
    then written as greyscale). notes: decoding remarks. built: the operator, once `operator()` has made it.
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


def degrade(
    x: torch.Tensor,
    task: str,
    sigma_y: float = 0.05,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    source: str | None = None,
    grey: bool = False,
) -> Measurement:
    """Measure a clean image: y = A(x) + sigma_y n, n from a generator seeded with `seed`.

    x: (1, C, H, W) in [-1, 1]. task: an operator name (`operators.names()`). params: operator parameters; an
    operator that takes a `seed` parameter (random mask, motion kernel) gets `seed` unless params sets it.
    Raises ValueError for an unknown task, bad parameters or an image size the operator cannot take.
    """
    import torch

    import operators
    from operators.noise import generators_for_seeds

    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"degrade takes one image (1, C, H, W), got shape {tuple(x.shape)}")
    if sigma_y < 0 or not math.isfinite(sigma_y):
        raise ValueError(f"sigma_y must be >= 0 and finite, got {sigma_y}")
    cls = operators.get(task)
    params = dict(params or {})
    if _accepts(cls, "seed") and "seed" not in params:
        params["seed"] = int(seed)
    op = operators.create(task, tuple(x.shape[1:]), **params)
    with torch.no_grad():
        y = op.measure(x, sigma_y=sigma_y, generator=generators_for_seeds([seed]))
    return Measurement(
        task=task,
        operator_config=op.to_config(),
        y=y.detach().cpu(),
        sigma_y=float(sigma_y),
        seed=int(seed),
        source=source,
        grey=grey,
    )


def is_image_like(m: Measurement) -> bool:
    """Whether y is itself a picture (same value convention as images): all tasks but phase retrieval."""
    return m.task != "phase-retrieval" and m.y.dim() == 4 and m.y.shape[1] in (1, 3)


def preview(m: Measurement) -> torch.Tensor:
    """A viewable (1, C, h, w) image in [-1, 1] of a measurement: y clipped for image-like tasks, else the
    log-amplitude log(1 + |y|) min-max scaled to [0, 1] (mean over channels unless 1 or 3 channels)."""
    y = m.y.detach().float()
    if is_image_like(m):
        out = y.clamp(-1, 1)
    else:
        a = y.abs()
        while a.dim() > 4:
            a = a.flatten(1, 2)
        if a.dim() < 4:
            a = a.reshape(1, 1, *([1] * (3 - a.dim())), *a.shape[1:])
        if a.shape[1] not in (1, 3):
            a = a.mean(dim=1, keepdim=True)
        a = a.log1p()
        lo, hi = a.amin(), a.amax()
        out = images.from_unit((a - lo) / (hi - lo) if hi > lo else a * 0)
    return images.match_channels(out, 1) if m.grey else out


def sidecar_paths(preview_path: str | os.PathLike) -> tuple[Path, Path]:
    """(`X.ncvsd.json`, `X.ncvsd.safetensors`) beside the preview image X."""
    p = Path(preview_path)
    return p.with_name(p.name + SIDECAR_SUFFIX), p.with_name(p.name + TENSORS_SUFFIX)


def find_sidecar(path: str | os.PathLike) -> Path | None:
    """The sidecar of `path`: itself if it ends with .ncvsd.json, else `path + .ncvsd.json` if present."""
    p = Path(path)
    if p.name.endswith(SIDECAR_SUFFIX):
        return p
    side = sidecar_paths(p)[0]
    return side if side.is_file() else None


def save_measurement(m: Measurement, path: str | os.PathLike) -> list[str]:
    """Write the preview image `path` plus its sidecar JSON and tensors (module docstring); returns the paths.

    All three files are written all-or-nothing (images.atomic_write_all): a failure leaves existing files intact.
    path "-": only the preview goes to standard output (no sidecar).
    """
    from safetensors.torch import save as st_save

    pv = preview(m)
    png = images.encode_image(pv, images.format_for_path(path))
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
        },
        "source": m.source,
        "source_grey": m.grey,
        "value_range": "[-1, 1] image convention",
    }
    text = json.dumps(meta, indent=1, default=_json_default).encode()
    images.atomic_write_all([(Path(path), png), (side, text), (tens, blob)])
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


def sidecar_task(path: str | os.PathLike) -> str:
    """The task recorded in the sidecar of `path` (no other check); MeasurementError when there is none."""
    side = find_sidecar(path)
    try:
        return str(json.loads(side.read_text(encoding="utf-8"))["task"])  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError, KeyError, TypeError):
        raise MeasurementError(f"{path}: no readable measurement sidecar with a task") from None


def load_measurement(path: str | os.PathLike) -> Measurement:
    """Read a measurement written by `save_measurement`: `path` is the preview image or its `.ncvsd.json`.

    Checks the format, the tensors' sha256 and shape, and that the preview image still has the recorded size.
    Raises MeasurementError with a one-line message.
    """
    from safetensors.torch import load as st_load

    side = find_sidecar(path)
    if side is None or not side.is_file():
        raise MeasurementError(f"{path}: no measurement sidecar ({Path(path).name}{SIDECAR_SUFFIX}) found")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MeasurementError(f"{side}: unreadable sidecar: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        raise MeasurementError(f"{side}: not an ncvsd measurement sidecar (format {SIDECAR_FORMAT!r})")
    if not isinstance(meta.get("version"), int) or meta["version"] > SIDECAR_VERSION:
        raise MeasurementError(f"{side}: sidecar version {meta.get('version')!r} is not supported")
    try:
        tens = side.with_name(meta["tensors"])
        blob = tens.read_bytes()
        task, cfg, shape = meta["task"], meta["operator"], list(meta["measurement_shape"])
    except (KeyError, TypeError) as exc:
        raise MeasurementError(f"{side}: sidecar lacks {exc}") from None
    except OSError as exc:
        raise MeasurementError(
            f"{side}: cannot read the measurement tensors: {exc.strerror or exc}"
        ) from None
    if hashlib.sha256(blob).hexdigest() != meta.get("tensors_sha256"):
        raise MeasurementError(f"{tens}: sha256 does not match its sidecar; the measurement was modified")
    try:
        y = st_load(blob)["y"]
    except Exception as exc:
        raise MeasurementError(f"{tens}: unreadable measurement tensors: {exc}") from None
    if list(y.shape) != shape:
        raise MeasurementError(
            f"{tens}: measurement shape {list(y.shape)} differs from the sidecar's {shape}"
        )
    png = side.with_name(meta.get("preview", {}).get("file", side.name[: -len(SIDECAR_SUFFIX)]))
    if png.is_file() and meta.get("preview", {}).get("size"):
        size = list(images.image_size(png))
        if size != list(meta["preview"]["size"]):
            raise MeasurementError(
                f"{png}: image is {size[1]}x{size[0]} but its sidecar recorded "
                f"{meta['preview']['size'][1]}x{meta['preview']['size'][0]} (wrong size for its sidecar)"
            )
    return Measurement(
        task=task,
        operator_config=cfg,
        y=y[None],
        sigma_y=float(meta.get("sigma_y", 0.0)),
        seed=meta.get("seed"),
        source=str(side),
        grey=bool(meta.get("source_grey", False)),
    )


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

    The operator is built for the image the measurement comes from: for sr* (operators with a `factor`) that
    is factor x larger than y, otherwise the size of y. Raises ValueError when the task's measurement is not
    an image (phase retrieval: use the sidecar) or y does not have the size the operator produces.
    """
    import operators

    if task == "phase-retrieval":
        raise ValueError(
            "phase-retrieval measurements are not images: restore the sidecar written by "
            "`ncvsd degrade` (X.png with X.png.ncvsd.json beside it, or --measurement)"
        )
    cls = operators.get(task)
    f = int(getattr(cls, "factor", 1) or 1)
    c, h, w = (int(v) for v in y.shape[1:])
    op = operators.create(task, (c, h * f, w * f), **(params or {}))
    expected = tuple(op.measurement_shape(1)[1:])
    if expected != (c, h, w):
        raise ValueError(
            f"{source or 'input'}: a {w}x{h} image is not a {task} measurement (expected {expected})"
        )
    if sigma_y is None:
        from ncvsd_cli.sampling.presets import task_settings

        sigma_y = task_settings(task)["sigma_y"]
    m = Measurement(task=task, operator_config=op.to_config(), y=y, sigma_y=float(sigma_y), source=source, grey=grey)
    m.built = op  # reused by `operator()`: the SR factors are computed once
    return m
