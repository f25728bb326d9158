"""Measurements and restoration: everything `ncvsd degrade` and `ncvsd restore` do, callable from Python.

Measurements (`degrade`, `save_measurement`, `load_measurement`): y = A(x) + sigma_y n with the noise from a
per-image generator seeded with `seed`. `save_measurement(m, "measured.png")` writes
- `measured.png`: a viewable 8-bit preview (the clipped measurement for image-shaped tasks: the small image
  for sr, the masked image for inpainting; for phase retrieval log(1 + |y|) scaled to [0, 1]);
- `measured.png.ncvsd.json`: the sidecar: task, the operator's full `to_config()` (kernel, mask, seeds),
  sigma_y, seed, image and measurement shapes, the preview's size, and the sha256 of
- `measured.png.ncvsd.safetensors`: the unclipped float measurement (tensor "y", shape measurement_shape).
`load_measurement` rebuilds exactly that operator and y: `ncvsd restore measured.png` restores what
was measured.

Restoration (`Restorer`): real inputs of any size. The operator is built for the input's own size (for sr*
the input is the low-resolution image and the image is factor x larger); when that size is not a multiple of
what the network needs (2^(levels-1)), the operator is wrapped by `PaddedOperator`, which lets the sampler
work on a reflect-padded canvas whose extra pixels the measurement does not constrain (its likelihood step is
exact: the extra pixels get the prior-coupling Gaussian x0 + rho eps), and the result is cropped back. Each
(image, sample k) pair gets its own generator seeded with seed + k, so results do not depend on the batch size
or the order of the inputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncvsd_cli import images
from ncvsd_cli.errors import NonFiniteOutputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

SIDECAR_SUFFIX = ".ncvsd.json"
TENSORS_SUFFIX = ".ncvsd.safetensors"
SIDECAR_FORMAT = "ncvsd-measurement"
SIDECAR_VERSION = 1
#: Default --max-pixels: output images larger than this (H * W) are refused before any work.
DEFAULT_MAX_PIXELS = 2048 * 2048
#: The std image shows the per-pixel std of the samples on the [0, 1] scale times this factor, clipped.
STD_SCALE = 4.0


class MeasurementError(ValueError):
    """A sidecar is missing, unreadable, inconsistent with its files, or does not fit the model (one line)."""


# ---------------------------------------------------------------------------------------------- measurements
@dataclass
class Measurement:
    """A measurement and the operator that made it.

    y: (1, *measurement_shape) float tensor, unclipped. operator_config: `Operator.to_config()` (name,
    image_shape,
    parameters). sigma_y: noise std on the [-1, 1] scale. seed: the noise seed (None for real inputs).
    grey: the clean source was greyscale (outputs are then written as greyscale). notes: decoding remarks.
    """

    task: str
    operator_config: dict[str, Any]
    y: torch.Tensor
    sigma_y: float
    seed: int | None = None
    source: str | None = None
    grey: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the image the operator acts on."""
        return tuple(int(v) for v in self.operator_config["image_shape"])  # type: ignore[return-value]

    def operator(self):
        """A fresh operator rebuilt from `operator_config` (bit-identical measurements)."""
        import operators

        return operators.from_config(self.operator_config)


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
    sigma_y: float = 0.05,
    source: str | None = None,
    grey: bool = False,
) -> Measurement:
    """Treat a decoded image y (1, C, h, w) in [-1, 1] as the measurement of `task`.

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
    return Measurement(
        task=task, operator_config=op.to_config(), y=y, sigma_y=float(sigma_y), source=source, grey=grey
    )


# ------------------------------------------------------------------------------------------------- padding
def _padded_operator_class():
    from operators.base import Operator
    from operators.noise import randn_like

    class PaddedOperator(Operator):
        """`inner` seen from a larger canvas: A'(x) = A(x[..., :H, :W]) (top-left, as `images.crop_to`).

        Likelihood step (exact, the energy separates): the inner window from `inner.likelihood_sample`, the
        extra pixels from N(x0, rho² I), since the measurement does not see them.
        """

        name = "padded"

        def __init__(self, inner: Operator, canvas: tuple[int, int]):
            super().__init__((inner.image_shape[0], int(canvas[0]), int(canvas[1])))
            self.inner = inner
            self.linear = inner.linear
            self.size = inner.image_shape[1:]

        def forward(self, x):
            return self.inner(images.crop_to(x, self.size))

        def adjoint(self, y):
            return images.pad_to_shape(self.inner.adjoint(y), self.image_shape[1:], mode="constant")

        def pseudo_inverse(self, y):
            return images.pad_to_shape(self.inner.pseudo_inverse(y), self.image_shape[1:], mode="reflect")

        def likelihood_sample(self, x0, y, rho, sigma_p, generator=None):
            inner = self.inner.likelihood_sample(
                images.crop_to(x0, self.size), y, rho=rho, sigma_p=sigma_p, generator=generator
            )
            u = x0 + rho * randn_like(x0, generator)
            u[..., : self.size[0], : self.size[1]] = inner
            return u

        @property
        def last_evals(self) -> int:
            from ncvsd_cli.sampling.pnp_gd import likelihood_evals

            return likelihood_evals(self.inner)

        def to_config(self) -> dict[str, Any]:
            return self.inner.to_config()

    return PaddedOperator


def pad_operator(op, multiple: int):
    """`op` when its image size is a multiple of `multiple`, else a PaddedOperator on the next multiples."""
    _, h, w = op.image_shape
    canvas = (images.padded_size(h, multiple), images.padded_size(w, multiple))
    if canvas == (h, w):
        return op
    return _padded_operator_class()(op, canvas)


# ------------------------------------------------------------------------------------------------- restoring
@dataclass
class RestoreResult:
    """Outcome for one measurement: `samples` (K, C, H, W) in [-1, 1] (1 channel for greyscale sources),
    or `error` (a one-line message). nfe / operator_evals per sample."""

    index: int
    samples: torch.Tensor | None = None
    error: str | None = None
    nfe: int = 0
    operator_evals: int = 0
    seconds: float = 0.0

    def mean(self) -> torch.Tensor:
        """(1, C, H, W) mean of the samples as saved (each clipped to [-1, 1], so the mean image is the mean of
        the sample images)."""
        return self.samples.clamp(-1, 1).mean(dim=0, keepdim=True)

    def std_image(self) -> torch.Tensor:
        """(1, C, H, W) image in [-1, 1] of the per-pixel std of the (clipped) samples on the [0, 1] scale times
        STD_SCALE, clipped."""
        s = images.to_unit(self.samples.clamp(-1, 1)).std(dim=0, keepdim=True, unbiased=self.samples.shape[0] > 1)
        return images.from_unit((s * STD_SCALE).clamp(0, 1))


def network_multiple(config: dict[str, Any] | None) -> int:
    """What H and W must be multiples of: 2^(len(channel_mult) - 1) for the EDM2 UNet (networks/presets)."""
    if not config:
        return 1
    mult = (config.get("arch") or {}).get("channel_mult")
    return 2 ** (len(mult) - 1) if mult else 8


class Restorer:
    """A loaded model plus the settings of one restoration run.

    method: a name in `ncvsd_cli.sampling.METHODS` (None: the task preset's). model/config: what
    `checkpoints.load_checkpoint` returned (None for methods that need no network).
    """

    def __init__(
        self,
        model: Any,
        config: dict[str, Any] | None,
        *,
        method: str = "pnp-gd",
        device: str | torch.device = "cpu",
    ):
        from ncvsd_cli.sampling import get_method

        self.method = get_method(method)
        self.model, self.config, self.device = model, config, device
        self.channels = int((config or {}).get("img_channels", 3))
        self.multiple = network_multiple(config)
        self.label_dim = int((config or {}).get("label_dim", 0) or 0)
        self.precision = "fp32"

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | None = None, *, method: str = "pnp-gd", device: str | torch.device = "cpu",
        precision: str = "auto",
    ) -> Restorer:
        """Load `checkpoint` (default: the manifest's default of the kind the method needs) and prepare it for
        inference in `precision` (auto | fp32 | bf16, see networks.inference; `self.precision` says which ran).
        Raises CheckpointError (missing, corrupt, wrong kind) or ValueError (unknown method or precision)."""
        from ncvsd_cli.checkpoints import default_checkpoint, load_checkpoint
        from ncvsd_cli.networks.inference import prepare_for_inference, resolve_precision
        from ncvsd_cli.sampling import get_method

        needs = get_method(method).needs
        resolve_precision(precision, device)  # validate before any loading
        if needs == "none":
            return cls(None, None, method=method, device=device)
        model, config = load_checkpoint(checkpoint or default_checkpoint(needs), device=device, kind=needs)
        restorer = cls(model, config, method=method, device=device)
        restorer.precision = prepare_for_inference(model, precision, device, needs)
        return restorer

    def settings(
        self,
        task: str,
        nfe: int | None = None,
        preset_file: str | None = None,
        sigma_y: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The task preset merged with `preset_file` and the flags (`sampling.presets.load_task_preset`)."""
        from ncvsd_cli.sampling.presets import PNP_METHODS, load_task_preset

        pnp = self.method.name in PNP_METHODS
        if self.method.name == "denoiser" and task != "denoise":
            raise ValueError(f"method 'denoiser' only solves the denoise task, not {task!r}: use pnp-gd-warm")
        from ncvsd_cli.sampling.generate import MAX_MULTISTEP_NFE

        if self.method.name == "denoiser" and nfe is not None and not 1 <= nfe <= MAX_MULTISTEP_NFE:
            raise ValueError(f"method 'denoiser' makes 1 to {MAX_MULTISTEP_NFE} network evaluations, got --nfe {nfe} "
                             "(--method pnp-gd-warm or pnp-gd run PnP-GD on the denoise task)")
        return load_task_preset(
            task, nfe=nfe if pnp else None, preset_file=preset_file, warm=self.method.name == "pnp-gd-warm",
            sigma_y=sigma_y, operator=params or None
        )

    def _sampler_kwargs(self, preset: dict[str, Any], nfe: int | None) -> tuple[Any, dict[str, Any]]:
        from ncvsd_cli.sampling.presets import PNP_METHODS, pnp_arguments

        if self.method.name in PNP_METHODS:
            return pnp_arguments(self.method.name, preset)
        if self.method.name == "denoiser":
            return None, {"sigma_y": preset["sigma_y"], "nfe": int(nfe or 1)}
        if self.method.name == "dps":
            return None, ({"steps": int(nfe)} if nfe else {})
        if self.method.name == "daps":
            kw: dict[str, Any] = {"sigma_y": preset["sigma_y"]}
            if nfe:
                kw["levels"] = max(1, int(nfe) // 5)
            return None, kw
        return None, {"sigma_y": preset["sigma_y"]}

    def _labels(self, n: int, class_label: int | None):
        if not self.label_dim:
            return None
        import torch

        label = 0 if class_label is None else int(class_label)
        if not 0 <= label < self.label_dim:
            raise ValueError(f"class label {label} is out of range 0..{self.label_dim - 1}")
        return torch.nn.functional.one_hot(torch.full((n,), label), self.label_dim).float().to(self.device)

    def run(
        self,
        measurements: Sequence[Measurement],
        preset: dict[str, Any],
        *,
        nfe: int | None = None,
        seed: int = 0,
        samples: int = 1,
        batch_size: int = 1,
        class_label: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> Iterator[RestoreResult]:
        """Restore `measurements` with the settings in `preset`; yields a RestoreResult per measurement
        as soon as all its `samples` are done (errors are results too: the run goes on).

        Jobs (measurement j, sample k) with the same operator are batched `batch_size` at a time; job (j, k)
        uses a generator seeded with seed + k. on_batch(n) is called after each batch of n jobs (progress).
        """
        import time

        import torch

        if samples < 1 or batch_size < 1:
            raise ValueError(f"samples and batch_size must be >= 1, got {samples} and {batch_size}")
        sigmas, kwargs = self._sampler_kwargs(preset, nfe)
        groups: dict[str, list[tuple[int, int]]] = {}
        for j, m in enumerate(measurements):
            key = json.dumps([m.operator_config, list(m.y.shape)], sort_keys=True, default=_json_default)
            groups.setdefault(key, []).extend((j, k) for k in range(samples))
        done: dict[int, list[torch.Tensor | None]] = {j: [None] * samples for j in range(len(measurements))}
        results = {j: RestoreResult(index=j) for j in range(len(measurements))}
        started = {j: None for j in range(len(measurements))}
        finished: set[int] = set()
        for jobs in groups.values():
            m0 = measurements[jobs[0][0]]
            try:
                op = self._operator(m0, preset)
            except (ValueError, RuntimeError) as exc:
                op, op_error = None, f"{m0.source or 'input'}: {_one_line(exc)}"
            for start in range(0, len(jobs), batch_size):
                batch = [job for job in jobs[start : start + batch_size] if results[job[0]].error is None]
                if not batch:
                    continue
                t0 = time.perf_counter()
                for j, _ in batch:
                    started[j] = started[j] or t0
                try:
                    if op is None:
                        raise ValueError(op_error)
                    x, res = self._sample(
                        op,
                        [measurements[j].y for j, _ in batch],
                        [seed + k for _, k in batch],
                        sigmas,
                        kwargs,
                        class_label,
                    )
                except (ValueError, RuntimeError) as exc:
                    for j, _ in batch:
                        results[j].error = (
                            _one_line(exc)
                            if op is None
                            else f"{measurements[j].source or 'input'}: restoration failed: {_one_line(exc)}"
                        )
                    x = None
                for b, (j, k) in enumerate(batch):
                    if x is None:
                        continue
                    if not torch.isfinite(x[b]).all():
                        results[j].error = (
                            f"{measurements[j].source or 'input'}: the network produced NaN/inf "
                            f"values (sample {k}); nothing written"
                        )
                        continue
                    done[j][k] = x[b : b + 1]
                    results[j].nfe, results[j].operator_evals = res.nfe, res.operator_evals
                if on_batch is not None:
                    on_batch(len(batch))
                for j in sorted({j for j, _ in batch}):
                    r = results[j]
                    if r.error is None and j not in finished and all(s is not None for s in done[j]):
                        r.samples = torch.cat(done[j])
                        if measurements[j].grey and r.samples.shape[1] == 3:
                            r.samples = images.match_channels(r.samples, 1)
                        r.seconds = time.perf_counter() - started[j]
                        finished.add(j)
                        done[j] = []  # free memory
                        yield r
            for j in sorted({j for j, _ in jobs}):
                if results[j].error is not None:
                    yield results[j]

    def _operator(self, m: Measurement, preset: dict[str, Any]):
        if m.image_shape[0] != self.channels and self.method.needs != "none":
            raise ValueError(
                f"the measurement has {m.image_shape[0]} channel(s) but the model has {self.channels}"
            )
        op = m.operator()
        for key in ("langevin_steps", "langevin_c1", "langevin_c2"):
            if preset.get(key) is not None:
                setattr(op, key, preset[key])
        return pad_operator(op, self.multiple).to(self.device)

    def _sample(
        self, op, ys: list, seeds: list[int], sigmas, kwargs: dict[str, Any], class_label: int | None
    ):
        import torch

        from operators.noise import generators_for_seeds

        y = torch.cat(ys).to(self.device)
        gens = generators_for_seeds(seeds)
        labels = self._labels(len(seeds), class_label)
        extra = {"class_labels": labels} if labels is not None else {}
        with torch.no_grad():
            res = self.method(self.model, op, y, sigmas, generator=gens, **kwargs, **extra)
        _, h, w = op.inner.image_shape if hasattr(op, "inner") else op.image_shape
        return images.crop_to(res.x, (h, w)).detach().float().cpu(), res


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def restore_image(
    x: torch.Tensor,
    task: str,
    *,
    checkpoint: str | None = None,
    method: str | None = None,
    nfe: int | None = None,
    seed: int = 0,
    samples: int = 1,
    params: dict[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "auto",
) -> torch.Tensor:
    """Restore one degraded image y (1, C, h, w) in [-1, 1] for `task`; returns (samples, C, H, W) in [-1, 1].

    Convenience wrapper around `Restorer` (see `ncvsd restore --help` for the meaning of each option).
    Raises ValueError (bad input or settings) or CheckpointError.
    """
    from ncvsd_cli.sampling.presets import load_task_preset

    method = method or load_task_preset(task)["method"]
    r = Restorer.from_checkpoint(checkpoint, method=method, device=device, precision=precision)
    preset = r.settings(task, nfe=nfe, params=params)
    m = measurement_from_image(x, task, preset.get("operator"), preset.get("sigma_y", 0.05))
    (res,) = list(r.run([m], preset, nfe=nfe, seed=seed, samples=samples))
    if res.error:
        raise ValueError(res.error)
    return res.samples


# ------------------------------------------------------------------------------------------------- sampling
def sample_images(
    model: Any,
    config: dict[str, Any],
    seeds: Sequence[int],
    *,
    nfe: int = 1,
    ts: Sequence[int] | None = None,
    class_label: int | None = None,
    batch_size: int = 8,
    resolution: int | None = None,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Unconditional (class-conditional with labels) samples, one per seed: (N, C, R, R) in [-1, 1].

    nfe: denoiser calls, mapped to `ts` by `sampling.generate.default_ts` (1: [10, 39], 2: [10, 22, 39],
    4: [0, 10, 20, 30, 39]) unless `ts` is given (docs/method.md §2.7). Seed s uses its own generator, so a sample
    does not depend on the batch. Labels: `class_label`, or per seed a uniform draw from a generator seeded
    with s. resolution: default the model's img_resolution; must be a multiple of `network_multiple(config)`.
    Raises ValueError for bad settings or when the network produces NaN/inf.
    """
    import torch

    from ncvsd_cli.sampling.generate import default_ts, generate
    from operators.noise import generators_for_seeds, rand

    ts = list(ts) if ts else default_ts(nfe)
    res = int(resolution or config.get("img_resolution", 64))
    mult = network_multiple(config)
    if res < 1 or res % mult:
        raise ValueError(f"resolution {res} must be a positive multiple of {mult} for this network")
    channels, label_dim = int(config.get("img_channels", 3)), int(config.get("label_dim", 0) or 0)
    if class_label is not None and not 0 <= class_label < max(label_dim, 1):
        raise ValueError(
            f"--class-label {class_label} is out of range 0..{label_dim - 1}"
            if label_dim
            else "this checkpoint is unconditional; --class-label does not apply"
        )
    out = []
    for start in range(0, len(seeds), batch_size):
        chunk = [int(s) for s in seeds[start : start + batch_size]]
        labels = None
        if label_dim:
            if class_label is None:
                idx = [int(rand((1,), g)[0] * label_dim) for g in generators_for_seeds(chunk)]
            else:
                idx = [int(class_label)] * len(chunk)
            labels = torch.nn.functional.one_hot(torch.tensor(idx), label_dim).float().to(device)
        result = generate(
            model,
            (len(chunk), channels, res, res),
            ts,
            generators_for_seeds(chunk),
            class_labels=labels,
            device=device,
        )
        x = result.x.detach().float().cpu()
        bad = [s for s, xi in zip(chunk, x) if not torch.isfinite(xi).all()]
        if bad:
            raise NonFiniteOutputError(f"the network produced NaN/inf values for seed(s) {bad}; nothing written")
        out.append(x)
        if on_batch is not None:
            on_batch(len(chunk))
    return torch.cat(out)
