"""The uncertainty heat map of `ncvsd restore --std`: where the posterior samples disagree.

Per pixel, the standard deviation over the K samples of the clipped images on the [0, 1] scale (unbiased, K >= 2),
as the root mean square over the colour channels, so one number per pixel in [0, 0.5 sqrt(K / (K - 1))]
(0.71 for K = 2, 0.53 for K = 8). The map is drawn with a
perceptually uniform colour map (magma: black = the samples agree, bright = they differ) from 0 to a scale
`map_scale` chosen per image (a round number just above the 99.5th percentile) and shown on a colour bar beside it.
The raw per-channel values are the `_std.png` image (`RestoreResult.std_image`).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Colour map of the heat map (matplotlib name).
COLOUR_MAP = "magma"
#: The top of the scale sits just above this quantile of the per-pixel std (a few outliers saturate).
SCALE_QUANTILE = 0.995
_NICE = (1.0, 2.0, 2.5, 5.0, 10.0)


def pixel_std(samples: torch.Tensor) -> torch.Tensor:
    """(H, W) per-pixel std of `samples` (K >= 2, C, H, W) in [-1, 1]: over the samples, on the [0, 1] scale, root
    mean square over the channels. Values in [0, 0.5 sqrt(K / (K - 1))]. ValueError for fewer than 2 samples."""
    if samples.dim() != 4 or samples.shape[0] < 2:
        raise ValueError(f"the uncertainty map needs >= 2 samples (K, C, H, W), got shape {tuple(samples.shape)}")
    unit = (samples.detach().float().clamp(-1, 1) + 1) / 2
    return unit.std(dim=0, unbiased=True).pow(2).mean(dim=0).sqrt()


def map_scale(std: torch.Tensor) -> float:
    """The top of the colour scale for the (H, W) map `std`: the SCALE_QUANTILE quantile rounded up to 1, 2, 2.5 or 5
    times a power of ten; at least 0.001."""
    q = float(std.flatten().float().quantile(SCALE_QUANTILE)) if std.numel() else 0.0
    q = max(q, 1e-3)
    power = 10.0 ** math.floor(math.log10(q))
    return next(n * power for n in _NICE if n * power >= q * (1 - 1e-9))


def save_std_map(samples: torch.Tensor, path: str | os.PathLike, *, overwrite: bool = True) -> dict[str, float]:
    """Write the heat map of `samples` (K >= 2, C, H, W) in [-1, 1] with its colour bar to `path` (PNG, atomic);
    return {"std_map_max": the top of the scale, "std_mean": the mean per-pixel std, "std_max": its maximum}, all on
    the [0, 1] scale. overwrite=False: never replace a file created meanwhile (images.atomic_write_bytes)."""
    from ncvsd_cli.images import atomic_write_bytes

    data, scale = std_map_png(samples)
    atomic_write_bytes(path, data, overwrite=overwrite)
    return scale


def std_map_png(samples: torch.Tensor) -> tuple[bytes, dict[str, float]]:
    """The PNG bytes of `save_std_map`'s heat map of `samples` and its scale dict, for a caller that writes them
    together with other files (`images.atomic_write_all`)."""
    import io

    fig, scale = std_map_figure(samples)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue(), scale


def std_map_figure(samples: torch.Tensor):
    """The matplotlib Figure of `save_std_map`'s heat map of `samples` and its scale dict."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    std = pixel_std(samples)
    top = map_scale(std)
    h, w = std.shape
    dpi, side = 100, max(h, w, 192)  # small images are enlarged (nearest) so that the labels stay legible
    iw, ih = side * w / max(h, w) / dpi, side * h / max(h, w) / dpi  # the map, inches
    left, top_m, bottom, gap, bar_w, right = 0.08, 0.3, 0.08, 0.1, 0.15, 0.85
    wide = w > 2 * h  # the bar under the map: beside a strip 24 px high it was too short for its label
    if wide:
        below = bar_w + 0.5  # the bar, its tick labels and its label
        fig = Figure(figsize=(left + iw + 0.2, below + gap + ih + top_m), dpi=dpi)  # 0.2: the last tick label
        fw, fh = fig.get_size_inches()
        ax = fig.add_axes((left / fw, (below + gap) / fh, iw / fw, ih / fh))
        cax = fig.add_axes((left / fw, 0.5 / fh, iw / fw, bar_w / fh))
    else:  # at least 1.6 in wide: the title's width
        fig = Figure(figsize=(max(left + iw + gap + bar_w + right, 1.6), bottom + ih + top_m), dpi=dpi)
        fw, fh = fig.get_size_inches()
        ax = fig.add_axes((left / fw, bottom / fh, iw / fw, ih / fh))
        cax = fig.add_axes(((left + iw + gap) / fw, bottom / fh, bar_w / fw, ih / fh))
    image = ax.imshow(std.numpy(), cmap=COLOUR_MAP, vmin=0.0, vmax=top, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"sample std, {samples.shape[0]} samples", fontsize=8, loc="left")  # (not the posterior's: the
    # README's --std; a narrow map's centred title ran off the figure)
    over = bool(std.max() > top)  # values above the scale's top: the bar ends in an arrow
    bar = fig.colorbar(image, cax=cax, orientation="horizontal" if wide else "vertical", extend="max" if over else
                       "neither")
    bar.set_ticks([0.0, top / 2, top], labels=[f"{t:g}" for t in (0.0, top / 2, top)])  # the top labelled on a
    # short bar too
    bar.set_label("std on the [0, 1] scale", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    return fig, {"std_map_max": top, "std_mean": float(std.mean()), "std_max": float(std.max())}
