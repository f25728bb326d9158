"""Methods: every sampler by name, each owning its budget rule (how `--nfe` becomes its schedule and arguments).

A `Method` answers three questions for restore, bench and the Python API alike:
- `prepare(task, nfe, preset_file=..., sigma_y=..., operator=...)` -> `MethodCall`: the merged task settings, the
  sampler's `sigmas` and keyword arguments, and `nfe`, the network evaluations per image it will spend;
- `applies(operator, settings)`: whether it can solve that operator (bench skips it otherwise);
- `bench_nfe(sweep, baseline_nfe)`: the NFE values `ncvsd bench` runs it at.
Calling the method runs the sampler with the shared signature
`method(model, operator, y, sigmas, *, generator, callback=None, **kwargs) -> SamplerResult`, where `model` is what
`method.needs` says: "generator" (G(y, sigma)), "teacher" (D(x, sigma)) or "none".

Other packages add methods through the entry-point group `ncvsd.methods` (`name = "package.module:OBJECT"`, OBJECT
a `Method` instance or a zero-argument callable returning one), or with `register_method` at run time.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from typing import Any, ClassVar, Literal

from ncvsd_cli.sampling.common import SamplerResult
from operators.registry import EntryPointGroup

Needs = Literal["generator", "teacher", "none"]
ENTRY_POINT_GROUP = "ncvsd.methods"
#: Teacher calls of DPS and DAPS when no --nfe is given (DPS's 1000 steps; DAPS-1K = 200 levels x 5 ODE steps).
TEACHER_DEFAULT_NFE = 1000
#: DAPS runs with at least this many annealing levels (sr4 of a 64-px photo, teacher builtin64, seed 0: nfe 5 / 10
#: give values of +-150 and 4.8 dB, 25 (5 levels) 10.2 dB, 50 14.1, 100 17.0, 400 18.9).
DAPS_MIN_LEVELS = 10


@dataclass
class MethodCall:
    """One prepared run: `settings` (the merged task settings), the sampler's `sigmas` (None when the sampler
    builds its own) and `kwargs`, `nfe`, the network evaluations it spends per image, and `iterations`, how often
    it calls its callback when that is not what `progress.callbacks_per_run` infers (None: inferred)."""

    settings: dict[str, Any]
    sigmas: Any
    kwargs: dict[str, Any]
    nfe: int
    iterations: int | None = None


@dataclass(frozen=True)
class Method:
    """A sampler: `name`, the network it `needs`, its implementation `target` ("module:function"), a one-line
    `summary`. The base class's budget rule suits a sampler without NFE control: settings from the task preset,
    sigma_y as its only argument, no network evaluations."""

    name: str
    needs: Needs
    target: str
    summary: str = field(default="", compare=False)
    #: The sampler differentiates through the network (DPS): its activations are kept for the backward pass.
    backward: bool = field(default=False, compare=False)
    #: The output is a function of the measurement alone: several samples would be the same image.
    deterministic: ClassVar[bool] = False

    def load(self) -> Callable[..., SamplerResult]:
        """The sampler function; ValueError naming the method when its module or function is missing."""
        module, func = self.target.split(":")
        try:
            return getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"method '{self.name}' is unavailable: cannot load {self.target} ({exc})") from None

    def __call__(self, *args: Any, **kwargs: Any) -> SamplerResult:
        if args:
            _check_network(self, args[0], *args[1:2])
        if len(args) >= 3 and hasattr(args[1], "check_measurement"):
            import torch

            from operators.base import check_image_range
            from operators.padding import base_operator

            args[1].check_measurement(args[2], finite=True)
            if getattr(args[1], "measures_pixels", False):  # a [0, 255] image's measurement (noise: sigma_y, >= 1)
                check_image_range(args[2], "the measurement y", sigma_y=max(1.0, float(kwargs.get("sigma_y") or 0)),
                                  gain=float(getattr(base_operator(args[1]), "pixel_gain", 1.0)))
            if args[2].dtype != torch.float32:  # the network and the operators' buffers compute in float32
                args = (*args[:2], args[2].float(), *args[3:])
        sampler = self.load()
        try:  # a plug-in's sampler of another signature: named, not "internal error: TypeError"
            inspect.signature(sampler).bind(*args, **kwargs)
        except TypeError as exc:
            raise ValueError(f"method '{self.name}' ({self.target}) cannot be called as samplers are "
                             f"(model, operator, y, sigmas, *, generator, callback=None, **settings): {exc}") from None
        except ValueError:  # (no signature to read: a builtin or C function)
            pass
        res = sampler(*args, **kwargs)
        _check_result(self, res, *args[1:3])
        return res

    def run(self, call: MethodCall, model: Any, operator: Any, y: Any, *, generator: Any,
            **extra: Any) -> SamplerResult:
        """Run this method as `call` prepared it (`extra` adds to or replaces its arguments: callback, estimate,
        class_labels). A noiseless measurement (settings sigma_y 0) is then fitted exactly where the operator
        can (`Operator.exact_fit`: inpainting returns the known pixels as measured, only the hole is filled)."""
        from dataclasses import replace

        res = self(model, operator, y, call.sigmas, generator=generator, **{**call.kwargs, **extra})
        fit = getattr(operator, "exact_fit", None)
        if float(call.settings.get("sigma_y", 1.0)) == 0 and fit is not None:
            fitted = fit(res.x, y)
            res = res if fitted is None else replace(res, x=fitted)
        return res

    def settings(self, task: str, nfe: int | None, preset_file: str | None, **overrides: Any) -> dict[str, Any]:
        """The task settings this method runs with (`sampling.presets.task_settings`)."""
        from ncvsd_cli.sampling.presets import task_settings

        return task_settings(task, preset_file=preset_file, **overrides)

    def arguments(self, settings: dict[str, Any], nfe: int | None) -> MethodCall:
        """The budget rule: sampler arguments that spend `nfe` network evaluations (None: the default)."""
        if nfe:
            raise ValueError(f"method '{self.name}' makes no network evaluations; drop --nfe")
        return MethodCall(settings, None, {"sigma_y": float(settings["sigma_y"])}, 0)

    def prepare(self, task: str, nfe: int | None = None, *, preset_file: str | None = None,
                **overrides: Any) -> MethodCall:
        """Settings and arguments for running this method on `task` with `nfe` network evaluations (None: the
        method's default). overrides: task-setting values (sigma_y, operator parameters, ...; None is ignored).
        Raises ValueError for an nfe this method cannot spend or bad settings."""
        if nfe is not None and (isinstance(nfe, bool) or int(nfe) != nfe or nfe < 0):
            raise ValueError(f"nfe must be a whole number of network evaluations, got {nfe!r}")
        return self.arguments(self.settings(task, nfe, preset_file, **overrides), nfe)

    def applies(self, operator: Any, settings: dict[str, Any] | None = None) -> bool:
        """Whether this method can solve `operator` (with these task settings)."""
        return True

    def bench_nfe(self, sweep: list[int], baseline_nfe: int) -> list[int]:
        """The NFE values `ncvsd bench` runs this method at, given the generator sweep and the teacher budget."""
        return [0]


@dataclass(frozen=True)
class PnPMethod(Method):
    """PnP-GD (paper Alg. 1); `warm`: started from the classical estimate. nfe N -> N + 1 noise levels (with a
    multi-step `ts`, N / (len(ts) - 1) + 1), applied by the task settings (`task_settings(nfe=...)`). Plain pnp-gd
    refuses one step (a prior draw that never sees the measurement) and benches from nfe 2."""

    warm: bool = False

    def settings(self, task, nfe, preset_file, **overrides):
        from ncvsd_cli.sampling.presets import task_settings

        return task_settings(task, nfe=nfe, preset_file=preset_file, warm=self.warm, **overrides)

    def arguments(self, settings, nfe):
        from ncvsd_cli.sampling.presets import settings_sigmas

        kwargs = {k: settings.get(k) for k in ("beta", "ema_sigma", "ema_decay", "ts")}
        if self.warm:
            kwargs["sigma_y"] = float(settings["sigma_y"])
        per_step = len(settings["ts"]) - 1 if settings.get("ts") else 1
        if not self.warm and int(settings["steps"]) < 3:
            warm = " (or pnp-gd-warm, started from the classical estimate)" if settings["task"] != "phase-retrieval" \
                else ""
            raise ValueError(f"method '{self.name}' with --nfe {per_step}: one denoiser step from pure noise comes "
                             "before any likelihood step, so the output would be a prior draw that ignores the "
                             f"measurement (Alg. 1); use --nfe >= {2 * per_step}{warm}")
        return MethodCall(settings, settings_sigmas(settings), kwargs, (int(settings["steps"]) - 1) * per_step)

    def applies(self, operator, settings=None):
        if not self.warm:
            return True
        from ncvsd_cli.sampling.pnp_gd import warm_start_applies

        return warm_start_applies(operator) and (settings is None or bool(settings.get("warm_start")))

    def bench_nfe(self, sweep, baseline_nfe):
        return sorted(set(sweep) if self.warm else {n for n in sweep if n > 1})  # pnp-gd's 1: the prior alone


@dataclass(frozen=True)
class DenoiserMethod(Method):
    """G(y, sigma_y) alone on the denoise task: nfe 1 (default) to MAX_MULTISTEP_NFE calls; 0 when sigma_y = 0."""

    def arguments(self, settings, nfe):
        from ncvsd_cli.sampling.generate import MAX_MULTISTEP_NFE

        if settings["task"] != "denoise":
            raise ValueError(f"method '{self.name}' only solves the denoise task, not {settings['task']!r}: "
                             "use pnp-gd-warm")
        n = 1 if nfe is None else int(nfe)
        if not 1 <= n <= MAX_MULTISTEP_NFE:
            raise ValueError(f"method '{self.name}' takes --nfe 1 to --nfe {MAX_MULTISTEP_NFE}, got --nfe {nfe} "
                             "(--method pnp-gd-warm or pnp-gd run PnP-GD on the denoise task: pnp-gd-warm's 3 calls "
                             "score about as this method's one, benchmarks/denoise-warm-start/)")
        sigma_y = float(settings["sigma_y"])
        return MethodCall(settings, None, {"sigma_y": sigma_y, "nfe": n}, n if sigma_y > 0 else 0)

    def applies(self, operator, settings=None):
        from ncvsd_cli.sampling.generate import denoiser_applies

        return denoiser_applies(operator)

    def bench_nfe(self, sweep, baseline_nfe):
        from ncvsd_cli.sampling.generate import MAX_MULTISTEP_NFE

        return [n for n in sorted(set(sweep)) if n <= MAX_MULTISTEP_NFE] or [1]


@dataclass(frozen=True)
class TeacherMethod(Method):
    """DPS (nfe = steps) or DAPS (nfe = levels x ode_steps, 5 ODE steps per level when nfe is a multiple of 5, as
    DAPS-1K = 200 x 5, else 1); default TEACHER_DEFAULT_NFE teacher calls."""

    def arguments(self, settings, nfe):
        n = TEACHER_DEFAULT_NFE if nfe is None else int(nfe)
        if n < 1:
            raise ValueError(f"method '{self.name}' needs nfe >= 1, got {nfe}")
        if self.name == "dps":
            return MethodCall(settings, None, {"steps": n}, n)
        ode_steps = 5 if n % 5 == 0 else 1
        if n // ode_steps < DAPS_MIN_LEVELS:
            raise ValueError(f"daps with --nfe {n} anneals over {n // ode_steps} noise level(s) from sigma 80: it "
                             f"needs at least {DAPS_MIN_LEVELS} (--nfe >= {5 * DAPS_MIN_LEVELS}, or >= "
                             f"{DAPS_MIN_LEVELS} and not a multiple of 5; default {TEACHER_DEFAULT_NFE}), else its "
                             "first likelihood steps leave noise of std up to 40 wherever the measurement says nothing")
        from ncvsd_cli.sampling.presets import BETA_FLOOR_SIGMA

        # beta = 2 sigma_y², sigma_y at least 8-bit rounding's error (restore measures plain inpainting at 0)
        kwargs = {"levels": n // ode_steps, "ode_steps": ode_steps,
                  "sigma_y": max(float(settings["sigma_y"]), BETA_FLOOR_SIGMA)}
        return MethodCall(settings, None, kwargs, n)

    def bench_nfe(self, sweep, baseline_nfe):
        return [int(baseline_nfe)]


@dataclass(frozen=True)
class TeacherMMSEMethod(Method):
    """D(y, sigma_y) on the denoise task: one teacher call (0 when sigma_y = 0)."""

    deterministic = True

    def arguments(self, settings, nfe):
        if settings["task"] != "denoise":
            raise ValueError(f"method '{self.name}' only solves the denoise task, not {settings['task']!r}")
        if nfe not in (None, 1):
            raise ValueError(f"method '{self.name}' makes exactly 1 network evaluation, got --nfe {nfe}")
        sigma_y = float(settings["sigma_y"])
        return MethodCall(settings, None, {"sigma_y": sigma_y}, 1 if sigma_y > 0 else 0)

    def applies(self, operator, settings=None):
        from ncvsd_cli.sampling.generate import denoiser_applies

        return denoiser_applies(operator)

    def bench_nfe(self, sweep, baseline_nfe):
        return [1]


@dataclass(frozen=True)
class RepeatedMethod(Method):
    """k samples of method `base` on each image, reduced to one output (`_reduce`). nfe is the total over the k
    samples (a multiple of k; each sample runs the base's budget rule with nfe / k); the samples follow one another
    on each image's own generator."""

    base: str = "pnp-gd-warm"
    k: int = 8
    #: What the k samples become, for messages: "the mean of", "the best-fitting of".
    reduction: ClassVar[str] = "the mean of"
    #: Operator applications `_reduce` makes per sample (counted in SamplerResult.operator_evals).
    reduce_operator_evals: ClassVar[int] = 0

    def _per_sample(self, nfe: int | None) -> int | None:
        if nfe is None:
            return None
        if nfe % self.k:
            raise ValueError(f"method '{self.name}' runs {self.k} samples: --nfe counts all their network "
                             f"evaluations and must be a multiple of {self.k}, got {nfe}")
        return nfe // self.k

    def settings(self, task, nfe, preset_file, **overrides):
        return get_method(self.base).settings(task, self._per_sample(nfe), preset_file, **overrides)

    def arguments(self, settings, nfe):
        from ncvsd_cli.progress import callbacks_per_run

        try:
            call = get_method(self.base).arguments(settings, self._per_sample(nfe))
        except ValueError as exc:  # the base's refusal, named for this method, its --nfe values made totals
            message = str(exc).replace(f"method '{self.base}'", f"method '{self.name}' ({self.reduction} {self.k} "
                                       f"'{self.base}' samples)")
            raise ValueError(re.sub(r"--nfe (>= )?(\d+)", lambda m: f"--nfe {m[1] or ''}{int(m[2]) * self.k}",
                                    message)) from None
        per_run = callbacks_per_run(call)
        return MethodCall(call.settings, call.sigmas, call.kwargs, call.nfe * self.k,
                          None if per_run is None else per_run * self.k)

    def applies(self, operator, settings=None):
        return get_method(self.base).applies(operator, settings)

    def bench_nfe(self, sweep, baseline_nfe):
        return [self.k * n for n in get_method(self.base).bench_nfe(sweep, baseline_nfe)]

    def _reduce(self, kept: Any, x: Any, operator: Any, y: Any) -> Any:
        """Fold sample x (B, C, H, W), clipped to [-1, 1], into `kept` (None before the first)."""
        raise NotImplementedError

    def _output(self, kept: Any) -> tuple[Any, dict[str, Any]]:
        """The output image batch and the result's extras from what `_reduce` kept."""
        raise NotImplementedError

    def __call__(self, model, operator, y, sigmas, *, generator, callback=None, **kwargs) -> SamplerResult:
        base = get_method(self.base)
        if uses_classical_estimate(base) and kwargs.get("estimate") is None:
            from ncvsd_cli.sampling.pnp_gd import classical_estimate

            kwargs["estimate"] = classical_estimate(operator, y, kwargs["sigma_y"])  # once for all k samples
        kept, nfe, op_evals, offset = None, 0, 0, [0, 0]  # offset: iterations of earlier samples, last i seen

        def relay(info: dict) -> None:  # one progress count over all k samples
            offset[1] = int(info.get("i", 0)) + 1
            callback({**info, "i": offset[0] + offset[1] - 1})

        for _ in range(self.k):
            r = base(model, operator, y, sigmas, generator=generator,
                     **({"callback": relay} if callback is not None else {}), **kwargs)
            kept = self._reduce(kept, r.x.clamp(-1, 1), operator, y)
            nfe, op_evals = nfe + r.nfe, op_evals + r.operator_evals + self.reduce_operator_evals
            offset[0], offset[1] = offset[0] + offset[1], 0
        if kwargs.get("estimate") is not None:  # the classical estimate was computed once, not k times
            op_evals -= (self.k - 1) * kwargs["estimate"].operator_evals
        x, extras = self._output(kept)
        return SamplerResult(x=x, nfe=nfe, operator_evals=op_evals,
                             extras={"base": self.base, "samples": self.k, **extras})


@dataclass(frozen=True)
class MeanMethod(RepeatedMethod):
    """The mean of `k` samples of method `base` (each clipped to [-1, 1], as saved): a fidelity-first output that
    approaches the posterior mean, the MMSE estimate. Only the running sum is kept."""

    def _reduce(self, kept, x, operator, y):
        return (x, 1) if kept is None else (kept[0] + x, kept[1] + 1)

    def _output(self, kept):
        return kept[0] / kept[1], {}


def rms_residual(operator, x, y):
    """(B,) RMS measurement residual sqrt(mean |A(x) - y|²) of each image of x (B, C, H, W), on y's scale (>= 0)."""
    return (operator.forward(x) - y).flatten(1).pow(2).mean(1).sqrt()


@dataclass(frozen=True)
class BestFitMethod(RepeatedMethod):
    """Of `k` samples of method `base` (each clipped to [-1, 1]), per image the one whose measurement A(x) lies
    nearest to y (least RMS residual ||A(x) - y||, on the measurement's scale): a restart rule for samplers that
    can stall in a wrong basin, as phase retrieval's does. It can only pick among fits the measurement allows
    equally (phase retrieval's 180-degree twin fits as well as the image). extras["residual"]: the chosen
    samples' residuals, extras["residuals"]: every sample's, (k, B)."""

    reduction: ClassVar[str] = "the best-fitting of"
    reduce_operator_evals: ClassVar[int] = 1

    def _reduce(self, kept, x, operator, y):
        import torch

        res = torch.nan_to_num(rms_residual(operator, x, y), nan=float("inf"))  # a NaN sample never wins over a finite one
        if kept is None:
            return x, res, [res]
        best, best_res, history = kept
        better = res < best_res
        return (torch.where(better.view(-1, *[1] * (x.dim() - 1)), x, best), torch.minimum(res, best_res),
                history + [res])

    def _output(self, kept):
        import torch

        best, best_res, history = kept
        return best, {"residual": best_res.tolist(), "residuals": torch.stack(history).tolist()}


#: |x| a method's restoration may reach: posterior samples overshoot [-1, 1] a little, a [0, 255] image by far.
RESULT_RANGE_LIMIT = 16.0


def _check_result(method: Method, res: Any, operator: Any = None, y: Any = None) -> None:
    """ValueError naming `method` unless it returned a SamplerResult whose x is a float tensor of the operator's
    images, one per measurement (a plug-in returning the measurement, or a cropped image, was written as the
    restoration with exit 0), a plug-in's finite and within +-RESULT_RANGE_LIMIT, and whose counts are whole
    numbers."""
    import numbers

    import torch

    if not isinstance(res, SamplerResult):
        raise ValueError(f"method '{method.name}' ({method.target}) returned a {type(res).__name__}, not a "  # noqa: TRY004
                         "sampling.common.SamplerResult(x, nfe, operator_evals)")
    shape = tuple(getattr(operator, "image_shape", ()))
    want = (int(y.shape[0]), *shape) if shape and isinstance(y, torch.Tensor) else None
    if not (isinstance(res.x, torch.Tensor) and res.x.is_floating_point()) or (
            want is not None and tuple(res.x.shape) != want):
        got = tuple(res.x.shape) if isinstance(res.x, torch.Tensor) else type(res.x).__name__
        raise ValueError(f"method '{method.name}' ({method.target}) returned x {got}"
                         f"{'' if not isinstance(res.x, torch.Tensor) else f' {res.x.dtype}'}; expected a float "
                         f"tensor {want or '(B, C, H, W)'}: one image of the operator's per measurement")
    if not method.target.startswith("ncvsd_cli."):  # a plug-in's (a built-in's NaN is the network's: per image)
        from operators.base import all_finite

        reach = float(res.x.detach().abs().nan_to_num(0.0, 0.0, 0.0).max()) if res.x.numel() else 0.0
        if reach > RESULT_RANGE_LIMIT:  # a [0, 255] image was written all white with exit 0
            raise ValueError(f"method '{method.name}' ({method.target}) returned values reaching {reach:.4g}, far "
                             "outside the images' [-1, 1] (a [0, 255] image? 8-bit p: p / 127.5 - 1)")
        if not all_finite(res.x):  # (it was reported as "the network produced NaN/inf values")
            raise ValueError(f"method '{method.name}' ({method.target}) returned NaN or inf values")
    if not all(isinstance(v, numbers.Integral) for v in (res.nfe, res.operator_evals)):
        raise ValueError(f"method '{method.name}' ({method.target}) returned nfe {res.nfe!r} and operator_evals "
                         f"{res.operator_evals!r}; both are whole numbers (calls per image)")


def _check_network(method: Method, model: Any, operator: Any = None) -> None:
    """ValueError when `model` is an ncvsd network of the other kind than `method.needs` (a teacher given to
    pnp-gd failed deep inside with "unexpected keyword 'generator'"; a generator given to dps ran silently), or
    of another channel count than `operator`'s images."""
    from ncvsd_cli.networks.precond import GenerativeDenoiser, Precond
    from ncvsd_cli.networks.tiling import TiledDenoiser

    net = model.denoiser if isinstance(model, TiledDenoiser) else model
    net = getattr(net, "_orig_mod", net)  # torch.compile's wrapper
    kind = "generator" if isinstance(net, GenerativeDenoiser) else "teacher" if isinstance(net, Precond) else None
    if kind is not None and method.needs in ("generator", "teacher") and kind != method.needs:
        raise ValueError(f"method '{method.name}' runs on the {method.needs} network, got the {kind} (e.g. "
                         f"load_checkpoint('builtin64-{method.needs}'))")
    shape = getattr(operator, "image_shape", None)
    if kind is not None and method.needs != "none" and shape is not None and shape[0] != net.img_channels:
        raise ValueError(f"the operator is built for {shape[0]}-channel images and the network draws "
                         f"{net.img_channels}-channel ones (a grey image: build the operator for "
                         f"({net.img_channels}, H, W) and measure images.match_channels(x, {net.img_channels}), as "
                         "restore_image does)")


def uses_classical_estimate(method: Method) -> bool:
    """Whether `method` starts from the task's classical estimate (pnp-gd-warm, or a mean of its samples), which a
    caller restoring one image in several batches may compute once and pass as `estimate=`."""
    if isinstance(method, RepeatedMethod):
        method = get_method(method.base)
    return isinstance(method, PnPMethod) and method.warm


@dataclass(frozen=True)
class ClassicalMethod(Method):
    """A network-free baseline (sampling.classical); the denoiser argument is ignored."""

    deterministic = True

    def applies(self, operator, settings=None):
        from ncvsd_cli.sampling.classical import applies
        from operators import base_operator

        return applies(self.name, base_operator(operator))


_CLASSICAL = "ncvsd_cli.sampling.classical"
_BUILTIN: tuple[Method, ...] = (
    PnPMethod("pnp-gd", "generator", "ncvsd_cli.sampling.pnp_gd:pnp_gd", "the paper's PnP-GD, from noise"),
    PnPMethod("pnp-gd-warm", "generator", "ncvsd_cli.sampling.pnp_gd:pnp_gd_warm",
              "PnP-GD from the classical estimate", warm=True),
    DenoiserMethod("denoiser", "generator", "ncvsd_cli.sampling.generate:denoise_measurement",
                   "G(y, sigma_y) alone (denoise only)"),
    TeacherMethod("dps", "teacher", "ncvsd_cli.sampling.teacher_baselines:dps", "Diffusion Posterior Sampling",
                  backward=True),
    TeacherMethod("daps", "teacher", "ncvsd_cli.sampling.teacher_baselines:daps", "DAPS-style annealing"),
    TeacherMMSEMethod("teacher-mmse", "teacher", "ncvsd_cli.sampling.teacher_baselines:teacher_mmse",
                      "D(y, sigma_y), the teacher's MMSE estimate (denoise only)"),
    MeanMethod("pnp-gd-warm-mean8", "generator", "ncvsd_cli.sampling.pnp_gd:pnp_gd_warm",
               "mean of 8 pnp-gd-warm samples", base="pnp-gd-warm", k=8),
    BestFitMethod("pnp-gd-fit4", "generator", "ncvsd_cli.sampling.pnp_gd:pnp_gd",
                  "of 4 pnp-gd samples, the one that fits y best (phase retrieval)", base="pnp-gd", k=4),
    MeanMethod("denoiser-mean8", "generator", "ncvsd_cli.sampling.generate:denoise_measurement",
               "mean of 8 denoiser samples (denoise only)", base="denoiser", k=8),
    ClassicalMethod("classical", "none", f"{_CLASSICAL}:classical", "the baseline that fits the operator"),
    ClassicalMethod("bicubic", "none", f"{_CLASSICAL}:bicubic", "bicubic upsampling (sr)"),
    ClassicalMethod("wiener", "none", f"{_CLASSICAL}:wiener", "Wiener filter (blur)"),
    ClassicalMethod("tikhonov", "none", f"{_CLASSICAL}:tikhonov", "Tikhonov filter (blur)"),
    ClassicalMethod("biharmonic", "none", f"{_CLASSICAL}:biharmonic", "biharmonic inpainting"),
    ClassicalMethod("nl-means", "none", f"{_CLASSICAL}:nl_means", "non-local means (denoise)"),
    ClassicalMethod("pseudo-inverse", "none", f"{_CLASSICAL}:pseudo_inverse", "A⁺ y"),
)
#: name -> Method: the built-ins, then methods registered at run time or through entry points.
METHODS: dict[str, Method] = {m.name: m for m in _BUILTIN}


def register_method(method: Method) -> Method:
    """Make `method` available by `method.name`; ValueError if another method already has that name."""
    from operators.registry import check_name

    if not isinstance(method, Method):
        raise TypeError(f"register_method takes a sampling.methods.Method, got {type(method).__name__}")
    check_name(method.name, "method", METHODS)
    if method.needs not in ("generator", "teacher", "none"):
        raise ValueError(f"method '{method.name}': needs must be generator, teacher or none, got {method.needs!r}")
    module, _, func = str(method.target).partition(":")
    if not (module and func and ":" not in func):  # ("nocolon" failed at its first use: "not enough values to unpack")
        raise ValueError(f"method '{method.name}': target must be 'module:function', got {method.target!r}")
    if METHODS.get(method.name, method) != method:
        raise ValueError(f"method name '{method.name}' is already registered")
    METHODS[method.name] = method
    return method


def _add_plugin(ep: EntryPoint, obj: Any) -> None:
    method = obj if isinstance(obj, Method) else obj() if callable(obj) else obj
    if not isinstance(method, Method) or method.name != ep.name:
        raise ValueError(f"entry point {ep.name} = {ep.value} is not a sampling.methods.Method named {ep.name!r}")
    register_method(method)


PLUGINS = EntryPointGroup(ENTRY_POINT_GROUP, _add_plugin)


def method_names() -> list[str]:
    """Every registered method name, sorted."""
    PLUGINS.load()
    return sorted(METHODS)


def source_type(name: str) -> str:
    """The IPTC Digital Source Type of a restoration by method `name`, for `xmp.labelled`: a method that needs no
    network (the classical baselines, a plug-in's with needs="none") algorithmically enhanced, one that runs a
    trained network edited with AI (its details drawn or estimated by the model)."""
    from ncvsd_cli import xmp

    return xmp.ENHANCED if get_method(name).needs == "none" else xmp.EDITED_BY_AI


def get_method(name: str) -> Method:
    """The registered method `name`; ValueError listing the known names otherwise."""
    PLUGINS.load()
    try:
        return METHODS[name]
    except KeyError:
        raise PLUGINS.unknown(name, list(METHODS), "method") from None
