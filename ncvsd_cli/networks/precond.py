"""EDM preconditioning, the teacher Precond, PrecondCondition and the GenerativeDenoiser (docs/method.md §2.3-§2.5).

Conventions: x is (B, C, H, W) float; sigma is a python float or a (B,) / (B,1,1,1) tensor of EDM noise levels
(> 0); class_labels is a one-hot (B, label_dim) tensor, an integer (B,) tensor of class indices, or None (an
all-zero label for conditional models). fp16/bf16 compute is used on CUDA when `use_fp16` is set; on CPU
everything runs in float32 unless `networks.inference.prepare_for_inference` set `cpu_bf16` (bfloat16).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ncvsd_cli.networks.edm2_layers import MPConv, MPFourier
from ncvsd_cli.networks.unet import UNet, UNetDecoder, UNetEncoder
from operators.noise import Generators, randn_like

_HALF = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def sigma_tensor(sigma: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Noise level(s) as a float32 (B, 1, 1, 1) tensor on x's device; raises ValueError unless 1 or B values, and
    for a level that is not finite and > 0 where it can be told without waiting for a GPU (log sigma: NaN output)."""
    here = sigma if not isinstance(sigma, torch.Tensor) else sigma if sigma.device.type == "cpu" else None
    if here is not None and not bool((torch.isfinite(v := torch.as_tensor(here, dtype=torch.float64)) & (v > 0)).all()):
        raise ValueError(f"sigma must be finite and > 0 (a clean input needs no network), got {sigma}")
    s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
    if s.numel() == 1:
        s = s.expand(x.shape[0])
    if s.numel() != x.shape[0]:
        raise ValueError(f"sigma has {s.numel()} values for a batch of {x.shape[0]}")
    return s.reshape(-1, 1, 1, 1)


def edm_coefficients(sigma: torch.Tensor, sigma_data: float = 0.5):
    """EDM preconditioning (§2.3): (c_skip, c_out, c_in, c_noise) for sigma of shape (B, 1, 1, 1); c_noise is (B,)."""
    s2 = sigma**2 + sigma_data**2
    return sigma_data**2 / s2, sigma * sigma_data / s2.sqrt(), 1 / s2.sqrt(), sigma.flatten().log() / 4


class _PrecondBase(nn.Module):
    """Shared attributes (img_resolution, img_channels, label_dim, sigma_data, use_fp16) and label/dtype helpers."""

    def _init_common(
        self,
        img_resolution: int,
        img_channels: int,
        label_dim: int = 0,
        use_fp16: bool = False,
        fp16_dtype: str = "float16",
        sigma_data: float = 0.5,
        **unet_kwargs,
    ) -> dict:
        """Store the shared attributes; returns the remaining kwargs (for UNet / UNetEncoder / UNetDecoder)."""
        if fp16_dtype not in _HALF:
            raise ValueError(f"fp16_dtype must be one of {sorted(_HALF)}, got {fp16_dtype!r}")
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        self.use_fp16 = use_fp16
        self.fp16_dtype = fp16_dtype
        self.cpu_bf16 = False
        self.sigma_data = sigma_data
        return dict(
            img_resolution=img_resolution, img_channels=img_channels, label_dim=label_dim, **unet_kwargs
        )

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this (2^(levels-1)); pad inputs to it (e.g. 8 for builtin64)."""
        return next(m.size_multiple for m in self.children() if hasattr(m, "size_multiple"))

    def compute_dtype(self, x: torch.Tensor) -> torch.dtype:
        """float16/bfloat16 on CUDA when use_fp16 is set; bfloat16 on CPU when cpu_bf16 is set; else float32."""
        if x.device.type == "cuda" and self.use_fp16:
            return _HALF[self.fp16_dtype]
        if x.device.type == "cpu" and self.cpu_bf16:
            return torch.bfloat16
        return torch.float32

    def labels(self, class_labels: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        """Normalise labels to float32 one-hot (B, label_dim) (or None for unconditional models)."""
        if self.label_dim == 0:
            return None
        if class_labels is None:
            return torch.zeros(1, self.label_dim, device=x.device)
        if not class_labels.is_floating_point():
            if class_labels.min() < 0 or class_labels.max() >= self.label_dim:
                raise ValueError(
                    f"class indices must be in [0, {self.label_dim}), got {class_labels.tolist()}"
                )
            class_labels = nn.functional.one_hot(class_labels.long().reshape(-1), self.label_dim)
        return class_labels.to(device=x.device, dtype=torch.float32).reshape(-1, self.label_dim)

    def encode_pair(self, x, sigma, cond_x, cond_sigma, class_labels):
        """Run `enc` on (c_in(sigma) x, c_noise(sigma)) and `ctrl` on (c_in(cond_sigma) cond_x, c_noise(cond_sigma)).

        Returns (x as float32, (ctrl bottleneck, ctrl skips), (enc bottleneck, enc skips), one-hot labels).
        """
        x, cond_x = x.to(torch.float32), cond_x.to(torch.float32)
        if cond_x.shape != x.shape:
            raise ValueError(
                f"condition shape {tuple(cond_x.shape)} differs from input shape {tuple(x.shape)}"
            )
        dtype, labels = self.compute_dtype(x), self.labels(class_labels, x)
        _, _, c_in_c, c_noise_c = edm_coefficients(sigma_tensor(cond_sigma, x), self.sigma_data)
        ctrl = self.ctrl((c_in_c * cond_x).to(dtype), c_noise_c, labels)
        _, _, c_in, c_noise = edm_coefficients(sigma_tensor(sigma, x), self.sigma_data)
        return x, ctrl, self.enc((c_in * x).to(dtype), c_noise, labels), labels


class Precond(_PrecondBase):
    """Teacher denoiser D(x, sigma) = c_skip x + c_out F(c_in x, c_noise) with a log-variance head (§2.3).

    Holds `unet` (UNet), `logvar_fourier` (MPFourier(logvar_channels)) and `logvar_linear` (MPConv, 128 -> 1).
    Keyword arguments: use_fp16 (False; honoured on CUDA only), fp16_dtype ('float16' or 'bfloat16'),
    sigma_data (0.5), logvar_channels (128); the rest go to UNet (model_channels, channel_mult, num_blocks, ...).
    """

    def __init__(
        self, img_resolution: int, img_channels: int, label_dim: int = 0, logvar_channels: int = 128, **kwargs
    ) -> None:
        super().__init__()
        self.unet = UNet(**self._init_common(img_resolution, img_channels, label_dim, **kwargs))
        self.logvar_fourier = MPFourier(logvar_channels)
        self.logvar_linear = MPConv(logvar_channels, 1, kernel=[])

    def forward(
        self,
        x: torch.Tensor,
        sigma: float | torch.Tensor,
        class_labels: torch.Tensor | None = None,
        return_logvar: bool = False,
    ):
        """E[x0 | x_sigma = x] as float32 (B, C, H, W); with return_logvar also u(sigma) of shape (B, 1, 1, 1)."""
        x = x.to(torch.float32)
        sigma = sigma_tensor(sigma, x)
        c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, self.sigma_data)
        f = self.unet((c_in * x).to(self.compute_dtype(x)), c_noise, self.labels(class_labels, x))
        d = c_skip * x + c_out * f.to(torch.float32)
        if return_logvar:
            return d, self.logvar_linear(self.logvar_fourier(c_noise)).reshape(-1, 1, 1, 1)
        return d


class PrecondCondition(_PrecondBase):
    """ControlNet-style conditional EDM2 denoiser D(x, sigma | cond_x, cond_sigma) (§2.4).

    Sub-networks `ctrl` (UNetEncoder on the condition), `enc` (UNetEncoder on the main input) and `dec`
    (UNetDecoder with the 1 + n_skips mixing weights in [0, 1], starting at 0), plus `logvar_fourier` /
    `logvar_linear`. Used for both the generator network and the auxiliary score model.
    Takes the same arguments as Precond.
    """

    def __init__(
        self, img_resolution: int, img_channels: int, label_dim: int = 0, logvar_channels: int = 128, **kwargs
    ) -> None:
        super().__init__()
        kw = self._init_common(img_resolution, img_channels, label_dim, **kwargs)
        self.ctrl = UNetEncoder(**kw)
        self.enc = UNetEncoder(**kw)
        self.dec = UNetDecoder(**kw, has_controlnet=True)
        self.logvar_fourier = MPFourier(logvar_channels)
        self.logvar_linear = MPConv(logvar_channels, 1, kernel=[])

    def forward(
        self,
        x: torch.Tensor,
        sigma: float | torch.Tensor,
        cond_x: torch.Tensor,
        cond_sigma: float | torch.Tensor,
        class_labels: torch.Tensor | None = None,
        return_logvar: bool = False,
    ):
        """Denoised estimate (B, C, H, W) float32; with return_logvar also u(sigma) from the main-branch c_noise."""
        x, (ctrl_x, ctrl_skips), (enc_x, enc_skips), labels = self.encode_pair(
            x, sigma, cond_x, cond_sigma, class_labels
        )
        c_skip, c_out, _, c_noise = edm_coefficients(sigma_tensor(sigma, x), self.sigma_data)
        f = self.dec(enc_x, enc_skips, c_noise, labels, additional_x=ctrl_x, additional_skips=ctrl_skips)
        d = c_skip * x + c_out * f.to(torch.float32)
        if return_logvar:
            return d, self.logvar_linear(self.logvar_fourier(c_noise)).reshape(-1, 1, 1, 1)
        return d


class GenerativeDenoiser(nn.Module):
    """G(y, sigma) = PrecondCondition(y + sqrt(sigma_hat^2 - sigma^2) z, sigma_hat | y, sigma), sigma_hat =
    (1 + gamma) sigma, z ~ N(0, I) fresh per call (§2.5): one sample of q(x0 | y_sigma = y).

    Args:
        model: the PrecondCondition (attribute name `model`, as in the published pickles).
        gamma: stochasticity, > 0 (default 0.414, sigma_hat ~ sqrt(2) sigma).
        init_sigma: noise level of pure-noise starts for unconditional generation (default 80).
    """

    def __init__(self, model: PrecondCondition, gamma: float = 0.414, init_sigma: float = 80.0) -> None:
        super().__init__()
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.model = model
        self.gamma = float(gamma)
        self.init_sigma = float(init_sigma)
        self.img_resolution = model.img_resolution
        self.img_channels = model.img_channels
        self.label_dim = model.label_dim
        self.sigma_data = model.sigma_data

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this (see PrecondCondition.size_multiple)."""
        return self.model.size_multiple

    def forward(
        self,
        y: torch.Tensor,
        sigma: float | torch.Tensor,
        generator: Generators = None,
        class_labels: torch.Tensor | None = None,
        return_logvar: bool = False,
        noise: torch.Tensor | None = None,
    ):
        """One sample x0 ~ G(y, sigma) (B, C, H, W); `noise` overrides the draw of z (same shape as y).

        With return_logvar also u(sigma_hat) (B, 1, 1, 1).
        """
        y = y.to(torch.float32)
        sigma = sigma_tensor(sigma, y)
        z = randn_like(y, generator) if noise is None else noise.to(y)
        if z.shape != y.shape:
            raise ValueError(f"noise shape {tuple(z.shape)} differs from y shape {tuple(y.shape)}")
        sigma_hat = sigma * (1 + self.gamma)
        y_hat = y + z * sigma * math.sqrt((1 + self.gamma) ** 2 - 1)  # = sqrt(sigma_hat^2 - sigma^2) z
        return self.model(y_hat, sigma_hat, y, sigma, class_labels=class_labels, return_logvar=return_logvar)
