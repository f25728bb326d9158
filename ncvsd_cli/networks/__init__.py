"""Networks: EDM2 magnitude-preserving UNet, teacher Precond, PrecondCondition, GenerativeDenoiser, Discriminator.

Importing this package imports torch (keep it out of module-level imports of ncvsd_cli/cli/*).
"""

from ncvsd_cli.networks.build import build_network, init_from_teacher, network_config
from ncvsd_cli.networks.discriminator import Discriminator
from ncvsd_cli.networks.edm2_layers import normalize_weights_, set_forced_weight_norm
from ncvsd_cli.networks.precond import GenerativeDenoiser, Precond, PrecondCondition
from ncvsd_cli.networks.presets import KINDS, PRESETS

__all__ = [
    "KINDS",
    "PRESETS",
    "Discriminator",
    "GenerativeDenoiser",
    "Precond",
    "PrecondCondition",
    "build_network",
    "init_from_teacher",
    "network_config",
    "normalize_weights_",
    "set_forced_weight_norm",
]
