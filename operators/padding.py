"""Canvas padding: restore images whose size the network cannot take, with the operator seen from a larger canvas.

The network needs H and W to be multiples of 2^(levels - 1). `pad_operator(op, multiple)` wraps `op` in `Padded`,
which acts on the next multiples (the canvas) and ignores the extra pixels: A'(x) = A(x[..., :H, :W]). Images are
always padded at the bottom and right, so `crop_to` undoes `pad_to_shape`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from operators.base import Operator
from operators.noise import Generators, randn_like


def padded_size(size: int, multiple: int) -> int:
    """The smallest multiple of `multiple` (>= 1) that is >= size."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    return -(-int(size) // multiple) * multiple


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The top-left (H, W) window of (..., H', W'): undoes `pad_to_shape`."""
    return x[..., : int(size[0]), : int(size[1])]


def _reflect_pad(x: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    while bottom > 0 or right > 0:  # reflection needs pad < size: repeat for large pads
        h, w = x.shape[-2:]
        b, r = min(bottom, h - 1), min(right, w - 1)
        if (b == 0 and bottom > 0) or (r == 0 and right > 0):  # a 1-pixel side cannot reflect: replicate
            return F.pad(x, (0, right, 0, bottom), mode="replicate")
        x = F.pad(x, (0, r, 0, b), mode="reflect")
        bottom, right = bottom - b, right - r
    return x


def pad_to_shape(x: torch.Tensor, shape: tuple[int, int], mode: str = "reflect") -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right to `shape` = (H', W') >= (H, W).

    mode: "reflect" (mirror without repeating the edge, repeated for pads larger than the image), "replicate"
    or "constant" (zeros). Raises ValueError if `shape` is smaller than the image.
    """
    h, w = x.shape[-2:]
    bottom, right = int(shape[0]) - h, int(shape[1]) - w
    if bottom < 0 or right < 0:
        raise ValueError(f"cannot pad a {h}x{w} image to the smaller shape {tuple(shape)}")
    if bottom == 0 and right == 0:
        return x
    if mode == "reflect":
        return _reflect_pad(x, bottom, right)
    if mode in ("replicate", "constant"):
        return F.pad(x, (0, right, 0, bottom), mode=mode)
    raise ValueError(f"unknown padding mode {mode!r}; use reflect, replicate or constant")


class Padded(Operator):
    """`inner` seen from a larger canvas: A'(x) = A(x[..., :H, :W]) (the top-left window, as `crop_to`).

    Likelihood step (exact, the energy separates): the inner window from `inner.likelihood_sample`, the extra
    pixels from N(x0, rho² I), since the measurement does not see them. Not registered by name: `to_config()`
    is the inner operator's, so a measurement records what made it, whatever the canvas.
    """

    name = "padded"

    def __init__(self, inner: Operator, canvas: tuple[int, int]):
        c, h, w = inner.image_shape
        if int(canvas[0]) < h or int(canvas[1]) < w:
            raise ValueError(f"canvas {tuple(canvas)} is smaller than the operator's image {h}x{w}")
        super().__init__((c, int(canvas[0]), int(canvas[1])))
        self.inner = inner
        self.linear = inner.linear
        self.measures_pixels = inner.measures_pixels
        self.size = (h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(crop_to(x, self.size))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return pad_to_shape(self.inner.adjoint(y), self.image_shape[1:], mode="constant")

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        return pad_to_shape(self.inner.pseudo_inverse(y), self.image_shape[1:], mode="reflect")

    def likelihood_sample(self, x0: torch.Tensor, y: torch.Tensor, rho: float, sigma_p: float,
                          generator: Generators = None) -> torch.Tensor:
        inner = self.inner.likelihood_sample(crop_to(x0, self.size), y, rho=rho, sigma_p=sigma_p,
                                             generator=generator)
        u = x0 + rho * randn_like(x0, generator)
        u[..., : self.size[0], : self.size[1]] = inner
        return u

    def exact_fit(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        inner = self.inner.exact_fit(crop_to(x, self.size), y)
        if inner is None:
            return None
        x = x.clone()
        x[..., : self.size[0], : self.size[1]] = inner
        return x

    def to_config(self) -> dict[str, Any]:
        return self.inner.to_config()


def pad_operator(op: Operator, multiple: int) -> Operator:
    """`op` when its image size is a multiple of `multiple`, else `Padded(op)` on the next multiples."""
    _, h, w = op.image_shape
    canvas = (padded_size(h, multiple), padded_size(w, multiple))
    return op if canvas == (h, w) else Padded(op, canvas)


def base_operator(operator: Operator) -> Operator:
    """The operator itself, or the one a `Padded` canvas holds."""
    return operator.inner if isinstance(operator, Padded) else operator
