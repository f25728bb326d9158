"""Large images in bounded memory: tiled generator calls (ncvsd_cli.networks.tiling), the memory estimate
(ncvsd_cli.memory) and fused attention (edm2_layers.Block._attention), on tiny odd-sized inputs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ncvsd_cli import memory
from ncvsd_cli.networks import build_network, network_config
from ncvsd_cli.networks.edm2_layers import Block, normalize
from ncvsd_cli.networks.tiling import TiledDenoiser, blend_weights, fitted_tile, tile_layout, tile_starts
from operators.noise import generators_for_seeds


@torch.no_grad()
def random_generator(preset: str = "tiny", seed: int = 0):
    """A generator whose zero-initialised scalars and mixing weights are random, so outputs depend on everything."""
    torch.manual_seed(seed)
    net = build_network(network_config("generator", preset))
    for p in net.parameters():
        if p.ndim <= 1 and p.numel() < 64:
            p.copy_(torch.rand(p.shape) * 0.8 + 0.1)
    return net.eval()


class PointwiseDenoiser:
    """A local stand-in for G: x0 = tanh(y) + 0.1 sigma z per pixel, so any tiling must reproduce it exactly."""

    size_multiple = 4

    def __call__(self, y, sigma, generator=None, class_labels=None, noise=None):
        z = torch.randn(y.shape, generator=generator) if noise is None else noise
        return torch.tanh(y) + 0.1 * sigma * z


# ------------------------------------------------------------------------------------------------- tile layout
@pytest.mark.parametrize("length, tile, overlap, multiple", [
    (8, 8, 2, 2), (36, 12, 4, 4), (44, 16, 3, 4), (100, 20, 0, 2), (64, 24, 20, 4), (30, 12, 5, 1)])
def test_tiles_cover_and_overlap(length, tile, overlap, multiple):
    starts = tile_starts(length, tile, overlap, multiple)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] == length - size
    assert all(s % multiple == 0 for s in starts)
    assert all(0 < b - a <= size - overlap for a, b in itertools.pairwise(starts))
    weights = blend_weights(starts, tile, length)
    total = torch.zeros(length)
    for s, w in zip(starts, weights):
        assert w.shape == (size,) and w.min() > 0 and w.max() <= 1
        total[s:s + size] += w
    if all(b - a >= size / 2 for a, b in itertools.pairwise(starts)):  # only pairwise overlaps: ramps sum to 1
        torch.testing.assert_close(total, torch.ones(length))


@pytest.mark.parametrize("length", [32, 528, 768, 1024, 1040, 1504, 2000, 4096])
def test_a_fitted_tile_keeps_the_count_with_the_least_work(length):
    """The fitted side is the smallest multiple that covers the side with as many tiles as 512 px does (one
    multiple less needs another tile), every overlap at least the minimum: 1024 px takes 3 tiles of 384, not 512."""
    m, o = 16, 64
    fitted = fitted_tile(length, 512, o, m)
    if length <= 512:
        assert fitted == length
        return
    count = len(tile_starts(length, 512, o, m))
    starts = tile_starts(length, fitted, o, m)
    assert fitted <= 512 and fitted % m == 0 and len(starts) == count
    assert all(fitted - (b - a) >= o for a, b in itertools.pairwise(starts))  # overlaps of at least o
    assert len(tile_starts(length, fitted - m, o, m)) > count
    assert {1024: 384, 768: 416}.get(length, fitted) == fitted


@pytest.mark.parametrize("length, tile, overlap, multiple", [(40, 16, 4, 8), (64, 32, 8, 16), (1024, 48, 20, 16),
                                                         (30, 12, 5, 1), (44, 16, 3, 4)])
def test_a_fitted_tile_stays_above_the_rounded_overlap(length, tile, overlap, multiple):
    """tile_starts rounds the overlap up to the multiple: the smallest tiles `--tile` allows (2 multiples, overlap
    a quarter) raised ValueError once fitting tried a tile as small as that rounded overlap."""
    fitted = fitted_tile(length, tile, overlap, multiple)
    assert fitted <= tile and len(tile_starts(length, fitted, overlap, multiple)) == len(
        tile_starts(length, tile, overlap, multiple))


def test_a_tile_layout_fits_each_side_apart():
    """A 768 x 1024 image: 2 x 3 tiles of 416 x 384 (0.96 MP of work for 0.79; tiles of 512 x 512 did 1.57)."""
    layout = tile_layout(768, 1024, 512, 16)
    assert (len(layout.rows), len(layout.cols), layout.height, layout.width) == (2, 3, 416, 384)
    assert layout.rows[-1] + layout.height == 768 and layout.cols[-1] + layout.width == 1024


@pytest.mark.parametrize("length, tile, overlap, multiple", [(10, 8, 2, 4), (16, 8, 8, 4), (16, 8, 5, 4)])
def test_bad_tile_layout_is_refused(length, tile, overlap, multiple):
    with pytest.raises(ValueError):
        tile_starts(length, tile, overlap, multiple)


# ------------------------------------------------------------------------------------------------- tiled calls
@pytest.mark.parametrize("shape, tile, overlap", [((1, 3, 20, 28), 8, 4), ((2, 1, 12, 36), 12, 0),
                                                  ((1, 3, 24, 8), 16, 8), ((1, 3, 36, 68), 32, 4)])  # the last: 20 x 28 tiles
def test_tiling_reproduces_a_local_denoiser(shape, tile, overlap):
    """Blending normalises exactly and every tile sees the whole-image noise: a pixelwise G is reproduced."""
    g = PointwiseDenoiser()
    y = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    full = g(y, 0.7, generator=torch.Generator().manual_seed(2))
    tiled = TiledDenoiser(g, tile=tile, overlap=overlap)(y, 0.7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 10, 14), (2, 3, 6, 6)])
def test_one_tile_is_exactly_the_untiled_call(shape):
    net = random_generator()
    y = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = net(y, 0.5, generator=torch.Generator().manual_seed(4))
        tiled = TiledDenoiser(net, tile=14)(y, 0.5, generator=torch.Generator().manual_seed(4))
        auto = TiledDenoiser(net)(y, 0.5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(tiled, full) and torch.equal(auto, full)


def test_tiled_call_is_deterministic_and_independent_of_the_batch():
    """Per-image generators: an image's tiled sample does not depend on the other images of its batch."""
    net = random_generator()
    tiled = TiledDenoiser(net, tile=8, overlap=4)
    y = torch.randn(3, 3, 14, 18, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        batch = tiled(y, 0.3, generator=generators_for_seeds([7, 8, 9]))
        alone = tiled(y[1:2], 0.3, generator=generators_for_seeds([8]))
        again = tiled(y, 0.3, generator=generators_for_seeds([7, 8, 9]))
    assert torch.equal(batch, again)
    torch.testing.assert_close(batch[1:2], alone, rtol=0, atol=1e-5)
    assert tiled.img_channels == 3 and tiled.size_multiple == 2  # attributes come from the wrapped network


def test_tile_must_be_a_multiple_of_the_network_grid():
    with pytest.raises(ValueError, match="multiple of 2"):
        TiledDenoiser(random_generator(), tile=7)


# ------------------------------------------------------------------------------------------------- memory model
@pytest.mark.parametrize("preset", ["tiny", "builtin64", "ffhq256-xs"])
def test_network_shape_from_config_and_from_network_agree(preset):
    config = network_config("generator", preset)
    with torch.device("meta"):
        net = build_network(config)
    shape = memory.network_shape(config)
    assert shape == memory.network_shape_of(net)
    assert shape.attention_heads[-1] > 0  # the bottleneck always attends


def test_builtin64_attention_levels():
    shape = memory.network_shape(network_config("generator", "builtin64"))
    assert shape.channels == (32, 64, 96, 128) and shape.attention_heads == (0, 0, 0, 2)
    # 2048^2 input: bottleneck 256^2 positions, scores + softmax for 2 heads in float32
    assert memory.attention_matrix_bytes(shape, 1, 2048, 2048) == 2 * 2 * (256 * 256) ** 2 * 4


def test_call_estimate_grows_with_size_and_counts_unfused_attention():
    shape = memory.network_shape(network_config("generator", "builtin64"))
    sizes = [memory.call_bytes(shape, (1, 3, n, n), fused_attention=True) for n in (64, 128, 256)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert memory.call_bytes(shape, (2, 3, 64, 64), fused_attention=True) > sizes[0]
    unfused = memory.call_bytes(shape, (1, 3, 256, 256), fused_attention=False)
    assert unfused - sizes[2] == memory.attention_matrix_bytes(shape, 1, 256, 256)
    assert memory.call_bytes(shape, (1, 3, 256, 256), "bf16", fused_attention=True) < sizes[2]


@pytest.mark.parametrize("budget_gib", [0.5, 2, 8])
def test_auto_tile_is_the_largest_that_fits(budget_gib):
    shape = memory.network_shape(network_config("generator", "builtin64"))
    budget = int(budget_gib * 2**30)
    tile = memory.auto_tile_size(shape, 1, budget, fused_attention=True, max_tile=8192)
    assert tile % 8 == 0
    assert memory.call_bytes(shape, (1, 3, tile, tile), fused_attention=True) <= budget
    assert memory.call_bytes(shape, (1, 3, tile + 8, tile + 8), fused_attention=True) > budget


def test_too_small_budget_is_refused():
    with pytest.raises(ValueError, match="too small"):
        memory.auto_tile_size(memory.network_shape(network_config("generator", "builtin64")), 1, 2**20)


# ------------------------------------------------------------------------------------------------- attention
def einsum_attention(block: Block, x: torch.Tensor) -> torch.Tensor:
    """Cosine attention written out with the (HW, HW) weight matrix (§2.2 step 6)."""
    b, c, hh, ww = x.shape
    qkv = block.attn_qkv(x).reshape(b, block.num_heads, -1, 3, hh * ww)
    q, k, v = normalize(qkv, dim=2).unbind(3)
    w = torch.einsum("nhcq,nhck->nhqk", q, k / math.sqrt(q.shape[2])).softmax(dim=3)
    return block.attn_proj(torch.einsum("nhqk,nhck->nhcq", w, v).reshape(b, c, hh, ww))


@pytest.mark.parametrize("channels, per_head, hw", [(32, 16, (5, 7)), (48, 16, (3, 1)), (64, 64, (9, 4))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_attention_equals_the_weight_matrix_form(channels, per_head, hw, channels_last):
    torch.manual_seed(0)
    block = Block(channels, channels, 16, attention=True, channels_per_head=per_head).eval()
    x = torch.randn(2, channels, *hw)
    if channels_last:
        block, x = block.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(block._attention(x), einsum_attention(block, x), rtol=0, atol=1e-5)


def test_restore_estimate_is_bounded_by_tiling_at_any_batch():
    config = network_config("generator", "builtin64")
    tiled = memory.restore_bytes(config, (1, 3, 4096, 4096), 512)
    assert tiled < memory.restore_bytes(config, (1, 3, 4096, 4096), None)  # tiling bounds the call's share
    per_call = memory.images_per_call(config, 64, 512)
    assert 1 <= per_call < 64
    assert memory.call_bytes(config, (per_call, 3, 512, 512)) <= memory.DEFAULT_CALL_BUDGET
    call_part = memory.restore_bytes(config, (64, 3, 1024, 1024), 512) - 12 * 64 * 3 * 1024 * 1024 * 4
    assert call_part <= memory.model_bytes(memory.network_shape(config)) + memory.DEFAULT_CALL_BUDGET


def test_automatic_tile_does_not_depend_on_the_batch():
    """The tile is chosen for one image; a batch is split into calls that fit the budget, so each image is
    tiled, and restored, as when alone."""
    torch.manual_seed(0)
    net = build_network(network_config("generator", "tiny")).eval()
    tiled = TiledDenoiser(net, budget=200 * 2**20, max_tile=16)
    y = torch.rand(3, 3, 40, 36) * 2 - 1
    z = torch.randn_like(y)
    with torch.no_grad():
        together = tiled(y, 0.5, noise=z)
        alone = torch.cat([tiled(y[i:i + 1], 0.5, noise=z[i:i + 1]) for i in range(3)])
    assert tiled.tile_size(y) == tiled.tile_size(y[:1]) == 16
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


def test_the_restore_refusal_names_the_estimate_and_the_flags(monkeypatch):
    from ncvsd_cli.restore import Restorer, RestoreOptions

    restorer = Restorer.from_options(RestoreOptions(task="sr4").validate(), load=False)
    monkeypatch.setattr(memory, "classical_bytes", lambda *args, **kwargs: 0)  # the network's estimate alone
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 5 * 2**30)
    assert restorer.memory_refusal((3, 4096, 4096)) is None  # 512 px tiles: about 3.4 GiB
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 2**30)
    msg = restorer.memory_refusal((3, 4096, 4096))
    assert "4096x4096" in msg and "GiB" in msg and "tiles of 512 px" in msg and "--max-pixels" in msg
    assert "the output's size is the cost" in msg and "smaller --tile" not in msg  # 1 GiB: not even 32-px tiles fit
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": int(2.7 * 2**30))
    msg = restorer.memory_refusal((3, 4096, 4096))  # smaller tiles fit in 2.7 GiB (32 px: about 2.45)
    assert "tiles of 512 px" in msg and "use a smaller --tile or --batch-size" in msg
    untiled = Restorer.from_options(RestoreOptions(task="sr4", tile=0).validate(), load=False)
    msg = untiled.memory_refusal((3, 4096, 4096))  # --tile 0 alone costs it: tiles would fit
    assert "untiled" in msg and "leave out --tile 0" in msg and "output's size" not in msg, msg


# ------------------------------------------------------------------------------------ restore integration
def _restore_cli(*args):
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app

    return CliRunner().invoke(app, ["restore", *map(str, args)])


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    from test_cli import _ckpt

    return _ckpt(tmp_path_factory.mktemp("tiling-ckpt"))


def test_restore_refuses_before_the_weights_load(tmp_path, tiny_generator, monkeypatch):
    """The memory estimate refuses an input up front (exit 1, naming the estimate and the flags); the weights are
    never read, and an input that fits is still restored in the same call."""
    from test_cli import _png

    from ncvsd_cli import checkpoints, memory

    loads = []
    real = checkpoints.load_checkpoint
    monkeypatch.setattr(checkpoints, "load_checkpoint", lambda *a, **k: loads.append(a) or real(*a, **k))
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 200 * 2**20)
    big, small = _png(tmp_path / "big.png", 1200, 1200), _png(tmp_path / "small.png", 8, 8)
    res = _restore_cli("--task", "denoise", big, "-c", tiny_generator, "--device", "cpu", "-o", tmp_path / "o")
    assert res.exit_code == 1 and "needs an estimated" in res.output and "--max-pixels" in res.output and not loads
    res = _restore_cli("--task", "denoise", big, small, "-c", tiny_generator, "--device", "cpu", "-o",
                       tmp_path / "o2")
    assert res.exit_code == 1 and (tmp_path / "o2" / "small.png").is_file() and len(loads) == 1


def test_restore_in_tiles_through_the_cli(tmp_path, tiny_generator):
    from test_cli import _png

    src = _png(tmp_path / "x.png", 40, 36)
    out = tmp_path / "tiled.png"
    res = _restore_cli("--task", "deblur-gauss", src, "-c", tiny_generator, "--device", "cpu", "--tile", "16",
                       "--nfe", "2", "-o", out)
    assert res.exit_code == 0, res.output
    from ncvsd_cli.images import image_size

    assert image_size(out.read_bytes()) == (40, 36)
    bad = _restore_cli("--task", "deblur-gauss", src, "-c", tiny_generator, "--tile", "5", "-o", tmp_path / "b.png")
    assert bad.exit_code == 2 and "multiple of" in bad.output
    bad = _restore_cli("--task", "deblur-gauss", src, "-c", tiny_generator, "--tile", "5", "-o", out)
    assert bad.exit_code == 2 and "multiple of" in bad.output, bad.output  # said before "exists" (exit 1 first)
    one = _restore_cli("--task", "deblur-gauss", src, "-c", tiny_generator, "--tile", "2", "-o", tmp_path / "b.png")
    assert one.exit_code == 2 and "at least 4 (tiles overlap to blend)" in one.stderr, one.output  # tiny's 2 px
    least = _restore_cli("--task", "deblur-gauss", src, "-c", tiny_generator, "--tile", "4", "--nfe", "1", "-o",
                         tmp_path / "least.png")  # the smallest tile allowed (its fitting once raised)
    assert least.exit_code == 0, least.output


def test_an_image_within_one_tile_restores_exactly_as_untiled(tiny_generator):
    from ncvsd_cli.restore import Restorer, RestoreOptions

    y = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = {}
    for tile in (None, 0, 16):
        opts = RestoreOptions(task="denoise", checkpoint=str(tiny_generator), precision="fp32", tile=tile,
                              samples=2).validate()
        restorer = Restorer.from_options(opts)
        (res,) = restorer.run([restorer.measurement(y, "denoise")])
        out[tile] = res.samples
    assert torch.equal(out[None], out[0]) and torch.equal(out[16], out[0])


def test_compile_option_wraps_the_network(tiny_generator, monkeypatch):
    """--compile hands the loaded network to torch.compile (whose backend needs a compiler: the call is recorded
    here and the network returned unchanged), before the tiling wrapper."""
    import ncvsd_cli.networks.tiling as tiling
    from ncvsd_cli.restore import Restorer, RestoreOptions

    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append((model, kw)) or model)
    opts = RestoreOptions(task="denoise", checkpoint=str(tiny_generator), compile=True).validate()
    restorer = Restorer.from_options(opts)
    assert len(seen) == 1 and seen[0][1] == {"dynamic": True} and isinstance(restorer.model, tiling.TiledDenoiser)
    assert restorer.model.denoiser is seen[0][0]


def test_compile_on_a_cpu_says_it_will_be_slow(tiny_generator, monkeypatch, tmp_path):
    from test_cli import _png

    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)
    src = _png(tmp_path / "a.png", 16, 16)
    args = ("--task", "denoise", src, "-c", tiny_generator, "--device", "cpu", "--sigma-y", "0.1")
    res = _restore_cli(*args, "--compile", "-o", tmp_path / "c.png")
    assert res.exit_code == 0 and "--compile on a CPU" in res.stderr, res.output
    res = _restore_cli(*args, "--compile", "-q", "-o", tmp_path / "q.png")
    assert res.exit_code == 0 and "--compile" not in res.stderr, res.output


def test_memory_model_sees_through_torch_compile():
    net = build_network(network_config("generator", "tiny"))
    assert memory.network_shape_of(torch.compile(net, dynamic=True)) == memory.network_shape_of(net)


@pytest.mark.parametrize("shape, tile", [((1, 3, 20, 28), 8), ((2, 1, 12, 36), 12)])
def test_each_tile_is_reported_and_one_tile_is_not(shape, tile):
    """on_tile(done, count) follows every tile of a tiled call, in order; an image within one tile reports none."""
    tiled = TiledDenoiser(PointwiseDenoiser(), tile=tile, overlap=4)
    count = len(tiled.tiles(*shape[-2:], tile))
    assert count > 1
    seen = []
    tiled.on_tile = lambda done, n: seen.append((done, n))
    tiled(torch.zeros(shape), 0.5)
    assert seen == [(k, count) for k in range(1, count + 1)]
    seen.clear()
    tiled(torch.zeros(1, 3, tile, tile), 0.5)
    assert seen == []


def test_a_tiled_restore_reports_its_tiles_as_fractions_of_an_evaluation(tiny_generator):
    """Restorer.run's on_step moves within each tiled network call (tiles as fractions of one evaluation), rises
    monotonically to the total, and the hook is removed afterwards; on_begin announces the batch's size first."""
    from ncvsd_cli.restore import RestoreOptions, Restorer

    y = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(0)) * 2 - 1
    events = []
    opts = RestoreOptions(task="deblur-gauss", checkpoint=str(tiny_generator), precision="fp32", tile=16, nfe=2,
                          samples=2, batch_size=2).validate()
    restorer = Restorer.from_options(opts)
    (res,) = restorer.run([restorer.measurement(y, "deblur-gauss")], on_batch=lambda n: events.append(("end", n)),
                          on_step=lambda d, t: events.append((d, t)), on_begin=lambda n: events.append(("begin", n)))
    assert res.error is None and events[0] == ("begin", 2) and events[-1] == ("end", 2)
    steps = [d for d, t in events[1:-1]]
    assert {t for _, t in events[1:-1]} == {2.0} and steps == sorted(steps) and len(set(steps)) == len(steps)
    assert steps[-1] == 2.0 and any(0 < d < 1 for d in steps) and any(1 < d < 2 for d in steps)
    assert restorer.model.on_tile is None
    mine = []
    restorer.model.on_tile = lambda done, n: mine.append(done)  # a caller's own hook: kept, not called by run
    list(restorer.run([restorer.measurement(y, "deblur-gauss")], on_step=lambda d, t: None))
    assert restorer.model.on_tile is not None and mine == []


def test_an_all_refused_run_reports_the_precision_its_refusals_name(tmp_path, tiny_generator, monkeypatch):
    """--json's summary gives the precision the memory refusal names (bf16 here), not the fp32 of weights never
    loaded."""
    import json

    from test_cli import _png

    from ncvsd_cli import memory

    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 200 * 2**20)
    big = _png(tmp_path / "big.png", 1200, 1200)
    res = _restore_cli("--task", "denoise", big, "-c", tiny_generator, "--device", "cpu", "--precision", "bf16",
                       "--json", "-o", tmp_path / "o")
    assert res.exit_code == 1 and "bf16" in res.stderr, res.output
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["precision"] == "bf16" and summary["failed"] == 1, summary


@pytest.mark.parametrize("task, sampler", [("sr4", "pnp-gd-warm"), ("denoise", "denoiser"),
                                           ("phase-retrieval", "pnp-gd")])
def test_a_sidecar_without_task_is_estimated_with_its_tasks_sampler(monkeypatch, task, sampler):
    """Without --task (sidecars say their own tasks) and --method, `run` uses each task preset's sampler: the memory
    estimate names that one, not the default pnp-gd, and counts pnp-gd-warm's classical start in host memory."""
    from ncvsd_cli.restore import RestoreOptions, Restorer

    restorer = Restorer.from_options(RestoreOptions().validate(), load=False)
    starts = []
    monkeypatch.setattr(memory, "classical_bytes", lambda *args, **kwargs: starts.append(args[-1]) or 0)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": 2**30)
    msg = restorer.memory_refusal((3, 4096, 4096), {"name": task}, task=task)
    assert f"({sampler}, batch 1" in msg, msg
    assert starts == (["classical"] if sampler == "pnp-gd-warm" else [])
    assert "(pnp-gd, batch 1" in restorer.memory_refusal((3, 4096, 4096), {"name": task})  # no task: as before


def test_the_pairs_of_a_failed_image_are_counted_as_given_up(tiny_generator, first_image_fails, monkeypatch):
    """An image that fails in its first batch has its later samples given up unrun: on_skip reports them, so
    on_batch's and on_skip's counts add up to images x samples (with --samples > --batch-size the bar ended short);
    the other image is still restored. A group that fails before sampling gives up all its pairs."""
    from ncvsd_cli.restore import RestoreOptions, Restorer

    opts = RestoreOptions(task="denoise", method="pnp-gd", checkpoint=str(tiny_generator), precision="fp32", nfe=2,
                          samples=3, batch_size=1, sigma_y=0.1).validate()
    restorer = Restorer.from_options(opts)
    rng = torch.Generator().manual_seed(0)
    ms = [restorer.measurement(torch.rand(1, 3, 12, 12, generator=rng) * 2 - 1, "denoise") for _ in range(2)]
    ran, skipped = [], []
    results = list(restorer.run(ms, on_batch=ran.append, on_skip=skipped.append))
    assert [r.index for r in results if r.error] == [0] and "out of memory" in results[0].error
    assert [r.samples.shape[0] for r in results if r.error is None] == [3]
    assert ran == [1, 1, 1, 1] and skipped == [1, 1] and sum(ran) + sum(skipped) == 6
    ran.clear(), skipped.clear()
    monkeypatch.setattr(Restorer, "prepare", lambda self, *a: (_ for _ in ()).throw(ValueError("bad preset")))
    results = list(restorer.run(ms, on_batch=ran.append, on_skip=skipped.append))
    assert all("bad preset" in r.error for r in results) and ran == [] and skipped == [6]
