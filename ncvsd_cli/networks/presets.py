"""Architecture presets as plain data (docs/method.md §1.10, §2.3, §7.8).

Each entry holds the constructor arguments of Precond / PrecondCondition / Discriminator: `img_resolution`,
`img_channels`, `label_dim` and the UNet arguments. Parameter counts (teacher / generator) are checked in
tests/test_networks.py:

| preset      | teacher     | generator   | discriminator | notes                                     |
|-------------|-------------|-------------|---------------|-------------------------------------------|
| ffhq256-xs  | 112,730,149 | 146,223,685 | 66.9 M        | authors' FFHQ-256; attention: 32x32 'in0' |
| img64-s     | 280.2 M     | 368.2 M     | 174.1 M       | EDM2 ImageNet-64 S, 1000 classes          |
| img64-m / l | 497.8 / 777.5 M | 653.5 / 1020.1 M | 308.8 / 481.8 M | EDM2 M / L                     |
| img64-xl    | 1119.3 M    | 1468.0 M    | 693.2 M       | EDM2 XL                                   |
| builtin64   | 5,849,213   | 7,480,597   | 3,254,806     | default model: 64 px, CPU / one GPU       |
| photos128   | 8,568,964   | 11,134,242  | 5,122,588     | 128 px crops of `photos`, five levels     |
| tiny        | 181,371     | 217,283     | 70,854        | tests: 16 px, two levels, attn at 8x8     |
| tiny-cond   | 181,467     | 217,571     | 71,046        | tiny with 3 classes                       |

All networks are fully convolutional: they run at any H, W that are multiples of 2^(len(channel_mult) - 1)
(8 for the four-level presets, 2 for tiny), whatever the training resolution named in their module names.
"""

from __future__ import annotations

_EDM2 = {"img_channels": 3, "channel_mult": [1, 2, 3, 4], "num_blocks": 3, "attn_resolutions": [16, 8]}

PRESETS: dict[str, dict] = {
    # Authors' FFHQ-256 XS model: levels 256/128/64/32, so no block sits at 16 or 8 and the only
    # attention is the bottleneck 'in0' (§2.3, §7.8). attn_resolutions is kept as in their config.
    "ffhq256-xs": {**_EDM2, "img_resolution": 256, "label_dim": 0, "model_channels": 128},
    "img64-s": {**_EDM2, "img_resolution": 64, "label_dim": 1000, "model_channels": 192},
    "img64-m": {**_EDM2, "img_resolution": 64, "label_dim": 1000, "model_channels": 256},
    "img64-l": {**_EDM2, "img_resolution": 64, "label_dim": 1000, "model_channels": 320},
    "img64-xl": {**_EDM2, "img_resolution": 64, "label_dim": 1000, "model_channels": 384},
    # Default shipped model: 64 px, widths 32/64/96/128, 2 blocks per level, attention at 8x8 (2 heads of 64).
    "builtin64": {
        "img_resolution": 64,
        "img_channels": 3,
        "label_dim": 0,
        "model_channels": 32,
        "channel_mult": [1, 2, 3, 4],
        "num_blocks": 2,
        "attn_resolutions": [8],
        "channels_per_head": 64,
    },
    # Photo model: trained on 128 px crops (of a 1x / 0.5x pyramid) so that one crop spans up to 256 px of a
    # photo; a fifth level (widths 32/64/96/128/128) puts the bottleneck and its attention at 1/16 of the input
    # (16x16 tokens at 256 px, where builtin64 attends over 32x32), which widens the receptive field and keeps
    # a 256 px generator call about as fast as builtin64's on CPU.
    "photos128": {
        "img_resolution": 128,
        "img_channels": 3,
        "label_dim": 0,
        "model_channels": 32,
        "channel_mult": [1, 2, 3, 4, 4],
        "num_blocks": 2,
        "attn_resolutions": [8],
        "channels_per_head": 64,
    },
    # Test presets: tiny and fast on one CPU thread.
    "tiny": {
        "img_resolution": 16,
        "img_channels": 3,
        "label_dim": 0,
        "model_channels": 16,
        "channel_mult": [1, 2],
        "num_blocks": 1,
        "attn_resolutions": [8],
        "channels_per_head": 16,
    },
    "tiny-cond": {
        "img_resolution": 16,
        "img_channels": 3,
        "label_dim": 3,
        "model_channels": 16,
        "channel_mult": [1, 2],
        "num_blocks": 1,
        "attn_resolutions": [8],
        "channels_per_head": 16,
    },
}

#: Keys of a network config that live at its top level rather than inside "arch".
TOP_LEVEL_KEYS = ("img_resolution", "img_channels", "label_dim", "sigma_data", "gamma", "init_sigma")

KINDS = ("teacher", "generator", "score", "discriminator")
