"""A third-party distribution on sys.path adds an operator (with its own default preset) and a method through the
entry-point groups `ncvsd.operators` and `ncvsd.methods`; both work through `degrade`, `restore` and `bench`."""

from __future__ import annotations

import json
import sys

import pytest
from test_cli import _ckpt, _png, run

from ncvsd_cli.checkpoints import save_checkpoint
from ncvsd_cli.networks import build_network, network_config
from ncvsd_cli.sampling import methods as method_registry
from operators import registry

PLUGIN = '''
import torch
from operators import Operator
from ncvsd_cli.sampling.common import SamplerResult
from ncvsd_cli.sampling.methods import Method, MethodCall


class Scale(Operator):
    """y = factor x; closed-form likelihood step."""
    name = "test-scale"
    default_preset = {"beta": 2.0e-3, "method": "test-refine", "sigma_y": 0.05}

    def __init__(self, image_shape, factor=0.5):
        super().__init__(image_shape)
        self.factor = float(factor)

    def forward(self, x):
        return self.factor * x

    def adjoint(self, y):
        return self.factor * y

    def pseudo_inverse(self, y):
        return y / self.factor

    def likelihood_sample(self, x0, y, rho, sigma_p, generator=None):
        prec = self.factor ** 2 / sigma_p ** 2 + 1 / rho ** 2
        mean = (self.factor * y / sigma_p ** 2 + x0 / rho ** 2) / prec
        return mean + prec ** -0.5 * torch.randn(x0.shape, generator=generator[0] if isinstance(generator, list) else generator)

    def extra_config(self):
        return {"factor": self.factor}


def refine(denoiser, operator, y, sigmas=None, *, generator, sigma_y=0.05, nfe=2, callback=None, class_labels=None):
    """A + y, then `nfe` calls G(x, sigma_y)."""
    x = operator.pseudo_inverse(y)
    for _ in range(nfe):
        x = denoiser(x, sigma_y, generator=generator)
    return SamplerResult(x=x, nfe=nfe, operator_evals=1)


class Refine(Method):
    def arguments(self, settings, nfe):
        n = 2 if nfe is None else int(nfe)
        return MethodCall(settings, None, {"sigma_y": float(settings["sigma_y"]), "nfe": n}, n)

    def bench_nfe(self, sweep, baseline_nfe):
        return sorted(set(sweep))


METHOD = Refine("test-refine", "generator", "ncvsd_example_plugin:refine", "A+ y refined by G")
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "ncvsd_example_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "ncvsd_example_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ncvsd-example-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ncvsd.operators]\ntest-scale = ncvsd_example_plugin:Scale\n\n"
                                           "[ncvsd.methods]\ntest-refine = ncvsd_example_plugin:METHOD\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ncvsd_example_plugin", raising=False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry.PLUGINS, "loaded", False)
    monkeypatch.setattr(method_registry, "METHODS", dict(method_registry.METHODS))
    monkeypatch.setattr(method_registry.PLUGINS, "loaded", False)
    return tmp_path


def test_plugin_operator_and_method_through_degrade_restore_and_bench(plugin, tmp_path):
    ckpt = _ckpt(tmp_path)
    src = _png(tmp_path / "clean.png", 16, 16)
    assert run("degrade", "--task", "test-scale", src, "-o", tmp_path / "m.png", "-q").exit_code == 0
    # the default method comes from the operator's default preset; its budget rule gives 2 calls
    res = run("restore", tmp_path / "m.png", "-c", ckpt, "--device", "cpu", "--json", "-q")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.splitlines()[-1])
    assert (report["task"], report["method"], report["nfe"]) == ("test-scale", "test-refine", 2)
    res = run("restore", "--task", "test-scale", src, "-c", ckpt, "--method", "pnp-gd", "--nfe", "3", "-o",
              tmp_path / "pnp.png", "--device", "cpu", "--json", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["nfe"] == 3 and (tmp_path / "pnp.png").is_file()
    data = tmp_path / "imgs"
    data.mkdir()
    _png(data / "a.png", 16, 16)
    bench_ckpt = tmp_path / "bench.safetensors"  # LPIPS needs >= 31 px images: a 32 px network
    cfg = network_config("generator", "tiny", img_resolution=32)
    save_checkpoint(build_network(cfg), bench_ckpt, cfg)
    res = run("bench", "--dataset", data, "--tasks", "test-scale", "--methods", "test-refine,pnp-gd,classical",
              "--nfe", "1,2", "--checkpoint", bench_ckpt, "--device", "cpu", "--out", tmp_path / "bench", "--json",
              "--quiet")
    assert res.exit_code == 0, res.output
    rows = {(r["method"], r["nfe"]) for r in json.loads(res.stdout)["summary"]}
    assert {("test-refine", 1), ("test-refine", 2), ("pnp-gd", 2), ("pseudo-inverse", 0)} <= rows
    assert ("pnp-gd", 1) not in rows  # a prior draw: pnp-gd benches from 2


def test_a_preset_file_completes_a_task_without_preset(plugin, tmp_path):
    from ncvsd_cli.sampling.presets import task_settings

    registry._REGISTRY.pop("test-scale", None)
    registry.names()  # loads the plug-in
    cls = registry.get("test-scale")
    del cls.default_preset
    with pytest.raises(ValueError, match="no preset for task 'test-scale'"):
        task_settings("test-scale")
    own = tmp_path / "own.yaml"
    own.write_text("beta: 0.004\nmethod: pnp-gd\n")
    settings = task_settings("test-scale", preset_file=own)
    assert (settings["beta"], settings["method"], settings["steps"]) == (0.004, "pnp-gd", 50)
    own.write_text("method: pnp-gd\n")
    with pytest.raises(ValueError, match="no beta"):
        task_settings("test-scale", preset_file=own)
