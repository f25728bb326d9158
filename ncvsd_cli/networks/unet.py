"""EDM2 UNet (teacher) and its split into UNetEncoder / UNetDecoder (docs/method.md §2.3, §2.4).

Module names follow the published pickles: `emb_fourier`, `emb_noise`, `emb_label`, `enc.<r>x<r>_conv`,
`enc.<r>x<r>_down`, `enc.<r>x<r>_block<i>`, `dec.<r>x<r>_in0/_in1/_up/_block<i>`, `out_conv`, `out_gain`, and on a
ControlNet decoder `additional_x_weight` [1] and `additional_skips_weight` [n_skips].
The names contain the *training* resolution, but every layer is convolutional: the networks run on any H, W that
are multiples of 2^(levels-1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ncvsd_cli.networks.edm2_layers import Block, MPConv, MPFourier, mp_cat, mp_silu, mp_sum


class _Embedding(nn.Module):
    """Base class holding the noise/label embedding `emb = mp_silu(mp_sum(noise, label, label_balance))` (§2.3).

    Subclasses call `_init_embedding` so that the modules sit directly on them (`emb_fourier`, `emb_noise`,
    `emb_label`), matching the published parameter names.
    """

    def _init_embedding(
        self,
        img_resolution: int,
        img_channels: int,
        label_dim: int,
        model_channels: int = 192,
        channel_mult: Sequence[int] = (1, 2, 3, 4),
        channel_mult_noise: int | None = None,
        channel_mult_emb: int | None = None,
        num_blocks: int = 3,
        attn_resolutions: Sequence[int] = (16, 8),
        label_balance: float = 0.5,
        concat_balance: float = 0.5,
        **block_kwargs,
    ) -> dict:
        """Store the architecture, create the embedding modules and return the remaining Block kwargs."""
        if (
            min(img_resolution, img_channels, model_channels, num_blocks) <= 0
            or label_dim < 0
            or not channel_mult
        ):
            raise ValueError(
                f"bad UNet size: img_resolution={img_resolution}, img_channels={img_channels}, label_dim={label_dim}, "
                f"model_channels={model_channels}, channel_mult={list(channel_mult)}, num_blocks={num_blocks}"
            )
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.label_dim = label_dim
        self.num_blocks = num_blocks
        self.attn_resolutions = list(attn_resolutions)
        self.cblock = [model_channels * m for m in channel_mult]
        cnoise = model_channels * channel_mult_noise if channel_mult_noise is not None else self.cblock[0]
        self.cemb = model_channels * channel_mult_emb if channel_mult_emb is not None else max(self.cblock)
        self.label_balance = label_balance
        self.concat_balance = concat_balance
        self.emb_fourier = MPFourier(cnoise)
        self.emb_noise = MPConv(cnoise, self.cemb, kernel=[])
        self.emb_label = MPConv(label_dim, self.cemb, kernel=[]) if label_dim else None
        return block_kwargs

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (2^(levels-1))."""
        return 2 ** (len(self.cblock) - 1)

    def embed(self, c_noise: torch.Tensor, class_labels: torch.Tensor | None) -> torch.Tensor:
        """(B,) noise labels and (B, label_dim) one-hot labels (or None) -> (B, c_emb) embedding."""
        emb = self.emb_noise(self.emb_fourier(c_noise))
        if self.emb_label is not None:
            if class_labels is None:
                class_labels = torch.zeros(1, self.label_dim, device=emb.device)
            lab = self.emb_label((class_labels * math.sqrt(class_labels.shape[1])).to(emb.dtype))
            emb = mp_sum(emb, lab, self.label_balance)
        return mp_silu(emb)


def _build_encoder(
    res: int, img_channels: int, cblock: list[int], cemb: int, num_blocks: int, attn: Sequence[int], bkw: dict
) -> tuple[nn.ModuleDict, list[int]]:
    """Encoder blocks of §2.3 and the channel count of every skip they push (1 + nb + (L-1)(1 + nb) skips)."""
    enc = nn.ModuleDict()
    skips: list[int] = []
    cout = img_channels + 1  # + constant-ones channel
    for level, channels in enumerate(cblock):
        r = res >> level
        if level == 0:
            enc[f"{r}x{r}_conv"] = MPConv(cout, channels, kernel=[3, 3])
            cout = channels
        else:
            enc[f"{r}x{r}_down"] = Block(cout, cout, cemb, flavor="enc", resample_mode="down", **bkw)
        skips.append(cout)
        for idx in range(num_blocks):
            enc[f"{r}x{r}_block{idx}"] = Block(cout, channels, cemb, flavor="enc", attention=r in attn, **bkw)
            cout = channels
            skips.append(cout)
    return enc, skips


def _skip_channels(cblock: list[int], num_blocks: int) -> list[int]:
    """Channel count of every encoder output, in push order (same as `_build_encoder`)."""
    out = [cblock[0]] * (1 + num_blocks)
    for level in range(1, len(cblock)):
        out += [cblock[level - 1]] + [cblock[level]] * num_blocks
    return out


def _build_decoder(
    res: int, cblock: list[int], cemb: int, num_blocks: int, attn: Sequence[int], skips: list[int], bkw: dict
) -> nn.ModuleDict:
    """Decoder blocks of §2.3: in0 (attention) + in1 at the bottleneck, 'up' elsewhere, nb+1 skip blocks each."""
    dec = nn.ModuleDict()
    skips = list(skips)
    cout = cblock[-1]
    for level in reversed(range(len(cblock))):
        r, channels = res >> level, cblock[level]
        if level == len(cblock) - 1:
            dec[f"{r}x{r}_in0"] = Block(cout, cout, cemb, flavor="dec", attention=True, **bkw)
            dec[f"{r}x{r}_in1"] = Block(cout, cout, cemb, flavor="dec", **bkw)
        else:
            dec[f"{r}x{r}_up"] = Block(cout, cout, cemb, flavor="dec", resample_mode="up", **bkw)
        for idx in range(num_blocks + 1):
            cin = cout + skips.pop()
            dec[f"{r}x{r}_block{idx}"] = Block(cin, channels, cemb, flavor="dec", attention=r in attn, **bkw)
            cout = channels
    return dec


def _run_encoder(
    enc: nn.ModuleDict, x: torch.Tensor, emb: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    skips = []
    for name, block in enc.items():
        x = block(x) if name.endswith("_conv") else block(x, emb)
        skips.append(x)
    return x, skips


def _run_decoder(
    dec: nn.ModuleDict, x: torch.Tensor, skips: list[torch.Tensor], emb, concat_balance
) -> torch.Tensor:
    skips = list(skips)
    for name, block in dec.items():
        if "_block" in name:
            x = mp_cat(x, skips.pop(), t=concat_balance)
        x = block(x, emb)
    return x


def _check_size(x: torch.Tensor, multiple: int, channels: int) -> None:
    if x.ndim != 4 or x.shape[-1] % multiple or x.shape[-2] % multiple:
        raise ValueError(
            f"network input must be (B, C, H, W) with H and W multiples of {multiple}, got shape {tuple(x.shape)}; "
            "ncvsd_cli.restore.restore_image pads any size (or pad the operator: operators.padding.pad_operator)"
        )
    if x.shape[1] != channels:
        raise ValueError(f"network input has {x.shape[1]} channels, the network {channels}; "
                         "ncvsd_cli.restore.restore_image restores grey images with a colour network")


_UNET_DOC_ARGS = """
    Args:
        img_resolution: training resolution (used only in module names); img_channels: image channels;
        label_dim: number of classes (0 = unconditional); model_channels: base width (e.g. 192);
        channel_mult: per-level width multipliers (default [1,2,3,4]); channel_mult_noise / channel_mult_emb:
        Fourier / embedding width multipliers (None = cblock[0] / max(cblock)); num_blocks: blocks per level (3);
        attn_resolutions: resolutions with attention ([16, 8]); label_balance, concat_balance: 0.5;
        **block_kwargs: Block options (channels_per_head, dropout, res_balance, attn_balance, clip_act).
"""


class UNet(_Embedding):
    __doc__ = "The EDM2 UNet F(x, c_noise, labels) of §2.3 (the teacher's `unet`).\n" + _UNET_DOC_ARGS

    def __init__(self, img_resolution: int, img_channels: int, label_dim: int, **arch) -> None:
        super().__init__()
        bkw = self._init_embedding(img_resolution, img_channels, label_dim, **arch)
        self.out_gain = nn.Parameter(torch.zeros([]))
        args = (self.cblock, self.cemb, self.num_blocks, self.attn_resolutions)
        self.enc, skips = _build_encoder(img_resolution, img_channels, *args, bkw)
        self.dec = _build_decoder(img_resolution, *args, skips, bkw)
        self.out_conv = MPConv(self.cblock[0], img_channels, kernel=[3, 3])

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, class_labels: torch.Tensor | None
    ) -> torch.Tensor:
        """x: (B, C, H, W) preconditioned input; c_noise: (B,); class_labels: (B, label_dim) or None."""
        _check_size(x, self.size_multiple, self.img_channels)
        emb = self.embed(c_noise, class_labels)
        x, skips = _run_encoder(self.enc, x, emb)
        x = _run_decoder(self.dec, x, skips, emb, self.concat_balance)
        return self.out_conv(x, gain=self.out_gain)


class UNetEncoder(_Embedding):
    __doc__ = "Encoder half of the UNet with its own embedding (`ctrl` / `enc`, §2.4).\n" + _UNET_DOC_ARGS

    def __init__(self, img_resolution: int, img_channels: int, label_dim: int, **arch) -> None:
        super().__init__()
        bkw = self._init_embedding(img_resolution, img_channels, label_dim, **arch)
        args = (self.cblock, self.cemb, self.num_blocks, self.attn_resolutions)
        self.enc, self.skip_channels = _build_encoder(img_resolution, img_channels, *args, bkw)

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, class_labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns the bottleneck (B, cblock[-1], H/2^(L-1), W/2^(L-1)) and the list of all encoder outputs."""
        _check_size(x, self.size_multiple, self.img_channels)
        return _run_encoder(self.enc, x, self.embed(c_noise, class_labels))


class UNetDecoder(_Embedding):
    __doc__ = (
        "Decoder half of the UNet with its own embedding, out_conv and out_gain (§2.3, §2.4).\n"
        "With has_controlnet=True it holds the ControlNet mixing weights `additional_x_weight` [1] and\n"
        "`additional_skips_weight` [n_skips], initialised to 0 and clipped to [0, 1] (in place when training).\n"
        + _UNET_DOC_ARGS
    )

    def __init__(
        self, img_resolution: int, img_channels: int, label_dim: int, has_controlnet: bool = False, **arch
    ) -> None:
        super().__init__()
        bkw = self._init_embedding(img_resolution, img_channels, label_dim, **arch)
        self.out_gain = nn.Parameter(torch.zeros([]))
        skips = _skip_channels(self.cblock, self.num_blocks)
        self.num_skips = len(skips)
        if has_controlnet:
            self.additional_x_weight = nn.Parameter(torch.zeros(1))
            self.additional_skips_weight = nn.Parameter(torch.zeros(len(skips)))
        args = (self.cblock, self.cemb, self.num_blocks, self.attn_resolutions)
        self.dec = _build_decoder(img_resolution, *args, skips, bkw)
        self.out_conv = MPConv(self.cblock[0], img_channels, kernel=[3, 3])

    def _mixing(self, name: str) -> torch.Tensor:
        """Mixing weight clipped to [0, 1]; in training the stored value is clipped in place (§2.4 step 3) and used
        as it is, so that its gradient also flows at the bounds: the weights start at exactly 0, where clamp's
        gradient is 0 in recent PyTorch and the ControlNet branch would never engage."""
        w = getattr(self, name)
        if self.training:
            with torch.no_grad():
                w.clamp_(0, 1)
            return w
        return w.clamp(0, 1)

    def forward(
        self,
        x: torch.Tensor,
        skips: list[torch.Tensor],
        c_noise: torch.Tensor,
        class_labels: torch.Tensor | None,
        additional_x: torch.Tensor | None = None,
        additional_skips: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Decode the bottleneck `x` with `skips`; ControlNet features are merged by learnable mp_sum first."""
        if len(skips) != self.num_skips:
            raise ValueError(f"decoder expects {self.num_skips} skips, got {len(skips)}")
        emb = self.embed(c_noise, class_labels)
        if additional_x is not None:
            x = mp_sum(x, additional_x, self._mixing("additional_x_weight")[0])
        if additional_skips is not None:
            w = self._mixing("additional_skips_weight")
            skips = [mp_sum(s, a, w[i]) for i, (s, a) in enumerate(zip(skips, additional_skips, strict=True))]
        x = _run_decoder(self.dec, x, skips, emb, self.concat_balance)
        return self.out_conv(x, gain=self.out_gain)
