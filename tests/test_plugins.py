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
        if not self.factor:  # (a plug-in's bug of a type ncvsd does not expect)
            raise ZeroDivisionError("factor 0")
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


def broken(denoiser, operator, y, sigmas=None, **kwargs):
    return {}["beta2"]  # (a plug-in's bug of a type ncvsd does not expect)


METHOD = Refine("test-refine", "generator", "ncvsd_example_plugin:refine", "A+ y refined by G")
BROKEN = Refine("test-broken", "generator", "ncvsd_example_plugin:broken", "raises KeyError")
'''


def _distribution(folder, name: str, entry_points: str) -> None:
    """An installed distribution `name` (its dist-info in `folder`, on sys.path) with `entry_points`."""
    dist = folder / f"{name.replace('-', '_')}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "ncvsd_example_plugin.py").write_text(PLUGIN)
    _distribution(tmp_path, "ncvsd-example-plugin", "[ncvsd.operators]\ntest-scale = ncvsd_example_plugin:Scale\n\n"
                  "[ncvsd.methods]\ntest-refine = ncvsd_example_plugin:METHOD\n"
                  "test-broken = ncvsd_example_plugin:BROKEN\n")
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
    listed = {r["task"]: r for r in json.loads(run("tasks", "--json").stdout)}["test-scale"]
    assert listed == {"task": "test-scale", "summary": "y = factor x; closed-form likelihood step",
                      "parameters": {"factor": 0.5}, "method": "test-refine", "plain_image": "yes",
                      "plain_image_parameters": {}}


def test_a_plugin_error_of_any_type_fails_its_inputs_naming_it_not_the_run(plugin, tmp_path):
    """A plug-in method raising KeyError (or an operator ZeroDivisionError) stopped the whole batch as ncvsd's
    "internal error: KeyError: 'beta2'", leaving every other input undone: each input fails, naming the method and
    the error's type, as bench's rows do."""
    ckpt = _ckpt(tmp_path)
    a, b = _png(tmp_path / "a.png", 16, 16), _png(tmp_path / "b.png", 16, 16, seed=1)
    res = run("restore", "--task", "test-scale", a, b, "-c", ckpt, "--method", "test-broken", "-o", tmp_path / "r",
              "--device", "cpu", "--json", "-q")
    summary = json.loads(res.stdout.splitlines()[-1])
    assert res.exit_code == 1 and summary["failed"] == 2 and "internal error" not in res.output, res.output
    assert all("(test-broken): KeyError: 'beta2'" in r["error"] for r in summary["results"]), summary
    for command in ("degrade", "restore"):  # the operator's error: when degrade measures, when restore reads
        res = run(command, "--task", "test-scale", "-p", "factor=0", a, b, "-o", tmp_path / command, "--json", "-q",
                  *(("-c", ckpt) if command == "restore" else ()))
        summary = json.loads(res.stdout.splitlines()[-1])
        assert res.exit_code == 1 and summary["failed"] == 2 and "internal error" not in res.output, res.output
        assert all("ZeroDivisionError: factor 0" in r["error"] for r in summary["results"]), summary


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


@pytest.fixture
def broken_plugins(plugin, tmp_path, monkeypatch):
    """Beside the working plug-in: one that cannot import, one that is no Operator, one taking a built-in's name
    (sr4, wiener); the working one comes after them in entry-point order."""
    (tmp_path / "ncvsd_broken_plugin.py").write_text("import this_module_does_not_exist\n")
    (tmp_path / "ncvsd_odd_plugin.py").write_text(
        "from operators.resize import Downsample\ndef notop(): pass\n"
        "class Sr4(Downsample):\n    name = 'sr4'\n")
    (tmp_path / "ncvsd_badsig_plugin.py").write_text(  # forward(self): failed mid-restore as an "internal error"
        "from operators import Operator\nclass Op(Operator):\n    name = 'aa-badsig'\n"
        "    def forward(self):\n        return 0\n")
    _distribution(
        tmp_path, "ncvsd-broken-plugin",
        "[ncvsd.operators]\naa-missing = ncvsd_broken_plugin:Op\naa-notop = ncvsd_odd_plugin:notop\n"
        "sr4 = ncvsd_odd_plugin:Sr4\naa-badsig = ncvsd_badsig_plugin:Op\n\n[ncvsd.methods]\naa-missing = ncvsd_broken_plugin:M\n")
    for name in ("ncvsd_broken_plugin", "ncvsd_odd_plugin", "ncvsd_badsig_plugin"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_a_broken_plugin_is_left_out_with_a_warning_and_the_rest_work(broken_plugins, caplog):
    """One plug-in that failed to import stopped every command with "internal error: ModuleNotFoundError", and
    left the registry half loaded (the next lookup lost the plug-ins after it)."""
    names = registry.names()
    assert {"sr4", "deblur-gauss", "test-scale"} <= set(names) and "aa-missing" not in names
    assert registry.get("sr4").__module__ == "operators.resize"  # the built-in keeps its name
    assert "test-refine" in method_registry.method_names()
    said = caplog.text
    assert "aa-missing = ncvsd_broken_plugin:Op of ncvsd-broken-plugin" in said and "ModuleNotFoundError" in said
    assert "aa-notop" in said and "not an operators.Operator subclass" in said
    assert "already registered by operators.resize.SR4 (a built-in operator)" in said
    assert "Op.forward cannot be called as forward(x)" in said and "aa-badsig" not in names
    with pytest.raises(ValueError, match="the plug-in aa-missing .* was left out: ModuleNotFoundError"):
        registry.get("aa-missing")
    with pytest.raises(ValueError, match="the plug-in aa-missing .* was left out"):
        method_registry.get_method("aa-missing")


def test_threads_asking_first_wait_for_every_plugin(plugin, monkeypatch):
    """Threads asking for a plug-in at once (a server's first requests): all but the loading one saw a half-filled
    registry, "unknown task/operator"; now they wait for the load."""
    import threading
    import time

    for group in (registry.PLUGINS, method_registry.PLUGINS):
        add = group.add
        monkeypatch.setattr(group, "add", lambda ep, obj, add=add: (time.sleep(0.2), add(ep, obj)))
    found, threads = [], []
    for lookup in [lambda: registry.get("test-scale"), lambda: method_registry.get_method("test-refine")] * 2:
        threads.append(threading.Thread(target=lambda f=lookup: found.append(f())))
        threads[-1].start()
    for t in threads:
        t.join()
    assert len(found) == 4 and found[0] is not None


def test_a_plugin_importing_the_registry_while_another_thread_loads_it_does_not_deadlock(tmp_path, monkeypatch):
    """A thread importing a plug-in that asks the registry at import time, and a thread asking the registry first:
    the first version of the registry lock imported plug-ins under it, and both threads waited for ever."""
    import threading

    (tmp_path / "ncvsd_slow_plugin.py").write_text(
        "import time\nimport operators\ntime.sleep(0.5)\n\n\nclass Slow(operators.get('sr4')):\n"
        "    name = 'test-slow'\n")
    _distribution(tmp_path, "ncvsd-slow-plugin", "[ncvsd.operators]\ntest-slow = ncvsd_slow_plugin:Slow\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ncvsd_slow_plugin", raising=False)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry.PLUGINS, "loaded", False)
    threads = [threading.Thread(target=__import__, args=("ncvsd_slow_plugin",), daemon=True),
               threading.Thread(target=lambda: registry.names(), daemon=True)]
    threads[0].start()
    threads[1].start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert "sr4" in registry.names()


def test_the_cli_runs_built_in_tasks_beside_a_broken_plugin(broken_plugins, tmp_path):
    src = _png(tmp_path / "clean.png", 16, 16)
    res = run("degrade", "--task", "sr4", src, "-o", tmp_path / "m.png", "-q")
    assert res.exit_code == 0, res.output
    assert "ncvsd: warning: the plug-in aa-missing = ncvsd_broken_plugin:Op" in res.stderr


def test_a_plain_image_of_a_plugin_down_sampler_without_factor_is_its_measurement(monkeypatch):
    """restore --task of a plug-in 2x box down-sampler read a 16x16 image as a measurement of a 16x16 image
    (`factor`, undocumented, was needed); the ratio is now read off the operator."""
    import torch.nn.functional as F

    from ncvsd_cli.measurement import measurement_from_image
    from operators import Operator

    class Box(Operator):
        name = "test-box2"

        def __init__(self, image_shape, k=2):
            super().__init__(image_shape)
            self.k = int(k)

        def forward(self, x):
            return F.avg_pool2d(x, self.k)

        def adjoint(self, y):
            return F.interpolate(y, scale_factor=self.k, mode="nearest") / self.k**2

        def pseudo_inverse(self, y):
            return F.interpolate(y, scale_factor=self.k, mode="nearest")

    monkeypatch.setattr(registry, "_REGISTRY", {**registry._REGISTRY, "test-box2": Box})
    import torch

    m = measurement_from_image(torch.zeros(1, 3, 8, 6), "test-box2", sigma_y=0.05)
    assert m.operator().image_shape == (3, 16, 12) and tuple(m.y.shape) == (1, 3, 8, 6)
    m = measurement_from_image(torch.zeros(1, 3, 8, 6), "test-box2", sigma_y=0.05, params={"k": 3})
    assert m.operator().image_shape == (3, 24, 18)  # the ratio its parameter sets
    same = measurement_from_image(torch.zeros(1, 3, 8, 6), "deblur-gauss", sigma_y=0.05)
    assert same.operator().image_shape == (3, 8, 6)



def test_a_grey_image_of_a_plugin_measuring_one_channel_is_its_measurement(monkeypatch):
    """A plug-in measuring colour images as one channel (the luma of 2x2 means): restore_image of its 1-channel
    measurement colourised it as a grey photo and refused it, "a 32x32 image is not a grey-down2 measurement
    (expected (1, 32, 32))"; it is now restored, and a real mismatch names the channels."""
    import torch
    import torch.nn.functional as F

    from ncvsd_cli.measurement import measurement_from_image
    from ncvsd_cli.restore import restore_image
    from operators import Operator

    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)

    class GreyDown2(Operator):
        name = "test-grey-down2"
        default_preset = {"beta": 1e-3, "method": "classical"}  # noqa: RUF012 (as a plug-in writes it)

        def forward(self, x):
            return F.avg_pool2d((x * luma.to(x)).sum(1, keepdim=True), 2)

        def adjoint(self, y):
            return F.interpolate(y, scale_factor=2, mode="nearest") / 4 * luma.to(y)

        def pseudo_inverse(self, y):
            return F.interpolate(y, scale_factor=2, mode="nearest").expand(-1, 3, -1, -1).contiguous()

    monkeypatch.setattr(registry, "_REGISTRY", {**registry._REGISTRY, "test-grey-down2": GreyDown2})
    y = torch.linspace(-0.5, 0.5, 6 * 5).reshape(1, 1, 6, 5)
    out = restore_image(y, "test-grey-down2", method="classical", sigma_y=0.05)
    assert tuple(out.shape) == (1, 1, 12, 10) and torch.allclose(out, F.interpolate(y, scale_factor=2))
    with pytest.raises(ValueError, match=r"image of 3 channels is not a test-grey-down2 measurement \(expected "
                                         r"\(1, 6, 5\): channels"):
        measurement_from_image(torch.zeros(1, 3, 6, 5), "test-grey-down2", sigma_y=0.05)

def test_tab_completion_offers_plugin_tasks_and_methods_in_comma_lists(plugin):
    from ncvsd_cli.cli import completion

    assert [n for n, _ in completion.task("test-")] == ["test-scale"]
    assert ("test-refine", "A+ y refined by G") in completion.method("test")
    names = [n for n, _ in completion.task_list("sr4,test-")]
    assert names == ["sr4,test-scale"]
    assert "sr4,sr4" not in [n for n, _ in completion.task_list("sr4,")]  # a listed name is not offered again
    assert [n for n, _ in completion.method_list("pnp-gd,test-refine,cla")] == ["pnp-gd,test-refine,classical"]


def test_tab_completion_beside_a_broken_plugin_prints_nothing(broken_plugins, capsys, monkeypatch):
    """A TAB printed the broken plug-in's warning over the command line being typed; an error raised while listing
    names would have printed a traceback."""
    import logging

    from ncvsd_cli.cli import completion

    stream = logging.StreamHandler()  # where a CLI run sends warnings: stderr
    logging.getLogger().addHandler(stream)
    try:
        assert "test-scale" in [n for n, _ in completion.task("t")]
    finally:
        logging.getLogger().removeHandler(stream)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(method_registry, "method_names", lambda: 1 / 0)
    assert completion.method("p") == []


FAULTY = '''
import sys
import torch
from ncvsd_example_plugin import Scale, refine
from ncvsd_cli.sampling.common import SamplerResult
from ncvsd_cli.sampling.methods import Method


class Gain(Scale):
    """A parameter its config leaves out (the inherited extra_config): a sidecar rebuilds another operator."""
    name = "test-gain"

    def __init__(self, image_shape, factor=0.5, gain=1.0):
        super().__init__(image_shape, factor)
        self.gain = float(gain)

    def forward(self, x):
        return self.gain * self.factor * x


class Flat(Scale):
    """A forward that drops the batch dimension."""
    name = "test-flat"

    def forward(self, x):
        return (self.factor * x)[0]


class Bytes(Scale):
    """A pseudo-inverse in 8-bit pixels."""
    name = "test-bytes"

    def pseudo_inverse(self, y):
        return ((y / self.factor + 1) * 127.5).to(torch.uint8)


class Wide(Scale):
    """A pseudo-inverse computed in float64 (numpy's): cast, as it was before outputs were checked."""
    name = "test-wide"

    def pseudo_inverse(self, y):
        return (y / self.factor).double()


class Nan(Scale):
    """A forward that makes NaN."""
    name = "test-nanop"

    def forward(self, x):
        return x * float("nan")


def measured(denoiser, operator, y, sigmas=None, *, generator, **kw):
    return SamplerResult(x=y[..., :-1, :], nfe=0, operator_evals=0)


def bare(denoiser, operator, y, sigmas=None, *, generator, **kw):
    return operator.pseudo_inverse(y)


def two_arguments(operator, y):
    return operator.pseudo_inverse(y)


def on_255(denoiser, operator, y, sigmas=None, *, generator, **kw):
    return SamplerResult(x=(operator.pseudo_inverse(y) + 1) * 127.5, nfe=0, operator_evals=1)


def nan(denoiser, operator, y, sigmas=None, *, generator, **kw):
    return SamplerResult(x=operator.pseudo_inverse(y) * float("nan"), nfe=0, operator_evals=1)


CROP = Method("test-crop", "none", "ncvsd_faulty_plugin:measured", "returns a cropped measurement")
ARGS = Method("test-args", "none", "ncvsd_faulty_plugin:two_arguments", "takes other arguments")
BARE = Method("test-bare", "none", "ncvsd_faulty_plugin:bare", "returns a tensor")
ON255 = Method("test-255", "none", "ncvsd_faulty_plugin:on_255", "returns a [0, 255] image")
NAN = Method("test-nan", "none", "ncvsd_faulty_plugin:nan", "returns NaN")
'''


@pytest.fixture
def faulty_plugins(plugin, tmp_path, monkeypatch):
    """Beside the working plug-in: operators and methods that break the contracts, one that exits on import, one
    whose name would leave the output folder."""
    (tmp_path / "ncvsd_faulty_plugin.py").write_text(FAULTY)
    (tmp_path / "ncvsd_exit_plugin.py").write_text("import sys\nsys.exit('this plug-in exits on import')\n")
    (tmp_path / "ncvsd_path_plugin.py").write_text(
        "from ncvsd_example_plugin import Scale\nclass Up(Scale):\n    name = 'up/../../escaped'\n")
    _distribution(
        tmp_path, "ncvsd-faulty-plugin",
        "[ncvsd.operators]\naa-exit = ncvsd_exit_plugin:Op\ntest-gain = ncvsd_faulty_plugin:Gain\n"
        "test-flat = ncvsd_faulty_plugin:Flat\nup/../../escaped = ncvsd_path_plugin:Up\n"
        "test-bytes = ncvsd_faulty_plugin:Bytes\ntest-nanop = ncvsd_faulty_plugin:Nan\n"
        "test-wide = ncvsd_faulty_plugin:Wide\n\n"
        "[ncvsd.methods]\ntest-crop = ncvsd_faulty_plugin:CROP\ntest-bare = ncvsd_faulty_plugin:BARE\n"
        "test-args = ncvsd_faulty_plugin:ARGS\ntest-255 = ncvsd_faulty_plugin:ON255\n"
        "test-nan = ncvsd_faulty_plugin:NAN\n")
    for name in ("ncvsd_faulty_plugin", "ncvsd_exit_plugin", "ncvsd_path_plugin"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_plugins_that_break_the_contracts_are_named_not_run_silently(faulty_plugins, tmp_path, caplog):
    """A plug-in whose import called sys.exit stopped every command; a name with "/" wrote outputs outside their
    folder; an operator its config does not rebuild, a forward that drops the batch, and methods returning a cropped
    measurement or a bare tensor ran to exit 0 (or an "internal error") with wrong pictures."""
    names = registry.names()
    assert {"sr4", "test-scale", "test-gain", "test-flat"} <= set(names) and "aa-exit" not in names
    assert "this plug-in exits on import" in caplog.text and "up/../../escaped" not in names
    assert "must be letters, digits" in caplog.text
    src = _png(tmp_path / "clean.png", 16, 16)
    res = run("degrade", "--task", "test-gain", "-p", "gain=3", src, "-o", tmp_path / "g.png", "-q")
    assert res.exit_code == 1 and "is not rebuilt by its config" in res.stderr, res.output
    res = run("degrade", "--task", "test-flat", src, "-o", tmp_path / "f.png", "-q")
    assert res.exit_code == 1 and "forward returned (3, 16, 16)" in res.stderr and "keep the batch" in res.stderr
    assert run("degrade", "--task", "test-scale", src, "-o", tmp_path / "m.png", "-q").exit_code == 0
    res = run("degrade", "--task", "test-nanop", src, "-o", tmp_path / "n.png", "-q")  # (said "not rebuilt")
    assert res.exit_code == 1 and "forward returned NaN or inf values" in res.stderr, res.output
    assert run("degrade", "--task", "test-bytes", src, "-o", tmp_path / "b.png", "-q").exit_code == 0
    res = run("restore", tmp_path / "b.png", "--method", "classical", "-o", tmp_path / "rb.png", "-q")
    assert res.exit_code == 1 and "pseudo_inverse returned (1, 3, 16, 16) torch.uint8" in res.stderr, res.output
    assert run("degrade", "--task", "test-wide", src, "-o", tmp_path / "w.png", "-q").exit_code == 0
    assert run("restore", tmp_path / "w.png", "--method", "classical", "-o", tmp_path / "rw.png", "-q").exit_code == 0
    for method, said in (("test-crop", "returned x (1, 3, 15, 16)"), ("test-bare", "returned a Tensor, not a"),
                         ("test-args", "(ncvsd_faulty_plugin:two_arguments) cannot be called as samplers are"),
                         ("test-255", "returned values reaching 277.5, far outside"),  # (written all white, exit 0)
                         ("test-nan", "returned NaN or inf values")):  # (said as "the network produced NaN")
        res = run("restore", tmp_path / "m.png", "--method", method, "-o", tmp_path / f"{method}.png", "-q")
        assert res.exit_code == 1 and said in res.stderr, res.output
        assert not (tmp_path / f"{method}.png").exists()
    assert run("degrade", "--task", "sr4", src, "-o", tmp_path / "s.png", "-q").exit_code == 0  # built-ins work


def test_names_differing_only_in_case_are_refused(monkeypatch):
    """`Foo` beside `foo`: their output files (x_Foo.png, x_foo.png) clash on case-insensitive volumes."""
    from operators.resize import Downsample

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match="differs only in case from the registered 'sr4'"):
        registry.register(type("Loud", (Downsample,), {"name": "SR4"}))
    monkeypatch.setattr(method_registry, "METHODS", dict(method_registry.METHODS))
    with pytest.raises(ValueError, match="differs only in case"):
        method_registry.register_method(method_registry.Method("PNP-GD", "none", "x:y"))
    with pytest.raises(ValueError, match="target must be 'module:function', got 'nocolon'"):
        method_registry.register_method(method_registry.Method("ok2", "generator", "nocolon"))
