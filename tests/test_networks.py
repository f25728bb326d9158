"""Tests of ncvsd_cli.networks: parameter counts and names of the published models (meta device), EDM2 MP
primitives, initialisation from a teacher (docs/method.md §1.9), size flexibility, labels and training mode."""

from __future__ import annotations

import math

import pytest
import torch

from ncvsd_cli.networks import (
    KINDS,
    PRESETS,
    Discriminator,
    GenerativeDenoiser,
    Precond,
    PrecondCondition,
    build_network,
    init_from_teacher,
    network_config,
)
from ncvsd_cli.networks.edm2_layers import MPConv, mp_cat, mp_silu, mp_sum, normalize, resample

SIGMAS = [0.002, 0.1, 1.0, 10.0, 80.0]


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def meta_net(kind: str, preset: str) -> torch.nn.Module:
    with torch.device("meta"):
        return build_network(network_config(kind, preset))


@torch.no_grad()
def random_teacher(preset: str = "tiny", seed: int = 0) -> Precond:
    """A teacher whose zero-initialised scalars (out_gain, emb_gain) are random, so outputs depend on everything."""
    torch.manual_seed(seed)
    teacher = build_network(network_config("teacher", preset))
    for name, p in teacher.named_parameters():
        if p.ndim == 0:
            p.copy_(torch.randn([]) * 0.5 + (1.0 if name.endswith("out_gain") else 0.0))
    return teacher.eval()


# ---------------------------------------------------------------- published architectures (docs/method.md §2.3, §9)


@pytest.mark.parametrize(
    "preset, kind, expected",
    [
        ("ffhq256-xs", "generator", 146_223_685),
        ("ffhq256-xs", "score", 146_223_685),
        ("ffhq256-xs", "teacher", 112_730_149),
    ],
)
def test_exact_parameter_counts(preset, kind, expected):
    assert n_params(meta_net(kind, preset)) == expected


@pytest.mark.parametrize(
    "preset, kind, millions",
    [
        ("img64-s", "generator", 368.2),
        ("img64-s", "teacher", 280.2),
        ("img64-s", "discriminator", 174.1),
        ("img64-m", "generator", 653.5),
        ("img64-l", "generator", 1020.1),
        ("img64-xl", "teacher", 1119.3),  # EDM2's table: 1119 M
        ("ffhq256-xs", "discriminator", 66.9),
    ],
)
def test_paper_parameter_counts(preset, kind, millions):
    assert round(n_params(meta_net(kind, preset)) / 1e6, 1) == millions


def test_generator_state_dict_names_and_shapes():
    sd = meta_net("generator", "ffhq256-xs").model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["ctrl.emb_fourier.freqs"] == (128,) and shapes["ctrl.emb_fourier.phases"] == (128,)
    assert shapes["enc.emb_noise.weight"] == (512, 128)
    assert shapes["enc.enc.256x256_conv.weight"] == (128, 4, 3, 3)
    assert shapes["enc.enc.128x128_down.conv_res0.weight"] == (128, 128, 3, 3)
    assert shapes["enc.enc.32x32_block0.conv_skip.weight"] == (512, 384, 1, 1)
    assert shapes["ctrl.enc.32x32_block0.conv_skip.weight"] == (512, 384, 1, 1)
    assert shapes["dec.dec.32x32_in0.attn_qkv.weight"] == (1536, 512, 1, 1)
    assert shapes["dec.dec.32x32_in0.attn_proj.weight"] == (512, 512, 1, 1)
    assert shapes["dec.dec.256x256_block3.emb_linear.weight"] == (128, 512)
    assert shapes["dec.out_conv.weight"] == (3, 128, 3, 3)
    assert shapes["dec.out_gain"] == () and shapes["dec.dec.32x32_in1.emb_gain"] == ()
    assert shapes["dec.additional_x_weight"] == (1,) and shapes["dec.additional_skips_weight"] == (16,)
    assert shapes["logvar_fourier.freqs"] == (128,) and shapes["logvar_linear.weight"] == (1, 128)
    # The only attention of ffhq256-xs is the bottleneck 'in0' (§7.8); encoders hold no out_gain / label embedding.
    assert [k for k in sd if "attn_qkv" in k] == ["dec.dec.32x32_in0.attn_qkv.weight"]
    assert not any(k.startswith(("enc.out_gain", "ctrl.out_gain")) or "emb_label" in k for k in sd)
    assert "dec.emb_noise.weight" in sd and "dec.dec.32x32_block0.emb_gain" in sd


def test_teacher_state_dict_names_and_shapes():
    sd = meta_net("teacher", "img64-s").state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["unet.emb_label.weight"] == (768, 1000)
    assert shapes["unet.enc.64x64_conv.weight"] == (192, 4, 3, 3)
    assert shapes["unet.enc.64x64_block0.conv_res0.weight"] == (192, 192, 3, 3)
    assert shapes["unet.dec.8x8_in0.attn_qkv.weight"] == (2304, 768, 1, 1)
    assert shapes["unet.dec.16x16_block3.attn_proj.weight"] == (576, 576, 1, 1)
    assert shapes["unet.out_conv.weight"] == (3, 192, 3, 3) and shapes["unet.out_gain"] == ()
    assert shapes["logvar_linear.weight"] == (1, 128)
    assert "unet.dec.8x8_in1.attn_qkv.weight" not in sd and "unet.dec.32x32_block0.attn_qkv.weight" not in sd


# ---------------------------------------------------------------- MP primitives (docs/method.md §2.1)


def test_mp_primitives_preserve_magnitude(rng):
    a, b = torch.randn(4, 64, 16, 16, generator=rng), torch.randn(4, 96, 16, 16, generator=rng)
    assert normalize(a * 7).square().mean(dim=(1, 2, 3)).allclose(torch.ones(4), atol=1e-3)
    assert abs(mp_sum(a, b[:, :64], 0.3).std().item() - 1) < 0.02
    assert abs(mp_sum(a, b[:, :64], torch.tensor(0.8)).std().item() - 1) < 0.02
    cat = mp_cat(a, b, t=0.3)
    assert cat.shape[1] == 160 and abs(cat.std().item() - 1) < 0.02
    assert abs(mp_silu(torch.randn(100_000, generator=rng)).square().mean().sqrt().item() - 1) < 0.02
    conv = MPConv(64, 32, kernel=[3, 3])
    assert abs(conv(a).std().item() - 1) < 0.1  # unit-variance white input -> unit-variance output


def test_resample_is_box_down_and_nearest_up(rng):
    x = torch.randn(2, 3, 8, 6, generator=rng)
    assert torch.allclose(resample(x, "down"), torch.nn.functional.avg_pool2d(x, 2), atol=1e-6)
    assert torch.allclose(resample(x, "up"), x.repeat_interleave(2, 2).repeat_interleave(2, 3), atol=1e-6)
    assert resample(x, "keep") is x
    with pytest.raises(ValueError, match="sideways"):
        resample(x, "sideways")


def test_forced_weight_norm_in_training_only():
    conv = MPConv(8, 4, kernel=[3, 3])
    with torch.no_grad():
        conv.weight.mul_(5)
    before = conv.weight.detach().clone()
    conv.eval()(torch.randn(1, 8, 5, 5))
    assert torch.equal(conv.weight, before)
    conv.train()(torch.randn(1, 8, 5, 5))
    rms = conv.weight.detach().flatten(1).square().mean(1).sqrt()
    assert torch.allclose(rms, torch.ones(4), atol=1e-3)


def test_forced_weight_norm_allows_two_calls_per_backward_and_follows_optimizer(rng):
    disc = build_network(network_config("discriminator", "tiny")).train()
    opt = torch.optim.SGD(disc.parameters(), lr=1.0)
    x = torch.randn(2, 3, 8, 8, generator=rng)
    conv = disc.enc.enc["16x16_conv"]
    for _ in range(2):  # real and fake through the same network, one backward (GAN discriminator step)
        (disc(x, 1.0, x, 2.0).sum() - disc(x * 2, 1.0, x, 2.0).sum()).backward()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            conv.weight.mul_(3)  # as a large optimizer step would
        disc(x, 1.0, x, 2.0)  # the next training forward renormalises the updated weights
        rms = conv.weight.detach().flatten(1).square().mean(1).sqrt()
        assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3)


# ---------------------------------------------------------------- initialisation from the teacher (docs/method.md §1.9)


@pytest.mark.parametrize("preset", ["tiny", "tiny-cond"])
@pytest.mark.parametrize("batched_sigma", [False, True])
def test_generator_at_init_equals_teacher_on_renoised_input(preset, batched_sigma, rng):
    teacher = random_teacher(preset)
    gen = init_from_teacher(build_network(network_config("generator", preset)), teacher).eval()
    y = torch.randn(len(SIGMAS), 3, 16, 16, generator=rng) * 0.5
    z = torch.randn(y.shape, generator=rng)
    labels = torch.eye(3)[[0, 1, 2, 0, 1]] if teacher.label_dim else None
    sig = torch.tensor(SIGMAS)
    with torch.no_grad():
        if batched_sigma:
            out, ref = gen(y, sig, class_labels=labels, noise=z), None
            sh = (1 + gen.gamma) * sig.view(-1, 1, 1, 1)
            ref = teacher(
                y + (sh**2 - sig.view(-1, 1, 1, 1) ** 2).sqrt() * z, sh.flatten(), class_labels=labels
            )
        else:
            out = torch.cat(
                [
                    gen(
                        y[i : i + 1],
                        s,
                        noise=z[i : i + 1],
                        class_labels=None if labels is None else labels[i : i + 1],
                    )
                    for i, s in enumerate(SIGMAS)
                ]
            )
            sh = [(1 + gen.gamma) * s for s in SIGMAS]
            ref = torch.cat(
                [
                    teacher(
                        y[i : i + 1] + math.sqrt(sh[i] ** 2 - s**2) * z[i : i + 1],
                        sh[i],
                        class_labels=None if labels is None else labels[i : i + 1],
                    )
                    for i, s in enumerate(SIGMAS)
                ]
            )
    assert (ref - teacher(y, sig, class_labels=labels)).abs().max() > 1e-3  # the re-noising matters
    assert torch.allclose(out, ref, atol=1e-5)


def test_score_model_ignores_condition_at_init(rng):
    teacher = random_teacher("tiny")
    score = init_from_teacher(build_network(network_config("score", "tiny")), teacher).eval()
    x = torch.randn(2, 3, 16, 16, generator=rng)
    c1, c2 = torch.randn(x.shape, generator=rng), torch.randn(x.shape, generator=rng) * 3
    with torch.no_grad():
        d1, d2, d0 = score(x, 0.7, c1, 0.3), score(x, 0.7, c2, 5.0), teacher(x, 0.7)
        with torch.no_grad():
            score.dec.additional_skips_weight.fill_(0.5)
        d3 = score(x, 0.7, c2, 5.0)
    assert torch.allclose(d1, d2, atol=1e-6) and torch.allclose(d1, d0, atol=1e-5)
    assert (d3 - d1).abs().max() > 1e-3  # once mixing weights move, the condition does matter


def test_discriminator_init_copies_both_encoders(rng):
    teacher = random_teacher("tiny")
    disc = build_network(network_config("discriminator", "tiny"))
    head = disc.out_conv.weight.detach().clone()
    init_from_teacher(disc, teacher)
    src = teacher.unet.state_dict()
    for enc in (disc.ctrl, disc.enc):
        for name, tensor in enc.state_dict().items():
            assert torch.equal(tensor, src[name]), name
    assert torch.equal(disc.out_conv.weight, head)  # the linear head stays fresh
    x, y = torch.randn(2, 3, 16, 16, generator=rng), torch.randn(2, 3, 16, 16, generator=rng)
    logits = disc.eval()(x, torch.tensor([0.5, 2.0]), y, 1.0)
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def test_init_from_mismatched_teacher_raises():
    teacher = build_network(network_config("teacher", "tiny", num_blocks=2))
    with pytest.raises(ValueError, match="teacher"):
        init_from_teacher(build_network(network_config("generator", "tiny")), teacher)
    with pytest.raises(ValueError, match="shape"):
        init_from_teacher(build_network(network_config("score", "tiny", model_channels=8)), random_teacher())


# ---------------------------------------------------------------- behaviour of every kind


def run_kind(net, kind, x, sigma, labels=None, generator=None):
    if kind == "teacher":
        return net(x, sigma, class_labels=labels)
    if kind == "generator":
        return net(x, sigma, generator=generator, class_labels=labels)
    if kind == "score":
        return net(x, sigma, x, sigma, class_labels=labels)
    return net(x, sigma, x, sigma, class_labels=labels)


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_finite_over_sigma_range_and_other_sizes(kind, rng):
    net = build_network(network_config(kind, "tiny"))
    if kind != "teacher":
        init_from_teacher(net, random_teacher())
    else:
        net = random_teacher()
    net.eval()
    with torch.no_grad():
        for sigma in SIGMAS:
            x = torch.randn(1, 3, 24, 40, generator=rng) * (0.5 + sigma)  # trained at 16x16, run at 24x40
            out = run_kind(net, kind, x, sigma, generator=rng)
            assert torch.isfinite(out).all(), (kind, sigma)
            assert out.shape == ((1,) if kind == "discriminator" else x.shape)
        with pytest.raises(ValueError, match="multiples of 2"):
            run_kind(net, kind, torch.zeros(1, 3, 15, 16), 1.0)
        with pytest.raises(ValueError, match="1 channels, the network 3"):  # a torch conv error before
            run_kind(net, kind, torch.zeros(1, 1, 16, 16), 1.0)
        for bad in (0.0, -1.0, float("nan"), float("inf")):  # log sigma: an all-NaN output before
            with pytest.raises(ValueError, match="sigma must be finite and > 0"):
                run_kind(net, kind, torch.zeros(1, 3, 16, 16), bad)


@pytest.mark.parametrize("kind", KINDS)
def test_class_conditional_labels(kind, rng):
    teacher = random_teacher("tiny-cond")
    net = (
        teacher
        if kind == "teacher"
        else init_from_teacher(build_network(network_config(kind, "tiny-cond")), teacher)
    )
    net.eval()
    x = torch.randn(3, 3, 8, 8, generator=rng)
    with torch.no_grad():
        one_hot = run_kind(net, kind, x, 1.0, torch.eye(3), torch.Generator().manual_seed(1))
        index = run_kind(net, kind, x, 1.0, torch.tensor([0, 1, 2]), torch.Generator().manual_seed(1))
        other = run_kind(net, kind, x, 1.0, torch.eye(3)[[1, 2, 0]], torch.Generator().manual_seed(1))
    assert torch.allclose(one_hot, index)
    assert (one_hot - other).abs().max() > 1e-4
    with pytest.raises(ValueError, match="class indices"):
        run_kind(net, kind, x, 1.0, torch.tensor([0, 1, 3]))


def test_generator_noise_is_per_image_and_seeded(rng):
    gen = init_from_teacher(build_network(network_config("generator", "tiny")), random_teacher()).eval()
    y = torch.randn(2, 3, 8, 8, generator=rng)
    with torch.no_grad():
        pair = gen(y, 2.0, generator=[torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)])
        single = gen(y[1:], 2.0, generator=[torch.Generator().manual_seed(6)])
        again = gen(y[1:], 2.0, generator=torch.Generator().manual_seed(6))
        other = gen(y[1:], 2.0, generator=torch.Generator().manual_seed(7))
        _, logvar = gen(y, 2.0, generator=rng, return_logvar=True)
    assert torch.allclose(pair[1:], single, atol=1e-5) and torch.allclose(single, again, atol=1e-6)
    assert (single - other).abs().max() > 1e-4  # a different z gives a different sample
    assert logvar.shape == (2, 1, 1, 1)
    with pytest.raises(ValueError, match="noise shape"):
        gen(y, 2.0, noise=torch.zeros(1, 3, 8, 8))


def test_training_step_backward_and_mixing_weight_clipping(rng):
    gen = init_from_teacher(build_network(network_config("generator", "tiny")), random_teacher()).train()
    with torch.no_grad():
        gen.model.dec.additional_skips_weight.fill_(1.7)
        gen.model.dec.additional_x_weight.fill_(-0.2)
    x0, logvar = gen(
        torch.randn(2, 3, 16, 16, generator=rng), torch.tensor([0.3, 3.0]), generator=rng, return_logvar=True
    )
    (x0.square().mean() + logvar.mean()).backward()
    dec = gen.model.dec
    assert torch.all(dec.additional_skips_weight == 1) and torch.all(dec.additional_x_weight == 0)
    grads = [p.grad for p in gen.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert gen.model.ctrl.enc["16x16_conv"].weight.grad.abs().sum() > 0  # the condition path is trained


def test_zero_initialised_mixing_weights_get_gradients(rng):
    """The ControlNet mixing weights start at exactly 0 (the bound of their [0, 1] clip); training must still move
    them, else the condition y never reaches the decoder (clamp's gradient at its bounds is 0 in recent PyTorch)."""
    gen = init_from_teacher(build_network(network_config("generator", "tiny")), random_teacher()).train()
    dec = gen.model.dec
    assert torch.all(dec.additional_skips_weight == 0) and torch.all(dec.additional_x_weight == 0)
    with torch.no_grad():
        dec.out_gain.fill_(1.0)  # a zero output gain would zero every decoder gradient
    x0 = gen(torch.randn(2, 3, 16, 16, generator=rng), torch.tensor([0.3, 3.0]), generator=rng)
    (x0 - torch.randn(x0.shape, generator=rng)).square().mean().backward()
    assert torch.all(dec.additional_skips_weight.grad != 0) and torch.all(dec.additional_x_weight.grad != 0)
    gen.eval()
    with torch.no_grad():
        dec.additional_x_weight.fill_(-0.5)
    assert gen.model.dec._mixing("additional_x_weight").item() == 0  # eval clips without touching the stored value
    assert dec.additional_x_weight.item() == -0.5


def test_fp16_flag_is_ignored_on_cpu(rng):
    torch.manual_seed(0)
    a = build_network(network_config("teacher", "tiny")).eval()
    b = build_network(network_config("teacher", "tiny", use_fp16=True, fp16_dtype="bfloat16")).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 8, 8, generator=rng)
    assert b.compute_dtype(x) == torch.float32
    assert torch.equal(a(x, 1.0), b(x, 1.0))
    with pytest.raises(ValueError, match="fp16_dtype"):
        build_network(network_config("teacher", "tiny", fp16_dtype="float8"))


@pytest.mark.parametrize("kind", KINDS)
def test_half_precision_path_forward_backward(kind, rng):
    """The fp16/bf16 code path (taken on CUDA with use_fp16) forced on CPU with bfloat16: runs, trains, and stays
    close to float32."""
    teacher = random_teacher("tiny-cond")
    net = (
        teacher
        if kind == "teacher"
        else init_from_teacher(build_network(network_config(kind, "tiny-cond")), teacher)
    )
    x = torch.randn(2, 3, 8, 8, generator=rng)
    labels = torch.tensor([0, 2])
    ref = run_kind(net.eval(), kind, x, 1.0, labels, torch.Generator().manual_seed(3))
    inner = net.model if kind == "generator" else net
    inner.compute_dtype = lambda x: torch.bfloat16
    out = run_kind(net.train(), kind, x, 1.0, labels, torch.Generator().manual_seed(3))
    out.sum().backward()
    assert out.dtype == torch.float32 and torch.allclose(out, ref, atol=0.05)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


# ---------------------------------------------------------------- configs


def test_network_config_layout_and_errors():
    cfg = network_config("generator", "tiny-cond", num_blocks=2, gamma=0.5)
    assert cfg["kind"] == "generator" and cfg["preset"] == "tiny-cond"
    assert (cfg["img_resolution"], cfg["img_channels"], cfg["label_dim"]) == (16, 3, 3)
    assert cfg["sigma_data"] == 0.5 and cfg["gamma"] == 0.5 and cfg["arch"]["num_blocks"] == 2
    assert "img_resolution" not in cfg["arch"] and PRESETS["tiny-cond"]["num_blocks"] == 1
    net = build_network(cfg)
    assert (
        isinstance(net, GenerativeDenoiser) and isinstance(net.model, PrecondCondition) and net.gamma == 0.5
    )
    assert isinstance(build_network(network_config("discriminator", "tiny")), Discriminator)
    for other in (
        net,
        build_network(network_config("teacher", "tiny")),
        build_network(network_config("score", "tiny")),
    ):
        assert (other.img_resolution, other.img_channels, other.sigma_data, other.size_multiple) == (
            16,
            3,
            0.5,
            2,
        )
    assert meta_net("discriminator", "builtin64").size_multiple == 8
    with pytest.raises(ValueError, match="preset"):
        network_config("teacher", "huge")
    with pytest.raises(ValueError, match="kind"):
        network_config("critic", "tiny")
    with pytest.raises(ValueError, match="img_channels"):
        build_network({"kind": "teacher", "img_resolution": 16})


@pytest.mark.parametrize(
    "preset, counts",
    [
        ("builtin64", (5_849_213, 7_480_597, 7_480_597, 3_254_806)),
        ("tiny", (181_371, 217_283, 217_283, 70_854)),
        ("tiny-cond", (181_467, 217_571, 217_571, 71_046)),
    ],
)
def test_small_preset_parameter_counts(preset, counts):
    """The counts documented in presets.py; builtin64 stays within the 3-6 M teacher budget, tiny under 0.5 M."""
    assert tuple(n_params(meta_net(kind, preset)) for kind in KINDS) == counts


# ------------------------------------------------------------------------------------- inference precision
def test_inference_precision_bf16_close_to_fp32_and_channels_last_exact(rng):
    from ncvsd_cli.networks.inference import prepare_for_inference

    teacher = random_teacher()
    nets = [init_from_teacher(build_network(network_config("generator", "tiny")), teacher).eval() for _ in range(3)]
    for n in nets[1:]:
        n.load_state_dict(nets[0].state_dict())
    y = torch.randn(2, 3, 24, 16, generator=rng)
    ref = run_kind(nets[0], "generator", y, 0.7, generator=torch.Generator().manual_seed(1))
    assert prepare_for_inference(nets[1], "fp32", "cpu") == "fp32"
    assert prepare_for_inference(nets[2], "bf16", "cpu") == "bf16"
    assert nets[2].model.cpu_bf16 and not nets[1].model.cpu_bf16  # set on the wrapped PrecondCondition
    fp32 = run_kind(nets[1], "generator", y, 0.7, generator=torch.Generator().manual_seed(1))
    bf16 = run_kind(nets[2], "generator", y, 0.7, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fp32, ref, atol=1e-5, rtol=1e-5)  # channels_last: float32 rounding only
    assert fp32.dtype == bf16.dtype == torch.float32
    err = (bf16 - ref).abs()
    assert 0 < err.mean() < 0.01 and err.max() < 0.1  # bfloat16 keeps 8 mantissa bits; 1/255 is 0.0078


def test_inference_precision_auto_rules(monkeypatch):
    from ncvsd_cli.networks import inference

    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    assert inference.resolve_precision("auto", "cpu") == "bf16"
    teacher = random_teacher()
    assert inference.prepare_for_inference(teacher, "auto", "cpu", kind="teacher") == "fp32"  # DPS backprop
    assert not teacher.cpu_bf16
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    assert inference.resolve_precision("auto", "cpu") == "fp32"
    assert inference.resolve_precision("auto", "cuda") == "checkpoint"
    with pytest.raises(ValueError, match="fp16"):
        inference.resolve_precision("fp16", "cpu")


def test_mpconv_weight_cache_is_exact_and_invalidated(rng):
    """Eval-mode inference reuses the effective weight until W changes; gradients to W are never cut."""
    from ncvsd_cli.networks.edm2_layers import MPConv

    conv = MPConv(3, 4, (3, 3)).eval()
    x = torch.randn(2, 3, 5, 7, generator=rng)
    with torch.no_grad():
        first = conv(x, gain=0.5)
        assert conv._w_cache is not None and torch.equal(conv(x, gain=0.5), first)
        conv.weight.mul_(2.0).add_(0.1)  # in place: the version counter moves, the cache must not be used
        changed = conv(x, gain=0.5)
    conv._w_cache = None
    with torch.no_grad():
        torch.testing.assert_close(changed, conv(x, gain=0.5), rtol=0, atol=0)
    conv(x).sum().backward()  # eval mode with gradients enabled: W still gets its gradient
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert conv._w_cache is None
