"""Restoration: everything `ncvsd restore` does, callable from Python.

`RestoreOptions` holds the settings of a run (validated once), `Restorer` a loaded model plus those options.
`Restorer.run(measurements)` restores real inputs of any size: the operator is the measurement's own
(`ncvsd_cli.measurement`); when its size is not a multiple of what the network needs (2^(levels-1)) it is seen
from a padded canvas (`operators.padding`) and the result is cropped back. Each measurement runs at its own noise
level (the sidecar's recorded sigma_y; for plain images the level read from the image for denoising, blurs and
super-resolution (`noise_level_bounds`), else the preset's) unless `options.sigma_y` is set; a grey measurement to
denoise is sampled at GREY_NOISE_SCALE times it (`Restorer.sampler_level`).

Randomness and determinism: sample k of an image draws from its own stream
`stream_seed("restore", seed, k, content)` (operators.noise; content: a hash of the measurement y), never from
the stream `ncvsd degrade` drew the measurement noise from, so the same seed on both sides does not correlate
them, and two different images restored together never share their noise. With batch_size 1 (the default) each output depends only on its input, the
options and k, not on the other inputs or their order: identical bytes on the same machine and software. With
batch_size > 1 the network sums in an order that depends on the batch (batched convolutions and matrix products
on CPU and GPU), so results differ from batch_size 1 by float rounding: a few pixels by one or two 8-bit levels.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ncvsd_cli.errors import debugging, described, one_line
from ncvsd_cli.measurement import (
    EXTEND_OPACITY,
    OPAQUE,
    Measurement,
    extend_under_transparency,
    large_sigma_warning,
    measurement_from_image,
    opaque_colour,
    opaque_window,
    plain_image_params,
    plain_image_refusal,
    recomposite,
    size_factor,
    transparency_holes,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ncvsd_cli import images

#: The std image shows the per-pixel std of the samples on the [0, 1] scale times this factor, clipped.
STD_SCALE = 4.0
#: An estimated Gaussian blur width (px) is used at least this wide (an unblurred image's kernel stays a blur).
MIN_BLUR_SIGMA = 0.25
#: A grey measurement (three equal channels) restored by a colour network is sampled at this times its level: its
#: noise is the same in the three channels, so along the unit grey direction (1, 1, 1) / sqrt(3) the network (trained
#: on noise independent per channel) sees sqrt(3) sigma_y = 1.73 sigma_y where it expects sigma_y; 1.5 is the factor
#: chosen below that on the photos (the image's own grey content is not noise-free either). Grey validation
#: photos denoised at 1 / 1.25 / 1.5 / 1.75x (noise 0.05; benchmarks/noise-estimator/grey.md): LPIPS 0.048 / 0.040 /
#: 0.037 / 0.040, PSNR 34.70 / 35.03 / 35.11 / 34.99 dB (best at 0.05-0.2; 1.25x at 0.02); sr4 and deblur-gauss
#: showed no consistent gain (GREY_NOISE_TASKS).
GREY_NOISE_SCALE = 1.5
#: The tasks whose grey measurements are sampled at GREY_NOISE_SCALE times their level (validated on these).
GREY_NOISE_TASKS = frozenset({"denoise"})


@dataclass
class RestoreOptions:
    """The settings of one restoration run (the flags of `ncvsd restore` that reach the library).

    task: operator name (None: taken from the measurements). method: a name in `sampling.methods` (None: the task
    preset's). nfe >= 1: network evaluations per sample (None: the method's default). 0 <= seed < 2^63: sample k
    of an image draws from the stream ("restore", seed, k, hash of its measurement). samples >= 1 per image; batch_size >= 1
    (image, sample) pairs per network call (> 1: faster, bytes differ by rounding; module docstring).
    sigma_y >= 0: noise level for every input (None: each measurement's own). preset_file: YAML (path or mapping)
    over the task preset. params: operator parameters for plain-image inputs. class_label: for class-conditional
    checkpoints.
    checkpoint: name or path (None: the shipped default of the kind the method needs). device: "cpu", "cuda",
    "cuda:N" or "auto" (cuda if available; `validate` resolves it). precision: "auto", "fp32" or "bf16".
    max_pixels >= 1: largest output (H * W) accepted (None: as large as the memory estimate admits,
    `Restorer.memory_refusal`). tile: side of the tiles the generator is
    computed in (a multiple of the network's size multiple; None: automatic from a 4 GiB call budget, at most
    512 px; 0: never tile); images no larger than the tile are computed whole. compile: run the network through
    `torch.compile` (worth it on CUDA for many images; slower to start, and no faster on small CPUs).
    """

    task: str | None = None
    method: str | None = None
    nfe: int | None = None
    seed: int = 0
    samples: int = 1
    batch_size: int = 1
    sigma_y: float | None = None
    preset_file: str | dict[str, Any] | None = None  # a YAML path; validate() replaces it by the file's mapping
    params: dict[str, Any] = field(default_factory=dict)
    class_label: int | None = None
    checkpoint: str | None = None
    device: str = "cpu"
    precision: str = "auto"
    max_pixels: int | None = None
    tile: int | None = None
    compile: bool = False

    def validate(self) -> RestoreOptions:
        """Fill `method` from the task preset and check every value; ValueError naming the first bad one."""
        import math

        from ncvsd_cli.networks.inference import PRECISIONS, resolve_device
        from ncvsd_cli.sampling.methods import get_method, method_names
        from ncvsd_cli.sampling.presets import read_preset_file, task_settings
        from operators.noise import MAX_SEED
        from operators.params import integer, number

        if isinstance(self.preset_file, (str, Path)):  # read once: every input sees the same settings
            self.preset_file = read_preset_file(self.preset_file)
        if self.checkpoint is not None and not str(self.checkpoint).strip():  # `-c "$CKPT"` with CKPT unset
            raise ValueError("checkpoint (--checkpoint) is empty; name a checkpoint, or leave it out for the default")
        for name, lo, hi in (("samples", 1, None), ("batch_size", 1, None), ("max_pixels", 1, None),
                             ("seed", 0, MAX_SEED), ("tile", 0, None), ("nfe", 1, None)):
            value = getattr(self, name)
            if value is not None:  # numpy and 0-d tensor integers too
                setattr(self, name, integer(value, f"{name} (--{name.replace('_', '-')})", lo, hi))
        if self.sigma_y is not None:
            self.sigma_y = number(self.sigma_y, "sigma_y (--sigma-y)")
            if not (math.isfinite(self.sigma_y) and self.sigma_y >= 0):
                raise ValueError(f"sigma_y (--sigma-y) must be >= 0 and finite, got {self.sigma_y}")
        self.device = str(resolve_device(self.device))  # "auto", or CUDA where there is none: a clear ValueError
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision (--precision) must be one of {', '.join(PRECISIONS)}, got "
                             f"{self.precision!r}")
        if self.task is not None:
            import operators

            operators.get(self.task)  # unknown task: ValueError listing the known ones
            preset = task_settings(self.task, preset_file=self.preset_file)  # bad preset file
            self.method = self.method or preset.get("method", "pnp-gd")
            method = get_method(self.method)
            call = method.prepare(self.task, self.nfe, preset_file=self.preset_file, sigma_y=self.sigma_y,
                                  operator=self.params or None)
            probe = _probe_operator(call.settings)
            if probe is not None and not method.applies(probe, call.settings):
                fits = [n for n in method_names() if get_method(n).applies(probe, call.settings)]
                raise ValueError(f"method '{method.name}' does not apply to task '{self.task}'; for it: "
                                 f"{', '.join(fits)}")
            if method.deterministic and self.samples > 1:
                raise ValueError(f"method '{method.name}' is deterministic: its {self.samples} samples would be the "
                                 "same image; use samples=1 (--samples 1)")
        return self


def _probe_operator(settings: dict[str, Any]):
    """A small operator of the task, to ask a method whether it applies (None when the task's parameters, e.g. a
    mask file given with the input, are not known yet: then every method is assumed to apply)."""
    from ncvsd_cli.sampling.presets import build_operator

    try:
        return build_operator(settings, (3, 32, 32))
    except (ValueError, TypeError, OSError, RuntimeError):
        return None


#: Prepared sampler calls a Restorer keeps (`Restorer.prepare`), one per (task, noise level).
PREPARED_CALLS = 64


@dataclass
class RestoreResult:
    """Outcome for one measurement: `samples` (K, C, H, W), about [-1, 1] and not clipped (1 channel for greyscale
    sources), or `error` (a one-line message). nfe / operator_evals per sample; sigma_y the level it ran at."""

    index: int
    samples: torch.Tensor | None = None
    error: str | None = None
    nfe: int = 0
    operator_evals: int = 0
    seconds: float = 0.0
    sigma_y: float | None = None
    #: Phase retrieval: each sample's RMS fit to its measurement, ||A(x_k) - y|| (measurement scale, >= 0; the
    #: lowest fits best), and the samples turned 180° to the best-fitting one's orientation before `mean` and
    #: `std_image` (its twin fits the magnitudes as well: averaged unturned, the two would ghost).
    residuals: list[float] | None = None
    turned: tuple[int, ...] = ()

    def aligned(self) -> torch.Tensor:
        """The samples (K, C, H, W), those in `turned` turned 180°: what `mean` and `std_image` summarise."""
        if not self.turned:
            return self.samples
        s = self.samples.clone()
        s[list(self.turned)] = s[list(self.turned)].flip(-2, -1)
        return s

    def mean(self) -> torch.Tensor:
        """(1, C, H, W) mean of the samples as saved (each clipped to [-1, 1], so the mean image is the mean of
        the sample images; phase retrieval's turned to one orientation first, `aligned`)."""
        return self.aligned().clamp(-1, 1).mean(dim=0, keepdim=True)

    def std_image(self) -> torch.Tensor:
        """(1, C, H, W) image in [-1, 1] of the per-pixel std of the (clipped, `aligned`) samples on the [0, 1]
        scale times STD_SCALE, clipped."""
        from ncvsd_cli import images

        s = images.to_unit(self.aligned().clamp(-1, 1)).std(dim=0, keepdim=True, unbiased=self.samples.shape[0] > 1)
        return images.from_unit((s * STD_SCALE).clamp(0, 1))


def twin_fit(m: Measurement, samples: torch.Tensor) -> dict[str, Any]:
    """Phase retrieval's samples (K, C, H, W) of measurement `m`: `RestoreResult.residuals`, each sample's RMS
    ||A(x_k) - y|| (x_k clipped to [-1, 1], as written), and `turned`, the samples nearer (L2) to the best-fitting
    one turned 180° than as they are. Fourier magnitudes fix an image only up to that turn (docs/method.md §4.5):
    for the centred zero-padding of `operators.simple.PhaseRetrieval`, rot180(x) is an exact twin (a reflection plus
    a one-pixel circular shift)."""
    import torch

    from ncvsd_cli.sampling.methods import rms_residual

    op = m.operator()
    x = samples.detach().to("cpu", torch.float32).clamp(-1, 1)  # the images as saved (pnp-gd-fit4 picks on these)
    try:
        with torch.no_grad():  # one sample at a time: each holds a (C, 2H, 2W) complex spectrum
            res = torch.cat([rms_residual(op, s[None], m.y.to(x)) for s in x])
    except (RuntimeError, MemoryError, ValueError) as exc:  # no fit, not a failed restoration
        logging.getLogger("ncvsd.restore").warning("phase retrieval's fit residuals were not computed: %s", exc)
        return {}
    best = x[int(res.argmin())]
    turned = tuple(i for i in range(len(x))
                   if float((x[i].flip(-2, -1) - best).norm()) < float((x[i] - best).norm()))
    return {"residuals": [float(r) for r in res], "turned": turned}


#: Float32 copies of an input's samples held at once in host memory (`Restorer.memory_refusal`; `_sample` moves
#: each to the CPU): the finished ones, their concatenation, and the clipped copy --mean / --std are taken of.
SAMPLE_COPIES = 3


class _Hooks(NamedTuple):
    """`Restorer.run`'s progress callbacks, in its argument order (each may be None)."""

    on_batch: Callable[[int], None] | None = None
    on_step: Callable[[float, float], None] | None = None
    on_begin: Callable[[int], None] | None = None
    on_skip: Callable[[int], None] | None = None

    def skip(self, n: int) -> None:
        """n (image, sample) pairs given up unrun, when n > 0."""
        if n > 0 and self.on_skip is not None:
            self.on_skip(n)


class Restorer:
    """A loaded model (None for methods that need no network) and its config, run with `options`."""

    def __init__(self, model: Any, config: dict[str, Any] | None, options: RestoreOptions):
        from ncvsd_cli.networks.build import network_multiple
        from ncvsd_cli.sampling.methods import get_method

        self.options = options
        self.method = get_method(options.method or "pnp-gd")
        self.model, self.config = model, config
        self.channels = int((config or {}).get("img_channels", 3))
        self.multiple = network_multiple(config)
        self.label_dim = int((config or {}).get("label_dim", 0) or 0)
        self.precision = "fp32"
        self.checkpoint_path = None
        #: Restore measurements of any task with these options (`ncvsd restore` without --task, whose options
        #: come from one sidecar's task); False: a measurement of another task than `options.task` is refused.
        self.any_task = False
        self._calls: dict[tuple[str, float | None], Any] = {}

    @classmethod
    def from_options(cls, options: RestoreOptions, *, load: bool = True, quiet: bool = False) -> Restorer:
        """A restorer for `options.checkpoint` (default: the manifest's default of the kind the method needs).

        load=False reads only the checkpoint's config (enough for `measurement` and `memory_refusal`); `load()`
        then reads the weights. Loading prepares the network for inference in `options.precision`
        (`self.precision` says which ran) and, for the generator, computes its calls in tiles
        (`networks.tiling.TiledDenoiser`, `options.tile`). quiet: no note naming a run folder's snapshot. Raises
        CheckpointError (missing, corrupt, wrong kind) or ValueError (bad options). `options` is left as it is
        (the restorer's own, `self.options`, is a validated copy: method filled, preset file read).

        Keep a restorer to restore many inputs (`measurement`, then `run`): `restore_image` makes one per call,
        reading and checking the weights each time (0.9 s against 0.3 s for a 16-px sr4 at 1 NFE)."""
        from ncvsd_cli.checkpoints import default_checkpoint, read_network_config, resolve_checkpoint
        from ncvsd_cli.networks.inference import resolve_precision
        from ncvsd_cli.sampling.methods import get_method

        options = replace(options).validate()
        needs = get_method(options.method or "pnp-gd").needs
        resolve_precision(options.precision, options.device)  # validate before any loading
        if needs == "none":
            return cls(None, None, options)
        path = resolve_checkpoint(options.checkpoint or default_checkpoint(needs), kind=needs, quiet=quiet)
        restorer = cls(None, read_network_config(path), options)
        restorer.checkpoint_path = path
        label = options.class_label
        if label is not None and not restorer.label_dim:
            raise ValueError("this checkpoint is unconditional; --class-label does not apply")
        if label is not None and not 0 <= label < restorer.label_dim:
            raise ValueError(f"--class-label {label} is out of range 0..{restorer.label_dim - 1}")
        if options.tile and needs == "generator" and (options.tile % restorer.multiple
                                                        or options.tile < 2 * restorer.multiple):
            raise ValueError(f"tile (--tile) must be a multiple of {restorer.multiple} for this network, and at "
                             f"least {2 * restorer.multiple} (tiles overlap to blend), got {options.tile}")
        if load:
            restorer.load()
        return restorer

    def load(self) -> Restorer:
        """Read the weights of `from_options(..., load=False)` (no-op when loaded or no network is needed)."""
        from ncvsd_cli.checkpoints import load_checkpoint
        from ncvsd_cli.networks.inference import prepare_for_inference

        needs = self.method.needs
        if self.model is not None or needs == "none":
            return self
        if self.checkpoint_path is None:
            raise ValueError(f"method {self.method.name!r} needs a {needs} network: pass the loaded model to Restorer "
                             "or build it with Restorer.from_options (which finds the checkpoint)")
        model, config = load_checkpoint(self.checkpoint_path, device=self.options.device, kind=needs)
        self.precision = prepare_for_inference(model, self.options.precision, self.options.device, needs)
        if self.options.compile:
            import torch

            model = torch.compile(model, dynamic=True)  # attributes (size_multiple, ...) pass through
        if needs == "generator" and self.options.tile != 0:
            from ncvsd_cli.networks.tiling import TiledDenoiser

            model = TiledDenoiser(model, tile=self.options.tile)
        self.model, self.config = model, config
        return self

    def memory_refusal(self, image_shape: tuple[int, int, int], operator_config: dict[str, Any] | None = None,
                       task: str | None = None) -> str | None:
        """None when restoring an image of `image_shape` (C, H, W) fits in memory with these options (method,
        batch size, precision, device, tile), else a one-line refusal naming the estimate and the flags that help.
        operator_config: the measurement's operator (a sidecar's); None: a plain image of `options.task`.
        Uses only the network's config (`ncvsd_cli.memory`), so it can run before the weights load. The classical
        methods (and pnp-gd-warm's start) count their estimate's own work in host memory (`memory.classical_bytes`).
        task: the measurement's task when these options name no method (a sidecar without --task): its preset's
        sampler is the one estimated, as `run` will use it (`for_task`), not the default pnp-gd."""
        from ncvsd_cli import memory
        from ncvsd_cli.sampling.methods import get_method, uses_classical_estimate
        from operators.padding import padded_size

        o = self.options
        sampler = self.method
        if task is not None and o.method is None:
            try:
                sampler = get_method(self.options_for(task).method)
            except ValueError:  # options that do not suit the task: `run` reports it
                return None
            if sampler.needs not in (self.method.needs, "none"):  # another network: its own config decides in run
                sampler = self.method
        if operator_config is None and o.task is not None:  # a plain image
            operator_config = {"name": o.task, **plain_image_params(
                o.task, self.prepare(o.task, o.sigma_y).settings.get("operator"))}
        c = int(image_shape[0])
        warm = uses_classical_estimate(sampler)
        start = memory.classical_bytes(operator_config, (1, c, *image_shape[1:]),
                                       "classical" if warm else sampler.name) \
            if warm or sampler.needs == "none" else 0
        start += memory.operator_bytes(operator_config, image_shape)  # (sr's per-axis matrices: any method)
        host = memory.available_memory_bytes("cpu")  # the classical estimates run on the CPU, in host memory
        held = SAMPLE_COPIES * o.samples * c * int(image_shape[1]) * int(image_shape[2]) * 4 \
            if o.samples > 1 else 0  # an input's samples, kept in host memory until its last is done
        if host is not None and start <= host < start + held:
            return (f"--samples {o.samples} of a {image_shape[2]}x{image_shape[1]} output hold an estimated "
                    f"{memory.format_bytes(held)} of host memory until the last is done, but "
                    f"{memory.format_bytes(host - start)} is available: ask for fewer (runs with other --seed values "
                    "add more)")
        if host is not None and start > host:
            name = str((operator_config or {}).get("name", ""))
            params = {k: v for k, v in (operator_config or {}).items() if k != "name"}
            try:
                shrinks = bool(name) and size_factor(name, c, params) > 1
            except ValueError:  # an operator name not registered here: no factor to name
                shrinks = False
            smaller = " or at a smaller factor" if shrinks else ""
            other = " or --method pnp-gd (it starts from noise, without one)" if warm else ""
            return (f"a {image_shape[2]}x{image_shape[1]} output needs an estimated {memory.format_bytes(start)} of "
                    f"host memory for the operator{' and its classical start' if warm else ''}"
                    f"{f' and {sampler.name}' if sampler.needs == 'none' else ''} but "
                    f"{memory.format_bytes(host)} is available: restore a crop{smaller}{other} (--max-pixels "
                    "caps the accepted size up front)")
        if sampler.needs == "none" or not self.config:
            return None
        net = memory.network_shape(self.config)
        h, w = (padded_size(int(v), self.multiple) for v in image_shape[1:])
        precision = self.work_precision(sampler)
        batch = o.batch_size
        tiled = sampler.needs == "generator" and o.tile != 0
        tile = (o.tile or memory.auto_tile_size(net, 1, precision=precision, device=o.device)) if tiled else None
        need = memory.work_bytes(net, (batch, c, h, w), sampler.backward, tile, precision, o.device)
        if (operator_config or {}).get("boundary") == "reflect":  # the conjugate gradients' canvas buffers
            need += memory.REFLECT_CG_BUFFERS * batch * c * h * w * 4
        available = memory.available_memory_bytes(o.device)
        if available is None or need <= available:
            return None
        how = f"tiles of {tile} px" if tile else "untiled"
        can_tile = sampler.needs == "generator"  # the other methods' networks are not tiled
        least = memory.work_bytes(net, (1, c, h, w), sampler.backward, 4 * net.size_multiple if can_tile else None,
                                  precision, o.device)  # batch 1 (and the smallest tile): what the image alone costs
        if least > available:
            fix = (f"even --batch-size 1{' with the smallest tiles' if can_tile else ''} needs "
                   f"{memory.format_bytes(least)}: the output's size is the cost, so restore a crop or at a smaller "
                   "factor")
        elif can_tile and o.tile == 0:
            fix = "leave out --tile 0 (tiles are then chosen to fit), or use a smaller --batch-size or a smaller image"
        else:
            fix = f"use a smaller {'--tile or --batch-size' if can_tile else '--batch-size'}, or a smaller image"
        return (f"a {w}x{h} output needs an estimated {memory.format_bytes(need)} ({sampler.name}, batch {batch}, "
                f"{precision}, {o.device}, {how}) but {memory.format_bytes(available)} is available; {fix} "
                "(--max-pixels caps the accepted size up front)")

    def plain_factor(self, task: str, channels: int | None = None) -> int:
        """How many times larger per side the restoration of a plain image of `task` is (`measurement.size_factor`
        with the operator parameters it is restored with; sr4: 4). channels: the operator's (default the model's)."""
        params = self.prepare(task, self.options.sigma_y).settings.get("operator") or {}
        return size_factor(task, channels or self.channels, plain_image_params(task, params))

    def check_plain_size(self, task: str, h: int, w: int, max_pixels_name: str = "max_pixels") -> int:
        """ValueError where the restoration of a plain h x w image of `task` (these options' task) is over
        `options.max_pixels` (named `max_pixels_name` in the message) or does not fit in memory
        (`memory_refusal`), said before any work at its size (an sr4 of a 2000-px input took 87 s and 2.9 GB to be
        refused by its output's size); returns the output's factor per side."""
        f = self.plain_factor(task)
        cap = self.options.max_pixels
        if cap is not None and h * w * f * f > cap:
            raise ValueError(f"a {w}x{h} input gives a {w * f}x{h * f} output, more than {max_pixels_name} {cap}")
        refusal = self.memory_refusal((self.channels, h * f, w * f))
        if refusal:
            raise ValueError(refusal)
        return f

    def work_precision(self, sampler: Any = None) -> str:
        """The precision the memory model assumes (and a refusal names) for `sampler` (a registered method; default
        this restorer's): bf16 where the generator will run in it, else fp32. Known before the weights load;
        `precision` says which ran once they have."""
        from ncvsd_cli.networks.inference import resolve_precision

        bf16 = resolve_precision(self.options.precision, self.options.device) == "bf16"
        return "bf16" if bf16 and (sampler or self.method).needs == "generator" else "fp32"

    def tile_note(self, image_shape: tuple[int, int, int]) -> str | None:
        """A note when a given --tile splits an output of `image_shape` (C, H, W) that the default would compute
        whole: the overlapping tiles cost more generator work than one call (1.7x on a 128-px image with 64-px
        tiles). None otherwise (no --tile, not the generator, or an image larger than the automatic tile)."""
        o = self.options
        if self.method.needs != "generator" or not o.tile or not self.config:
            return None
        from ncvsd_cli import memory
        from ncvsd_cli.networks.tiling import tile_layout
        from operators.padding import padded_size

        h, w = (padded_size(int(v), self.multiple) for v in image_shape[1:])
        try:
            auto = memory.auto_tile_size(memory.network_shape(self.config), 1, precision=self.work_precision(),
                                         device=o.device)
        except ValueError:  # not even the smallest tile fits the budget: nothing to compare with
            return None
        if max(h, w) <= o.tile or max(h, w) > auto:
            return None
        rows, cols, th, tw = tile_layout(h, w, o.tile, self.multiple)  # the layout TiledDenoiser will use
        work = len(rows) * len(cols) * th * tw / (h * w)
        return (f"--tile {o.tile} splits this {w}x{h} image into {len(rows) * len(cols)} overlapping tiles, "
                f"{work:.1f}x the generator work of one call; without --tile it is computed whole (tiles of "
                f"{auto} px fit the memory budget)")

    def measurement(self, y: torch.Tensor, task: str, *, source: str | None = None,
                    grey: bool = False, jpeg_sigma: float | None = None,
                    jpeg_coding: images.JpegCoding | None = None, alpha: torch.Tensor | None = None) -> Measurement:
        """A decoded image y (1, C, h, w) in [-1, 1] as the measurement of `task`, its operator built with the task
        settings' operator parameters (preset < preset file < `options.params`) at `options.sigma_y`; for denoise,
        blurs and super-resolution without --sigma-y (or a preset file's sigma_y), at the noise level estimated from
        y within `noise_level_bounds`; for inpaint-box and inpaint-mask at sigma_y 0 (`KEEP_PHOTO_PIXELS`); for
        deblur-gauss without a `sigma` parameter (-p or preset file) and deblur-defocus without `radius`, with the
        blur width or disk radius read from y (`blur_notes`; `m.notes` say so); deblur-motion without `kernel` or
        `seed` with the kernel read from y (`motion_notes`). jpeg_sigma: y was decoded from a
        lossily coded file of this noise scale (`images.compression_sigma`: a JPEG's quantisation, a lossy WebP, AVIF,
        HEIC (0), a palette); it raises the lowest level read (`noise_level_floor`); jpeg_coding: a JPEG's tables
        (`images.jpeg_coding`), through which the blur is read (`blur_estimate.CodingGain`: the coding strips the
        noise's finest frequencies, which would otherwise read as a sharp photo's); the level is then also read on the luma
        (for blurs, on its 2x2 means unless the width read, or the disk's radius / 2, is under COARSE_LUMA_MIN_WIDTH),
        where lossy coding leaves the noise, and for a colour JPEG only where the image's colour backs the reading
        (`measurement.coded_colour_backs`: such noise keeps colour through the coding, fine texture has little); a
        lossless colour image's level also on the luma's 2x2 means where they hold noise, not texture
        (`measurement.coarse_luma_noise`: a camera's demosaicing leaves its noise there).
        alpha: y's opacity (1, 1, h, w) in [0, 1] (`images.read_image(...).alpha`; y is composited on white), kept in
        `m.alpha` for the outputs (`measurement.output_alpha`), and the noise level is read on its largest opaque
        rectangle (`measurement.opaque_window`: the white under transparency holds no noise); for inpaint-mask without a `mask` parameter its pixels
        under half opaque are the holes instead (`transparency_holes`; the others keep the colour the file stores,
        `opaque_colour`) and the restoration is opaque (`m.alpha` None).
        ValueError where a plain image cannot be the measurement (`plain_image_refusal`: inpaint-random without
        `seed`, phase-retrieval; deblur-motion whose kernel cannot be read)."""
        from ncvsd_cli import images
        from ncvsd_cli.blur_estimate import read_blur
        from ncvsd_cli.measurement import (
            LOSSY_DENOISE_SCALE_RATIO,
            WHITE_NOISE_SCALE_RATIO,
            coarse_luma_is_noise,
            coarse_luma_noise,
            coded_colour_backs,
            distinct_channel_count,
            estimate_luma_noise_sigma,
            estimate_noise_sigma,
            noise_patch_side,
        )

        given = self.given_params()
        y = images.as_image_tensor(y, source or "input", check_range=checks_pixel_range(given))
        holes = transparency_holes(alpha) if task == "inpaint-mask" and "mask" not in given else None
        if holes is not None and "invert" in given:
            raise ValueError("-p invert reads a mask file's white as the holes (-p mask=M.png); without one, the "
                             "input's transparent pixels are the holes as they are")
        given = given if holes is None else {**given, "mask": holes}
        y = y if holes is None else opaque_colour(y, alpha)
        refusal = plain_image_refusal(task, given)
        if refusal and task == "inpaint-mask":
            refusal += "; this input has no pixel under half opaque"
        if refusal:  # before any estimate is made
            raise ValueError(refusal)
        settings = self.prepare(task, self.options.sigma_y).settings
        sigma_y, notes, params = settings["sigma_y"], [], dict(settings.get("operator") or {})
        params.update({} if holes is None else {"mask": holes})
        if task == "inpaint-mask" and holes is None and transparency_holes(alpha) is not None:  # -p mask given
            notes.append("its transparent pixels are not filled: -p mask names the holes (without it the "
                         "transparent pixels are the holes); they keep the white they are composited on and stay "
                         "transparent in outputs that hold an alpha channel")
        preset = self.options.preset_file if isinstance(self.options.preset_file, dict) else {}
        bounds = noise_level_bounds(task)
        unknown = bounds is not None and self.options.sigma_y is None and "sigma_y" not in preset
        coding = jpeg_coding if jpeg_coding is None or y.shape[1] == 3 or not jpeg_coding.colour else None  # a
        # colour JPEG read as grey for a grey model: its luma is not the channels' mean the coding was simulated on
        reads = unknown or reads_blur(task, given)
        window = opaque_window(alpha) if holes is None and reads else None  # a cut-out: read where opaque (its white
        seen = y if window is None else y[..., window[0], window[1]]  # has no noise, its outline sharp edges)
        if window is not None and min(seen.shape[-2:]) < OPAQUE_READ_MIN_SIDE:  # too little to read: all of it
            notes.append(f"its largest opaque rectangle, {seen.shape[-1]}x{seen.shape[-2]} px, is too small to read "
                         "the noise or blur on: read on the whole image, whose transparency, composited on white, "
                         "reads as no noise and sharp outlines (--sigma-y, -p sigma / radius set them)")
            window, seen = None, y
        part = "" if window is None else f" on its opaque {seen.shape[-1]}x{seen.shape[-2]} rectangle"
        # a cut-out read whole: its outline's sharp edges against the white are not the photo's (an alpha that is
        # nowhere under half opaque draws no outline)
        outline = alpha is not None and window is None and bool((alpha < 0.5).any())
        reading = read_blur(seen, coding=coding, edges=not outline) if reads_blur(task, given) else None
        width = None if reading is None else reading.width if task == "deblur-gauss" else reading.radius / 2
        read_here = [what for what, read in (("noise level", unknown), ("blur", reading is not None)) if read]
        if window is not None and read_here:
            notes.append(f"{' and '.join(read_here)} read{part} (transparency, composited on white, has no noise and "
                         "sharp outlines)")
        colours = distinct_channel_count(seen[0]) if unknown else 0  # 1: a grey image, also one stored as RGB
        if unknown and not noise_patch_side(colours, *seen.shape[-2:]):
            notes.append(f"noise level sigma_y {sigma_y:g}, the task preset's: the image is too small to read it from "
                         "(--sigma-y sets it)")
        elif unknown:
            read = estimate_noise_sigma(seen)  # a photo's noise level is unknown: the preset's 0.05 is a guess
            scale, low = noise_level_scale(task, self.network_free(task)), noise_level_floor(bounds, jpeg_sigma)
            luma, luma_why = 0.0, " on the luma (lossy coding strips the noise from the colour)"
            if jpeg_sigma is not None:  # lossy coding leaves the noise in the luma only; after a blur, or where it is
                # white noise (not a sharp photo's texture), on its 2x2 means
                blurred = noise_level_scale(task) < 1 and (width is None or width >= COARSE_LUMA_MIN_WIDTH)
                ratio = LOSSY_DENOISE_SCALE_RATIO if task == "denoise" else WHITE_NOISE_SCALE_RATIO
                fine, coarse = estimate_luma_noise_sigma(seen), estimate_luma_noise_sigma(seen, coarse=True)
                backed = coded_colour_backs(seen, coding)  # fine texture: strong on the luma, too little colour
                levels = [fine] + ([coarse] if blurred or coarse_luma_is_noise(seen, coarse, ratio) else [])
                luma = max([level for level in levels if level > read and backed(level)], default=0.0)
                refused = max([v for v in levels if v > max(read, luma) and not backed(v)], default=0.0)
            elif colours == 3:  # a camera's demosaicing leaves its noise on the luma's 2x2 means
                luma = coarse_luma_noise(seen, read)
                luma_why = " on the luma's 2x2 means, where a camera's demosaiced noise shows"
            if jpeg_sigma is not None and luma > read:  # a lossy file's noise read on its luma: deblurred at that
                scale = 1.0  # level (0.7x it scored 0.54 dB less on 6 noisy JPEGs, benchmarks/jpeg-blur-level/)
            read, on_luma = max(read, luma), luma > read and scale * luma > low  # the luma set the level
            estimate = scale * read
            shaken = shake_level(read) if scale < 1 and reads_motion_kernel(task, given) else 0.0
            raised, estimate = shaken > estimate, max(estimate, shaken)  # (a kernel read: its own level)
            sigma_y = stepped_level(estimate, low, bounds[1])
            why = f", raised for {lossy_coding_name(jpeg_coding)}" if low > bounds[0] else ""
            bound = f"at least {low:g}{why}" if estimate < low else f"at most {bounds[1]}"
            how = [f"read {read:.4f}" + (luma_why if on_luma else "")]  # then as it is rounded to sigma_y
            if raised:
                how.append(f"a shake read from the photo is restored at the level read up to {KERNEL_READ_LEVEL:g} "
                           f"(its kernel's small errors, sharpened, ripple), {estimate:.4f}")
            elif scale != 1:
                how.append(f"a blur is restored at {scale:g}x the level read, {estimate:.4f}")
            how += [f"in steps of {NOISE_STEP:g}"] + ([] if low <= estimate <= bounds[1] else [bound])
            notes.append(f"estimated noise level sigma_y {sigma_y:g} on the [-1, 1] scale ({'; '.join(how)}) "
                         "(--sigma-y sets it)")
            other = colourless_luma_notes(refused) if jpeg_sigma is not None else []  # each names a level:
            if jpeg_sigma is not None and task == "denoise" and not refused:  # blurs and sr: a small or blurred
                other += lossy_level_notes(coarse, sigma_y)  # photo's 2x2 means hold texture
            luma_scale = 1.0 if jpeg_sigma is not None and y.shape[1] == 3 else scale  # (lossy: read on its luma)
            notes += other or clipped_level_notes(seen, sigma_y, luma_scale, (low, bounds[1]),  # one at most
                                                  backs=backed if jpeg_sigma is not None else None,
                                                  blur=task.startswith("deblur"))
        elif task == "denoise" and self.options.sigma_y is not None:  # a level given: said if the photo belies it
            notes += given_level_notes(seen, float(self.options.sigma_y), distinct_channel_count(seen[0]),
                                       lossy=jpeg_sigma is not None)
        if task in KEEP_PHOTO_PIXELS and self.options.sigma_y is None and "sigma_y" not in preset:
            sigma_y = 0.0
            ripples = ("; this file's lossy coding smears the marks 2-3 px beyond the mask, kept too: if outlines of "
                       "the marks remain, -p grow=3 widens the holes over them (or --sigma-y 0.05 retouches them)"
                       if jpeg_sigma is not None and task == "inpaint-mask" and "grow" not in params else "")
            notes.append("the photo's own pixels are kept as they are (sigma_y 0; --sigma-y S treats them as noisy "
                         "with std S and retouches them too)" + ripples)
        if reads_blur(task, given):  # read above: the preset's width is the paper's (a guess here)
            notes += blur_notes(task, reading, params, tuple(seen.shape[-2:]), lossy=jpeg_sigma is not None)
        matte = alpha if holes is None and alpha is not None and task.startswith(SPREADING_TASKS) and \
            bool((alpha < OPAQUE).any()) and bool((alpha >= EXTEND_OPACITY).any()) else None  # the white's edge
        # along an outline is no blur's (nothing to extend from where all is under EXTEND_OPACITY: as before)
        y = y if matte is None else extend_under_transparency(y, matte)
        shake = reads_motion_kernel(task, given)
        if shake:  # a camera shake: its kernel is read
            notes += motion_notes(y, params, given)
        m = measurement_from_image(y, task, params, sigma_y, source=source, grey=grey)
        m.kernel_read, m.alpha, m.matte = shake, alpha if holes is None else None, matte
        if task == "inpaint-mask" and holes is not None:
            notes += transparency_notes(float(m.operator().mask.mean()), float(params.get("grow", 0)))
        elif task == "inpaint-mask":
            notes += user_mask_notes(m, params)
        notes += seed_notes(task, given, m.operator())
        if task in ("deblur-kernel", "deblur-motion") and "kernel" in given:  # a user's own kernel
            notes += kernel_file_notes(given["kernel"], given.get("normalize", True))
        refuse_empty_mask(m)
        if task == "inpaint-box":  # the task's box is erased whatever the photo holds there
            bh, bw = m.operator().box_size
            notes.append(f"the centred {bw}x{bh} box is treated as missing and repainted (-p box_size=N sets "
                         "its side; for a hole of your own use --task inpaint-mask -p mask=M.png)")
        m.notes = notes + self.grey_level_notes(m)  # after the note giving the level read or given
        return m

    def grey_level_notes(self, m: Measurement) -> list[str]:
        """The note of a grey measurement denoised at GREY_NOISE_SCALE x its level (`sampler_level`): a plain
        grey photo's or a grey image's `degrade` sidecar; [] otherwise."""
        if self.sampler_level(m) == self.level(m):
            return []
        return [(f"a grey photo is denoised at {GREY_NOISE_SCALE:g}x its noise level, {self.sampler_level(m):.4g}: "
                 "its noise is the same in the three channels, which the network reads as weaker (--sigma-y is "
                 "scaled alike)")]

    def given_params(self) -> dict[str, Any]:
        """The operator parameters the user set for plain images: a preset file's, then -p (not the task preset's)."""
        preset = self.options.preset_file if isinstance(self.options.preset_file, dict) else {}
        return {**(preset.get("operator") or {}), **(self.options.params or {})}

    def level(self, m: Measurement) -> float:
        """The noise level measurement `m` is restored at: `options.sigma_y` when set, else its own sigma_y."""
        return float(m.sigma_y if self.options.sigma_y is None else self.options.sigma_y)

    def sampler_level(self, m: Measurement) -> float:
        """The level the sampler is given for `m`: `level(m)`, times GREY_NOISE_SCALE when a network restores a
        measurement of a task in GREY_NOISE_TASKS whose three channels are equal (a grey photo, as a 1-channel
        file or saved as RGB: its noise is the same in the three channels; `degrade` of a grey image too)."""
        from ncvsd_cli.measurement import distinct_channel_count

        scaled = (m.task in GREY_NOISE_TASKS and self.method.needs != "none" and self.channels == 3
                  and m.y.shape[1] == 3 and distinct_channel_count(m.y[0]) == 1)
        return self.level(m) * GREY_NOISE_SCALE if scaled else self.level(m)

    def prepare(self, task: str, sigma_y: float | None = None):
        """The method's `MethodCall` (settings, sigmas, arguments, nfe) for `task` at noise level `sigma_y`,
        prepared once per (task, sigma_y): the preset files are not read again for every input. The last
        PREPARED_CALLS are kept (a service restoring at ever new noise levels held one per level)."""
        key = (task, sigma_y)
        if key in self._calls:
            self._calls[key] = self._calls.pop(key)  # the most recent last: the oldest unused goes first
        else:
            if len(self._calls) >= PREPARED_CALLS:
                self._calls.pop(next(iter(self._calls)))  # the oldest
            o = self.options
            self._calls[key] = self.method.prepare(task, o.nfe, preset_file=o.preset_file, sigma_y=sigma_y,
                                                   operator=o.params or None)
        return self._calls[key]

    def run(self, measurements: Sequence[Measurement], on_batch: Callable[[int], None] | None = None,
            on_step: Callable[[float, float], None] | None = None,
            on_begin: Callable[[int], None] | None = None,
            on_skip: Callable[[int], None] | None = None) -> Iterator[RestoreResult]:
        """Restore `measurements`; yields a RestoreResult per measurement as soon as all its samples are done
        (errors are results too: the run goes on). Measurements with the same operator and noise level are
        batched `options.batch_size` (image, sample) pairs at a time. on_begin(n) comes before and on_batch(n)
        after each batch of n pairs; on_step(done, total) after each sampler iteration (and each tile of a tiled
        network call), with the network evaluations per image done in the batch (`progress.CallProgress`);
        on_skip(n): n pairs given up unrun (their image failed), so that on_batch's and on_skip's counts add up to
        len(measurements) x options.samples. Without `options.method` (and task) each measurement runs its own task
        preset's sampler (`for_task`). A measurement of another task than `options.task` is an error result;
        `options.params` shape plain images' operators (`measurement`), while a Measurement keeps the operator it
        records."""
        hooks = _Hooks(on_batch, on_step, on_begin, on_skip)
        refused = {j: why for j, m in enumerate(measurements) if (why := self._task_refusal(m))}
        for j, why in refused.items():
            hooks.skip(self.options.samples)
            yield RestoreResult(j, error=f"{measurements[j].source or 'input'}: {why}")
        if refused:
            kept = [j for j in range(len(measurements)) if j not in refused]
            for res in self.run([measurements[j] for j in kept], *hooks):
                yield replace(res, index=kept[res.index])
            return
        if self.options.method is None:
            yield from self._run_per_task(measurements, hooks)
            return
        groups: dict[str, list[int]] = {}
        for j, m in enumerate(measurements):
            key = json.dumps([m.task, m.operator_config, list(m.y.shape), self.sampler_level(m)], sort_keys=True,
                             default=str)
            groups.setdefault(key, []).append(j)
        for members in groups.values():
            yield from self._run_group(measurements, members, hooks)

    def _task_refusal(self, m: Measurement) -> str | None:
        """Why `m` is not restored here: its task is not these options' (`ncvsd restore --task` refuses a sidecar
        of another task; a Restorer for deblur-gauss restored an sr4 measurement as sr4), or its operator is not
        its task's (a hand-built Measurement ran the sr4 operator with deblur-gauss settings)."""
        task, named = self.options.task, (m.operator_config or {}).get("name")
        if task is not None and m.task != task and not self.any_task:
            return (f"the measurement is of task {m.task}, not these options' task {task} (RestoreOptions(task=None) "
                    "restores each measurement as its own task)")
        if named != m.task:
            return f"the measurement's task is {m.task} but its operator is {named!r}"
        return None

    def for_task(self, task: str) -> Restorer:
        """A restorer with these options for `task` (its preset's method when none is set), sharing this one's
        network when the method needs the same kind. Raises ValueError when the options do not suit the task."""
        opts = self.options_for(task)
        if opts.method == self.options.method and task == self.options.task:
            return self
        return self.with_options(opts)

    def network_free(self, task: str) -> bool:
        """Whether `task` is restored by a classical method here (--method wiener, classical, ...; no network)."""
        from ncvsd_cli.sampling.methods import get_method

        try:
            return get_method(self.options_for(task).method).needs == "none"
        except ValueError:  # options that do not suit the task: `run` reports it
            return False

    def options_for(self, task: str) -> RestoreOptions:
        """These options for `task`, validated (its preset's method when none is set); ValueError when they do not
        suit it."""
        return replace(self.options, task=task).validate()

    def with_options(self, opts: RestoreOptions) -> Restorer:
        """A restorer for the validated `opts`: this one's network (loaded once, here) when its method needs the same
        kind, none for a classical method, else the checkpoint the method needs (e.g. the teacher of dps)."""
        from ncvsd_cli.sampling.methods import get_method

        needs = get_method(opts.method).needs
        sub = Restorer.from_options(opts) if needs not in (self.method.needs, "none") else \
            Restorer(None, self.config if needs != "none" else None, opts)
        sub.any_task = self.any_task
        if needs not in (self.method.needs, "none"):
            return sub
        if needs != "none":
            self.load()
            sub.model, sub.config, sub.precision = self.model, self.config, self.precision
            sub.checkpoint_path = self.checkpoint_path
        return sub

    def _run_per_task(self, measurements, hooks: _Hooks) -> Iterator[RestoreResult]:
        """`run` without a method: the measurements grouped by their task's sampler, each group run by `for_task`."""
        from ncvsd_cli.checkpoints import CheckpointError

        by_task: dict[str, Restorer | str] = {}
        groups: dict[int, tuple[Restorer, list[int]]] = {}
        for j, m in enumerate(measurements):
            if m.task not in by_task:
                try:
                    by_task[m.task] = self.for_task(m.task)
                except (ValueError, OSError, CheckpointError) as exc:
                    by_task[m.task] = one_line(exc)
            sub = by_task[m.task]
            if isinstance(sub, str):
                hooks.skip(self.options.samples)
                yield RestoreResult(j, error=f"{m.source or 'input'}: {sub}")
                continue
            groups.setdefault(id(sub), (sub, []))[1].append(j)
        for sub, members in groups.values():
            for res in sub.run([measurements[j] for j in members], *hooks):
                yield replace(res, index=members[res.index])

    def _run_group(self, measurements, members: list[int], hooks: _Hooks) -> Iterator[RestoreResult]:
        from ncvsd_cli.checkpoints import CheckpointError
        from ncvsd_cli.memory import return_freed_memory
        from ncvsd_cli.sampling.pnp_gd import warm_start_applies
        from ncvsd_cli.sampling.presets import configure_operator
        from operators.base import all_finite
        from operators.padding import pad_operator

        first = measurements[members[0]]
        source = first.source or "input"
        try:
            if first.image_shape[0] != self.channels and self.method.needs != "none":
                grey = (" (save a grey measurement for a colour model with its channel copied to each of 3 and "
                        "grey=True: the outputs are then grey)" if first.image_shape[0] == 1 else "")
                raise ValueError(f"the measurement has {first.image_shape[0]} channel(s) but the model has "
                                 f"{self.channels}{grey}")
            call = self.prepare(first.task, self.sampler_level(first))
            if self.method.needs == "none" and not warm_start_applies(first.operator()):
                raise ValueError(f"{first.task} has no informative classical estimate (method {self.method.name} "
                                 "would write mid-grey): use a network method, e.g. the default")
            op = pad_operator(configure_operator(first.operator(), call.settings), self.multiple)
            op = op.to(self.options.device)
        except (CheckpointError, BrokenPipeError):  # (the model's problem; stdout's reader gone: the run's)
            raise
        except Exception as exc:  # this group's problem only (a plug-in operator's or method's error of any type)
            if debugging():
                raise
            hooks.skip(len(members) * self.options.samples)
            for j in members:
                yield RestoreResult(j, error=f"{measurements[j].source or 'input'}: {described(exc)}")
            return
        k_total = self.options.samples
        jobs = [(j, k) for j in members for k in range(k_total)]
        done: dict[int, list] = {j: [] for j in members}
        started: dict[int, float] = {}
        failed: set[int] = set()
        estimates: dict[int, Any] = {}
        for start in range(0, len(jobs), self.options.batch_size):
            chunk = jobs[start:start + self.options.batch_size]
            batch = [(j, k) for j, k in chunk if j not in failed]
            hooks.skip(len(chunk) - len(batch))
            if not batch:
                continue
            t0 = time.perf_counter()
            for j, _ in batch:
                started.setdefault(j, t0)
            if hooks.on_begin is not None:
                hooks.on_begin(len(batch))
            try:
                x, res = self._sample(op, call, [measurements[j] for j, _ in batch], [j for j, _ in batch],
                                      [k for _, k in batch], estimates, hooks.on_step)
            except Exception as exc:  # these inputs' problem only (a plug-in method's error of any type)
                if debugging() or isinstance(exc, BrokenPipeError):  # (stdout's reader gone: the run stops)
                    raise
                x, res = None, None
                for j in {j for j, _ in batch}:
                    failed.add(j)
                    yield RestoreResult(j, error=f"{measurements[j].source or source}: restoration failed "
                                                 f"({self.method.name}): {described(exc)}")
            for b, (j, k) in enumerate(batch):
                if x is None or j in failed:
                    continue
                if not all_finite(x[b]):
                    failed.add(j)
                    yield RestoreResult(j, error=f"{measurements[j].source or source}: the network produced "
                                                 f"NaN/inf values (sample {k}); nothing written")
                    continue
                done[j].append(x[b:b + 1])
                if len(done[j]) == k_total:
                    yield self._finished(measurements[j], j, done.pop(j), res, time.perf_counter() - started[j])
                    estimates.pop(j, None)
            if hooks.on_batch is not None:
                hooks.on_batch(len(batch))
        x = res = op = estimates = done = None
        return_freed_memory()  # the group's buffers, freed, go back to the system (images of many sizes)

    def _finished(self, m: Measurement, j: int, parts: list, res, seconds: float) -> RestoreResult:
        import torch

        from ncvsd_cli import images

        samples = torch.cat(parts)
        if m.matte is not None:  # restored extended under its transparency: composited on white again
            samples = recomposite(samples, m.matte, m.operator())
        fit = twin_fit(m, samples) if m.task == "phase-retrieval" else {}
        if m.grey and samples.shape[1] == 3:
            samples = images.match_channels(samples, 1)
        return RestoreResult(j, samples=samples, nfe=res.nfe, operator_evals=res.operator_evals, seconds=seconds,
                             sigma_y=self.level(m), **fit)

    def _sample(self, op, call, ms: list[Measurement], idx: list[int], ks: list[int], estimates: dict,
                on_step=None):
        import torch

        from ncvsd_cli.networks.tiling import TiledDenoiser
        from ncvsd_cli.progress import CallProgress, step_callback
        from ncvsd_cli.sampling.methods import uses_classical_estimate
        from operators.noise import generators_for_seeds, stream_seed, tensor_key
        from operators.padding import crop_to

        device = self.options.device
        y = torch.cat([m.y for m in ms]).to(device)
        y = y.float() if y.is_floating_point() else y  # the networks and operators compute in float32
        kwargs: dict = {}
        if self.label_dim:
            label = 0 if self.options.class_label is None else int(self.options.class_label)
            if not 0 <= label < self.label_dim:
                raise ValueError(f"class label {label} is out of range 0..{self.label_dim - 1}")
            kwargs["class_labels"] = torch.nn.functional.one_hot(torch.full((len(ms),), label),
                                                                 self.label_dim).float().to(device)
        if uses_classical_estimate(self.method):  # one classical estimate per image, whatever the batches
            kwargs["estimate"] = self._estimates(op, y, idx, call.kwargs["sigma_y"], estimates)
        gens = generators_for_seeds([stream_seed("restore", self.options.seed, k, tensor_key(m.y))
                                     for m, k in zip(ms, ks)], device=device)  # noise drawn where it is used
        tiled = isinstance(self.model, TiledDenoiser) and on_step is not None and call.nfe
        # a large image's evaluations take minutes: its tiles move the progress too
        progress = CallProgress(on_step, call.nfe) if tiled else None
        if (callback := step_callback(call, progress.step if progress else on_step)) is not None:
            kwargs["callback"] = callback
        caller_hook = self.model.on_tile if progress else None
        try:
            if progress:
                self.model.on_tile = progress.tile
            with torch.no_grad():
                res = self.method.run(call, self.model, op, y, generator=gens, **kwargs)
        finally:
            if progress:
                self.model.on_tile = caller_hook
        _, h, w = ms[0].image_shape
        return crop_to(res.x, (h, w)).detach().float().cpu(), res

    @staticmethod
    def _estimates(op, y, idx: list[int], sigma_y: float, cache: dict):
        import torch

        from ncvsd_cli.sampling.common import SamplerResult
        from ncvsd_cli.sampling.pnp_gd import classical_estimate

        for b, j in enumerate(idx):
            if j not in cache:
                cache[j] = classical_estimate(op, y[b:b + 1], sigma_y)
        parts = [cache[j] for j in idx]
        return SamplerResult(x=torch.cat([p.x for p in parts]), nfe=0, operator_evals=parts[0].operator_evals,
                             extras=parts[0].extras)


#: Noise levels read from a plain image (`estimate_noise_sigma`) are kept within these bounds (on the [-1, 1]
#: scale) for blurs and super-resolution: at least 0.01 (an 8-bit photo's quantisation and the model's own error),
#: at most 0.2 (a sanity bound; it was the preset's 0.05 while the reading took texture for noise).
#: benchmarks/noise-level/ and noise-estimator/ measure them. Levels are rounded to NOISE_STEP (photos batch together).
NOISE_FLOOR, NOISE_CAP, NOISE_STEP = 0.01, 0.2, 0.0025
BLUR_NOISE_SCALE = 0.7  # `noise_level_scale`
#: A deblur-gauss input whose width reads under this (px) is no blurred image: its noise is not read on the luma's
#: 2x2 means, where a sharp photo's texture reads as noise (clean JPEGs up to 0.15; benchmarks/noisy-jpeg/).
COARSE_LUMA_MIN_WIDTH = 1.0
#: Images with a side under this (px) read a Gaussian blur's width loosely, and the note says so
#: (benchmarks/blur-estimate-64/: 64-px validation crops).
BLUR_EVIDENCE_SIDE = 128
#: The operator parameter a plain image's blur is read into, per task (`Restorer.measurement`).
BLUR_READ = {"deblur-gauss": "sigma", "deblur-defocus": "radius"}
#: deblur-gauss notes that a disk fits the blur better (`better_blur_model`) from this radius (px) and this evidence per
#: periodogram value (nats; about 100 on a 256-px photo): on 21 training photos Gaussian and Pillow blurs of 1-3 px
#: stayed under it (at most 0.0002) and disks of radius 4-8 px over it (at least 0.0047; benchmarks/defocus/).
DEFOCUS_NOTE_RADIUS, DEFOCUS_NOTE_NATS = 3.0, 0.002
#: A defocus radius is read from plain images of at least this side (px). Native-resolution centre crops of the 6
#: `builtin` training views (noise 0.02): at 64 px 5 of 24 readings were far off (a sharp brick read 4.5 px, disks
#: of 2 / 6 px read 15.75 / 1.25-4.25), at 96 px 1 (the sharp brick, 3.25), at 128 px none. A user's sharp 64-px
#: photo read as a 4-7 px disk was restored to ringing stripes, 8 dB below the input. Smaller images need
#: -p radius=R.
DEFOCUS_READ_MIN_SIDE = 96


def better_blur_model(reading) -> str | None:
    """The task whose blur model fits `reading` (`blur_estimate.read_blur`) clearly better: "deblur-defocus" for a
    disk of radius >= DEFOCUS_NOTE_RADIUS ahead by DEFOCUS_NOTE_NATS per periodogram value, "deblur-gauss" for a
    Gaussian of std >= DEFOCUS_NOTE_RADIUS / 2 ahead by as much; None where neither is (small blurs look alike)."""
    margin = DEFOCUS_NOTE_NATS * reading.frequencies
    if reading.radius >= DEFOCUS_NOTE_RADIUS and reading.defocus_nats >= margin:
        return "deblur-defocus"
    if reading.width >= DEFOCUS_NOTE_RADIUS / 2 and reading.defocus_nats <= -margin:
        return "deblur-gauss"
    return None


def blur_notes(task: str, reading, params: dict[str, Any], size: tuple[int, int], lossy: bool = False) -> list[str]:
    """Sets params' blur width (deblur-gauss: "sigma") or disk radius (deblur-defocus: "radius") from `reading`
    (`blur_estimate.read_blur`; None: the image is flat, the preset's value stays) and returns the
    notes that say so: an unblurred look, a reading at the widest blur read, a small image's loose reading, the
    other blur model fitting better (`better_blur_model`; from a `lossy` file, a JPEG, a disk said as unsure: JPEGs
    of 3-px Gaussian blurs of the 6 training views all fit a disk better too; a Gaussian not said), a kernel_size
    cutting a Gaussian's tails; from a `lossy` file "looks unblurred" adds that the coding may hide a blur; a
    reading made through a JPEG's coding (`reading.coded`) or lowered by the image's edges (`reading.capped`) says
    so."""
    from ncvsd_cli.blur_estimate import MAX_RADIUS, MAX_SIGMA, MIN_RADIUS, MIN_SIZE, RADIUS_STEP

    key = BLUR_READ[task]
    what = "width" if key == "sigma" else "radius"
    smallest = DEFOCUS_READ_MIN_SIDE if task == "deblur-defocus" else MIN_SIZE
    if min(size) < smallest:  # the preset's blur on a small image that is not blurred by it ruins it (40x30 px
        # thumbnail, sigma 3: 8.8 dB vs the input's 35)
        why = (f"(under {DEFOCUS_READ_MIN_SIDE} px sharp photos read as 4-7 px disks and are ruined)"
               if task == "deblur-defocus" else f"(under {MIN_SIZE} px)")
        named = "a defocus radius" if task == "deblur-defocus" else "a blur width"
        raise ValueError(f"{size[1]}x{size[0]} px is too small to read {named} from {why}: give the {what}, "
                         f"-p {key}={key[0].upper()} (px)")
    if reading is None:
        return [f"blur {what} not estimated (a flat image): {key} {params.get(key)} px"]
    better, widest = better_blur_model(reading), ": the widest the reading covers, the blur may be wider"
    was_coded, was_capped = ((reading.coded, reading.capped) if key == "sigma" else
                             (reading.radius_coded, reading.radius_capped))
    coded = "read through this JPEG's quantisation, whose steps strip the finest detail and noise; " if was_coded else ""
    coded += EDGE_CAPPED if was_capped else ""
    if task == "deblur-gauss":
        params["sigma"] = round(max(reading.width, MIN_BLUR_SIGMA), 2)
        notes = [f"estimated Gaussian blur sigma {params['sigma']:.2f} px ({coded}-p sigma=S sets it)"
                 + (": the image looks unblurred" + STREAKS_UNREAD
                    + (LOSSY_HIDDEN_BLUR.format("-p sigma=S") if lossy else "")
                    if reading.width < 0.5 else "")
                 + (widest if reading.width >= MAX_SIGMA - 0.01 else "")]
        if better == "deblur-defocus" and lossy:
            notes.append(f"the blur may be defocus: a disk of radius {reading.radius:g} px fits it better than any "
                         "Gaussian, though JPEG coding makes Gaussian blurs fit a disk too (--task deblur-defocus "
                         "restores it with that disk if edges keep a halo)")
        elif better == "deblur-defocus":
            notes.append(f"{DEFOCUS_NOT_GAUSS} radius {reading.radius:g} px fits it better than any Gaussian, "
                         "and a Gaussian deblur of it leaves halos, often worse than the input: --task "
                         "deblur-defocus restores it with that disk")
        need = 2 * math.ceil(3 * params["sigma"]) + 1  # +-3 sigma holds 99.7 % of the kernel's mass
        if int(params.get("kernel_size", need)) < need:
            notes.append(f"kernel_size {params['kernel_size']} cuts off the estimated Gaussian's tails "
                         f"(it needs >= {need}): the blur is modelled truncated")
    else:
        params["radius"] = max(reading.radius, MIN_RADIUS)
        notes = [f"estimated defocus radius {params['radius']:g} px ({coded}-p radius=R sets it)"
                 + (": the image looks unblurred" + STREAKS_UNREAD
                    + (LOSSY_HIDDEN_BLUR.format("-p radius=R") if lossy else "")
                    if reading.radius <= 1 else "")  # std <= 0.5: a photo's own
                 + (widest if reading.radius >= MAX_RADIUS - RADIUS_STEP else "")]
        if better == "deblur-gauss" and not lossy:  # a noisy JPEG's disk can fit a Gaussian better: following
            # that cost 7.6 dB with ringing on a 3.5-px disk (noise 0.04, quality 90), so it is not suggested
            notes.append(f"a Gaussian of sigma {reading.width:.2f} px fits the blur better than a disk "
                         "(--task deblur-gauss)")
    if min(size) < BLUR_EVIDENCE_SIDE:
        spread = " (64-px photos blurred by 1.5 px read 0.9-1.8)" if key == "sigma" else ""
        notes[0] += (f"; an image under 128 px holds little evidence of the {what}{spread}: if edges ring or look "
                     f"over-sharpened, try a smaller {key}")
    return notes


#: Said with "looks unblurred": a round blur's reading misses a camera shake (a 9-px line read sigma 0.25 px; five
#: shaken photos all read "unblurred").
STREAKS_UNREAD = " to a round blur (a camera shake's streaks read so: --task deblur-motion reads them)"

#: Said of a reading `blur_estimate.read_blur` lowered to what the image's steepest edges allow (a sharp JPEG of
#: pyramids against a flat sky read 2.8 px from its spectrum and was deconvolved into a maze).
EDGE_CAPPED = ("lowered to what the image's steepest edges allow: its spectrum read a wider blur, whose deconvolution "
               "would turn sharp detail into ripples; ")
#: Added to "looks unblurred" for a lossy file: the coding's steps and noise can hide a blur from the reading (a
#: 5-px disk with noise 0.04 at JPEG quality 75 read 0-0.75 px on 7 of 9 tries; as PNGs 9 of 9 near the truth).
#: Read through a JPEG's own coding (`blur_estimate.CodingGain`) such disks read right (16 of 16), but a lossy
#: WebP's or palette's coding is not modelled, and quality 50 with little noise still hides blurs
#: (benchmarks/lossy-blur-reading/).
LOSSY_HIDDEN_BLUR = (", or its lossy coding (with noise) hides the blur from the reading: if the photo looks "
                     "blurred, give {}")


def reads_blur(task: str, given: dict[str, Any]) -> bool:
    """Whether a plain image of `task` has its blur width or disk radius read from it: deblur-gauss without "sigma",
    deblur-defocus without "radius" among the parameters the user `given` (`Restorer.given_params`)."""
    return task in BLUR_READ and BLUR_READ[task] not in given


def reads_motion_kernel(task: str, given: dict[str, Any]) -> bool:
    """Whether a plain image of `task` has its motion-blur kernel read from it: deblur-motion without the kernel or
    the synthetic kernel's seed among the parameters the user `given` (`Restorer.given_params`)."""
    return task == "deblur-motion" and not {"kernel", "seed"} & set(given)


#: A plain image without -p kernel_size reads a shake of at most 1/this of its shorter side (and MOTION_READ_SIZE):
#: on 12 training photos at 64 px with 9 / 15-px shakes, a 15-px square read similarity 0.83 / 0.82, the 31-px
#: one 0.79 / 0.67 (at 96 px 0.87 / 0.81 vs 0.86 / 0.75; alike from 128 px).
SMALL_IMAGE_READ_FRACTION = 4


def motion_read_square(y: torch.Tensor, given: dict[str, Any]) -> tuple[int, int, int, int]:
    """(size, asked, odd, fits) of a plain photo's shake reading: the odd side read first (-p kernel_size, at most
    MAX_READ_SIZE and half the image's side; by default MOTION_READ_SIZE, at most a quarter of the side), the side
    asked for (kernel_size_param), that side made odd, and the largest odd side the image holds twice. ValueError
    for an image under 32 px or a kernel_size under 3."""
    from ncvsd_cli.motion_estimate import MAX_READ_SIZE, MOTION_READ_SIZE
    from operators.blur import kernel_size_param

    asked = kernel_size_param(given.get("kernel_size", MOTION_READ_SIZE))
    if asked < 3:
        raise ValueError(f"kernel_size {asked}: a motion blur is read in a square of at least 3 px (-p kernel_size=N, "
                         f"N >= 3; default {MOTION_READ_SIZE})")
    side = min(y.shape[-2:])
    fits = (side // 2 - 1) | 1  # the largest odd size the image holds twice
    if "kernel_size" in given:  # read at an odd size: an even one rounds up, or down where up does not fit
        odd = asked - 1 if asked % 2 == 0 and asked + 1 > min(fits, MAX_READ_SIZE) else asked | 1
        size = min(odd, MAX_READ_SIZE, fits)
    else:  # a small image reads a shake of up to a quarter its side (sharper readings at 64-96 px: docs)
        odd = MOTION_READ_SIZE
        size = min(odd, (side // SMALL_IMAGE_READ_FRACTION) | 1)
    if side < 32 or size < 3:
        raise ValueError(f"a {y.shape[-1]}x{y.shape[-2]} image is too small to read a motion blur from (at least "
                         "32 px a side): give the kernel with --task deblur-kernel -p kernel=K.png")
    return size, asked, odd, fits


#: A motion path read within this many px a side (`MotionReading.extent`) is not deconvolved: the image is restored
#: with the identity kernel. Short readings are off by a tap or two in length and direction, which at a photo's low
#: noise level deconvolution turns into ripples: line shakes of 3-13 px (JPEG quality 90, noise 0.005) on 3 training
#: photos at 256 px, PSNR with the kernel read minus with the identity: extents 3-6 -3.9 to +1.6 dB (mean -1.2,
#: 6 readings), 7-16 -1.2 to +3.3 (mean +1.1, 9 readings); on a review photo a sharp JPEG read 3 taps within 2 px and
#: lost 8.7 dB, 2- and 3-px shakes read 3 and 5 px and lost 4.2 and 5.5 dB (`benchmarks/motion-short/`).
SHORT_PATH_EXTENT = 6


def motion_notes(y: torch.Tensor, params: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """Reads a plain photo's motion-blur kernel (`motion_estimate.read_motion_kernel`) in the square of
    `motion_read_square`; by default a reading that fills its square is read again in one of twice the side + 1
    (at most one whose reading the photo's halves can check, `largest_checked_size`) and that reading taken if it
    is reliable; the reading kept is checked (`motion_estimate.checked`). Sets params' kernel and kernel_size to it and
    returns the notes that say so. ValueError for an image under 32 px, a kernel_size under 3, or a reading that
    looks like noise or that the photo's halves contradict (`MotionReading.reliable`)."""
    import numpy as np

    from ncvsd_cli.motion_estimate import (
        CHECK_EXTENT,
        MAX_READ_SIZE,
        MAX_TAPS_PER_SIDE,
        MIN_HALF_AGREEMENT,
        MOTION_READ_SIZE,
        WEAK_HALF_AGREEMENT,
        checked,
        largest_checked_size,
        read_motion_kernel,
    )

    size, asked, odd, fits = motion_read_square(y, given)
    first = size
    longer = min(2 * size + 1, MAX_READ_SIZE, fits)  # a larger square to suggest, where there is one
    grow = min(longer, largest_checked_size(*y.shape[-2:]))  # or to read again in: one the halves can check
    reading = read_motion_kernel(y, size, check=False)  # checked below, unless replaced
    tried = "kernel_size" not in given and grow > size and reading.extent >= size - 2
    if tried:  # the shake may be longer than the square: its truncated path leaves ghost edges (docs/method.md §4.4)
        second = read_motion_kernel(y, grow)
        if second.reliable:
            size, reading, tried = grow, second, False
            longer = min(2 * size + 1, MAX_READ_SIZE, fits)
    reading = checked(y, reading)
    others = ("give the kernel with --task deblur-kernel -p kernel=K.png, or try --task deblur-gauss / "
              "deblur-defocus")
    if reading.noisy:
        hint = ""
        if reading.extent >= size - 2 and tried:
            hint = f"; it fills the square, and a {grow}-px one read no reliable kernel either"
        elif reading.extent >= size - 2 and longer > size:
            hint = f"; it fills the square: the shake may be longer than {size} px (-p kernel_size={longer})"
        raise ValueError(f"no motion-blur kernel could be read from this image: the estimate lights {reading.taps} "
                         f"taps of its {size}x{size} square, like noise (a path lights at most "
                         f"{MAX_TAPS_PER_SIDE * size:.0f}){hint}: the image may hold too few sharp edges; {others}")
    if reading.disagrees:
        raise ValueError(f"no motion-blur kernel could be read reliably from this image: the {reading.extent}-px path "
                         f"read from the whole image and those read from its halves differ (agreement "
                         f"{reading.agreement:.2f} on 0-1, 1 the same path; under {MIN_HALF_AGREEMENT}), as wrong "
                         "readings of long shakes do (restoring with such a kernel leaves ringing and repeated edges; "
                         "docs/method.md §4.4)"
                         + (f"; a {grow}-px square read no reliable kernel either" if tried else "") + f"; {others}")
    params["kernel"], params["kernel_size"] = reading.kernel, size
    grown = f", after the path filled the {first}-px one" if size > first else ""
    agreed = (f", the photo's halves agreeing {reading.agreement:.2f}" if reading.agreement is not None else
              ", unchecked: the image's halves are too small for the square" if reading.extent >= CHECK_EXTENT else "")
    note = (f"estimated the motion-blur kernel from the image: a path within {reading.extent}x{reading.extent} px "
            f"(read in a {size}x{size} square{grown}{agreed}; -p kernel=K.png gives a measured one)")
    short = reading.extent <= min(SHORT_PATH_EXTENT, max(size - 3, 2))  # (filling its square: a long shake cut
    if short:  # short, said below) not deconvolved: the identity kernel
        params["kernel"] = np.pad(np.ones((1, 1)), size // 2)
        note += (": the image looks unblurred (or holds no edges to read a blur from)" if reading.extent <= 2 else
                 ": a path this short reads too unreliably to deconvolve by (readings of 3-6 px made shaken photos "
                 "worse than no deblurring)")
        note += ("; restored without deblurring (a kernel of one centre tap); for a small blur give its kernel "
                 "(-p kernel=K.png) or try --task deblur-gauss")
    elif reading.extent >= size - 2:
        note += ": it fills the square, the shake may be longer" + (
            f" (a {grow}-px square read no reliable kernel)" if tried else
            f" (-p kernel_size={longer} reads a longer one)" if longer > size else
            f" than the largest read, {MAX_READ_SIZE} px" if size == MAX_READ_SIZE else " than this image can tell")
        note += ("; look at the result: a shake longer than its square is read cut short, and restoring with it "
                 "leaves ghost edges (docs/method.md §4.4); a measured kernel is safer (-p kernel=K.png)")
    elif reading.agreement is not None and reading.agreement < WEAK_HALF_AGREEMENT:
        note += (f": a weak agreement (under {WEAK_HALF_AGREEMENT}; half such readings were off in tests): look "
                 "at the result for ghost copies of edges or ripples along the shake; a measured kernel is safer "
                 "(-p kernel=K.png), a higher --sigma-y softens them")
    if first < odd and size == first:
        note += (f"; kernel_size {asked} is over the largest read, {MAX_READ_SIZE}" if first == MAX_READ_SIZE
                 else f"; kernel_size {asked} does not fit twice in the image: read at {first}"
                 if "kernel_size" in given
                 else f"; {first} px, a quarter of this small image's side, not the default {MOTION_READ_SIZE} "
                 f"(-p kernel_size=N reads up to {min(fits, MAX_READ_SIZE)})")
    unused = sorted({"intensity"} & set(given))
    if unused:
        note += f"; -p {', '.join(unused)} shapes only the synthetic kernel (-p seed=N), not one read"
    return [note]


#: Tasks whose plain images are restored at sigma_y 0 (the measured pixels returned as they are, `Operator.exact_fit`):
#: a photo with a hole to fill. inpaint-random keeps its preset's level: its plain images are noisy `degrade`
#: outputs, whose kept noisy pixels would speckle the clean fill.
KEEP_PHOTO_PIXELS = ("inpaint-box", "inpaint-mask")
#: Task prefixes whose operators spread pixels: a transparent photo is extended under its transparency for them
#: (`measurement.extend_under_transparency`).
SPREADING_TASKS = ("deblur", "sr")


def lossy_coding_name(jpeg_coding: images.JpegCoding | None) -> str:
    """What coded a lossy file, as the noise floor's note names it: "this JPEG's quantisation steps" where a JPEG's
    tables are known, else all the codings that raise the floor (a file's suffix may not be its format)."""
    if jpeg_coding is not None:
        return "this JPEG's quantisation steps"
    return "this file's lossy coding (JPEG steps, lossy WebP or AVIF, a palette)"


def noise_level_bounds(task: str) -> tuple[float, float] | None:
    """(lowest, highest) noise level a plain image of `task` is restored at when it is read from the image
    (denoise: any; blurs and super-resolution: NOISE_FLOOR-NOISE_CAP); None: the task preset's level
    (inpainting: the known pixels are the photo's own, nothing to read it from that the hole would not bias)."""
    import operators
    from operators.blur import CircularBlur

    cls = operators.get(task)
    if task == "denoise":
        return (0.0, math.inf)
    if issubclass(cls, CircularBlur) or getattr(cls, "factor", None):
        return (NOISE_FLOOR, NOISE_CAP)
    return None


def noise_level_scale(task: str, network_free: bool = False) -> float:
    """The factor (0-1] between the noise level read from a plain image of `task` and the level it is restored at:
    BLUR_NOISE_SCALE for blurs restored with a network (not where a lossy file's level was read on its luma:
    `Restorer.measurement`; a shake read from the photo: `shake_level`) (on validation photos with noise 0.08 and
    0.15 the default sampler deblurred best at 0.7x the true level: benchmarks/noise-estimator/), 1 for the rest and
    for a `network_free` method (a Wiener filter at 0.7x the level amplified the noise: kite, Gaussian blur 2.5 px,
    noise 0.04: 27.1 dB vs 29.6 at the level read, the blurred input 32.0)."""
    import operators
    from operators.blur import CircularBlur

    return BLUR_NOISE_SCALE if issubclass(operators.get(task), CircularBlur) and not network_free else 1.0


#: A camera shake whose kernel is read from the photo is deblurred at the level read up to this (on [-1, 1]), at
#: BLUR_NOISE_SCALE x it above (`shake_level`): a read kernel is a little off, and its error, (k_read - k) * x,
#: sharpened at 0.7x, rippled along the shake. 17-31 px shakes, restored at 0.7x / 1x the level read: at noise 0.02
#: (0.015 / 0.02) 23 readings of 8 training photos scored PSNR at the best shift 22.58 / 23.40 dB, LPIPS-alex 0.186 /
#: 0.184, 9 readings of the 3 validation photos 23.08 / 23.90, 0.204 / 0.191; at noise 0.05 (0.035 / 0.05) 7 training
#: readings 23.56 / 24.26 dB but LPIPS 0.202 / 0.243, smooth grass and stone: 0.7x kept there
#: (benchmarks/motion-read-level/).
KERNEL_READ_LEVEL = 0.02


def shake_level(read: float) -> float:
    """The level (>= 0, on [-1, 1]) a photo with noise level `read` is deblurred at by a kernel read from it:
    BLUR_NOISE_SCALE x read, raised to the level read itself up to KERNEL_READ_LEVEL."""
    return max(BLUR_NOISE_SCALE * read, min(read, KERNEL_READ_LEVEL))


def noise_level_floor(bounds: tuple[float, float], jpeg_sigma: float | None = None) -> float:
    """The lowest noise level a plain image is restored at: bounds[0], or for a JPEG of quantisation scale
    jpeg_sigma (`images.jpeg_quantization_sigma`) sqrt(bounds[0]^2 + jpeg_sigma^2) (added as independent errors
    add their variances), rounded to NOISE_STEP and at most bounds[1]. A JPEG's error hides from
    `estimate_noise_sigma` (it is not white noise: blurred JPEGs read under 0.004) but a likelihood that trusts the
    blocks sharpens them into stripes and a crumbly texture (benchmarks/jpeg-inputs/: chosen on a validation sweep)."""
    if not jpeg_sigma or bounds[0] <= 0:  # denoise (no floor) keeps reading the level alone
        return bounds[0]
    floor = max(round(math.hypot(bounds[0], jpeg_sigma) / NOISE_STEP) * NOISE_STEP, bounds[0])
    return min(round(floor, 4), bounds[1])


#: A lossy file whose luma's 2x2 means read more than this many times the level taken gets a note naming that
#: reading: lossy coding strips a noisy photo's finest noise, and the 2x2 reading, refused where it varies like
#: texture (`measurement.coarse_luma_is_noise`, at most LOSSY_DENOISE_SCALE_RATIO), may be the noise after all
#: (white noise 0.03 at quality 75-85 on textured training photos read 0.005-0.01, the 2x2 means 0.025-0.035).
LOSSY_LEVEL_NOTE_RATIO = 2.0
#: ... and at least this (clean sharp JPEGs of training photos read 0.005-0.013 there; textured ones up to 0.07,
#: which the note's "if the result stays grainy" leaves to the eye).
LOSSY_LEVEL_NOTE_MIN = 0.02


def stepped_level(level: float, low: float = 0.0, high: float = math.inf) -> float:
    """A noise level (>= 0) rounded to NOISE_STEP (photos batch together), then kept within [low, high]."""
    return min(max(round(round(level / NOISE_STEP) * NOISE_STEP, 4), low), high)


#: A photo with at least this share of its pixels clipped (`measurement.clipped_pixels`) whose level read without
#: them (`clipped_level_notes`) is CLIPPED_NOTE_RATIO times the level taken or more gets a note naming it ...
CLIPPED_NOTE_SHARE = 0.1
CLIPPED_NOTE_RATIO = 1.5
#: ... and at least this (clean photos' readings under it are texture's or quantisation's).
CLIPPED_NOTE_MIN = 0.03


def clipped_level_notes(y: torch.Tensor, sigma_y: float, scale: float, bounds: tuple[float, float],
                        backs: Callable[[float], bool] | None = None, blur: bool = False) -> list[str]:
    """A note for a photo y (1, C, h, w) with CLIPPED_NOTE_SHARE or more of it clipped (blown highlights, crushed
    shadows: their noise is cut off, and a flat clipped area reads as noise-free), whose level read without its
    clipped patches is well above `sigma_y`, the level taken: that level, as this task would take a reading
    (x `scale`, within `bounds`), is named for --sigma-y. The reading: the colour one (`estimate_noise_sigma(y,
    clipped)`), for a lossy colour file the luma's (`estimate_luma_noise_sigma(y, skip_clipped=True)`) where
    `backs` (`measurement.coded_colour_backs`) passes it. Not taken by default: a clean photo whose only flat areas
    clip reads its texture there (a castle with its sky blown: 0.18; benchmarks/clipped-noise/). [] otherwise."""
    from ncvsd_cli.measurement import clipped_pixels, estimate_luma_noise_sigma, estimate_noise_sigma

    clipped = clipped_pixels(y)
    share = float(clipped.float().mean())
    if share < CLIPPED_NOTE_SHARE:
        return []
    lossy_colour = backs is not None and y.shape[1] == 3
    other = estimate_luma_noise_sigma(y, skip_clipped=True) if lossy_colour else estimate_noise_sigma(y, clipped)
    if lossy_colour and not backs(other):
        return []
    level = stepped_level(scale * other, *bounds)
    if not level >= max(CLIPPED_NOTE_RATIO * sigma_y, CLIPPED_NOTE_MIN):
        return []
    return [(f"{share:.0%} of the image is clipped (blown highlights or crushed shadows, where noise is cut off); "
             f"read on the rest, the noise level would be {level:g}, which may be a clean photo's texture: if the "
             f"result stays grainy{' or rings' if blur else ''}, give --sigma-y {level:g}")]


#: A --sigma-y for denoising this many times under the level read, or over it, is said (`given_level_notes`).
GIVEN_LEVEL_NOTE_RATIO = 3.0
#: ... where the larger of the two is at least this (below, texture and quantisation read about as much).
GIVEN_LEVEL_NOTE_MIN = 0.03


def given_level_notes(y: torch.Tensor, given: float, colours: int, lossy: bool = False) -> list[str]:
    """A note for a plain photo y (1, C, h, w) denoised at a --sigma-y `given` that its noise reading contradicts
    (GIVEN_LEVEL_NOTE_RATIO, GIVEN_LEVEL_NOTE_MIN): read 0.185 and given 0.02, the result stays grainy; read 0.01
    and given 0.3, a clean photo is smoothed. The reading: the colour one, and for a colour photo the luma's 2x2
    means where a camera's demosaiced noise shows (`coarse_luma_noise`); a level given too high is said only where
    the luma reads as little too, and never for a lossily coded file (`lossy`: its coding strips noise the level
    given may rightly count) or one CLIPPED_NOTE_SHARE clipped (transparency composited on white too), so camera,
    coded or cut-off noise is not taken for none; colours: y's distinct channels
    (`distinct_channel_count`); [] for an image too small to read."""
    from ncvsd_cli.measurement import (
        clipped_pixels,
        coarse_luma_noise,
        estimate_luma_noise_sigma,
        estimate_noise_sigma,
        noise_patch_side,
    )

    if not noise_patch_side(colours, *y.shape[-2:]):
        return []
    read = estimate_noise_sigma(y)
    read = max(read, coarse_luma_noise(y, read)) if colours == 3 else read
    if read > GIVEN_LEVEL_NOTE_RATIO * given and read >= GIVEN_LEVEL_NOTE_MIN:
        return [(f"the image reads noise of about {read:.3f}, over {GIVEN_LEVEL_NOTE_RATIO:g}x the --sigma-y given "
                 f"({given:g}): the result may stay grainy (without --sigma-y the level is read)")]
    if lossy or given < GIVEN_LEVEL_NOTE_MIN or given <= GIVEN_LEVEL_NOTE_RATIO * read:
        return []
    if float(clipped_pixels(y).float().mean()) >= CLIPPED_NOTE_SHARE:  # blown, crushed or transparent (composited
        return []  # on white) areas pull the reading down (`clipped_level_notes`)
    read = max(read, estimate_luma_noise_sigma(y)) if colours == 3 else read
    if given <= GIVEN_LEVEL_NOTE_RATIO * read:
        return []
    return [(f"the image reads noise of about {read:.3f}, under 1/{GIVEN_LEVEL_NOTE_RATIO:g} of the --sigma-y given "
             f"({given:g}): its detail may be smoothed away as noise (without --sigma-y the level is read)")]


def lossy_level_notes(coarse: float, sigma_y: float) -> list[str]:
    """A note for a lossily coded photo whose luma's 2x2 means read `coarse` (>= 0), well above the level `sigma_y`
    taken (`LOSSY_LEVEL_NOTE_RATIO`, `LOSSY_LEVEL_NOTE_MIN`): that reading is the other plausible level; [] otherwise."""
    if not coarse > max(LOSSY_LEVEL_NOTE_RATIO * sigma_y, LOSSY_LEVEL_NOTE_MIN):
        return []
    level = stepped_level(coarse)
    return [(f"the luma's 2x2 means read {coarse:.3f}, which looks like texture rather than noise, so the lower "
             "level was taken; this file's lossy coding may have stripped finer noise: if the result stays grainy, "
             f"give --sigma-y {level:g}")]


def colourless_luma_notes(refused: float) -> list[str]:
    """A note for a colour JPEG whose luma read `refused` (>= 0), above the level taken, without the colour such
    noise keeps through its coding (`measurement.coded_colour_backs`): fine texture, or noise whose colour a
    camera's noise reduction removed; [] for 0."""
    if not refused:
        return []
    level = stepped_level(refused)
    return [(f"the luma read {refused:.3f}, but this JPEG has too little colour for noise that strong (fine texture, "
             "or a camera's chroma noise reduction), so the lower level was taken: if the result stays grainy, give "
             f"--sigma-y {level:g}")]


#: How a mask file's transparency reads (`operators.params.load_gray_image`), said where a mask keeps nothing or
#: everything: marks painted on a transparent layer read as all hole (transparent) or, inverted, as nothing.
TRANSPARENT_MASKS = ("transparent = black: marks of any colour drawn on a transparent layer are read as the holes "
                     "with -p invert=true (or flatten the layer onto white first)")


#: A transparent input's noise and blur are read on its largest opaque rectangle (`measurement.opaque_window`) when
#: both its sides reach this (the blur reading's smallest image, `blur_estimate.MIN_SIZE`; the noise's is smaller),
#: else on the whole image.
OPAQUE_READ_MIN_SIDE = 32


#: The start of the warning of an input mostly transparent, restored by inpaint-mask as holes.
MOSTLY_TRANSPARENT = "most of the picture is transparent"
#: A mask with more than this fraction of grey pixels (neither near black nor near white) is noted as thresholded;
#: with more than PHOTO_MASK, warned of as a photo given by mistake (brush strokes' soft edges are a few percent).
SOFT_MASK_NOTE, PHOTO_MASK = 0.01, 0.5
#: The start of that warning.
MASK_LIKE_PHOTO = "the mask looks like a photo, not a mask of black and white"
#: The start of deblur-gauss's warning of a lossless image whose blur a disk fits better (`blur_notes`).
DEFOCUS_NOT_GAUSS = "the blur looks like defocus: a disk of"
#: Notes that say the user likely made a mistake (the CLI prints them as warnings, also under --quiet): a mask
#: that keeps under half the picture most often marks the holes in white without -p invert=true, one that keeps
#: every pixel marks none the way it is read; an input mostly transparent is likely a cut-out; a defocus blur
#: restored as a Gaussian one gets halos (chelsea, disk of radius 3.5 read as sigma 2.76: 22.7 dB, the input 27.4).
WARNING_NOTES = ("the mask keeps only", "the mask keeps every pixel", MOSTLY_TRANSPARENT, DEFOCUS_NOT_GAUSS,
                 MASK_LIKE_PHOTO)


#: A user's kernel whose weight centres this far (px) from its middle is noted (`kernel_file_notes`); the random
#: camera shakes `degrade` draws in 61x61 centre up to 7 px from it (a quarter of 200 seeds 2 px or more).
OFF_CENTRE_NOTE_PX = 2.0


def kernel_file_notes(kernel: Any, normalize: Any = True) -> list[str]:
    """Notes on a user's blur kernel (-p kernel=K.png or .npy): an even side (its centre tap k[h//2, w//2] is half a
    pixel off the middle: a kernel padded from 15x15 to 16x16 moved the restoration a pixel, -1 dB), negative taps
    (a camera's blur only spreads light), with normalize=false a sum other than 1 (a gain on the [-1, 1] scale, a
    contrast change about mid-grey; normalised kernels are divided by their sum, as documented), a background that
    is not black (a photographed PSF's black level, read as blur over the whole square), a path whose weight
    centres OFF_CENTRE_NOTE_PX or more from the middle (the restoration moves by as much: a loosely cropped PSF)."""
    import numpy as np

    from operators.blur import check_kernel
    from operators.params import flag

    k = check_kernel(kernel, normalize=False)
    h, w = k.shape
    even = (f"the kernel is {w}x{h}, even-sized: its centre is taken at row {h // 2}, column {w // 2} (from 0), half "
            "a pixel off its middle, so the restoration may sit a pixel off; odd sides have a middle tap")
    notes = [even] if h % 2 == 0 or w % 2 == 0 else []
    weight = np.clip(k, 0, None)
    if weight.sum() > 0:
        cy, cx = (float((weight * axis).sum() / weight.sum()) for axis in np.indices(k.shape))
        dy, dx = cy - h // 2, cx - w // 2
        if max(abs(cy - (h - 1) / 2), abs(cx - (w - 1) / 2)) >= OFF_CENTRE_NOTE_PX:
            notes.append(f"the kernel's weight centres {dy:+.1f} rows, {dx:+.1f} columns from its centre tap (row "
                         f"{h // 2}, column {w // 2} from 0), which is taken as the blur's origin: right for a "
                         "kernel drawn or measured about that tap (as degrade's are), but one cropped loosely "
                         "moves the restoration by as much (6 px and -9.6 dB for one); then crop or pad it so its "
                         "path centres in the middle")
    if (k < 0).any():
        share = float(-k[k < 0].sum() / np.abs(k).sum())
        notes.append(f"the kernel has negative taps ({share:.0%} of its weight): a camera's blur only spreads light; "
                     "check the kernel (e.g. clip it at 0)")
    ring = np.concatenate([k[0], k[-1], k[1:-1, 0], k[1:-1, -1]])  # the border: a drawn kernel's is black
    floor = float(np.median(ring))
    share = floor * k.size / float(k.sum())
    p = max(1, min(h, w) // 10)  # corner and edge-middle patches: level for a black level, not for a bell's tail
    corners = np.median(np.concatenate([k[:p, :p], k[:p, -p:], k[-p:, :p], k[-p:, -p:]], axis=None))
    middles = np.median(np.concatenate([k[:p, w // 2], k[-p:, w // 2], k[h // 2, :p], k[h // 2, -p:]]))
    # a photographed PSF's black level over the whole square: dim (a box kernel's border is its peak), not nothing,
    # as high in the corners as mid-edge (a Gaussian's corners are e^-2 of its edges at the usual 4 sigma + 1 side)
    if 0.002 * float(k.max()) < floor < 0.1 * float(k.max()) and share > 0.1 and corners >= 0.5 * middles:
        notes.append(f"the kernel's background is not black (its border is {floor / k.max():.1%} of its peak), which "
                     f"holds about {min(share, 1):.0%} of its weight: read as blur spread over its whole {w}x{h} "
                     "square, it wrecks the restoration; subtract the background and clip at 0 (a 1/255 floor over a "
                     "61x61 image took a 21-px line kernel's restoration from 31.2 to 21.0 dB)")
    total = float(k.sum())
    if abs(total - 1) > 0.01 and not flag(normalize, "normalize"):  # (normalised: divided by it, as documented)
        notes.append(f"the kernel sums to {total:.3g}, kept as it is (normalize=false): a gain on the [-1, 1] scale, "
                     "i.e. a contrast change about mid-grey, not a brightness change")
    return notes


def refuse_empty_mask(m: Measurement) -> None:
    """ValueError when the mask of a masking task's measurement `m` (a box, a random one) keeps no pixel, which no
    restoration can use (`ncvsd sample` draws from nothing); inpaint-mask's own masks: `user_mask_notes`."""
    import operators
    from operators.inpainting import MaskOperator

    if m.task != "inpaint-mask" and issubclass(operators.get(m.task), MaskOperator) and \
            not bool(m.operator().mask.any()):
        _, h, w = m.image_shape
        fix = {"inpaint-box": "a smaller -p box_size", "inpaint-random": "a lower -p fraction, the share missing"}
        raise ValueError(f"the {m.task} mask keeps no pixel of the {w}x{h} image: nothing to restore from"
                         + (f" ({fix[m.task]})" if m.task in fix else ""))


def user_mask_notes(m: Measurement, params: dict[str, Any]) -> list[str]:
    """`mask_notes` of an inpaint-mask measurement `m` made with the user's `params` (mask, invert, grow), as
    restore and degrade say them; ValueError for a mask that keeps no pixel."""
    return mask_notes(float(m.operator().mask.mean()), bool(params.get("invert", False)),
                      *mask_grey_levels(params.get("mask"), params.get("invert", False)),
                      grow=float(params.get("grow", 0)))


def mask_notes(known: float, inverted: bool, soft: float = 0.0, photo: bool = False, grow: float = 0.0) -> list[str]:
    """Notes on a user's inpainting mask keeping the fraction `known` (0-1) of the pixels: nothing to fill, or
    most of the picture to repaint (perhaps a mask that marks the holes in white, the convention of most editors);
    `soft` (0-1): the fraction of its pixels between black and white (read as known above mid-grey), `photo`
    whether they look like a photo's (`mask_grey_levels`: warned of); `grow` (px,
    -p grow) the holes were widened by. ValueError for a mask that keeps no pixel (nothing to restore from)."""
    reading = "-p invert=true: white = hole" if inverted else "white = known; -p invert=true if white marks the hole"
    if grow:
        reading += f"; -p grow={grow:g} widened the holes"
    if known <= 0.0:
        raise ValueError(f"the mask keeps no pixel: nothing to restore from ({reading}; {TRANSPARENT_MASKS}); "
                         "`ncvsd sample` draws images from nothing")
    grey = f"the mask has grey levels ({100 * soft:.0f}% of its pixels): read as known above mid-grey" + (
        "" if grow else "; if the marks' soft edges stay as outlines, -p grow=1 widens the holes by 1 px (3 in a "
        "JPEG)")
    if photo:  # a likely mistake (a warning): a photo given as the mask
        grey = f"{MASK_LIKE_PHOTO} ({100 * soft:.0f}% of its pixels are grey levels, read as known above mid-grey)"
    notes = [grey] if soft > SOFT_MASK_NOTE else []
    if known >= 1.0:
        return [*notes, (f"the mask keeps every pixel: nothing to fill ({reading}; a pale mark on white reads as "
                         f"white: draw it in a strong colour; {TRANSPARENT_MASKS})")]
    if known < 0.5:
        return [*notes, f"the mask keeps only {100 * known:.0f}% of the pixels ({reading})"]
    return notes


def transparency_notes(known: float, grow: float = 0.0) -> list[str]:
    """The notes of inpaint-mask whose holes are the input's transparent pixels, keeping the fraction `known` (0-1)
    after `grow` (px, -p grow): the holes, and a warning where they are most of the picture (a cut-out's background);
    ValueError when none is kept."""
    grown = f", widened by -p grow={grow:g}" if grow else ""
    if known <= 0.0:
        raise ValueError(f"every pixel is transparent{grown}: nothing to restore from (the pixels under half opaque "
                         "are the holes when no -p mask is given)")
    note = (f"the holes are the input's pixels under half opaque ({100 * (1 - known):.1f}% of the picture{grown}; "
            "-p mask=M.png gives others); the output is opaque")
    if known >= 0.5:
        return [note]
    warning = (f"{MOSTLY_TRANSPARENT} ({100 * (1 - known):.0f}%): inpaint-mask fills all of it, a cut-out's "
               "background too; the other tasks keep an input's transparency")
    return [note, warning]


def mask_grey_levels(mask: Any, invert: Any = False) -> tuple[float, bool]:
    """The fraction (0-1) of a mask's values strictly between 0.05 and 0.95 (a soft or anti-aliased mask, its
    colours read as the operator reads them with -p `invert`), and whether they look like a photo's: over PHOTO_MASK
    of the pixels, no one 8-bit level holding a quarter of them (a flat coloured background does). (0, False) for
    None or a mask that cannot be read, which the operator reports."""
    import numpy as np

    from operators.inpainting import mask_colour_reading
    from operators.params import as_array

    try:
        colour = mask_colour_reading(invert)
        a = np.asarray(as_array(mask, "mask", colour=colour, float_scale=True), dtype=np.float64) \
            if mask is not None else None
    except ValueError:
        return 0.0, False
    if a is None or a.size == 0:
        return 0.0, False
    grey = a[(a > 0.05) & (a < 0.95)]
    soft = grey.size / a.size
    return soft, soft > PHOTO_MASK and np.bincount(np.round(grey * 255).astype(int)).max() < grey.size / 4


#: Operators drawn from a seed: what they draw and the other parameters that shape the draw.
DRAWN_FROM_SEED = {"inpaint-random": ("mask", ("fraction",)),
                   "deblur-motion": ("kernel", ("kernel_size", "intensity", "boundary"))}


def seed_notes(task: str, given: dict[str, Any], operator: Any) -> list[str]:
    """A note when a plain image's random operator is drawn from -p seed=N with parameters the user did not give
    (`given`): the draw matches `degrade`'s only if they are the ones degrade was given (the `operator`'s)."""
    if task not in DRAWN_FROM_SEED or "seed" not in given or "kernel" in given:
        return []
    config = operator.extra_config()
    what, keys = DRAWN_FROM_SEED[task]
    rest = [f"{k} {config[k]}" for k in keys if k not in given and k in config]
    note = (f"the {what} is drawn from seed {config.get('seed')} with {', '.join(rest)} (the defaults): give "
            "degrade's values with -p if it was given others")
    if "boundary" in keys and "boundary" not in given:
        note += "; an image `degrade` blurred needs -p boundary=circular, the way it was blurred"
    return [note] if rest else []




def checks_pixel_range(params: dict[str, Any]) -> bool:
    """Whether an input is refused beyond [-1, 1]'s `images.RANGE_LIMIT` (a [0, 255] image): not for a kernel
    given with normalize=False, whose y reaches the kernel's sum (the sampler checks it against the operator's
    `pixel_gain`)."""
    import numpy as np

    return not (isinstance(params.get("normalize"), (bool, np.bool_)) and not params["normalize"])


def restore_image(y: torch.Tensor, task: str, *, jpeg_sigma: float | None = None,
                  jpeg_coding: images.JpegCoding | None = None, alpha: torch.Tensor | None = None,
                  **options: Any) -> torch.Tensor:
    """Restore one degraded image y (1, C, h, w) or (C, h, w), float, on the [-1, 1] scale (C = 1: a grey image,
    restored in colour and returned grey) for `task`; returns (samples, C, H, W), about [-1, 1]: posterior samples
    are not clipped (`save_image` clips; `RestoreResult.mean` averages clipped samples).

    options: fields of `RestoreOptions` (method, nfe, seed, samples, sigma_y, params, checkpoint, device,
    precision, ...; see `ncvsd restore --help` for their meaning). As for a plain image on the command line,
    deblur-gauss without params["sigma"] reads the blur width from y (deblur-defocus without params["radius"] the
    disk's radius), and denoise, blurs and super-resolution without sigma_y the noise level (`noise_level_bounds`);
    deblur-motion without params["kernel"] or params["seed"] its kernel (`motion_notes`), inpaint-random needs
    params["seed"]; the notes `ncvsd restore`
    prints (the level and width read, pixels kept) go to the logger "ncvsd.restore" at INFO level
    (`logging.basicConfig(level=logging.INFO)` shows them). jpeg_sigma: y was decoded from a lossily coded file
    (`images.read_image(...).jpeg_sigma`: JPEG, lossy WebP, AVIF, HEIC, palette), which raises the lowest level read
    (`noise_level_floor`); jpeg_coding (`images.read_image(...).jpeg_coding`): a JPEG's tables, through which
    a blur is read (`Restorer.measurement`). alpha: y's opacity (1, 1, h, w) in [0, 1] when y is a transparent
    image composited on white (`images.read_image(...).alpha`): its noise and blur are read where it is opaque,
    and inpaint-mask without params["mask"] fills its transparency; the samples are composites on white (write
    them with `images.save_image(x, path, alpha=measurement.output_alpha(alpha, operator))`).
    Super-resolution returns factor x (h, w); a photo of another size measured by `measurement.degrade` is
    restored at its own size by `Restorer.from_options(RestoreOptions(...)).run([m])` (m records the operator),
    as phase retrieval, whose measurement is not an image, must be. Each call loads the weights again (about 0.7 s
    on a CPU): for many images make the `Restorer` once, `Restorer.from_options(...)`, and reuse it.
    Raises ValueError (bad input or settings: `images.as_image_tensor`) or CheckpointError.
    """

    import operators
    from ncvsd_cli import images
    from operators.params import number

    if not isinstance(task, str):
        raise ValueError(f"task: one of {', '.join(operators.names())}, got {task!r}")  # noqa: TRY004
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(RestoreOptions)} - {"task"})
    if unknown:
        raise ValueError(f"restore_image: unknown option(s) {', '.join(unknown)}; the options are the fields of "
                         f"RestoreOptions: {', '.join(f.name for f in dataclasses.fields(RestoreOptions))}")
    if task == "phase-retrieval":  # its y is Fourier amplitudes, not an image: nothing to read from it
        raise ValueError("restore_image restores image-shaped measurements; phase retrieval's are Fourier "
                         "amplitudes: restore m = measurement.degrade(x, 'phase-retrieval') (or load_measurement of "
                         "a saved one) with list(Restorer.from_options(RestoreOptions(...)).run([m]))")
    opts = RestoreOptions(task=task, **options).validate()
    if message := large_sigma_warning(opts.sigma_y):
        warnings.warn(f"restore_image: {message}", stacklevel=2)
    restorer = Restorer.from_options(opts, load=False)
    y = images.as_image_tensor(y, check_range=checks_pixel_range(opts.params))
    if alpha is not None:
        alpha = images.checked_alpha(alpha, *y.shape[-2:])
    if jpeg_sigma is not None:
        scale = number(jpeg_sigma, "jpeg_sigma") if not isinstance(jpeg_sigma, (bool, str)) else math.nan
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(f"jpeg_sigma: a noise scale >= 0 (images.read_image(...).jpeg_sigma), got {jpeg_sigma!r}")
        jpeg_sigma = scale
    if jpeg_coding is not None and not isinstance(jpeg_coding, images.JpegCoding):
        raise ValueError(f"jpeg_coding: an images.JpegCoding (images.read_image(...).jpeg_coding), got "
                         f"{type(jpeg_coding).__name__}")
    if images.spans_unit_range(y):  # restored as [-1, 1] it would come back washed out
        warnings.warn("restore_image: y spans [0, 1] but for noise, and restore_image expects [-1, 1]: if y is a "
                      "[0, 1] image, map it (x * 2 - 1; images.from_unit does it)", stacklevel=2)
    restorer.check_plain_size(task, *y.shape[-2:])  # before any work at the output's size
    grey = y.shape[1] == 1 and restorer.channels == 3  # restored in colour, returned grey (as `ncvsd restore`)
    try:
        m = restorer.measurement(images.match_channels(y, 3) if grey else y, task, grey=grey, jpeg_sigma=jpeg_sigma,
                                 jpeg_coding=jpeg_coding, alpha=alpha)
    except ValueError as exc:
        if "-p " in str(exc):  # (the same exception, MissingParameter's name and all, with the hint)
            exc.args = (f"{exc} (here a command's -p KEY=VALUE is params={{'KEY': VALUE}})", *exc.args[1:])
        raise
    for note in m.notes:  # what `ncvsd restore` prints (levels and widths read, pixels kept): logger "ncvsd.restore"
        logging.getLogger("ncvsd.restore").info(note)
    _, h, w = m.image_shape  # again on the measurement (a plug-in down-sampler's factor may not probe)
    if opts.max_pixels is not None and h * w > opts.max_pixels:
        raise ValueError(f"the output would be {w}x{h}, more than max_pixels {opts.max_pixels}")
    refusal = restorer.memory_refusal(m.image_shape, m.operator_config)  # with the parameters read (a kernel's)
    if refusal:
        raise ValueError(refusal)
    (res,) = list(restorer.load().run([m]))
    if res.error:
        raise ValueError(res.error)
    return res.samples
