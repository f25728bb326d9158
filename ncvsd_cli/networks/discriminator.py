"""Discriminator C_psi (docs/method.md §2.6): two UNet encoders, mp_cat of their bottlenecks, global average pool and an
MPConv linear layer 2*C -> 1 (`out_conv`) that returns logits (the sigmoid is folded into the BCE loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ncvsd_cli.networks.edm2_layers import MPConv, mp_cat
from ncvsd_cli.networks.precond import _PrecondBase
from ncvsd_cli.networks.unet import UNetEncoder


class Discriminator(_PrecondBase):
    """C(x_t, t | y, sigma): `ctrl` encodes (c_in(sigma) y, c_noise(sigma)), `enc` encodes (c_in(t) x_t, c_noise(t)).

    Takes the same architecture kwargs as PrecondCondition (model_channels, channel_mult, ...).
    """

    def __init__(self, img_resolution: int, img_channels: int, label_dim: int = 0, **kwargs) -> None:
        super().__init__()
        kwargs.pop("logvar_channels", None)  # shared arch dicts may carry it; there is no log-variance head
        kw = self._init_common(img_resolution, img_channels, label_dim, **kwargs)
        self.ctrl = UNetEncoder(**kw)
        self.enc = UNetEncoder(**kw)
        self.out_conv = MPConv(2 * self.enc.cblock[-1], 1, kernel=[])

    def forward(
        self,
        x_t: torch.Tensor,
        t: float | torch.Tensor,
        y: torch.Tensor,
        sigma: float | torch.Tensor,
        class_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B,) float32 for the pair (x_t at noise t, condition y at noise sigma)."""
        _, (ctrl_x, _), (enc_x, _), _ = self.encode_pair(x_t, t, y, sigma, class_labels)
        h = F.adaptive_avg_pool2d(mp_cat(ctrl_x, enc_x), 1).flatten(1)
        return self.out_conv(h).to(torch.float32).reshape(-1)
