"""Import of the authors' EDM2 persistence pickles (docs/method.md §9) without executing them.

The pickles are written inside the tests with the structure of the published files: persistent modules reduced to
`torch_utils.persistence._reconstruct_persistent_obj(meta)` (meta: type, version, module_src, class_name, state
with _init_args/_init_kwargs), the non-persistent `training.networks_edm2.GenerativeDenoiser` referenced by import
path, torch ModuleDicts, fp16 parameters whose storages are `torch.storage._load_from_bytes(torch.save bytes)`.
The fake modules exist in sys.modules only while pickling; module_src raises if it is ever executed.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import pickle
import sys
import types

import pytest
import torch

from ncvsd_cli.checkpoints import CheckpointError, load_checkpoint, read_config, sha256_file
from ncvsd_cli.networks import build_network, edm2_layers, network_config, precond, unet
from ncvsd_cli.pickle_import import (
    Recorded, RestrictedUnpickler, analyse, import_pickle, read_pickle, recorded_state_dict,
)

PERSISTENT = (precond.Precond, precond.PrecondCondition, unet.UNet, unet.UNetEncoder, unet.UNetDecoder,
              edm2_layers.Block, edm2_layers.MPConv, edm2_layers.MPFourier)
EXPLODING_SRC = "raise RuntimeError('module_src was executed!')"
FAKE_MODULES = ("torch_utils", "torch_utils.persistence", "training", "training.networks_edm2",
                "training.training_loop", "dnnlib", "dnnlib.util")


def _authors_kwargs(config: dict) -> dict:
    """Constructor kwargs as the authors' train script passes them (interface kwargs + network kwargs)."""
    return {"img_resolution": config["img_resolution"], "img_channels": config["img_channels"],
            "label_dim": config["label_dim"], "use_fp16": True, **config["arch"]}


@contextlib.contextmanager
def _fake_author_modules():
    """Register stand-ins for the authors' modules while pickling; remove them afterwards."""
    if any(name in sys.modules for name in FAKE_MODULES):
        pytest.skip("an authors' module is importable here; the no-execution check would not be meaningful")

    def reconstruct(meta):  # what the authors' loader does: exec module_src (here: fail loudly)
        raise RuntimeError("the authors' _reconstruct_persistent_obj was called")

    mods = {name: types.ModuleType(name) for name in FAKE_MODULES}
    reconstruct.__module__, reconstruct.__qualname__ = "torch_utils.persistence", "_reconstruct_persistent_obj"
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = reconstruct
    gd = type("GenerativeDenoiser", (precond.GenerativeDenoiser,), {"__module__": "training.networks_edm2"})
    mods["training.networks_edm2"].GenerativeDenoiser = gd
    sampler = type("LogNormalNoiseSampler", (), {"__module__": "training.training_loop"})
    mods["training.training_loop"].LogNormalNoiseSampler = sampler
    easy = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    mods["dnnlib.util"].EasyDict = easy
    sys.modules.update(mods)
    try:
        yield types.SimpleNamespace(reconstruct=reconstruct, GenerativeDenoiser=gd, Sampler=sampler, EasyDict=easy)
    finally:
        for name in FAKE_MODULES:
            sys.modules.pop(name, None)


class _PersistencePickler(pickle.Pickler):
    """Reduces our network modules the way EDM2's persistence decorator does."""

    def __init__(self, file, reconstruct, root_kwargs: dict, persistent_extra=(), protocol: int = 4):
        super().__init__(file, protocol=protocol)
        self.reconstruct, self.root_kwargs = reconstruct, root_kwargs
        self.persistent_types = PERSISTENT + tuple(persistent_extra)

    def reducer_override(self, obj):
        if type(obj) in self.persistent_types:
            state = dict(obj.__dict__)
            is_root = isinstance(obj, (precond.Precond, precond.PrecondCondition))
            state["_init_args"] = ()
            state["_init_kwargs"] = copy.deepcopy(self.root_kwargs) if is_root else {}
            meta = {"type": "class", "version": 6, "module_src": EXPLODING_SRC,
                    "class_name": type(obj).__name__, "state": state}
            return self.reconstruct, (meta,)
        return NotImplemented


class _Loss(torch.nn.Module):
    """A persistent loss object holding a non-persistent helper, like the NCVSD file's loss_fn."""


def _write_pickle(path, net, root_kwargs: dict, *, wrap_generator: bool, extras: bool = True, mutate=None,
                  protocol: int = 4) -> None:
    net = copy.deepcopy(net).to(torch.float16).requires_grad_(False).eval()
    if mutate is not None:
        mutate(net)
    with _fake_author_modules() as fake:
        if wrap_generator:
            net.__class__ = fake.GenerativeDenoiser  # non-persistent wrapper, pickled by import path
        data = {"ema": net}
        if extras:
            loss = _Loss()
            loss.noise_sampler = fake.Sampler()
            loss.P_mean = -0.4
            data["loss_fn"] = loss
            data["dataset_kwargs"] = fake.EasyDict(class_name="training.dataset.ImageFolderDataset", path="ffhq")
        buf = io.BytesIO()
        _PersistencePickler(buf, fake.reconstruct, root_kwargs, persistent_extra=(_Loss,), protocol=protocol).dump(data)
    path.write_bytes(buf.getvalue())


def _randomise(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights (fresh nets have zero gains and mixing weights), rounded to fp16 like the releases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "additional" in name:
                p.copy_(torch.rand(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if name.endswith("gain") else 0.0))
        for t in net.state_dict().values():
            t.copy_(t.half().float())
    return net


@pytest.fixture(params=["tiny", "tiny-cond"])
def generator(request):
    return _randomise(build_network(network_config("generator", request.param))), request.param


def test_generator_import_maps_every_tensor_and_matches_outputs(tmp_path, generator):
    gen, preset = generator
    config = network_config("generator", preset)
    src = tmp_path / "ncvsd-tiny.pkl"
    _write_pickle(src, gen, _authors_kwargs(config), wrap_generator=True)
    assert not any(name in sys.modules for name in FAKE_MODULES)
    assert b"module_src was executed" in src.read_bytes()

    out, cfg = import_pickle(src, tmp_path / "imported.safetensors")
    assert cfg["kind"] == "generator" and cfg["gamma"] == pytest.approx(0.414)
    assert "assumed" not in cfg["provenance"]  # recorded in the wrapper's state
    assert cfg["label_dim"] == config["label_dim"] and cfg["arch"]["model_channels"] == 16
    stored = read_config(out)
    assert stored["provenance"]["source"] == src.name
    assert stored["provenance"]["source_sha256"] == sha256_file(src)

    model, _ = load_checkpoint(out, kind="generator")
    ref_state, got_state = gen.state_dict(), model.state_dict()
    assert set(got_state) == set(ref_state)
    for name, ref in ref_state.items():  # fp16 in the pickle, widened exactly on load
        assert got_state[name].dtype == torch.float32
        torch.testing.assert_close(got_state[name], ref, rtol=0, atol=0, msg=name)

    y = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2]) if config["label_dim"] else None
    with torch.no_grad():
        a = model(y, 1.3, generator=torch.Generator().manual_seed(5), class_labels=labels)
        b = gen.eval()(y, 1.3, generator=torch.Generator().manual_seed(5), class_labels=labels)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.abs().sum() > 0


def test_a_protocol_2_pickle_imports_the_same_weights(tmp_path):
    """A pickle re-saved with protocol=2 was refused ("refusing to import __builtin__.set"): Python 2's names are
    mapped as pickle's fix_imports does, and its bytes (`_codecs.encode(text, "latin1")`) read; other codecs not."""
    from ncvsd_cli.pickle_import import RestrictedUnpickler

    gen = _randomise(build_network(network_config("generator", "tiny")))
    config = network_config("generator", "tiny")
    for protocol in (2, 4):
        _write_pickle(tmp_path / f"p{protocol}.pkl", gen, _authors_kwargs(config), wrap_generator=True,
                      protocol=protocol)
        import_pickle(tmp_path / f"p{protocol}.pkl", tmp_path / f"p{protocol}.safetensors")
    a, _ = load_checkpoint(tmp_path / "p2.safetensors", kind="generator")
    b, _ = load_checkpoint(tmp_path / "p4.safetensors", kind="generator")
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    codec = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(pickle.UnpicklingError, match="only protocol 2's bytes"):
        RestrictedUnpickler(io.BytesIO(codec)).load()


def test_teacher_import(tmp_path):
    config = network_config("teacher", "tiny")
    teacher = _randomise(build_network(config), seed=3)
    src = tmp_path / "edm2-tiny.pkl"
    _write_pickle(src, teacher, _authors_kwargs(config), wrap_generator=False, extras=False)
    out, cfg = import_pickle(src, tmp_path / "teacher.safetensors")
    assert cfg["kind"] == "teacher"
    model, _ = load_checkpoint(out, kind="teacher")
    for name, ref in teacher.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], ref, rtol=0, atol=0, msg=name)
    assert any(name.startswith("unet.enc.") for name in model.state_dict())
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x, 0.7), teacher.eval()(x, 0.7), rtol=0, atol=0)


def test_an_imported_teacher_starts_a_teacher_run_of_its_preset(tmp_path):
    """An imported teacher (use_fp16 recorded, no gamma, no preset) is the preset network of its size: --init-teacher
    takes it with that --arch or none (the preset is found), and refuses another architecture by name."""
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app

    config = network_config("teacher", "tiny")
    src = tmp_path / "edm2-tiny.pkl"
    _write_pickle(src, _randomise(build_network(config), seed=3), _authors_kwargs(config), wrap_generator=False,
                  extras=False)
    imported, cfg = import_pickle(src, tmp_path / "teacher.safetensors")
    assert cfg["arch"]["use_fp16"] and cfg["preset"] is None and "gamma" not in cfg
    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(data / "a.png")
    common = ["train", "--data", str(data), "--init-teacher", str(imported), "--duration", "1steps", "--batch", "2",
              "--device", "cpu", "--quiet"]
    for i, arch in enumerate((["--arch", "tiny"], [])):
        res = CliRunner().invoke(app, [*common, "--out", str(tmp_path / f"run{i}"), *arch])
        assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / f"run{i}" / "run.json").read_text())["arch"] == "tiny"
    res = CliRunner().invoke(app, [*common, "--out", str(tmp_path / "cond"), "--arch", "tiny-cond"])
    assert res.exit_code == 2 and "its label_dim differs from the network being trained" in res.output, res.output


def test_recorded_tree_uses_the_authors_names(tmp_path):
    config = network_config("generator", "tiny")
    gen = build_network(config)
    src = tmp_path / "g.pkl"
    _write_pickle(src, gen, _authors_kwargs(config), wrap_generator=True)
    data = read_pickle(src)
    ema = data["ema"]
    assert isinstance(ema, Recorded) and not ema.persistent and ema.qualname == "training.networks_edm2.GenerativeDenoiser"
    inner = ema.attr("model")
    assert inner.persistent and inner.class_name == "PrecondCondition" and inner.version == 6
    assert inner.init_kwargs["model_channels"] == 16
    state = recorded_state_dict(ema)
    assert all(t.dtype == torch.float16 for t in state.values())
    assert {"model.dec.additional_x_weight", "model.logvar_linear.weight", "model.ctrl.emb_fourier.freqs",
            "model.enc.enc.16x16_conv.weight"} <= set(state)
    assert isinstance(data["dataset_kwargs"], dict) and data["dataset_kwargs"]["path"] == "ffhq"
    assert analyse(data).config["kind"] == "generator"


def test_score_model_without_wrapper_imports_as_score(tmp_path):
    config = network_config("score", "tiny")
    net = _randomise(build_network(config), seed=4)
    src = tmp_path / "score.pkl"
    _write_pickle(src, net, _authors_kwargs(config), wrap_generator=False)
    out, cfg = import_pickle(src, tmp_path / "score.safetensors")
    assert cfg["kind"] == "score"
    assert set(load_checkpoint(out)[0].state_dict()) == set(net.state_dict())


@pytest.mark.parametrize("payload, name", [
    (b"cos\nsystem\n(S'echo pwned'\ntR.", "os.system"),
    (b"cbuiltins\neval\n(S'1+1'\ntR.", "builtins.eval"),
    (b"cposix\nsystem\n(S'echo pwned'\ntR.", "posix.system"),
    (b"ctorch.nn.modules.module\nModule\n)R.", "torch.nn.modules.module.Module"),
    (b"ctorch\nload\n(S'x'\ntR.", "torch.load"),
])
def test_refuses_foreign_globals(tmp_path, payload, name):
    with pytest.raises(pickle.UnpicklingError, match=f"refusing to import {name}"):
        read_pickle(io.BytesIO(payload))
    src = tmp_path / "evil.pkl"
    src.write_bytes(payload)
    with pytest.raises(CheckpointError, match="refusing"):
        import_pickle(src, tmp_path / "evil.safetensors")
    assert not (tmp_path / "evil.safetensors").exists()


@pytest.mark.parametrize("data", [b"junk\n", b"\x00" * 64, b""])
def test_bytes_that_are_no_pickle_are_called_that(tmp_path, data):
    """Python's own reason for such bytes ("Memo value not found at index 174812789") told a user nothing."""
    src = tmp_path / "bad.pkl"
    src.write_bytes(data)
    with pytest.raises(CheckpointError, match="does not start the way a Python pickle") as info:
        import_pickle(src, tmp_path / "bad.safetensors")
    assert "Memo" not in str(info.value) and not (tmp_path / "bad.safetensors").exists()


def test_refuses_reduce_smuggled_inside_a_network(tmp_path):
    """A real-looking network pickle with an `os.system` call hidden in a module's state is refused."""

    class Evil:
        def __reduce__(self):
            import os
            return os.system, ("echo pwned",)

    def smuggle(net):
        net.unet.enc["16x16_conv"].payload = Evil()

    config = network_config("teacher", "tiny")
    src = tmp_path / "evil.pkl"
    _write_pickle(src, build_network(config), _authors_kwargs(config), wrap_generator=False, mutate=smuggle)
    assert b"system" in src.read_bytes()
    with pytest.raises(CheckpointError, match="refusing to import (os|posix).system"):
        import_pickle(src, tmp_path / "evil.safetensors")


def test_module_src_is_never_executed(tmp_path, monkeypatch):
    """Even with module_src that would raise, import works; and exec/eval/compile are never reached."""
    import builtins

    config = network_config("teacher", "tiny")
    src = tmp_path / "t.pkl"
    _write_pickle(src, build_network(config), _authors_kwargs(config), wrap_generator=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("exec/eval/compile called during import")

    for fn in ("exec", "eval", "compile"):
        monkeypatch.setattr(builtins, fn, forbidden)
    data = read_pickle(src)
    monkeypatch.undo()
    assert data["ema"].module_src_sha256 is not None
    assert not any(name in sys.modules for name in FAKE_MODULES)


def test_architecture_mismatch_is_a_checkpoint_error(tmp_path):
    config = network_config("teacher", "tiny")
    kwargs = _authors_kwargs(config)
    kwargs["model_channels"] = 8  # recorded arguments disagree with the stored tensors
    src = tmp_path / "t.pkl"
    _write_pickle(src, build_network(config), kwargs, wrap_generator=False)
    with pytest.raises(CheckpointError, match="shapes do not match"):
        import_pickle(src, tmp_path / "t.safetensors")


def test_missing_ema_key(tmp_path):
    config = network_config("teacher", "tiny")
    src = tmp_path / "t.pkl"
    _write_pickle(src, build_network(config), _authors_kwargs(config), wrap_generator=False)
    with pytest.raises(CheckpointError, match="no 'net' entry") as err:
        import_pickle(src, tmp_path / "t.safetensors", ema_key="net")
    assert "`ncvsd checkpoints import FILE --ema KEY" in str(err.value)  # restore has no --ema of its own


def test_test_pickles_ask_for_exactly_the_globals_of_the_published_files(tmp_path):
    """The globals requested equal the table of docs/method.md §9 (so these tests exercise the real structure)."""
    config = network_config("generator", "tiny")
    src = tmp_path / "g.pkl"
    _write_pickle(src, build_network(config), _authors_kwargs(config), wrap_generator=True, extras=False)
    asked = set()

    class Spy(RestrictedUnpickler):
        def find_class(self, module, name):
            asked.add(f"{module}.{name}")
            return super().find_class(module, name)

    with open(src, "rb") as f:
        Spy(f).load()
    assert asked == {
        "training.networks_edm2.GenerativeDenoiser", "torch_utils.persistence._reconstruct_persistent_obj",
        "torch.nn.modules.container.ModuleDict", "collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter", "torch.storage._load_from_bytes",
    }


def test_cli_import(tmp_path):
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app

    config = network_config("generator", "tiny")
    gen = _randomise(build_network(config), seed=7)
    src, out = tmp_path / "ncvsd-tiny.pkl", tmp_path / "out.safetensors"
    _write_pickle(src, gen, _authors_kwargs(config), wrap_generator=True)
    res = CliRunner().invoke(app, ["checkpoints", "import", str(src), "-o", str(out), "--data", "FFHQ"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["kind"] == "generator"
    assert read_config(out)["provenance"]["data"] == "FFHQ"
    res = CliRunner().invoke(app, ["checkpoints", "import", str(src), "-o", str(out)])
    assert res.exit_code == 2 and "--force" in res.output
    res = CliRunner().invoke(app, ["checkpoints", "import", str(out), "-o", str(tmp_path / "again.safetensors")])
    assert res.exit_code == 2 and "is a safetensors file, not a pickle to import" in res.output, res.output
    bare = tmp_path / "bare.pkl"  # a wrapper state without gamma: the paper's value, said and recorded
    _write_pickle(bare, gen, _authors_kwargs(config), wrap_generator=True, mutate=lambda net: delattr(net, "gamma"))
    res = CliRunner().invoke(app, ["checkpoints", "import", str(bare), "-o", str(tmp_path / "bare.safetensors")])
    assert res.exit_code == 0 and "generator's gamma; the paper's 0.414 is assumed" in res.stderr, res.output
    assert read_config(tmp_path / "bare.safetensors")["provenance"]["assumed"] == {"gamma": 0.414}
    (tmp_path / "a-file").write_text("x")
    res = CliRunner().invoke(app, ["checkpoints", "import", str(src), "-o", str(tmp_path / "a-file" / "o.safetensors")])
    assert res.exit_code == 2 and "cannot create its folder" in res.output, res.output
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    res = CliRunner().invoke(app, ["checkpoints", "import", str(evil), "-o", str(tmp_path / "e.safetensors")])
    assert res.exit_code == 3 and "refusing to import os.system" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_nan_weights_and_an_output_made_meanwhile_are_refused(tmp_path, monkeypatch):
    """A pickle with a NaN weight was written (exit 0) into a checkpoint every loader refuses; an output another
    process wrote during the conversion was replaced without --force (the existence check ran before it)."""
    from typer.testing import CliRunner

    from ncvsd_cli import pickle_import
    from ncvsd_cli.cli import app

    config = network_config("teacher", "tiny")
    net, src = _randomise(build_network(config)), tmp_path / "t.pkl"
    _write_pickle(src, net, _authors_kwargs(config), wrap_generator=False)
    nan = tmp_path / "nan.pkl"
    _write_pickle(nan, net, _authors_kwargs(config), wrap_generator=False,
                  mutate=lambda m: next(m.parameters()).data.view(-1)[0].fill_(float("nan")))
    with pytest.raises(CheckpointError, match="NaN or inf"):
        import_pickle(nan, tmp_path / "nan.safetensors")
    assert not (tmp_path / "nan.safetensors").exists()
    out, real = tmp_path / "o.safetensors", pickle_import.analyse

    def meanwhile(*args, **kwargs):
        out.write_bytes(b"another process's file")
        return real(*args, **kwargs)

    monkeypatch.setattr(pickle_import, "analyse", meanwhile)
    res = CliRunner().invoke(app, ["checkpoints", "import", str(src), "-o", str(out)])
    assert res.exit_code == 2 and "created meanwhile" in res.output, res.output
    assert out.read_bytes() == b"another process's file" and [p.name for p in tmp_path.glob(".o*")] == []
    res = CliRunner().invoke(app, ["checkpoints", "import", str(src), "-o", str(out), "--force"])
    assert res.exit_code == 0 and read_config(out)["kind"] == "teacher", res.output


# ------------------------------------------------------------------------------------- bombs and malformed pickles
def _shared_lists(depth: int) -> bytes:
    """{"ema": l_depth} with l_{k+1} = [l_k, l_k]: a few hundred bytes that expand to 2^depth lists if copied."""
    nested: list = []
    for _ in range(depth):
        nested = [nested, nested]
    return pickle.dumps({"ema": nested}, protocol=4)


def _deep_lists(depth: int) -> bytes:
    """depth empty lists each appended to the one below: nesting `depth` levels (built without recursion)."""
    return b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b"."


def test_shared_objects_are_unwrapped_once():
    data = read_pickle(io.BytesIO(_shared_lists(3)))
    outer = data["ema"]
    assert outer[0] is outer[1] and outer[0][0] is outer[0][1]  # sharing survives: nothing was copied
    loop: list = []
    loop.append(loop)
    out = read_pickle(io.BytesIO(pickle.dumps(loop, protocol=4)))
    assert out[0] is out


def test_shared_list_bomb_is_linear(tmp_path):
    """The 2^64-list bomb finishes at once; run in a memory-capped subprocess so a regression cannot hog the host."""
    src = tmp_path / "bomb.pkl"
    src.write_bytes(_shared_lists(64))
    assert src.stat().st_size < 1000
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
            "from ncvsd_cli.cli import main; sys.argv = ['ncvsd', 'checkpoints', 'import', sys.argv[1], '-o', "
            "sys.argv[2]]; main()")
    import subprocess

    res = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "o.safetensors")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 3, res.stderr[-500:]
    assert "not a recorded network" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("payload, message", [
    (_deep_lists(100_000), "deeper than 200 levels"),
    (b"\x80\x04\x8e" + (1 << 60).to_bytes(8, "little") + b"abc.", "more memory"),  # BINBYTES8 of 2^60 bytes
    (b"\x80\x04\x8d" + (1 << 62).to_bytes(8, "little") + b"abc.", "more memory"),  # BINUNICODE8
    (b"\x80\x04cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R.", None),  # inert: no limit involved
])
def test_huge_or_deep_pickles_are_refused_with_exit_3(tmp_path, payload, message):
    from typer.testing import CliRunner

    from ncvsd_cli.cli import app

    src = tmp_path / "x.pkl"
    src.write_bytes(payload)
    res = CliRunner().invoke(app, ["checkpoints", "import", str(src), "-o", str(tmp_path / "x.safetensors")])
    assert res.exit_code == 3, res.output
    assert len(res.output.strip().splitlines()) == 1 and "internal error" not in res.output
    if message:
        assert message in res.output


def test_import_limits(tmp_path):
    from ncvsd_cli.pickle_import import ImportLimits

    config = network_config("teacher", "tiny")
    src = tmp_path / "t.pkl"
    _write_pickle(src, build_network(config), _authors_kwargs(config), wrap_generator=False, extras=False)
    assert read_pickle(src)["ema"].class_name == "Precond"  # the defaults take a real network
    for limits, message in [(ImportLimits(max_objects=200), "more than 200 objects"),
                            (ImportLimits(max_depth=5), "deeper than 5 levels"),
                            (ImportLimits(max_tensor_bytes=10_000), "exceed 10000 bytes")]:
        with pytest.raises(pickle.UnpicklingError, match=message):
            read_pickle(src, limits)
        with pytest.raises(CheckpointError, match=message):
            import_pickle(src, tmp_path / "t.safetensors", limits=limits)
    assert not (tmp_path / "t.safetensors").exists()


def test_tensor_geometry_outside_its_storage_is_refused(tmp_path):
    """A tensor view reaching past its storage (or a huge numpy array) is refused before torch or numpy sees it."""
    storage = io.BytesIO()
    torch.save(torch.zeros(4).untyped_storage(), storage)

    class View:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (_Storage(), 0, (10**12,), (1,), False, collections.OrderedDict())

    class _Storage:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (storage.getvalue(),)

    import collections

    with pytest.raises(pickle.UnpicklingError, match="reaches element"):
        read_pickle(io.BytesIO(pickle.dumps({"ema": View()}, protocol=4)))
    import numpy as np

    from ncvsd_cli.pickle_import import ImportLimits

    class HugeArray:  # what a crafted file can ask numpy for: an uninitialised 1 TiB array
        def __reduce__(self):
            return np.ndarray.__reduce__(np.zeros(1, np.uint8))[0], (np.ndarray, (1 << 40,), b"b")

    with pytest.raises(pickle.UnpicklingError, match="exceed"):
        read_pickle(io.BytesIO(pickle.dumps({"ema": HugeArray()}, protocol=4)), ImportLimits())
