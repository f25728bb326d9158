"""Network configs, construction and initialisation from a teacher (docs/method.md §1.9, §2).

A network config is a JSON-friendly dict:
    {"kind": "teacher" | "generator" | "score" | "discriminator", "preset": str | None,
     "arch": {UNet / Block kwargs, e.g. model_channels, channel_mult, num_blocks, attn_resolutions, ...},
     "img_resolution": int, "img_channels": int, "label_dim": int, "sigma_data": 0.5, "gamma": 0.414}
(optionally "init_sigma": 80.0 for generators). CKPT stores it in checkpoint metadata; `build_network` rebuilds it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ncvsd_cli.networks.discriminator import Discriminator
from ncvsd_cli.networks.precond import GenerativeDenoiser, Precond, PrecondCondition
from ncvsd_cli.networks.presets import KINDS, PRESETS, TOP_LEVEL_KEYS
from ncvsd_cli.networks.unet import UNetDecoder, UNetEncoder


def network_config(kind: str, preset: str, **overrides) -> dict:
    """Config for a network of `kind` built from PRESETS[preset]; overrides replace top-level or arch entries.

    Example: network_config("generator", "tiny", label_dim=3, num_blocks=2).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown network kind {kind!r}; expected one of {KINDS}")
    if preset not in PRESETS:
        raise ValueError(f"unknown network preset {preset!r} (--arch); available: {', '.join(sorted(PRESETS))}")
    flat = {"sigma_data": 0.5, "gamma": 0.414, **copy.deepcopy(PRESETS[preset]), **overrides}
    cfg = {"kind": kind, "preset": preset, "arch": {}}
    for key, value in flat.items():
        (cfg if key in TOP_LEVEL_KEYS else cfg["arch"])[key] = value
    return cfg


def build_network(config: dict) -> nn.Module:
    """Build (fresh weights) the network described by `config` (see module docstring).

    teacher -> Precond; generator -> GenerativeDenoiser(PrecondCondition); score -> PrecondCondition;
    discriminator -> Discriminator. Uses the current default device (e.g. `with torch.device("meta")`).
    """
    kind = config.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown network kind {kind!r}; expected one of {KINDS}")
    for key in ("img_resolution", "img_channels"):
        if key not in config:
            raise ValueError(f"network config lacks {key!r}: {config}")
    kwargs = dict(
        img_resolution=int(config["img_resolution"]),
        img_channels=int(config["img_channels"]),
        label_dim=int(config.get("label_dim", 0)),
        sigma_data=float(config.get("sigma_data", 0.5)),
        **config.get("arch", {}),
    )
    if kind == "teacher":
        return Precond(**kwargs)
    if kind == "discriminator":
        return Discriminator(**kwargs)
    model = PrecondCondition(**kwargs)
    if kind == "score":
        return model
    return GenerativeDenoiser(
        model, gamma=float(config.get("gamma", 0.414)), init_sigma=float(config.get("init_sigma", 80.0))
    )


#: Arch entries that say how a network runs, not what it is (an imported EDM2 network records use_fp16).
RUNTIME_KEYS = ("use_fp16", "fp16_dtype")


def architecture(config: dict) -> dict:
    """What makes two configs the same network for a weight copy, as one flat dict: sizes, data format and every
    arch kwarg with the constructors' defaults filled in (a preset's config and an imported one then compare
    equal), without the RUNTIME_KEYS; gamma and init_sigma count for generators only (the other kinds have none)."""
    import inspect

    from ncvsd_cli.networks.edm2_layers import Block
    from ncvsd_cli.networks.unet import _Embedding

    arch = {}
    for fn in (_Embedding._init_embedding, Block.__init__):
        arch |= {k: p.default for k, p in inspect.signature(fn).parameters.items()
                 if p.default is not inspect.Parameter.empty}
    arch |= {k: v for k, v in config.get("arch", {}).items() if k not in RUNTIME_KEYS}
    arch = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in arch.items()}
    top = {"img_resolution": config.get("img_resolution"), "img_channels": config.get("img_channels"),
           "label_dim": config.get("label_dim", 0), "sigma_data": config.get("sigma_data", 0.5)}
    if config.get("kind") == "generator":
        top |= {"gamma": config.get("gamma", 0.414), "init_sigma": config.get("init_sigma", 80.0)}
    return top | arch


@torch.no_grad()
def _copy_matching(dst: nn.Module, src: dict[str, torch.Tensor], fresh: tuple[str, ...] = ()) -> None:
    """Copy every tensor of `src` whose name exists in `dst`; every other dst tensor must be listed in `fresh`."""
    for name, tensor in dst.state_dict(keep_vars=True).items():
        if name not in src:
            if name not in fresh:
                raise ValueError(f"teacher has no tensor {name!r}: architectures differ")
            continue
        if tensor.shape != src[name].shape:
            raise ValueError(
                f"shape mismatch for {name!r}: {tuple(tensor.shape)} vs teacher {tuple(src[name].shape)}"
            )
        tensor.copy_(src[name])


def init_from_teacher(net: nn.Module, teacher: Precond) -> nn.Module:
    """Initialise `net` in place from a teacher Precond (docs/method.md §1.9) and return it.

    Generator / score model: `enc` and `ctrl` <- teacher encoder + embedding; `dec` <- teacher decoder + embedding
    + out_conv + out_gain; mixing weights set to 0; log-variance head left fresh.
    Discriminator: both encoders <- teacher encoder + embedding; `out_conv` left fresh.
    Raises ValueError when names or shapes do not match, TypeError for other kinds of networks.
    """
    if not isinstance(teacher, Precond):
        raise TypeError(f"teacher must be a Precond, got {type(teacher).__name__}")
    src = teacher.unet.state_dict()
    model = net.model if isinstance(net, GenerativeDenoiser) else net
    if isinstance(model, PrecondCondition):
        parts = (model.ctrl, model.enc, model.dec)
    elif isinstance(model, Discriminator):
        parts = (model.ctrl, model.enc)
    else:
        raise TypeError(f"cannot initialise a {type(net).__name__} from a teacher")
    for part in parts:
        assert isinstance(part, UNetEncoder | UNetDecoder)
        _copy_matching(part, src, fresh=("additional_x_weight", "additional_skips_weight"))
        if isinstance(part, UNetDecoder):
            with torch.no_grad():
                part.additional_x_weight.zero_()
                part.additional_skips_weight.zero_()
    return net


def network_multiple(config: dict[str, Any] | None) -> int:
    """What H and W must be multiples of: 2^(len(channel_mult) - 1) for the EDM2 UNet (networks/presets)."""
    if not config:
        return 1
    mult = (config.get("arch") or {}).get("channel_mult")
    return 2 ** (len(mult) - 1) if mult else 8
