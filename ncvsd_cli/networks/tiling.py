"""Generator calls on overlapping tiles, so that memory is bounded whatever the image size.

`TiledDenoiser(G)` is called like the generative denoiser, G(y, sigma, generator=..., class_labels=...) (docs/method.md
§2.5), and returns one sample of the same shape. An image no larger than one tile is passed to G unchanged (bit for
bit the untiled call). A larger one is cut into tiles of at most `tile` x `tile` pixels whose starts are multiples of
the network's size multiple 2^(levels-1) (so every tile sees the same downsampling grid as the whole image) and
that overlap by at least `overlap` pixels, each side as short as the same number of tiles allows (`fitted_tile`);
G runs on each and the outputs are blended with weights that are 1 inside a tile and fall as a raised cosine
sin²(π/2 · (i + ½)/L) over each overlap of length L with a neighbour, then divided by the summed weights (two
raised-cosine ramps over the same L pixels sum to exactly 1).

Noise: G draws z ~ N(0, I) for y + sqrt(sigma_hat² − sigma²) z (§2.5). Here z is drawn once for the whole image from
`generator` exactly as G would draw it (same shape, same generator calls, one generator per image when a list is
given), and each tile receives its crop through G's `noise` argument. So overlapping tiles see the same noise, the
result is deterministic and independent of the tiling's order and of the batch composition, and the random stream
consumed is the untiled one (the rest of a sampler draws the same numbers with or without tiling).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from ncvsd_cli import memory
from operators.noise import Generators, randn_like

_PRECISION = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
#: Largest automatic tile side: beyond it the bottleneck attention (quadratic in the tile's pixels) makes the time
#: per pixel grow faster than the overlap saves (benchmarks/README.md, "Large images").
DEFAULT_MAX_TILE = memory.DEFAULT_MAX_TILE
#: Default overlap of neighbouring tiles in pixels (at most a quarter of the tile).
DEFAULT_OVERLAP = 64


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles covering [0, length): multiples of `multiple`, evenly spread, first 0 and last
    length - tile, neighbours overlapping by >= overlap. length, tile: multiples of `multiple`; 0 <= overlap < tile
    (rounded up to a multiple of `multiple`, and must stay below tile). One tile [0] when length <= tile."""
    if min(length, tile, multiple) < 1 or length % multiple or tile % multiple:
        raise ValueError(f"length {length} and tile {tile} must be positive multiples of {multiple}")
    if length <= tile:
        return [0]
    n, t, o = length // multiple, tile // multiple, math.ceil(overlap / multiple)
    if not 0 <= o < t:
        raise ValueError(f"overlap {overlap} must be >= 0 and, rounded up to a multiple of {multiple}, below the tile {tile}")
    count = math.ceil((n - t) / (t - o)) + 1
    return [round(i * (n - t) / (count - 1)) * multiple for i in range(count)]


def fitted_tile(length: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """The smallest tile side (a multiple of `multiple`, at most `tile`) that covers `length` with as few tiles
    as `tile` does (`tile_starts`): a 1024-px side takes three 384-px tiles overlapping by 64 instead of three
    512-px ones overlapping by 256, the same count at 3/4 of the work. `length` when it fits one tile."""
    if length <= tile:
        return length
    count = len(tile_starts(length, tile, overlap, multiple))
    least = math.ceil(overlap / multiple) * multiple  # tile_starts' overlap, which a tile must exceed
    fitted = tile
    while fitted - multiple > least and len(tile_starts(length, fitted - multiple, overlap, multiple)) == count:
        fitted -= multiple
    return fitted


class TileLayout(NamedTuple):
    """Tiles of an image: row and column starts (`tile_starts`) and the tiles' height and width (px)."""
    rows: list[int]
    cols: list[int]
    height: int
    width: int


def tile_layout(height: int, width: int, tile: int, multiple: int = 1, overlap: int | None = None) -> TileLayout:
    """The tiles covering an H x W image: at most `tile` px a side, each side fitted (`fitted_tile`) so that the
    tiles overlap by about `overlap` (None: the default, min(DEFAULT_OVERLAP, tile // 4)), not more."""
    overlap = min(DEFAULT_OVERLAP, tile // 4) if overlap is None else overlap
    th, tw = fitted_tile(height, tile, overlap, multiple), fitted_tile(width, tile, overlap, multiple)
    return TileLayout(tile_starts(height, th, overlap, multiple), tile_starts(width, tw, overlap, multiple), th, tw)


def blend_weights(starts: list[int], tile: int, length: int) -> list[torch.Tensor]:
    """1-D weights (float32, values in (0, 1]) of each tile: 1 inside, raised-cosine ramps over the overlaps with
    its neighbours (module docstring)."""
    size = min(tile, length)
    out = []
    for k, s in enumerate(starts):
        w = torch.ones(size, dtype=torch.float64)
        left = starts[k - 1] + size - s if k > 0 else 0
        right = s + size - starts[k + 1] if k + 1 < len(starts) else 0
        if left > 0:
            w[:left] *= torch.sin(math.pi / 2 * (torch.arange(left, dtype=torch.float64) + 0.5) / left) ** 2
        if right > 0:
            w[size - right:] *= torch.cos(math.pi / 2 * (torch.arange(right, dtype=torch.float64) + 0.5) / right) ** 2
        out.append(w.float())
    return out


class TiledDenoiser:
    """G(y, sigma, generator=..., class_labels=...) computed on overlapping tiles (module docstring).

    Args:
        denoiser: a GenerativeDenoiser (anything with its call signature, the `noise` keyword and `size_multiple`).
        tile: tile side in pixels, a multiple of denoiser.size_multiple; None = the largest, up to `max_tile`, whose
            estimated call memory (ncvsd_cli.memory.call_bytes) fits `budget`, chosen per batch size and
            precision at the first call.
        overlap: minimum overlap of neighbouring tiles in pixels (rounded up to the size multiple); None =
            min(DEFAULT_OVERLAP, tile // 4).
        budget: bytes for one generator call when `tile` is None (default memory.DEFAULT_CALL_BUDGET, 4 GiB).
        max_tile: cap of the automatic tile side (default DEFAULT_MAX_TILE = 512).
    `on_tile` (None, or a callable set by the caller): called as on_tile(done, count) after each tile of a tiled call
    (1 <= done <= count), so that progress moves within a call of minutes (a large photo: 25 tiles of 456 px for a
    2000-px output, seconds each on a CPU). Not called for an image that fits one tile.
    Other attributes (size_multiple, img_channels, ...) are those of `denoiser`.
    """

    on_tile: Callable[[int, int], None] | None = None  # a class default: also set on an instance made without __init__

    def __init__(self, denoiser: Callable, tile: int | None = None, overlap: int | None = None,
                 budget: int = memory.DEFAULT_CALL_BUDGET, max_tile: int = DEFAULT_MAX_TILE) -> None:
        self.denoiser = denoiser
        m = int(denoiser.size_multiple)
        if tile is not None and (tile < m or tile % m):
            raise ValueError(f"tile must be a positive multiple of {m} (the network's size multiple), got {tile}")
        if overlap is not None and overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        if budget <= 0:
            raise ValueError(f"budget must be > 0 bytes, got {budget}")
        if max_tile < 4 * m:
            raise ValueError(f"max_tile must be at least {4 * m}, got {max_tile}")
        self.tile, self.overlap, self.budget, self.max_tile = tile, overlap, int(budget), int(max_tile)
        self._auto: dict[tuple, int] = {}
        self._shape: memory.NetworkShape | None = None

    def __getattr__(self, name: str):
        if name == "denoiser":  # not set yet (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.denoiser, name)

    def tile_size(self, y: torch.Tensor) -> int:
        """The tile side used for input `y` (B, C, H, W): `tile`, or the automatic choice for one image of its
        dtype on its device (never for the batch: an image is tiled the same way whatever --batch-size)."""
        if self.tile is not None:
            return self.tile
        precision = self._precision(y)
        key = (precision, y.device.type)
        if key not in self._auto:
            self._auto[key] = memory.auto_tile_size(self._network_shape(), 1, self.budget, precision, device=y.device.type,
                                                    max_tile=self.max_tile)
        return self._auto[key]

    def _network_shape(self) -> memory.NetworkShape:
        """The wrapped network's shape for the memory model, read once (TypeError for a network it does not know)."""
        if self._shape is None:
            self._shape = memory.network_shape_of(self.denoiser)
        return self._shape

    def _precision(self, y: torch.Tensor) -> str:
        model = getattr(self.denoiser, "model", self.denoiser)
        model = getattr(model, "_orig_mod", model)
        return _PRECISION.get(model.compute_dtype(y) if hasattr(model, "compute_dtype") else torch.float32, "fp32")

    def tiles(self, height: int, width: int, tile: int) -> list[tuple[slice, slice, torch.Tensor]]:
        """(rows, cols, weight (h, w)) of every tile of an H x W image."""
        rows, cols, th, tw = tile_layout(height, width, tile, int(self.denoiser.size_multiple), self.overlap)
        wr, wc = blend_weights(rows, th, height), blend_weights(cols, tw, width)
        return [(slice(r, r + th), slice(c, c + tw), a[:, None] * b[None, :])
                for r, a in zip(rows, wr) for c, b in zip(cols, wc)]

    def __call__(self, y: torch.Tensor, sigma: float | torch.Tensor, generator: Generators = None,
                 class_labels: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """One sample x0 ~ G(y, sigma), (B, C, H, W) float32; H, W multiples of the size multiple."""
        tile = self.tile_size(y)
        h, w = y.shape[-2:]
        kwargs = {} if class_labels is None else {"class_labels": class_labels}
        if h <= tile and w <= tile:
            return self.denoiser(y, sigma, generator=generator, noise=noise, **kwargs)
        y = y.to(torch.float32)
        z = randn_like(y, generator) if noise is None else noise.to(y)
        out = torch.zeros_like(y)
        total = torch.zeros(h, w, dtype=torch.float32, device=y.device)
        try:
            per_call = memory.images_per_call(self._network_shape(), y.shape[0], tile,
                                              self._precision(y), device=y.device.type, budget=self.budget)
        except TypeError:  # not one of our networks (a test double, a plug-in): no memory model, one call
            per_call = y.shape[0]
        tiles = self.tiles(h, w, tile)
        for done, (rows, cols, weight) in enumerate(tiles, 1):
            weight = weight.to(y.device)
            for b in range(0, y.shape[0], per_call):  # bounded memory at any batch size
                part = slice(b, b + per_call)
                labels = {k: v[part] for k, v in kwargs.items()}
                sig = sigma[part] if isinstance(sigma, torch.Tensor) and sigma.dim() > 0 else sigma
                x0 = self.denoiser(y[part, :, rows, cols], sig, noise=z[part, :, rows, cols], **labels)
                out[part, :, rows, cols] += weight * x0
            total[rows, cols] += weight
            if self.on_tile is not None:
                self.on_tile(done, len(tiles))
        return out / total
