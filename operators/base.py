"""The operator contract shared by every degradation (docs/architecture.md, "Operators").

Images are float tensors (B, C, H, W) in [-1, 1]. Noise comes only from generators passed in (`operators.noise`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from operators.noise import Generators, randn_like

#: Pixel values beyond +-IMAGE_RANGE_LIMIT are no [-1, 1] image (a [0, 255] one); a measurement of one (sr, blurs,
#: inpainting, denoise) may reach further by its noise, up to 6 sigma_y.
IMAGE_RANGE_LIMIT = 4.0


def all_finite(t: torch.Tensor) -> bool:
    """Whether every value of t is finite (True for integer and empty tensors). A finite sum proves it in one
    reduction, ~20x faster than `torch.isfinite(t).all()` on a CPU (1.8 s for a 48 MP RGB float image); a sum that
    is NaN or inf (a value that is, or finite values beyond the dtype's range) is checked value by value."""
    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
        return True
    return bool(torch.isfinite(t.detach().sum())) or bool(torch.isfinite(t).all())


@contextlib.contextmanager
def autograd_enabled(what: str) -> Iterator[None]:
    """Autograd on for `what` (e.g. "DPS"), also inside a caller's torch.inference_mode (its inputs: `graph_leaf`).
    A tensor made in that mode (an operator's buffer, weights loaded there) cannot enter a graph: torch's "Inference
    tensors cannot be saved for backward" becomes a TypeError that says so."""
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    except RuntimeError as exc:
        if "Inference tensors" not in str(exc):
            raise
        raise TypeError(f"{what} differentiates with autograd, and a tensor it uses was made under "
                        "torch.inference_mode (an operator built or weights loaded there): make them outside it, or "
                        "use torch.no_grad(), which this allows") from None


def graph_leaf(t: torch.Tensor) -> torch.Tensor:
    """t detached as a leaf that requires grad (inside `autograd_enabled`); a tensor made under torch.inference_mode
    is copied out of it first."""
    return (t.clone() if t.is_inference() else t).detach().requires_grad_(True)


def check_image_range(x: torch.Tensor, what: str, sigma_y: float = 0.0, gain: float = 1.0) -> None:
    """ValueError when x reaches beyond +-(gain IMAGE_RANGE_LIMIT + 6 sigma_y): an image on [0, 255], not [-1, 1]
    (gain >= 1: a measurement's `Operator.pixel_gain`); or holds NaN or inf values."""
    reach = float(x.detach().abs().max()) if x.numel() else 0.0
    if not math.isfinite(reach):
        raise ValueError(f"{what}: holds NaN or inf values")
    if reach > max(gain, 1.0) * IMAGE_RANGE_LIMIT + 6 * sigma_y:
        raise ValueError(f"{what}: values reach {reach:.4g}, far outside [-1, 1] (an image on [0, 255]? 8-bit "
                         "pixels p: ncvsd_cli.images.from_unit(p / 255))")


def check_image_shape(image_shape: Any) -> tuple[int, int, int]:
    """(C, H, W) as positive ints, else ValueError (e.g. an (H, W) or a batch's (1, C, H, W) shape)."""
    shape = tuple(image_shape)
    if len(shape) != 3 or any(int(v) != v or v < 1 for v in shape):
        raise ValueError(f"image_shape must be (C, H, W) of positive ints, got {shape} (for a (1, C, H, W) image x: "
                         "x.shape[1:])")
    return int(shape[0]), int(shape[1]), int(shape[2])


#: Computed in float32 and returned in their own dtype: torch's FFT and several CPU kernels have no half precision
#: (a float16 blur failed with "Unsupported dtype Half" deep inside torch).
HALF_DTYPES = (torch.float16, torch.bfloat16)


def _checked_forward(forward):
    """`forward` that first checks x: A(x) takes batches (B, C, H, W) of the operator's image_shape."""

    @functools.wraps(forward)
    def checked(op: Operator, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"operator '{op.name}' takes torch tensors (B, C, H, W) in [-1, 1], got "  # noqa: TRY004
                             f"{type(x).__name__} (an (H, W, 3) uint8 array a: ncvsd_cli.images.from_unit("
                             "torch.from_numpy(a).permute(2, 0, 1)[None] / 255))")
        if not x.is_floating_point():
            raise ValueError(f"operator '{op.name}' takes float tensors in [-1, 1], got {x.dtype} (8-bit pixels p: "
                             "ncvsd_cli.images.from_unit(p / 255))")
        if x.dim() != 4 or tuple(x.shape[1:]) != op.image_shape:
            raise ValueError(f"operator '{op.name}' was built for images {op.image_shape} (C, H, W) and takes "
                             f"(B, C, H, W) batches of them, got {tuple(x.shape)}")
        y = forward(op, x.float() if x.dtype in HALF_DTYPES else x, *args, **kwargs)
        _check_output(op, "forward", y, x)
        return y.to(x.dtype) if x.dtype in HALF_DTYPES else y

    return checked


def _check_output(op: Operator, method: str, out: Any, x: torch.Tensor, shape: tuple | None = None) -> None:
    """ValueError naming the operator's class unless `out` keeps x's batch (and `shape`, where given), dtype and
    device (a plug-in's forward that dropped the batch made `degrade` fail on its noise streams; one in float64 was
    recorded so)."""
    ok = isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[0] == x.shape[0] and (
        shape is None or tuple(out.shape) == shape)
    if not ok or out.dtype != (torch.float32 if x.dtype in HALF_DTYPES else x.dtype) or out.device != x.device:
        got = f"{tuple(out.shape)} {out.dtype} on {out.device}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"operator '{op.name}' ({type(op).__module__}.{type(op).__qualname__}): {method} returned "
                         f"{got} for {tuple(x.shape)} {x.dtype} on {x.device}; it must keep the batch "
                         f"{'and shape ' if shape else ''}(dim 0), dtype and device of its input")


def _checked_measurement(method):
    """`method` (adjoint, pseudo_inverse) that first checks y: batches (B, ...) of the operator's measurement, and
    then its output: a batch of the operator's images, of floats (cast to y's dtype) on y's device
    (`_check_output`)."""

    @functools.wraps(method)
    def checked(op: Operator, y: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        op.check_measurement(y)
        y32 = y.float() if y.dtype in HALF_DTYPES else y
        out = method(op, y32, *args, **kwargs)  # a plug-in's uint8 pseudo-inverse was restored as a white image
        if isinstance(out, torch.Tensor) and out.is_floating_point():  # another float (numpy's float64): cast
            out = out.to(y32.dtype)
        _check_output(op, method.__name__, out, y32, (y.shape[0], *op.image_shape))
        return out.to(y.dtype) if y.dtype in HALF_DTYPES else out

    return checked


def _checked_likelihood(method):
    """`likelihood_sample` that first checks x0 (a batch of images) and y (as many measurements)."""

    @functools.wraps(method)
    def checked(op: Operator, x0: torch.Tensor, y: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        op.check_measurement(y)
        if x0.dim() != 4 or tuple(x0.shape[1:]) != op.image_shape or x0.shape[0] != y.shape[0]:
            raise ValueError(f"operator '{op.name}': likelihood_sample takes x0 (B, {', '.join(map(str, op.image_shape))})"
                             f" and y with the same B, got x0 {tuple(x0.shape)} and y {tuple(y.shape)}")
        if x0.dtype in HALF_DTYPES or y.dtype in HALF_DTYPES:
            out = method(op, x0.float(), y.float(), *args, **kwargs)
            _check_output(op, "likelihood_sample", out, x0.float(), tuple(x0.shape))
            return out.to(x0.dtype)
        out = method(op, x0, y.to(x0.dtype), *args, **kwargs)  # float64 y with a float32 network's x0: x0's
        _check_output(op, "likelihood_sample", out, x0, tuple(x0.shape))
        return out

    return checked


#: How the samplers call the methods a subclass may define: (positional, keyword) arguments after self.
_CALLS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "forward": (("x",), ()), "adjoint": (("y",), ()), "pseudo_inverse": (("y",), ()),
    "likelihood_sample": (("x0", "y"), ("rho", "sigma_p", "generator"))}


def _check_signature(cls: type, name: str) -> None:
    """TypeError at class definition when `cls.name` cannot take the samplers' call (a plug-in's `forward(self)`
    failed mid-restore as ncvsd's "internal error"; now its entry point is left out, naming the method)."""
    positional, keywords = _CALLS[name]
    try:
        inspect.signature(cls.__dict__[name]).bind(None, *positional, **dict.fromkeys(keywords))
    except TypeError as exc:
        call = ", ".join(positional + tuple(f"{k}=..." for k in keywords))
        raise TypeError(f"{cls.__qualname__}.{name} cannot be called as {name}({call}) like operators.Operator."
                        f"{name}: {exc}") from None
    except ValueError:  # no signature to read (a builtin): it will tell when called
        pass


class Operator(nn.Module):
    """A forward model y = A(x) + sigma_y * n with an exact (or Langevin) likelihood step.

    Subclasses set `name`, `linear` and implement `forward`; linear ones also `adjoint`. They override
    `likelihood_sample` with a closed form where one exists; the default is unadjusted Langevin (ULA) with the
    reference's step-size rule (docs/method.md §3.3). `to_config()` returns a JSON-serialisable dict from which
    `from_config()` rebuilds an operator that gives bit-identical measurements.
    """

    name: ClassVar[str] = ""
    #: One line for a user (`ncvsd tasks`): what the task measures; empty: the docstring's first sentence is used.
    summary: ClassVar[str] = ""
    linear: ClassVar[bool] = True
    #: The measurement is pixels on the image's scale (blurred, downsampled, masked, noisy): samplers refuse one
    #: far outside [-1, 1] (`check_image_range`), a [0, 255] image's.
    measures_pixels: ClassVar[bool] = False
    #: How far past [-1, 1] a measurement of an image in [-1, 1] may reach before noise, as a multiple: 1; a blur
    #: whose kernel is not normalised, its sum of |taps| (`check_image_range` of samplers scales its limit by it).
    pixel_gain: float = 1.0
    #: ULA settings used by the default likelihood step (docs/method.md §3.3, paper Table 4).
    langevin_steps: int = 100
    langevin_c1: float = 0.1
    langevin_c2: float = 0.1
    #: The ULA step of a linear operator is at most this over the energy's largest curvature 2 |A|² / beta + 1 / rho²:
    #: the reference's rule gives gamma * L -> 2 |A|² as rho grows, 0.125 for its x4 bicubic resizer (|A|² 1/16)
    #: but 2, ULA's stability edge, at |A| = 1 (nearest resizing, a blur, a plug-in): its chain oscillated there
    #: (A(u) std 0.45 where the posterior's is 0.02). 0.5 leaves bicubic sr2-sr8 on the reference's rule.
    langevin_max_step_curvature: ClassVar[float] = 0.5

    def __init__(self, image_shape: Sequence[int]):
        super().__init__()
        c, h, w = check_image_shape(image_shape)
        self.image_shape = (c, h, w)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _CALLS.keys() & cls.__dict__.keys():
            _check_signature(cls, name)
        if "forward" in cls.__dict__:  # op.forward(x) and op(x) alike check x first
            cls.forward = _checked_forward(cls.__dict__["forward"])
        for name in ("adjoint", "pseudo_inverse"):  # and A^T y, A^+ y check y
            if name in cls.__dict__:
                setattr(cls, name, _checked_measurement(cls.__dict__[name]))
        if "likelihood_sample" in cls.__dict__:  # the likelihood step x0 and y
            cls.likelihood_sample = _checked_likelihood(cls.__dict__["likelihood_sample"])

    # --- the model -------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # A(x)
        raise NotImplementedError(f"operator '{self.name}' ({type(self).__module__}.{type(self).__qualname__}) "
                                  "defines no forward")

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # A^T y, linear operators only
        raise NotImplementedError(f"operator '{self.name}' is not linear and has no adjoint")

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """A^+ y (classical baseline and initialisation); an image in the [-1, 1] convention."""
        raise NotImplementedError(f"operator '{self.name}' ({type(self).__module__}.{type(self).__qualname__}) "
                                  "defines no pseudo_inverse, which the classical baseline and warm starts need")

    def measurement_shape(self, batch: int = 1) -> tuple[int, ...]:
        """Shape of A(x) for a batch of `batch` images of `image_shape`."""
        with torch.no_grad():
            return (batch, *self.forward(torch.zeros(1, *self.image_shape)).shape[1:])

    def check_measurement(self, y: Any, finite: bool = False) -> None:
        """ValueError unless y is a float tensor batch (B, ...) of this operator's measurements (A(x) for x of
        `image_shape`); finite: also unless every value is finite (a sampler's input: one NaN spreads to all)."""
        if not isinstance(y, torch.Tensor):  # a numpy float32 array read "takes float measurements, got float32"
            raise ValueError(f"operator '{self.name}' takes measurements as torch tensors (B, ...), got "  # noqa: TRY004
                             f"{type(y).__module__}.{type(y).__qualname__} (torch.from_numpy converts an array)")
        if not y.is_floating_point():
            raise ValueError(f"operator '{self.name}' takes float measurements, got {y.dtype}")
        if "_measured" not in self.__dict__:  # the shape of A(x), found once
            self.__dict__["_measured"] = self.measurement_shape()[1:]
        if y.dim() < 1 or tuple(y.shape[1:]) != self.__dict__["_measured"]:
            raise ValueError(f"operator '{self.name}' on images {self.image_shape} measures "
                             f"(B, {', '.join(map(str, self.__dict__['_measured']))}), got {tuple(y.shape)} "
                             "(op.measure(x) makes one)")
        if finite and not all_finite(y):
            raise ValueError(f"the measurement holds {int((~torch.isfinite(y)).sum())} NaN or infinite values")

    def exact_fit(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """x changed as little as possible so that A(x) = y holds exactly: the support of the posterior of a
        noiseless measurement (sigma_y = 0), applied to a sampler's output; None where this operator has none."""
        return None

    def measure(self, x: torch.Tensor, sigma_y: float = 0.05, generator: Generators = None) -> torch.Tensor:
        """y = A(x) + sigma_y * n, n ~ N(0, I) from `generator` (sigma_y on the [-1, 1] scale, >= 0)."""
        if not (math.isfinite(sigma_y) and sigma_y >= 0):
            raise ValueError(f"sigma_y must be >= 0 and finite, got {sigma_y}")
        y = self.forward(x)  # checks x's type and shape
        check_image_range(x, f"operator '{self.name}' measures images in [-1, 1]")
        return y + sigma_y * randn_like(y, generator) if sigma_y > 0 else y

    @_checked_likelihood
    def likelihood_sample(self, x0: torch.Tensor, y: torch.Tensor, rho: float, sigma_p: float,
                          generator: Generators = None) -> torch.Tensor:
        """One sample u ~ p(u) ∝ exp(-|A(u) - y|² / (2 sigma_p²) - |u - x0|² / (2 rho²)). One exception: blurs
        with boundary "reflect" sample the posterior of the image on a wider canvas whose margin is free (the
        mirrored margin of their `forward` is no constraint there) and return its window: not p(u) above with
        A = `forward` (docs/method.md §4.4, "The image border").

        Default: ULA from u = x0 with step gamma = C1 / (C2 / beta + 1 / rho²), beta = 2 sigma_p² (docs/method.md §3.3);
        returns zeros for an image whose chain produces NaN, like the reference (per image, not the batch).
        """
        return self.langevin_likelihood_sample(x0, y, rho, sigma_p, generator)

    def langevin_likelihood_sample(self, x0: torch.Tensor, y: torch.Tensor, rho: float, sigma_p: float,
                                   generator: Generators = None, steps: int | None = None) -> torch.Tensor:
        """ULA on U(u) = |A(u) - y|² / beta + |u - x0|² / (2 rho²), beta = 2 sigma_p² (docs/method.md §3.3)."""
        from operators.params import check_likelihood_args

        check_likelihood_args(rho, sigma_p)  # rho 0 divided by zero, a negative one ran (as the closed forms refuse)
        steps = self.langevin_steps if steps is None else int(steps)
        beta = 2.0 * sigma_p**2
        lr = self.langevin_c1 / (self.langevin_c2 / beta + 1.0 / rho**2)
        if self.linear:  # capped by the curvature (langevin_max_step_curvature)
            curvature = 2.0 * self.gram_norm(x0) / beta + 1.0 / rho**2
            lr = min(lr, self.langevin_max_step_curvature / curvature)
        u = x0.detach().clone()
        data_gradient = self.data_gradient_for(y)
        for _ in range(steps):
            grad = data_gradient(u) / beta + (u - x0) / rho**2
            u = (u - lr * grad + math.sqrt(2 * lr) * randn_like(u, generator)).detach()
        diverged = torch.isnan(u).flatten(1).any(1).view(-1, *([1] * (u.dim() - 1)))
        return torch.where(diverged, torch.zeros_like(u), u)  # per image: a diverged chain does not reset the batch

    @classmethod
    def setup_bytes(cls, image_shape: Sequence[int]) -> int:
        """Host memory (bytes, >= 0) that building this operator for images of `image_shape` (C, H, W) holds beyond
        the images themselves: 0 here; operators with large precomputed factors (super-resolution) say theirs, so
        that a restore is refused before it runs out of memory."""
        return 0

    def gram_norm(self, like: torch.Tensor, iterations: int = 30) -> float:
        """|A|², the largest eigenvalue of AᵀA (linear or affine operators; >= 0), by power iteration through
        `data_gradient` on a batch shaped like `like` (its dtype and device; the largest over its images), cached per shape. The
        start is drawn from a private generator: the caller's random streams are untouched."""
        key = (tuple(like.shape), like.dtype, like.device)
        cache = self.__dict__.setdefault("_gram_norms", {})
        if key not in cache:
            v = torch.randn(like.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            v = v.to(like.dtype).to(like.device)
            offset = self.forward(torch.zeros_like(v))  # A(0): 0, but an affine forward's offset (a [0, 1] scale)
            norm = 0.0
            for _ in range(iterations):
                v = v / v.norm().clamp_min(torch.finfo(v.dtype).tiny)
                w = self.data_gradient(v, offset) / 2  # Aᵀ(A v - A(0)) = AᵀA v, the energy's curvature
                norm = float((v * w).sum())  # the Rayleigh quotient: a lower bound that rises to |A|²
                v = w.detach()
            cache[key] = max(norm, 0.0)
        return cache[key]

    def data_gradient(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The gradient of |A(u) - y|² with respect to u (each image of the batch its own), used by the ULA step.
        Default: autograd through `forward`; operators override it with a closed form where one is cheaper."""
        with autograd_enabled(f"operator '{self.name}''s default likelihood step (Langevin)"):
            u, y = graph_leaf(u), y.clone() if y.is_inference() else y
            residual = (self.forward(u) - y).pow(2).sum()
            if not residual.requires_grad:  # (torch's "element 0 of tensors does not require grad" named nothing)
                raise TypeError(f"operator '{self.name}' ({type(self).__qualname__}): the default likelihood step "
                                "(Langevin) differentiates `forward` with autograd, and its output carries no "
                                "gradient (computed outside torch, or detached): write `forward` in torch, or "
                                "override `data_gradient` or `likelihood_sample`")
            (grad,) = torch.autograd.grad(residual, u)
        return grad

    def data_gradient_for(self, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """u -> `data_gradient(u, y)` for one y; operators override it to prepare what every step shares."""
        return lambda u: self.data_gradient(u, y)

    # --- configuration ---------------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable description: {'name': ..., 'image_shape': [C, H, W], **parameters}."""
        return {"name": self.name, "image_shape": list(self.image_shape), **self.extra_config()}

    def extra_config(self) -> dict[str, Any]:
        """Parameters beyond name and image_shape (kernels, masks, seeds) needed to rebuild exactly."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Operator:
        """Rebuild from `to_config()` output (also through `operators.from_config`)."""
        cfg = dict(config)
        cfg.pop("name", None)
        shape = tuple(cfg.pop("image_shape"))
        return cls(shape, **cfg)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, image_shape={self.image_shape}"
