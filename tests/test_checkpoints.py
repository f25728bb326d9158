"""Checkpoint format (safetensors + JSON config), manifest verification, lookup order and `ncvsd checkpoints`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from ncvsd_cli import checkpoints as ck
from ncvsd_cli.checkpoints import (
    CheckpointError,
    default_checkpoint,
    list_checkpoints,
    load_checkpoint,
    locate_shipped_file,
    read_config,
    resolve_checkpoint,
    save_checkpoint,
    sha256_file,
)
from ncvsd_cli.networks import KINDS, build_network, network_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Isolated search locations: env, shipped (with its own manifest) and cache folders."""
    d = {name: tmp_path / name for name in ("env", "shipped", "cache")}
    for p in d.values():
        p.mkdir()
    (d["shipped"] / "manifest.yaml").write_text("defaults: {}\nfiles: {}\n")
    monkeypatch.setenv("NCVSD_CHECKPOINTS", str(d["env"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    d["cache"] = tmp_path / "xdg" / "ncvsd"
    d["cache"].mkdir(parents=True)
    monkeypatch.setattr(ck, "shipped_dir", lambda: d["shipped"])
    return d


def _write_manifest(folder: Path, files: dict, defaults: dict | None = None) -> None:
    (folder / "manifest.yaml").write_text(yaml.safe_dump({"defaults": defaults or {}, "files": files}))


def _randomised(kind: str, preset: str = "tiny", seed: int = 0) -> torch.nn.Module:
    net = build_network(network_config(kind, preset))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand(p.shape, generator=g))
    return net


@pytest.mark.parametrize("case", ["a 57 G-parameter config", "defaults of 593 M parameters", "integer weights",
                                  "a missing tensor"])
def test_a_file_whose_tensors_do_not_fit_its_config_is_refused_from_its_header(tmp_path, case, monkeypatch):
    """A 434 KB file whose config named 57 G parameters was built whole by `checkpoints list` (22 GB, 112 s) and
    `restore -c`; integer weights loaded into float parameters unsaid; `info` / `list` called files "not in
    manifest" that `restore -c` refused. Now all refused from the header, before any network is built."""
    path = save_checkpoint(_randomised("generator"), tmp_path / "g.safetensors", network_config("generator", "tiny"))
    with safe_open(str(path), framework="pt") as f:
        meta, state = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    config = json.loads(meta["ncvsd"])
    if case == "a 57 G-parameter config":
        config["arch"].update(model_channels=2048, channel_mult=[1, 2, 4, 4], num_blocks=4)
        said = "at least 5,586,812,928 parameters, the file holds"
    elif case == "defaults of 593 M parameters":  # model_channels left out: the constructor's 192
        config["arch"].pop("model_channels")
        config["arch"].update(num_blocks=40)
        said = "at least"
    elif case == "integer weights":
        state = {k: v.to(torch.int32) for k, v in state.items()}
        said = "holds I32 values, not floats"
    else:
        said = f"missing {min(state)}"
        state.pop(min(state))
    save_file(state, str(path), metadata={**meta, "ncvsd": json.dumps(config)})
    info = ck.checkpoint_info(path)
    assert "unreadable" in info.status and "does not fit the generator network" in info.status and said in info.status
    with pytest.raises(CheckpointError, match=said):
        load_checkpoint(path)
    res = _cli("info", str(path))
    assert res.exit_code == 3 and said in res.output
    monkeypatch.setenv("NCVSD_CHECKPOINTS", str(tmp_path))  # the table keeps the word (it cut it once)
    row = next(line for line in _cli("list").stdout.splitlines() if line.startswith("g.safetensors"))
    assert row.endswith("not in manifest; unreadable"), row


@pytest.mark.parametrize("kind", KINDS)
def test_roundtrip_every_kind(tmp_path, kind):
    net = _randomised(kind)
    config = network_config(kind, "tiny")
    config["provenance"] = {"data": "unit test", "steps": 0, "command": "pytest"}
    path = save_checkpoint(net, tmp_path / f"{kind}.safetensors", config)
    model, cfg = load_checkpoint(path, kind=kind)
    assert type(model) is type(net) and not model.training
    assert cfg["kind"] == kind and cfg["preset"] == "tiny" and cfg["arch"] == config["arch"]
    assert cfg["format_version"] == ck.FORMAT_VERSION and cfg["provenance"]["date"]
    for name, ref in net.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], ref, rtol=0, atol=0, msg=name)
    assert [p.name for p in tmp_path.iterdir()] == [f"{kind}.safetensors"]  # no temp file left behind


def test_metadata_holds_the_documented_config(tmp_path):
    net = _randomised("generator")
    config = network_config("generator", "tiny")
    config["provenance"] = {"data": "FFHQ-16", "steps": 12, "command": "ncvsd distill ..."}
    path = save_checkpoint(net, tmp_path / "g.safetensors", config)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["ncvsd"])
    for key in ("kind", "preset", "arch", "img_resolution", "img_channels", "label_dim", "sigma_data", "gamma",
                "provenance", "format_version"):
        assert key in meta, key
    assert meta["gamma"] == pytest.approx(0.414) and meta["img_resolution"] == 16
    assert {"data", "steps", "date", "command"} <= set(meta["provenance"])


def test_fp16_file_loads_as_float32_with_the_same_outputs(tmp_path):
    teacher = _randomised("teacher")
    with torch.no_grad():
        for t in teacher.state_dict().values():
            t.copy_(t.half().float())
    path = save_checkpoint(teacher, tmp_path / "t.safetensors", network_config("teacher", "tiny"),
                           dtype=torch.float16)
    with safe_open(str(path), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict) == {torch.float16}
    model, _ = load_checkpoint(path)
    assert {t.dtype for t in model.state_dict().values()} == {torch.float32}
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x, 0.5), teacher.eval()(x, 0.5), rtol=0, atol=0)


def test_failed_save_keeps_the_old_file(tmp_path):
    net = _randomised("teacher")
    path = save_checkpoint(net, tmp_path / "t.safetensors", network_config("teacher", "tiny"))
    before = sha256_file(path)
    bad = network_config("teacher", "tiny")
    bad["provenance"] = {"command": object()}  # not JSON
    with pytest.raises(TypeError):
        save_checkpoint(net, path, bad)
    with pytest.raises(ValueError, match="kind"):
        save_checkpoint(net, path, {"kind": "unet", "arch": {}})
    assert sha256_file(path) == before and len(list(tmp_path.iterdir())) == 1


def test_wrong_kind_and_wrong_architecture_are_checkpoint_errors(tmp_path):
    path = save_checkpoint(_randomised("teacher"), tmp_path / "t.safetensors", network_config("teacher", "tiny"))
    with pytest.raises(CheckpointError, match="holds a teacher network .a teacher drives the methods dps, daps "
                                              "and teacher-mmse, and `sample --teacher`., but a generator is needed here$"):
        load_checkpoint(path, kind="generator")
    lying = network_config("teacher", "tiny", model_channels=8)
    liar = save_checkpoint(_randomised("teacher"), tmp_path / "liar.safetensors", lying)
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    save_file(tensors, str(liar), metadata={"ncvsd": json.dumps({**lying, "format_version": 1})})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(liar)


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an ncvsd checkpoint"):
        load_checkpoint(plain)
    pkl = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(2)}, pkl)  # a pickle renamed: must not be unpickled
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        read_config(pkl)
    run = tmp_path / "run"  # a training run's resume state: pointed to the run folder, not to an import that
    run.mkdir()  # refuses it
    torch.save({"step": 1}, run / "state.pt")
    (run / "log.jsonl").write_text("{}\n")
    with pytest.raises(CheckpointError, match=f"a training run's resume state; -c {re.escape(str(run))} restores"):
        read_config(run / "state.pt")
    future = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, str(future), metadata={"ncvsd": json.dumps({"kind": "teacher",
                                                                                "format_version": 99})})
    with pytest.raises(CheckpointError, match="format_version 99"):
        read_config(future)


def test_lookup_order_and_bare_names(dirs, tmp_path):
    net, cfg = _randomised("teacher"), network_config("teacher", "tiny")
    for loc in ("cache", "shipped", "env"):
        save_checkpoint(net, dirs[loc] / "m.safetensors", cfg)
        assert resolve_checkpoint("m") == dirs[loc] / "m.safetensors"  # latest written location wins
    explicit = save_checkpoint(net, tmp_path / "elsewhere" / "m.safetensors", cfg)
    assert resolve_checkpoint(explicit) == explicit
    assert resolve_checkpoint("m.safetensors") == dirs["env"] / "m.safetensors"
    save_checkpoint(net, dirs["cache"] / "only-cache.safetensors", cfg)
    assert resolve_checkpoint("only-cache") == dirs["cache"] / "only-cache.safetensors"
    save_file({"w": torch.zeros(1)}, dirs["cache"] / "weights-only.safetensors")
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint("missing")
    msg = str(err.value)
    assert str(dirs["env"]) in msg and str(dirs["shipped"]) in msg and str(dirs["cache"]) in msg
    assert "m.safetensors" in msg and "only-cache.safetensors" in msg
    assert "weights-only" not in msg  # not a network: not offered as a model
    (dirs["cache"] / "weights-only.safetensors").unlink()
    with pytest.raises(CheckpointError, match="not found"):
        resolve_checkpoint(tmp_path / "nope" / "m.safetensors")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file; in it: m.safetensors, only-cache"):
        resolve_checkpoint(dirs["cache"])
    run = tmp_path / "young-run"  # a training run before its first snapshot was "a folder, not a checkpoint file"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(CheckpointError, match="is an ncvsd training run with no snapshot yet"):
        resolve_checkpoint(run)
    with pytest.raises(CheckpointError, match="'/dev/null' is not a regular file"):  # was "not found"
        resolve_checkpoint("/dev/null")
    listed = [(i.name, i.location) for i in list_checkpoints()]
    assert listed == [("m.safetensors", "env"), ("m.safetensors", "shipped"), ("m.safetensors", "cache"),
                      ("only-cache.safetensors", "cache")]


def test_manifest_verification(dirs):
    path = save_checkpoint(_randomised("teacher"), dirs["shipped"] / "t.safetensors",
                           network_config("teacher", "tiny"))
    good = {"sha256": sha256_file(path), "size": path.stat().st_size, "licence": "MIT", "provenance": {}}
    _write_manifest(dirs["shipped"], {"t.safetensors": good}, {"teacher": "t.safetensors"})
    assert locate_shipped_file("t.safetensors") == path
    assert default_checkpoint("teacher") == "t.safetensors"
    assert load_checkpoint(default_checkpoint("teacher"))[1]["kind"] == "teacher"
    with pytest.raises(CheckpointError, match="no default generator checkpoint"):
        default_checkpoint("generator")

    wrong = {**good, "sha256": "0" * 64}
    _write_manifest(dirs["shipped"], {"t.safetensors": wrong})
    for call in (lambda: locate_shipped_file("t.safetensors"), lambda: load_checkpoint("t")):
        with pytest.raises(CheckpointError) as err:
            call()
        assert "t.safetensors" in str(err.value) and "0" * 64 in str(err.value) and good["sha256"] in str(err.value)
    # the check is by file name, wherever the file is found: a model of one's own so named is told to rename it
    shutil.copy(path, dirs["env"] / "t.safetensors")
    with pytest.raises(CheckpointError, match="checksum mismatch.*give it a name of its own"):
        load_checkpoint("t")
    dirs["env"].joinpath("t.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"git checkout -- checkpoints/ && pip install \.") as err:
        load_checkpoint("t")  # the shipped file damaged: how to get it back (not from PyPI, where it is not)
    assert "pip install --force-reinstall ncvsd`" not in str(err.value)
    (dirs["env"] / "gone.safetensors").symlink_to(dirs["env"] / "nowhere.safetensors")
    with pytest.raises(CheckpointError, match="a broken symbolic link"):
        load_checkpoint(dirs["env"] / "gone.safetensors")

    path.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    _write_manifest(dirs["shipped"], {"t.safetensors": good})
    with pytest.raises(CheckpointError, match="Git LFS pointer"):
        locate_shipped_file("t.safetensors")
    with pytest.raises(CheckpointError, match="not listed"):
        locate_shipped_file("other.safetensors")


def test_sizes_are_listed_in_their_binary_units():
    from ncvsd_cli.cli.checkpoints import _human_size

    assert [_human_size(n) for n in (900, 880_316, 14_985_658)] == ["900 B", "859.7 KiB", "14.3 MiB"]


def test_shipped_manifest_is_consistent():
    """Every file listed in the real checkpoints/manifest.yaml exists and matches; defaults name listed files."""
    manifest = ck.load_manifest()
    for name, entry in manifest["files"].items():
        assert locate_shipped_file(name).is_file()
        assert entry["header_sha256"] == ck.header_sha256(locate_shipped_file(name)), name
    for kind, name in manifest["defaults"].items():
        assert name in manifest["files"], f"default {kind} {name} is not listed"
        assert read_config(locate_shipped_file(name))["kind"] == kind


@pytest.mark.parametrize("name", ["builtin64-generator", "builtin64-teacher"])
@pytest.mark.parametrize("where", ["tail", "middle"])
def test_renamed_copy_of_a_shipped_file_is_verified_by_content(tmp_path, name, where):
    """A renamed copy is recognised by its header: intact it loads, with one flipped bit it is refused (exit 3)."""
    shipped = locate_shipped_file(f"{name}.safetensors")
    copy = tmp_path / "renamed.safetensors"
    shutil.copy(shipped, copy)
    assert ck.verify_if_listed(copy) == "verified"
    blob = bytearray(shipped.read_bytes())
    blob[-3 if where == "tail" else len(blob) // 2] ^= 0x04
    copy.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=f"copy of {name}.safetensors.*--checkpoint {name}"):
        load_checkpoint(copy)
    from ncvsd_cli.cli import app

    kind = "generator" if "generator" in name else "teacher"
    res = CliRunner().invoke(app, ["sample", "--checkpoint", str(copy), "-o", str(tmp_path / "s.png")]
                             if kind == "generator" else ["checkpoints", "info", str(copy)])
    assert res.exit_code == 3 and "checksum mismatch" in res.output, res.output
    assert not (tmp_path / "s.png").exists()


# ------------------------------------------------------------------------------------------------------ CLI
def _cli(*args):
    from ncvsd_cli.cli import app

    return CliRunner().invoke(app, ["checkpoints", *args])


def test_cli_list_and_info(dirs):
    save_checkpoint(_randomised("generator"), dirs["env"] / "g.safetensors", network_config("generator", "tiny"))
    res = _cli("list", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows[0]["name"] == "g.safetensors" and rows[0]["kind"] == "generator" and rows[0]["location"] == "env"
    res = _cli("list")
    assert res.exit_code == 0 and "g.safetensors" in res.stdout and "generator" in res.stdout
    res = _cli("info", "g")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["config"]["preset"] == "tiny" and info["status"] == "not in manifest"
    assert info["sha256"] == sha256_file(dirs["env"] / "g.safetensors")
    assert info["origin"] == {}  # neither shipped nor downloaded: only the config's own provenance


def test_list_fits_a_narrow_terminal_and_keeps_every_column_for_a_pipe(monkeypatch):
    """At 80 columns the 146-column table wrapped into unreadable lines: columns give way (sha256 first) and a note
    names them; piped (no terminal, no $COLUMNS) every column stays for scripts."""
    from ncvsd_cli.cli import checkpoints as cli_checkpoints

    monkeypatch.setenv("COLUMNS", "60")  # exported by some shells: a pipe still gets every column
    res = _cli("list")
    assert "SHA256" in res.stdout and "LICENCE" in res.stdout and "left out" not in res.output
    monkeypatch.setattr(cli_checkpoints, "_terminal_width", lambda: 80)
    res = _cli("list")
    assert res.exit_code == 0 and max(len(line) for line in res.stdout.splitlines()) <= 80
    assert res.stdout.split()[:3] == ["NAME", "KIND", "RES"] and "SHA256, LICENCE" in res.stderr


def test_a_training_run_as_search_location_lists_and_finds_its_snapshots(dirs, tmp_path, monkeypatch):
    """NCVSD_CHECKPOINTS=runs/exp1 (the list command's own example): the run's snapshots/ are listed (location env)
    and found by bare name; `checkpoints import RUN_DIR` says it is a folder of ready checkpoints (exit 2)."""
    run = tmp_path / "runs" / "exp1"
    (run / "snapshots").mkdir(parents=True)
    names = [f"teacher-0000001.000-{r}.safetensors" for r in ("0.050", "0.100")]
    for i, name in enumerate(names):
        save_checkpoint(_randomised("teacher", seed=i), run / "snapshots" / name, network_config("teacher", "tiny"))
    (run / "snapshots" / "notes.safetensors").write_bytes(b"not a snapshot name: not listed")
    monkeypatch.setenv("NCVSD_CHECKPOINTS", str(run))
    rows = json.loads(_cli("list", "--json").stdout)
    assert [(r["name"], r["location"]) for r in rows if r["location"] != "zoo"] == [(n, "env") for n in names]
    assert resolve_checkpoint(names[1].removesuffix(".safetensors")) == run / "snapshots" / names[1]
    info = json.loads(_cli("info", names[0]).stdout)
    assert info["location"] == "env" and info["kind"] == "teacher"
    res = _cli("import", str(run), "-o", str(tmp_path / "x.safetensors"))
    assert res.exit_code == 2 and "is a folder" in res.stderr and f"-c {run}" in res.stderr, res.output


def test_search_location_mistakes_are_said_not_fatal(dirs, tmp_path, monkeypatch):
    """A folder named *.safetensors in a search location is not a row (it stopped the whole list, exit 3); an
    NCVSD_CHECKPOINTS that is a file or missing is said by `list` and in the not-found message."""
    (dirs["env"] / "sub.safetensors").mkdir()
    save_checkpoint(_randomised("generator"), dirs["env"] / "g.safetensors", network_config("generator", "tiny"))
    res = _cli("list", "--json")
    assert res.exit_code == 0 and [r["name"] for r in json.loads(res.stdout) if r["location"] == "env"] == [
        "g.safetensors"], res.output
    for target, said in ((dirs["env"] / "g.safetensors", "not a folder"), (tmp_path / "nowhere", "missing")):
        monkeypatch.setenv("NCVSD_CHECKPOINTS", str(target))
        res = _cli("list")
        assert res.exit_code == 0 and f"is {said}: not searched" in res.stderr, res.output
        with pytest.raises(CheckpointError, match=f"{target} \\(env: {said}\\)"):
            resolve_checkpoint("absent")


def test_import_to_a_folder_is_a_usage_error(tmp_path):
    (tmp_path / "d.safetensors").mkdir()
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04")
    res = _cli("import", str(tmp_path / "m.pkl"), "-o", str(tmp_path / "d.safetensors"), "--force")
    assert res.exit_code == 2 and "is a folder" in res.stderr and "d.safetensors/m.safetensors" in res.stderr


def test_a_failed_import_leaves_no_folder_and_names_a_top_level_list(tmp_path):
    """A refused pickle left the -o folder it created; a pickle of a list was said to have an entry 'ema'."""
    import pickle

    (tmp_path / "l.pkl").write_bytes(pickle.dumps([1, 2]))
    res = _cli("import", str(tmp_path / "l.pkl"), "-o", str(tmp_path / "new dir" / "sub" / "x.safetensors"))
    assert res.exit_code == 3 and "its top-level object is a list" in res.stderr, res.output
    assert not (tmp_path / "new dir").exists()
    (tmp_path / "kept").mkdir()
    assert _cli("import", str(tmp_path / "l.pkl"), "-o", str(tmp_path / "kept" / "x.safetensors")).exit_code == 3
    assert (tmp_path / "kept").is_dir()  # a folder that was there stays


def test_info_of_a_shipped_model_says_how_it_was_made(tmp_path):
    """The manifest's record (the data set by name and manifest, the stages) beside the file's own provenance,
    which names the trainer's temporary paths; another file of the same name gets none of it."""
    from ncvsd_cli.checkpoints import checkpoint_info

    info = checkpoint_info("builtin64-teacher")
    assert info.status == "verified" and "photos_manifest.yaml" in info.origin["data"] and "stage2" in info.origin
    mine = save_checkpoint(_randomised("teacher"), tmp_path / "builtin64-teacher.safetensors",
                           network_config("teacher", "tiny"))
    other = checkpoint_info(mine)
    assert other.status.startswith("MISMATCH") and other.origin == {} and other.licence is None


def test_cli_exit_codes(dirs):
    path = save_checkpoint(_randomised("teacher"), dirs["shipped"] / "t.safetensors",
                           network_config("teacher", "tiny"))
    _write_manifest(dirs["shipped"], {"t.safetensors": {"sha256": "f" * 64, "size": path.stat().st_size}})
    res = _cli("info", "t")
    assert res.exit_code == 3 and "checksum mismatch" in res.output
    res = _cli("info", "missing")
    assert res.exit_code == 3 and "not found" in res.output
    res = _cli("import", str(dirs["env"] / "nope.pkl"), "-o", "x.safetensors")
    assert res.exit_code == 2 and "does not exist" in res.output
    res = _cli("import")
    assert res.exit_code == 2


def test_cli_module_does_not_import_torch():
    code = "import sys, ncvsd_cli.cli.checkpoints; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0


def test_wheel_ships_the_checkpoints(tmp_path):
    """A regular (non-editable) install gets checkpoints/ as the package ncvsd_checkpoints, manifest included."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("ncvsd_cli", "operators", "checkpoints"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ncvsd_checkpoints/manifest.yaml" in names and "ncvsd_checkpoints/__init__.py" in names
    for listed in ck.load_manifest()["files"]:
        assert f"ncvsd_checkpoints/{listed}" in names
    assert "ncvsd_checkpoints/photos-ATTRIBUTION.txt" in names  # credits of the default model's training photos


def test_shipped_weights_stay_under_50_mb():
    files = ck.load_manifest()["files"]
    assert sum(locate_shipped_file(name).stat().st_size for name in files) < 50e6


def test_shipped_generator_is_the_teacher_copy_its_manifest_describes():
    """The default generator is the teacher copy (docs/method.md §1.9) of the shipped teacher with γ 0.1, as its
    manifest entry says: G(y, σ, z) = D_0(y + sqrt(σ̂² − σ²) z, σ̂) with σ̂ = 1.1 σ, at low and high σ."""
    from ncvsd_cli.checkpoints import load_checkpoint

    entry = ck.load_manifest()["files"]["builtin64-generator.safetensors"]["provenance"]
    assert "--gamma 0.1" in entry["command"] and entry["teacher"] == "builtin64-teacher.safetensors"
    gen, cfg = load_checkpoint("builtin64-generator", kind="generator")
    teacher, _ = load_checkpoint("builtin64-teacher", kind="teacher")
    assert cfg["gamma"] == pytest.approx(0.1) and gen.gamma == pytest.approx(0.1)
    g = torch.Generator().manual_seed(0)
    y, z = torch.randn(2, 3, 24, 24, generator=g), torch.randn(2, 3, 24, 24, generator=g)
    sigma = torch.tensor([0.05, 3.0])
    sigma_hat = 1.1 * sigma
    with torch.no_grad():
        ref = teacher(y + (sigma_hat**2 - sigma**2).sqrt().view(-1, 1, 1, 1) * z, sigma_hat)
        assert torch.allclose(gen(y, sigma, noise=z), ref, atol=1e-4)


def test_written_checkpoints_and_states_get_the_umasks_permissions(tmp_path):
    """Checkpoints, records and training states were left 0600 by mkstemp (unreadable for a shared group)."""
    import os

    from ncvsd_cli.checkpoints import write_record
    from ncvsd_cli.training.loop import atomic_torch_save

    old = os.umask(0o022)
    try:
        path = save_checkpoint(_randomised("teacher"), tmp_path / "t.safetensors", network_config("teacher", "tiny"))
        write_record(path, name="t", licence="MIT", source={}, fix="-")
        atomic_torch_save({"x": 1}, tmp_path / "state.pt")
    finally:
        os.umask(old)
    for p in (path, ck.record_path(path), tmp_path / "state.pt"):
        assert p.stat().st_mode & 0o777 == 0o644, p


def test_load_checkpoint_names_a_device_it_cannot_use():
    """A device string that is malformed or not available here is a ValueError naming the device argument, not a
    torch error from deep inside .to()."""
    import torch

    from ncvsd_cli.checkpoints import load_checkpoint

    with pytest.raises(ValueError, match="device 'gpu0' is not one of auto, cpu, cuda"):
        load_checkpoint("builtin64-generator", device="gpu0")
    if not torch.cuda.is_available():
        for device in ("cuda", torch.device("cuda")):  # a torch.device failed inside .to() with torch's error
            with pytest.raises(ValueError, match="device cuda: CUDA is not available"):
                load_checkpoint("builtin64-generator", device=device)
    for device in ("CPU", torch.device("cpu", 0), "cpu:0"):
        model, _ = load_checkpoint("builtin64-generator", device=device)
        assert next(model.parameters()).device.type == "cpu"


def _with_config(src: Path, dst: Path, edit) -> Path:
    """A copy of checkpoint `src` whose "ncvsd" config is `edit(config)`."""
    with safe_open(str(src), framework="pt") as f:
        names = f.keys()  # (safe_open is no dict)
        tensors, meta = {k: f.get_tensor(k) for k in names}, dict(f.metadata())
    meta[ck.METADATA_KEY] = json.dumps(edit(json.loads(meta[ck.METADATA_KEY])))
    save_file(tensors, str(dst), metadata=meta)
    return dst


@pytest.mark.parametrize(("edit", "said"), [
    (lambda c: [1, 2], "holds a JSON list, not the config object"),
    (lambda c: {**c, "arch": {**c["arch"], "bogus": 1}}, "cannot build the network from its config (TypeError"),
    (lambda c: {**c, "arch": "big"}, "cannot build the network from its config"),
    (lambda c: {**c, "img_resolution": 0}, "cannot build the network from its config (ValueError: bad UNet size"),
])
def test_a_config_that_builds_no_network_is_a_model_error_naming_the_file(tmp_path, edit, said):
    """Such a file was an "internal error" (exit 1) in `checkpoints list` / `sample`, or every input's failure in
    `restore`: the memory check built the network before the loader's own check."""
    from test_cli import _png, run

    cfg = network_config("generator", "tiny")
    good = save_checkpoint(build_network(cfg), tmp_path / "good.safetensors", cfg)
    bad = _with_config(good, tmp_path / "bad.safetensors", edit)
    src = _png(tmp_path / "a.png", 16, 16)
    for args in (("sample", "--seeds", "0", "-o", tmp_path / "s.png"),
                 ("restore", "--task", "denoise", src, "-o", tmp_path / "o")):
        res = run(*args, "-c", bad, "-q")
        assert res.exit_code == 3 and str(bad) in res.stderr and said in res.stderr, res.output
    info = run("checkpoints", "info", bad)
    assert info.exit_code == 3 and said in info.stderr and "internal error" not in info.stderr, info.output


def test_a_checkpoint_write_interrupted_leaves_no_file_behind(tmp_path, monkeypatch):
    """safetensors' save_file wrote a temporary file of its own beside the target (.tmpXXXXXX) that a kill left
    in a run's snapshots/ (one snapshot's size each time): the bytes are now written by the project's atomic
    writer alone, whose temporary file is the only one there while it writes and is removed on any exception."""
    from ncvsd_cli import images

    seen = []

    def interrupted(path, data):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "_write_synced", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(_randomised("teacher"), tmp_path / "teacher-0000001.000-0.050.safetensors",
                           network_config("teacher", "tiny"))
    assert len(seen) == 1 and len(seen[0]) == 1 and seen[0][0].startswith(".teacher-") and seen[0][0].endswith(".tmp")
    assert list(tmp_path.iterdir()) == []
