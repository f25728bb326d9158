"""Inpainting: A(x) = m ⊙ x with a binary mask m (1 = known pixel), docs/method.md §4.1.

y keeps the full image shape and is noisy everywhere; the hole pixels are ignored by the likelihood.
The likelihood step is exact, per pixel (docs/method.md §3.3):
    var = (1/rho² + m/sigma_p²)⁻¹,  mean = var · (x0/rho² + m·y/sigma_p²),  u = mean + sqrt(var)·eps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from operators.base import Operator
from operators.noise import MAX_SEED, Generators, rand, randn_like, stream_seed
from operators.params import (
    MissingParameter,
    as_array,
    check_likelihood_args,
    encode_array,
    flag,
    integer,
    like,
    number,
    positive_float,
    positive_int,
)
from operators.registry import register


class MaskOperator(Operator):
    """Shared body of the inpainting operators; subclasses build `mask` (shape (1, 1 or C, H, W), values 0/1)."""

    linear = True
    measures_pixels = True

    def _set_mask(self, mask: torch.Tensor) -> None:
        self.register_buffer("mask", mask.to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return like(self.mask, x) * x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return like(self.mask, y) * y

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """y where known, 0 (mid-grey) in the hole."""
        return like(self.mask, y) * y

    def exact_fit(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The known pixels of y, x in the hole (the orthogonal projection onto {m ⊙ x = y})."""
        m = like(self.mask, x)
        return m * y + (1 - m) * x

    def likelihood_sample(self, x0: torch.Tensor, y: torch.Tensor, rho: float, sigma_p: float,
                          generator: Generators = None) -> torch.Tensor:
        """Exact sample, docs/method.md §3.3 (inpainting)."""
        check_likelihood_args(rho, sigma_p)
        m = like(self.mask, x0)
        var = 1.0 / (1.0 / rho**2 + m / sigma_p**2)
        mean = var * (x0 / rho**2 + m * y / sigma_p**2)
        return mean + var.sqrt() * randn_like(x0, generator)


@register
class BoxInpainting(MaskOperator):
    """A centred rectangular hole of `box_size` = (h, w) pixels (default half the image side per axis, so
    [64:192, 64:192] on 256x256 as in the paper); top-left corner at ((H - h)//2, (W - w)//2)."""

    name = "inpaint-box"
    summary = "a centred box missing (half the image side)"

    def __init__(self, image_shape: Sequence[int], box_size: int | list[int] | None = None):
        super().__init__(image_shape)
        _, h, w = self.image_shape
        if box_size is None:
            box_size = [max(h // 2, 1), max(w // 2, 1)]
        sizes = [box_size, box_size] if np.ndim(box_size) == 0 else list(box_size)
        if len(sizes) != 2:
            raise ValueError(f"box_size must be an int or [height, width], got {box_size!r}")
        if isinstance(box_size, str) and "," in box_size:  # -p box_size=64,32: YAML's string, not a list
            raise ValueError(f"box_size {box_size!r}: give a side or [height, width] in brackets, e.g. "
                             f"box_size=[{box_size.strip('()[] ')}]")
        bh, bw = positive_int(sizes[0], "box_size"), positive_int(sizes[1], "box_size")
        if bh > h or bw > w:
            raise ValueError(f"box_size [{bh}, {bw}] (height, width) is bigger than the {w}x{h} image")
        self.box_size = (bh, bw)
        top, left = (h - bh) // 2, (w - bw) // 2
        mask = torch.ones(1, 1, h, w)
        mask[..., top:top + bh, left:left + bw] = 0
        self._set_mask(mask)

    def extra_config(self) -> dict[str, Any]:
        return {"box_size": list(self.box_size)}


def mask_seed(seed: int) -> int:
    """The generator seed of `seed`'s random mask: itself below 2^32 (the masks of sidecars and benchmarks made so
    far), else a hash of it (the CPU generator keeps 32 bits: --seed 2^32 drew seed 0's mask)."""
    return seed if seed < 2**32 else stream_seed("inpaint-random", seed) & 0xFFFFFFFF


@register
class RandomInpainting(MaskOperator):
    """round(fraction·H·W) missing pixels (default 70 %, like the reference's random_mask.png), the same in every
    channel, chosen from torch.Generator(`mask_seed(seed)`) (CPU, so the mask is the same on every device)."""

    name = "inpaint-random"
    summary = "a random 70 % of the pixels missing, drawn from -p seed=N"

    def __init__(self, image_shape: Sequence[int], fraction: float = 0.7, seed: int = 0):
        super().__init__(image_shape)
        fraction = number(fraction, "fraction")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction (of missing pixels) must be in (0, 1), got {fraction}")
        # --seed's range (-1 drew --seed 2^63-1's mask; 10^20 overflowed)
        self.fraction, self.seed = fraction, integer(seed, "seed", 0, MAX_SEED)
        _, h, w = self.image_shape
        n_missing = round(fraction * h * w)
        scores = rand((h * w,), torch.Generator().manual_seed(mask_seed(self.seed)), dtype=torch.float64)
        mask = torch.ones(h * w)
        mask[torch.argsort(scores, stable=True)[:n_missing]] = 0
        self._set_mask(mask.view(1, 1, h, w))

    def extra_config(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "seed": self.seed}


def mask_colour_reading(invert: Any) -> str:
    """How a mask image's colour pixels read (`params.COLOUR_READINGS`): the marks are drawn on the colour that
    means known, white ("darkest": a mark of any colour reads as not white) or, inverted, black ("brightest")."""
    return "brightest" if flag(invert, "invert") else "darkest"


@register
class MaskInpainting(MaskOperator):
    """A user mask, white = known: a tensor/array/nested list of shape (H, W), (1 or C, H, W) or (1, 1 or C, H, W)
    with values in [0, 1], or an image path (grey levels; a colour pixel is white where its darkest channel is, so
    marks of a strong colour on white are holes). Thresholded at 0.5. invert=True reads white as the hole to fill
    (the convention of OpenCV's and most editors' inpainting masks; an image's colour pixel is then white where its
    brightest channel is, so marks of a strong colour on black are holes, and on a layer mostly transparent its
    opaque marks of any colour are). grow, 0 or >= 1 (px):
    the holes are widened by this distance (Euclidean; the "grow selection" of image editors), so a mark's edge
    pixels that the mask misses (anti-aliasing, JPEG halos) are filled too instead of spreading into the fill."""

    name = "inpaint-mask"
    summary = "holes you mark: -p mask=M.png (white = known), or erased to transparency"

    def __init__(self, image_shape: Sequence[int], mask: Any = None, invert: bool = False,
                 grow: float = 0.0):
        super().__init__(image_shape)
        if isinstance(grow, bool) or 0 < positive_float(grow, "grow", allow_zero=True) < 1:
            raise ValueError(f"grow (px to widen the holes by) must be 0 or at least 1, the distance to a neighbouring "
                             f"pixel, got {grow!r}")
        grow = float(grow)
        if mask is None:
            raise MissingParameter("mask", "mask is required for inpaint-mask (an image path, array or tensor; "
                                   "white = known)")
        c, h, w = self.image_shape
        raw = as_array(mask, "mask", shape=(h, w), colour=mask_colour_reading(invert), float_scale=True)  # (a
        # file's size checked unread; its grey levels in [0, 1])
        a = np.asarray(raw, dtype=np.float64)
        if np.issubdtype(raw.dtype, np.integer) and a.size and 1 < a.max() <= 65535:  # grey levels, as its file
            a = a / (255.0 if a.max() <= 255 else 65535.0)  # is read: 0-255 (any int dtype) or 16-bit
        given = a.shape
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[1:] != (h, w) or a.shape[0] not in (1, c):
            raise ValueError(f"mask must have shape (H, W) = ({h}, {w}) or (1 or {c}, {h}, {w}), got {given}")
        if not np.isfinite(a).all():
            raise ValueError("mask contains NaN or infinite values")
        if a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(f"mask values must be in [0, 1] (white = known), got [{a.min():g}, {a.max():g}]: "
                             "divide a 0-255 mask by 255, or pass its image file")
        known = (a > 0.5) != flag(invert, "invert")
        if grow > 0:  # a known pixel stays known only farther than `grow` from every hole pixel
            from scipy.ndimage import distance_transform_edt
            known = np.stack([distance_transform_edt(k) > grow if not k.all() else k for k in known])
        self._set_mask(torch.from_numpy(known.astype(np.float32))[None])

    def extra_config(self) -> dict[str, Any]:  # the known-pixel mask itself: rebuilt without inverting or growing
        return {"mask": encode_array(self.mask[0].cpu().numpy().astype(np.uint8))}
