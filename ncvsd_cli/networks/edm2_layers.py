"""EDM2 magnitude-preserving (MP) building blocks (docs/method.md §2.1-§2.2).

Written from the description of Karras et al., "Analyzing and Improving the Training Dynamics of Diffusion Models"
(EDM2). Parameter names (`weight`, `freqs`, `phases`, `emb_gain`, `conv_res0`, `emb_linear`, `conv_res1`,
`conv_skip`, `attn_qkv`, `attn_proj`) equal the published pickles so that their weights load strictly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def normalize(x: torch.Tensor, dim: int | Sequence[int] | None = None, eps: float = 1e-4) -> torch.Tensor:
    """Scale `x` to unit RMS over `dim` (default: every dimension but the first); §2.1 normalize(x).

    The norm is computed in float32 and divided by sqrt(n_total / n_norm), so the result has RMS 1, not norm 1.
    """
    if dim is None:
        dim = list(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = eps + norm * math.sqrt(norm.numel() / x.numel())
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """Magnitude-preserving SiLU: silu(x) / 0.596 (§2.1)."""
    return F.silu(x) / 0.596


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor = 0.5) -> torch.Tensor:
    """Magnitude-preserving blend ((1-t) a + t b) / sqrt((1-t)^2 + t^2), t in [0, 1] (§2.1); t may be a tensor."""
    if isinstance(t, torch.Tensor):
        return a.lerp(b, t.to(a.dtype)) / torch.sqrt((1 - t) ** 2 + t**2).to(a.dtype)
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


def mp_cat(a: torch.Tensor, b: torch.Tensor, dim: int = 1, t: float = 0.5) -> torch.Tensor:
    """Magnitude-preserving concatenation along `dim` with balance t in [0, 1] (§2.1)."""
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t**2))
    return torch.cat([a * (c * (1 - t) / math.sqrt(na)), b * (c * t / math.sqrt(nb))], dim=dim)


def resample(x: torch.Tensor, mode: str = "keep", f: Sequence[float] = (1, 1)) -> torch.Tensor:
    """2x down ('down', box filter) or up ('up', nearest) resampling with the separable filter `f`, or 'keep'.

    Implemented as a depthwise (transposed) convolution with the normalised outer product of `f` (§2.1).
    """
    if mode == "keep":
        return x
    if mode not in ("down", "up"):
        raise ValueError(f"resample mode must be 'keep', 'down' or 'up', got {mode!r}")
    if len(f) % 2 != 0:
        raise ValueError(f"resample filter must have an even length, got {list(f)}")
    k = torch.as_tensor(f, dtype=torch.float32, device=x.device)
    k = k / k.sum()
    k = torch.outer(k, k)[None, None].to(x.dtype).repeat(x.shape[1], 1, 1, 1)
    pad = (len(f) - 1) // 2
    if mode == "down":
        return F.conv2d(x, k, groups=x.shape[1], stride=2, padding=pad)
    return F.conv_transpose2d(x, k * 4, groups=x.shape[1], stride=2, padding=pad)


class MPFourier(nn.Module):
    """Fourier features sqrt(2) cos(f x + phi) with fixed f ~ 2 pi N(0, 1), phi ~ 2 pi U(0, 1) (§2.1).

    Buffers `freqs` and `phases` are stored premultiplied by 2 pi, as in the published weights.
    """

    def __init__(self, num_channels: int, bandwidth: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(num_channels) * bandwidth)
        self.register_buffer("phases", 2 * math.pi * torch.rand(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, num_channels), computed in float32 and returned in x's dtype."""
        y = torch.outer(x.to(torch.float32), self.freqs.to(torch.float32)) + self.phases.to(torch.float32)
        return (torch.cos(y) * math.sqrt(2)).to(x.dtype)


class MPConv(nn.Module):
    """Magnitude-preserving convolution (kernel (k, k)) or linear layer (kernel ()) without bias (§2.1).

    The effective weight is normalize(W) * gain / sqrt(fan_in). In training mode the stored weight is first
    overwritten in place (under no_grad) by normalize(W): forced weight normalisation (EDM2 Eq. 66). It is skipped
    when W has not been modified since the last normalisation (tracked by its version counter), so a module may be
    called several times before one backward pass (e.g. a discriminator on real and fake images) without autograd
    complaining about an in-place change; the effective weight is the same either way. Set `force_wn = False`
    (`set_forced_weight_norm`) to disable it altogether; `normalize_weights_` applies it explicitly.

    Outside training, when no gradient can reach W (eval mode, W frozen or grad disabled) and the gain is a number,
    the effective weight is cached until W changes (same version counter): inference then skips recomputing it on
    every call (17 ms of each builtin64 generator call on the 2-core build machine, about a quarter of a 64 px call).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int]) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.force_wn = True
        self._wn_state: tuple[int, int] | None = (
            None  # (data_ptr, version) of W right after the last normalisation
        )
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))
        self._w_cache: tuple[tuple, torch.Tensor] | None = None  # (key, effective weight), see the class docstring

    @torch.no_grad()
    def normalize_weight_(self) -> None:
        """Forced weight normalisation: W <- normalize(W), in place."""
        self.weight.copy_(normalize(self.weight.to(torch.float32)))
        self._wn_state = (self.weight.data_ptr(), self.weight._version)

    def forward(self, x: torch.Tensor, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        """Apply the layer; x is (B, C_in) for a linear layer or (B, C_in, H, W) for a convolution ('same' pad)."""
        if (
            self.training
            and self.force_wn
            and (self.weight.data_ptr(), self.weight._version) != self._wn_state
        ):
            self.normalize_weight_()
        w = self._effective_weight(gain, x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, padding=w.shape[-1] // 2)

    def _effective_weight(self, gain: float | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """normalize(W) * gain / sqrt(fan_in) in `dtype`, from the cache when it is valid (class docstring)."""
        frozen = not (torch.is_grad_enabled() and self.weight.requires_grad)
        key = None
        if not self.training and frozen and isinstance(gain, (int, float)) and not self.weight.is_inference():
            key = (self.weight.data_ptr(), self.weight._version, self.weight.device, dtype, float(gain),
                   torch.is_inference_mode_enabled())
            if self._w_cache is not None and self._w_cache[0] == key:
                return self._w_cache[1]
        w = normalize(self.weight.to(torch.float32))
        w = (w * (gain / math.sqrt(w[0].numel()))).to(dtype)
        self._w_cache = (key, w.detach()) if key is not None else None
        return w


def set_forced_weight_norm(module: nn.Module, enabled: bool) -> None:
    """Turn in-forward forced weight normalisation on or off for every MPConv inside `module`."""
    for m in module.modules():
        if isinstance(m, MPConv):
            m.force_wn = enabled


def normalize_weights_(module: nn.Module) -> None:
    """Apply forced weight normalisation once to every MPConv inside `module` (in place, no grad)."""
    for m in module.modules():
        if isinstance(m, MPConv):
            m.normalize_weight_()


class Block(nn.Module):
    """EDM2 residual block, encoder ('enc') or decoder ('dec') flavour, optional self-attention (§2.2).

    Args:
        in_channels, out_channels, emb_channels: widths of input, output and embedding.
        flavor: 'enc' (1x1 skip conv + pixel norm before the residual branch) or 'dec' (skip conv after it).
        resample_mode: 'keep', 'down' or 'up' (applied first).
        attention: add multi-head self-attention with out_channels // channels_per_head heads
            (no attention if that is 0).
        dropout: dropout probability in the residual branch (0 in all presets).
        res_balance, attn_balance: mp_sum balances (0.3); clip_act: clip outputs to [-clip_act, clip_act]
            (256; None = no clipping).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int,
        flavor: str = "enc",
        resample_mode: str = "keep",
        resample_filter: Sequence[float] = (1, 1),
        attention: bool = False,
        channels_per_head: int = 64,
        dropout: float = 0.0,
        res_balance: float = 0.3,
        attn_balance: float = 0.3,
        clip_act: float | None = 256,
    ) -> None:
        super().__init__()
        if flavor not in ("enc", "dec"):
            raise ValueError(f"Block flavor must be 'enc' or 'dec', got {flavor!r}")
        self.out_channels = out_channels
        self.flavor = flavor
        self.resample_mode = resample_mode
        self.resample_filter = list(resample_filter)
        self.num_heads = out_channels // channels_per_head if attention else 0
        self.dropout = dropout
        self.res_balance = res_balance
        self.attn_balance = attn_balance
        self.clip_act = clip_act
        self.emb_gain = nn.Parameter(torch.zeros([]))
        self.conv_res0 = MPConv(out_channels if flavor == "enc" else in_channels, out_channels, kernel=[3, 3])
        self.emb_linear = MPConv(emb_channels, out_channels, kernel=[])
        self.conv_res1 = MPConv(out_channels, out_channels, kernel=[3, 3])
        self.conv_skip = (
            MPConv(in_channels, out_channels, kernel=[1, 1]) if in_channels != out_channels else None
        )
        self.attn_qkv = MPConv(out_channels, out_channels * 3, kernel=[1, 1]) if self.num_heads else None
        self.attn_proj = MPConv(out_channels, out_channels, kernel=[1, 1]) if self.num_heads else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W); emb: (B, emb_channels) -> (B, out_channels, H', W')."""
        x = resample(x, self.resample_mode, self.resample_filter)
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm (§2.2 step 2)
        h = self.conv_res0(mp_silu(x))
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        h = mp_silu(h * c[:, :, None, None].to(h.dtype))
        if self.training and self.dropout:
            h = F.dropout(h, p=self.dropout)
        h = self.conv_res1(h)
        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, h, self.res_balance)
        if self.num_heads:
            x = mp_sum(x, self._attention(x), self.attn_balance)
        if self.clip_act is not None:
            x = x.clamp(-self.clip_act, self.clip_act)
        return x

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        """Cosine self-attention over all pixels (§2.2 step 6): q, k, v pixel-normalised per head, then
        softmax(q kᵀ / sqrt(C/heads)) v, which is exactly PyTorch's scaled_dot_product_attention. Its fused kernels
        (flash / memory-efficient on CUDA, flash on CPU) never hold the (HW, HW) weight matrix, so memory stays
        linear in the number of pixels."""
        b, c, hh, ww = x.shape
        qkv = self.attn_qkv(x).reshape(b, self.num_heads, -1, 3, hh * ww)
        # each (B, heads, HW, C/heads), contiguous: the fused kernels need unit stride along C/heads
        q, k, v = (t.contiguous() for t in normalize(qkv, dim=2).transpose(2, 4).unbind(3))
        y = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(C/heads)
        # channel = head * C/heads + c, as a channels-last (B, C, H, W) view
        return self.attn_proj(y.transpose(1, 2).reshape(b, hh, ww, c).permute(0, 3, 1, 2))
