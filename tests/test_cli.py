"""`ncvsd degrade`, `ncvsd restore`, `ncvsd sample` end to end through the CLI (Typer's runner), on tiny
images
with a tiny checkpoint made here (NET's `tiny` preset, random weights) and --nfe 2."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import operators
from ncvsd_cli import images
from ncvsd_cli import measurement as meas
from ncvsd_cli import restore as lib
from ncvsd_cli.checkpoints import save_checkpoint
from ncvsd_cli.cli import app
from ncvsd_cli.networks import build_network, network_config
from ncvsd_cli.sampling.generate import sample_images

runner = CliRunner()
FAST = ["--nfe", "2", "--device", "cpu"]
#: Parameters an operator cannot do without (files made per test).
NEEDS_FILE = {"inpaint-mask": "mask", "deblur-kernel": "kernel"}


def run(*args: str, input: bytes | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def _ckpt(folder: Path, preset: str = "tiny", kind: str = "generator") -> Path:
    torch.manual_seed(0)
    cfg = network_config(kind, preset)
    path = folder / f"{preset}-{kind}.safetensors"
    save_checkpoint(build_network(cfg), path, cfg)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _ckpt(tmp_path_factory.mktemp("ckpt"))


def _png(path: Path, h: int = 16, w: int = 16, seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), np.full((h, w), 128)], -1)
    arr = np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def _task_params(task: str, folder: Path, h: int, w: int) -> list[str]:
    if task == "inpaint-mask":
        m = np.full((h, w), 255, np.uint8)
        m[h // 4 : h // 2, w // 4 : w // 2] = 0
        Image.fromarray(m).save(folder / "mask.png")
        return ["--param", f"mask={folder / 'mask.png'}"]
    if task == "deblur-kernel":
        k = np.zeros((5, 5))
        k[2, :] = 1.0
        np.save(folder / "k.npy", k)
        return ["--param", f"kernel={folder / 'k.npy'}"]
    return []


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# ----------------------------------------------------------------------------------------------- help, import
@pytest.mark.parametrize("command", ["degrade", "restore", "sample"])
def test_help_has_examples(command):
    res = run(command, "--help")
    assert res.exit_code == 0 and "Examples" in res.stdout and f"ncvsd {command}" in res.stdout


@pytest.mark.parametrize("command", [[], ["restore"], ["degrade"], ["sample"], ["bench"], ["train"], ["distill"],
                                     ["checkpoints"], ["checkpoints", "import"], ["checkpoints", "list"],
                                     ["checkpoints", "info"], ["checkpoints", "download"]])
def test_help_names_option_values_by_the_option(command):
    """`--seed SEED`, `[INPUT]...` (argparse's convention), not Typer's `<int range>` or `[[INPUT]...]...`; flags
    show no value, Typer's own (--help, --install-completion) included."""
    text = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).stdout
    assert "--help " in text
    assert not re.search(r"<(int|float|str|bool|path|list)", text), text  # options and arguments
    assert "[[" not in text and "]..." not in text.replace("[INPUT]...", "").replace("COMMAND [ARGS]...", "")
    if command == ["restore"]:
        assert "Usage: ncvsd restore [OPTIONS] [INPUT]..." in text and re.search(r"--seed +SEED", text)


def test_json_lines_end_with_a_summary_also_on_a_usage_error_and_the_help_says_so(tmp_path):
    """A --json run that stops early (here a box larger than every image: exit 2, after the line of a missing input)
    still ends with its summary ("error", "exit_code"), and the help text survives Rich's markup."""
    src = _png(tmp_path / "a.png", 16, 12)
    res = run("degrade", "--task", "inpaint-box", "-p", "box_size=1000", tmp_path / "missing.png", src, "-o",
              tmp_path / "o", "--json")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.exit_code == 2 and lines[0]["status"] == "failed", res.output
    assert lines[-1]["command"] == "degrade" and lines[-1]["exit_code"] == 2 and "box" in lines[-1]["error"]
    text = " ".join(runner.invoke(app, ["restore", "--help"], env={"COLUMNS": "300"}).stdout.split())
    assert "size is height, width" in text and "last line" in text


@pytest.mark.parametrize("args, named, path", [
    (["restore", "a.png", "--seed", "-1"], "--seed", "ncvsd restore"), (["restore", "a.png", "--sed", "3"], "--sed",
                                                                       "ncvsd restore"),
    (["bench", "--limit", "0"], "--limit", "ncvsd bench"), (["restore", "--task"], "--task", "ncvsd restore"),
    (["nope"], "nope", "ncvsd"), (["checkpoints", "list", "--jsn"], "--jsn", "ncvsd checkpoints list"),
    (["sample", "--nfe", "x"], "--nfe", "ncvsd sample")])
def test_command_line_parse_errors_are_one_line_like_every_other_error(args, named, path):
    """Typer's framed multi-line box is replaced by `ncvsd: error: ... (see 'ncvsd CMD --help')`, exit 2."""
    res = run(*args)
    assert res.exit_code == 2 and res.stderr.startswith("ncvsd: error: ") and res.stderr.count("\n") == 1, res.stderr
    assert named in res.stderr and f"(see '{path} --help')" in res.stderr and not res.stdout


@pytest.mark.parametrize("args, said", [
    (["restore", "a.png", "--model", "x"], "No such option: --model: here it is --checkpoint (-c)"),
    (["restore", "a.png", "--steps", "4"], "here it is --nfe"), (["degrade", "a.png", "--scale", "4"], "--task sr2"),
    (["bench", "--weights", "x"], "--checkpoint"), (["sample", "--scale", "2"], "No such option: --scale (see")])
def test_other_tools_names_of_options_are_translated(args, said):
    """--model was answered "Possible options: --help, --mean, --method"; another tool's name for an option of this
    command is translated (a command without it gets click's message)."""
    res = run(*args)
    assert res.exit_code == 2 and said in res.stderr, res.stderr


@pytest.mark.parametrize("command", ["restore", "degrade", "sample", "bench"])
@pytest.mark.parametrize("mistake", ["parse", "usage", "model"])
def test_json_output_ends_with_a_summary_on_every_early_error(command, mistake, tmp_path):
    """With --json the last stdout line holds "exit_code" also when the run stops before any input: a parse error
    (Typer's), a usage error found by the command, a missing model (exit 3)."""
    src = _png(tmp_path / "a.png", 16, 12)
    inputs = {"restore": [src, "--task", "sr4"], "degrade": [src, "--task", "sr4"], "sample": [],
              "bench": ["--dataset", tmp_path, "--tasks", "sr4"]}[command]
    extra = {"parse": ["--bogus"], "usage": ["--device", "xpu"],
             "model": ["--checkpoint", tmp_path / "missing.safetensors"]}[mistake]
    if command == "degrade" and mistake != "parse":  # degrade loads no model and takes no --device
        extra = ["--sigma-y", "-1"] if mistake == "usage" else ["-p", "box_size=9"]
    res = run(command, *inputs, "-o" if command != "bench" else "--out", tmp_path / "out.png", *extra, "--json")
    last = json.loads(res.stdout.splitlines()[-1])
    code = 3 if mistake == "model" and command != "degrade" else 2
    assert res.exit_code == code and last["exit_code"] == code and last["command"] == command, res.output
    assert last["error"] and res.stderr.count("ncvsd: error:") == 1
    assert last.get("results") == ([] if command != "bench" else None)  # bench's summary has no JSON Lines


def test_parse_error_summary_under_python_m_and_only_on_rank_0(tmp_path):
    """`python -m ncvsd_cli restore --seed -1 --json` (its command path has 4 words) ends with the summary too;
    under torchrun only rank 0 writes one (stdout would hold one line per rank)."""
    proc = subprocess.run([sys.executable, "-m", "ncvsd_cli", "restore", "--seed", "-1", "--json", "x.png"],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          check=False)
    assert proc.returncode == 2 and json.loads(proc.stdout)["command"] == "restore", proc.stderr
    assert "(see 'python -m ncvsd_cli restore --help')" in proc.stderr
    rank1 = runner.invoke(app, ["bench", "--json", "--device", "xpu"], env={"WORLD_SIZE": "2", "LOCAL_RANK": "1",
                                                                            "RANK": "1"})
    assert rank1.exit_code == 2 and rank1.stdout == "" and "rank 1: error" in rank1.stderr, rank1.output


def test_json_summary_tells_an_interruption_while_the_model_loads(ckpt, tmp_path, monkeypatch):
    from ncvsd_cli import checkpoints

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "load_checkpoint", interrupted)
    res = run("sample", "--checkpoint", ckpt, "--seeds", "0", "-o", tmp_path / "s.png", "--device", "cpu", "--json")
    last = json.loads(res.stdout.splitlines()[-1])
    assert res.exit_code == 130 and last.items() >= {"command": "sample", "ok": 0, "failed": 0, "exit_code": 130,
                                                     "interrupted": "SIGINT", "results": []}.items(), res.output


@pytest.mark.parametrize("command", ["restore", "degrade", "sample"])
def test_an_empty_output_path_is_a_usage_error(command, tmp_path, ckpt):
    """`-o "$DIR"` with DIR unset wrote into the current folder."""
    inputs = [] if command == "sample" else [_png(tmp_path / "a.png", 8, 8), "--task", "denoise"]
    model = [] if command == "degrade" else ["-c", ckpt, "--device", "cpu"]
    res = run(command, *inputs, *model, "-o", "")
    assert res.exit_code == 2 and "-o is empty" in res.stderr, res.output
    assert _files(tmp_path) == ({"a.png"} if command != "sample" else set())


@pytest.mark.parametrize("command", [["restore", "--task", "sr4", "x.png"], ["sample"], ["bench"],
                                     ["checkpoints", "info"]])
def test_an_empty_checkpoint_name_is_a_usage_error_not_the_default(command, tmp_path):
    """`-c "$CKPT"` with CKPT unset restored with the default model (restore, sample, bench) or exit 3 (info)."""
    args = [*command, ""] if command[0] == "checkpoints" else [*command, "-c", "", "-o", str(tmp_path / "o.png")]
    res = run(*args)
    assert res.exit_code == 2 and "empty" in res.stderr and not (tmp_path / "o.png").exists(), res.output


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_outputs_that_are_no_files_or_too_long_are_refused_before_any_work(tmp_path, ckpt, command):
    """--overwrite replaced a FIFO (and, as root, /dev/null) with a PNG file; an -o name over 255 bytes was an
    "internal error: OSError"; a dangling symlink was found taken only after the work."""
    import os

    src = _png(tmp_path / "a.png", 8, 8)
    extra = ["-c", ckpt, *FAST] if command == "restore" else []
    os.mkfifo(tmp_path / "fifo")
    res = run(command, "--task", "denoise", src, "-o", tmp_path / "fifo", "--overwrite", *extra)
    assert res.exit_code == 1 and "is not a regular file (a device, pipe or socket)" in res.stderr, res.output
    assert (tmp_path / "fifo").is_fifo()
    res = run(command, "--task", "denoise", src, "-o", tmp_path / ("x" * 300 + ".png"), *extra)
    assert res.exit_code == 2 and "File name too long" in res.stderr and "internal error" not in res.stderr
    for out, said in (("--json", "an option, not an output name"), ("=x.png", "write -o NAME")):  # (a folder
        res = run(command, "--task", "denoise", src, "-o", out, *extra)  # --json, a file =x.png were made)
        assert res.exit_code == 2 and said in res.stderr and not Path(out).exists(), res.output
    (tmp_path / "link.png").symlink_to(tmp_path / "nowhere" / "t.png")
    res = run(command, "--task", "denoise", src, "-o", tmp_path / "link.png", *extra)
    assert res.exit_code == 1 and "link.png is a symbolic link to a missing file" in res.stderr, res.output


def test_an_output_that_is_a_folder_is_refused_before_any_work(tmp_path, ckpt):
    """A sidecar name taken by a folder left a measurement without its sidecar (all or nothing broken); a folder
    with an image suffix given to sample is a folder to write into, as for degrade."""
    src = _png(tmp_path / "a.png", 8, 8)
    (tmp_path / "sc" / "m.png.ncvsd.json").mkdir(parents=True)
    res = run("degrade", "--task", "denoise", src, "-o", tmp_path / "sc" / "m.png", "--overwrite")
    assert res.exit_code == 1 and "m.png.ncvsd.json is a folder" in res.stderr, res.output
    assert _files(tmp_path / "sc") == {"m.png.ncvsd.json"}
    (tmp_path / "dir.png").mkdir()
    res = run("sample", "-c", ckpt, "--nfe", "1", "--seeds", "0", "-o", tmp_path / "dir.png", "--device", "cpu")
    assert res.exit_code == 0 and _files(tmp_path / "dir.png") == {"000000.png"}, res.output
    assert run("sample", "--ts", "", "-o", tmp_path / "t.png").exit_code == 2
    assert run("degrade", "--task", "denoise", src, "--max-pixels", "0").exit_code == 2


def test_degrade_help_lists_every_builtin_task():
    text = " ".join(runner.invoke(app, ["degrade", "--help"], env={"COLUMNS": "300"}).stdout.split())
    assert all(name in text for name in operators.names())


def test_a_local_operators_module_is_named_not_an_internal_error(tmp_path):
    """A research folder's own operators.py shadowed ncvsd's top-level `operators` under `python -m ncvsd_cli`:
    "internal error: AttributeError: module 'operators' has no attribute 'get'"."""
    (tmp_path / "operators.py").write_text("def add(a, b):\n    return a + b\n")
    _png(tmp_path / "a.png", 16, 12)
    res = subprocess.run([sys.executable, "-m", "ncvsd_cli", "degrade", "--task", "sr4", "a.png", "-o", "b.png"],
                         cwd=tmp_path, capture_output=True, text=True, check=False,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 1 and "operators.py is not ncvsd's" in res.stderr and "internal" not in res.stderr


def test_cli_import_does_not_load_torch():
    code = ("import sys, ncvsd_cli, ncvsd_cli.cli; from ncvsd_cli.cli import common; common.seed_option(5); "
            "assert 'torch' not in sys.modules, 'torch imported'")  # --seed's check took 5 s of torch (completion)
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    from ncvsd_cli.cli import common
    from operators.noise import MAX_SEED

    assert common.MAX_SEED == MAX_SEED


# ---------------------------------------------------------------------------------------------------- degrade
@pytest.mark.parametrize("task, flag", [("inpaint-mask", "-p mask="), ("deblur-kernel", "-p kernel=")])
def test_degrade_without_the_users_mask_or_kernel_is_a_usage_error(task, flag, tmp_path):
    res = run("degrade", "--task", task, _png(tmp_path / "c.png", 8, 8), "-o", tmp_path / "m.png")
    assert res.exit_code == 2 and flag in res.stderr and not (tmp_path / "m.png").exists(), res.output


@pytest.mark.parametrize("task", operators.names())
def test_degrade_every_task_and_sidecar_round_trip(task, tmp_path):
    src = _png(tmp_path / "clean.png", 16, 12)
    out = tmp_path / "m.png"
    res = run(
        "degrade",
        "--task",
        task,
        src,
        "-o",
        out,
        "--seed",
        "3",
        "--sigma-y",
        "0.1",
        *_task_params(task, tmp_path, 16, 12),
    )
    assert res.exit_code == 0, res.output
    side, tens = meas.sidecar_paths(out)
    assert out.is_file() and side.is_file() and tens.is_file()
    m = meas.load_measurement(out)
    assert m.task == task and m.image_shape == (3, 16, 12) and m.sigma_y == 0.1 and m.seed == 3
    # exactly reproducible: the operator rebuilt from the sidecar, the same image and seed give the same
    # floats
    x = images.load_image(src)
    from operators.noise import stream_generators, tensor_key

    key = tensor_key(x)
    assert torch.equal(m.operator().measure(x, 0.1, stream_generators("measurement", 3, [key])), m.y)
    assert not torch.equal(m.operator().measure(x, 0.1, stream_generators("measurement", 4, [key])), m.y)
    preview = Image.open(out)
    if task == "phase-retrieval":
        assert json.loads(side.read_text())["preview"]["kind"] == "log-amplitude"
    else:
        assert preview.size == (m.y.shape[-1], m.y.shape[-2])


def test_degrade_sr4_writes_the_small_image(tmp_path):
    src = _png(tmp_path / "c.png", 16, 20)
    assert run("degrade", "--task", "sr4", src).exit_code == 0
    assert Image.open(tmp_path / "c_sr4_measured.png").size == (5, 4)
    res = run("degrade", "--task", "sr4", src, "-o", tmp_path / "c.jpg")
    assert res.exit_code == 0 and "lossy preview" in res.output and (tmp_path / "c.jpg.ncvsd.json").exists()


def test_degrade_sr4_with_another_resizer_keeps_it_in_the_sidecar(tmp_path):
    """`-p kernel=nearest`: the small image is every 4th pixel (torch's nearest-exact), and the sidecar's operator
    is that resizer, so a restore from it fits the right model; an unknown kernel is a usage error."""
    src = _png(tmp_path / "c.png", 16, 20)
    res = run("degrade", "--task", "sr4", "-p", "kernel=nearest", "--sigma-y", "0", src, "-o", tmp_path / "m.png")
    assert res.exit_code == 0, res.output
    m = meas.load_measurement(tmp_path / "m.png")
    assert m.operator().kernel == "nearest" and m.operator().to_config()["kernel"] == "nearest"
    x = images.load_image(src)
    torch.testing.assert_close(m.y, torch.nn.functional.interpolate(x, size=(4, 5), mode="nearest-exact"))
    res = run("degrade", "--task", "sr4", "-p", "kernel=lanczos", src, "-o", tmp_path / "l.png")
    assert res.exit_code == 2 and "kernel must be one of" in res.stderr and not (tmp_path / "l.png").exists()


@pytest.mark.parametrize("case", ["not-image", "truncated", "bad-param", "unknown-task", "missing"])
def test_degrade_bad_input_one_line_error_no_output(tmp_path, case):
    src = _png(tmp_path / "c.png")
    args = ["degrade", "--task", "deblur-gauss", str(tmp_path / "c.png"), "-o", str(tmp_path / "o.png")]
    if case == "not-image":
        src.write_text("not an image")
    elif case == "truncated":
        src.write_bytes(src.read_bytes()[:60])
    elif case == "bad-param":
        args[2] = "inpaint-mask"  # the mask is required: a usage error before any input is read
    elif case == "unknown-task":
        args[2] = "sr3"
    elif case == "missing":
        args[3] = str(tmp_path / "nope.png")
    before = _files(tmp_path)
    res = run(*args)
    assert res.exit_code == (2 if case in ("unknown-task", "bad-param") else 1)
    assert "Traceback" not in res.output and res.stderr.count("\n") == 1 and "error" in res.stderr
    assert _files(tmp_path) == before  # no partial output, no temporary file


# ---------------------------------------------------------------------------------------------------- restore
@pytest.mark.parametrize("task", operators.names())
def test_restore_every_task_from_its_sidecar(task, tmp_path, ckpt):
    src = _png(tmp_path / "clean.png", 16, 12)
    params = _task_params(task, tmp_path, 16, 12)
    assert run("degrade", "--task", task, src, "-o", tmp_path / "m.png", *params).exit_code == 0
    res = run("restore", tmp_path / "m.png", "-c", ckpt, *FAST, "--json", "-q")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["task"] == task and summary["results"][0]["nfe"] == 2
    assert summary["results"][0]["seconds"] > 0 and summary["results"][0]["read_seconds"] > 0  # restore, read
    assert summary["results"][0]["task"] == task and summary["results"][0]["method"] == summary["method"]
    out = Image.open(tmp_path / f"m_{task}.png")
    assert out.size == (12, 16) and out.mode == "RGB"


def test_a_folder_of_sidecars_of_several_tasks_uses_each_tasks_sampler(tmp_path, ckpt, monkeypatch):
    """Without --method, each sidecar restores with its own task's default sampler (denoise: denoiser, phase
    retrieval: pnp-gd, sr2: pnp-gd-warm), not the first input's: phase retrieval has no warm start and failed."""
    src = _png(tmp_path / "clean.png", 16, 12)
    (tmp_path / "m").mkdir()
    for task in ("denoise", "phase-retrieval", "sr2"):
        assert run("degrade", "--task", task, src, "-o", tmp_path / "m" / f"{task}.png").exit_code == 0
    res = run("restore", tmp_path / "m", "-c", ckpt, *FAST, "--json", "-q", "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(summary["method"]) == ["denoiser", "pnp-gd", "pnp-gd-warm"]
    assert sorted(summary["task"]) == ["denoise", "phase-retrieval", "sr2"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["denoise.png", "phase-retrieval.png", "sr2.png"]
    (tmp_path / "out" / "sr2.png").unlink()  # a rerun that restores one of them: its summary names what ran
    res = run("restore", tmp_path / "m", "-c", ckpt, *FAST, "--json", "-q", "-o", tmp_path / "out", "--skip-existing")
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["task"], summary["method"], summary["ok"]) == ("sr2", "pnp-gd-warm", 1), summary
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "0")  # a status line per update (stderr is no terminal here)
    res = run("restore", tmp_path / "m", "-c", ckpt, *FAST, "-o", tmp_path / "o3")  # one progress bar for all three
    bars = re.findall(r"restore ([a-z0-9,-]+): (\d+)/(\d+)", res.stderr)
    assert res.exit_code == 0 and bars and {b[0] for b in bars} == {"denoise,phase-retrieval,sr2"}, res.stderr
    assert bars[-1][1:] == ("3", "3"), res.stderr
    res = run("restore", tmp_path / "m", "-c", ckpt, *FAST, "--json", "-q", "-o", tmp_path / "o2", "--method",
              "pnp-gd-warm")  # a given method holds for all: phase retrieval refuses it
    assert res.exit_code == 1 and "no warm start" in res.stderr


def test_an_interrupted_restores_json_summary_says_what_ran(tmp_path, ckpt, monkeypatch):
    """Ctrl-C after the first of two images: the summary names the task, method, nfe, device and precision that made
    the finished one, as a finished run's does (they were missing: only the options given at the start)."""
    from ncvsd_cli.cli import restore as cli_restore

    (tmp_path / "m").mkdir()
    for name in ("a", "b"):
        assert run("degrade", "--task", "sr2", _png(tmp_path / f"{name}.png", 16, 12), "-o",
                   tmp_path / "m" / f"{name}.png").exit_code == 0
    real, calls = cli_restore._Restoration.restore, []

    def second_interrupted(self, window, left):
        calls.append(len(window))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, window, left)

    monkeypatch.setattr(cli_restore, "WINDOW_BYTES", 1)  # one input per window
    monkeypatch.setattr(cli_restore._Restoration, "restore", second_interrupted)
    res = run("restore", tmp_path / "m", "-c", ckpt, *FAST, "--json", "-q", "-o", tmp_path / "out")
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert res.exit_code == 130 and last["interrupted"] == "SIGINT" and last["ok"] == 1, res.output
    assert (last["task"], last["method"], last["nfe"], last["device"]) == ("sr2", "pnp-gd-warm", 2, "cpu"), last
    assert last["precision"] in {"fp32", "bf16"} and last["not_done"] == [str(tmp_path / "m" / "b.png")], last


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_a_glob_that_matches_this_runs_own_outputs_leaves_them_out(tmp_path, ckpt, command):
    """`f/*.png` again after a run into f/ matched f/a_denoise.png: it was restored again (a_denoise_denoise.png)
    and a.png failed as "output is an input", with --skip-existing too."""
    folder = tmp_path / "f"
    folder.mkdir()
    _png(folder / "a.png", 16, 12)
    extra = ["-c", ckpt, *FAST, "--task", "denoise"] if command == "restore" else ["--task", "denoise"]
    assert run(command, folder / "a.png", *extra, "-q").exit_code == 0
    first = sorted(p.name for p in folder.iterdir())
    res = run(command, *sorted(folder.glob("*.png")), *extra, "--skip-existing", "--json")
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["status"] for line in res.stdout.splitlines()[:-1]] == ["skipped", "skipped"]
    assert "writes it in this run (an earlier run's output, matched again)" in res.stderr
    assert sorted(p.name for p in folder.iterdir()) == first  # nothing restored again
    res = run(command, *sorted(folder.glob("*.png")), *extra, "-q")
    assert res.exit_code == 1 and "exists (--overwrite replaces it" in res.stderr and "is an input" not in res.stderr
    other = tmp_path / "o"  # a photo that merely has another input's output name (x/a.png -o o/ beside o/a.png)
    other.mkdir()
    _png(other / "a.png", 16, 12, seed=3)
    res = run(command, folder / "a.png", other / "a.png", "-o", other, *extra, "--json")
    assert "left out" not in res.stderr and '"status": "skipped"' not in res.stdout, res.output


def test_written_meanwhile_is_a_skip_only_where_the_outputs_are_there(tmp_path):
    """An output collision whose files were rolled back (the other process failed too) is no finished input."""
    from ncvsd_cli.cli import common as cli_common
    from ncvsd_cli.images import OutputExistsError

    item = cli_common.InputItem("a.png", tmp_path / "a.png")
    exc = OutputExistsError("x exists", tmp_path / "x.png")
    report = cli_common.Report("restore")
    assert not cli_common.written_meanwhile(exc, item, [str(tmp_path / "x.png")], report, True, True)
    (tmp_path / "x.png").write_bytes(b"made")
    assert not cli_common.written_meanwhile(exc, item, [str(tmp_path / "x.png")], report, False, True)
    assert cli_common.written_meanwhile(exc, item, [str(tmp_path / "x.png")], report, True, True)
    assert report.results[-1]["status"] == "skipped"


def test_inputs_are_read_a_window_at_a_time(tmp_path, ckpt, monkeypatch):
    """Every input was decoded and held before the first restoration began (12 MB per queued 1-MP photo: a batch
    of phone photos ran out of memory, and nothing was written until all were read): inputs are read up to
    WINDOW_BYTES, restored, then the next are read; one progress bar counts them all."""
    from ncvsd_cli.cli import restore as cli_restore

    srcs = [_png(tmp_path / f"{n}.png", 16, 12, seed=k) for k, n in enumerate("abc")]
    seen_outputs, watched = [], [tmp_path / "out"]
    read_before = cli_restore._read_measurement

    def read(restorer, item, *args, **kwargs):
        seen_outputs.append(sorted(p.name for p in watched[0].glob("*.png")))
        return read_before(restorer, item, *args, **kwargs)

    monkeypatch.setattr(cli_restore, "_read_measurement", read)
    monkeypatch.setattr(cli_restore, "WINDOW_BYTES", 2 * 3 * 16 * 12 * 4)  # two 16x12 inputs
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "0")
    res = run("restore", *srcs, "missing.png", "-o", tmp_path / "out/", "-c", ckpt, *FAST, "--task", "denoise",
              "--json")
    assert res.exit_code == 1, res.output
    assert [json.loads(line)["status"] for line in res.stdout.splitlines()[:-1]] == ["failed", "ok", "ok", "ok"]
    assert seen_outputs == [[], [], ["a.png", "b.png"]]  # c.png was read after a and b were written
    assert re.findall(r"restore denoise: (\d+)/(\d+)", res.stderr)[-1] == ("3", "3"), res.stderr
    seen_outputs.clear()  # by count too: 45 small photos were all read (79 s) before the first was restored
    watched[0] = tmp_path / "out2"
    monkeypatch.setattr(cli_restore, "WINDOW_BYTES", 1 << 29)
    monkeypatch.setattr(cli_restore, "WINDOW_IMAGES", 2)
    res = run("restore", *srcs, "-o", tmp_path / "out2/", "-c", ckpt, *FAST, "--task", "denoise", "--json")
    assert res.exit_code == 0 and seen_outputs == [[], [], ["a.png", "b.png"]], res.output


def test_a_blur_read_after_the_first_window_is_said_on_the_restore_bar(tmp_path, ckpt, monkeypatch):
    from ncvsd_cli.cli import restore as cli_restore

    srcs = [_png(tmp_path / f"{n}.png", 40, 36, seed=k) for k, n in enumerate("abc")]
    monkeypatch.setattr(cli_restore, "WINDOW_BYTES", 2 * 3 * 40 * 36 * 4)  # two inputs
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "0")
    res = run("restore", *srcs, "-o", tmp_path / "out/", "-c", ckpt, "--device", "cpu", "--task", "deblur-gauss",
              "--method", "wiener")
    assert res.exit_code == 0, res.output
    assert "read the blur (deblur-gauss): 2/3" in res.stderr  # the reading bar: the first window
    assert re.search(r"restore deblur-gauss: 2/3 .*reading=the blur of .*c\.png", res.stderr), res.stderr


def test_skip_existing_skips_an_output_another_process_writes_meanwhile(tmp_path, ckpt, monkeypatch):
    """Two workers of a shared queue: the one that finished second reported every input "failed" (exit 1, advising
    --overwrite); with --skip-existing such an input is "skipped"."""
    from ncvsd_cli.restore import Restorer

    srcs = [_png(tmp_path / f"{n}.png", 16, 12, seed=k) for k, n in enumerate("ab")]
    run_before = Restorer.run

    def other_worker_first(self, measurements, *args, **kwargs):
        for res in run_before(self, measurements, *args, **kwargs):
            if measurements[res.index].source.endswith("a.png"):
                (tmp_path / "out").mkdir(exist_ok=True)
                (tmp_path / "out" / "a.png").write_bytes(b"the other worker's")
            yield res

    monkeypatch.setattr(Restorer, "run", other_worker_first)
    args = ["restore", *srcs, "-o", tmp_path / "out/", "-c", ckpt, *FAST, "--task", "denoise", "--json"]
    res = run(*args, "--skip-existing")
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["status"] for line in res.stdout.splitlines()[:-1]] == ["skipped", "ok"]
    assert "a.png: skipped:" in res.stderr and "written meanwhile" in res.stderr
    assert (tmp_path / "out" / "a.png").read_bytes() == b"the other worker's"
    (tmp_path / "out" / "a.png").unlink()
    (tmp_path / "out" / "b.png").unlink()
    res = run(*args)
    assert res.exit_code == 1 and "exists, made while this ran" in res.stderr, res.output


def test_skip_existing_leaves_out_an_input_another_worker_finished_before_its_window(tmp_path, ckpt, monkeypatch):
    """Two workers with --skip-existing on one list: the second restored every input and dropped each at write
    time; an input whose outputs appear before its window is restored is now skipped unrestored."""
    from ncvsd_cli.cli import restore as cli_restore
    from ncvsd_cli.restore import Restorer

    srcs = [_png(tmp_path / f"{n}.png", 16, 12, seed=k) for k, n in enumerate("ab")]
    read_before, run_before, restored = cli_restore._read_measurement, Restorer.run, []

    def read(restorer, item, *args, **kwargs):
        if item.name.endswith("b.png"):  # the other worker finishes b while this one reads it
            shutil.copy(srcs[1], tmp_path / "out" / "b.png")
        return read_before(restorer, item, *args, **kwargs)

    def run_counted(self, measurements, *args, **kwargs):
        restored.extend(m.source for m in measurements)
        yield from run_before(self, measurements, *args, **kwargs)

    monkeypatch.setattr(cli_restore, "_read_measurement", read)
    monkeypatch.setattr(cli_restore, "WINDOW_IMAGES", 1)
    monkeypatch.setattr(Restorer, "run", run_counted)
    (tmp_path / "out").mkdir()
    res = run("restore", *srcs, "-o", tmp_path / "out", "-c", ckpt, *FAST, "--task", "denoise", "--skip-existing",
              "--json")
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["status"] for line in res.stdout.splitlines()[:-1]] == ["ok", "skipped"]
    assert len(restored) == 1 and restored[0].endswith("a.png") and "written meanwhile" in res.stderr


def test_the_bar_names_the_tasks_of_later_windows_too(tmp_path, ckpt, monkeypatch):
    """Sidecars of several tasks restored window by window: the label named the first window's tasks only."""
    from ncvsd_cli.cli import restore as cli_restore

    src = _png(tmp_path / "a.png", 16, 12)
    for task in ("denoise", "sr2"):
        assert run("degrade", "--task", task, src, "-o", tmp_path / f"{task}.png").exit_code == 0
    monkeypatch.setattr(cli_restore, "WINDOW_IMAGES", 1)
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "0")
    res = run("restore", tmp_path / "denoise.png", tmp_path / "sr2.png", "-o", tmp_path / "out", "-c", ckpt, *FAST)
    lines = [line for line in res.stderr.splitlines() if line.startswith("restore ")]
    assert res.exit_code == 0 and lines[0].startswith("restore denoise:") and lines[-1].startswith(
        "restore denoise,sr2:"), res.stderr


def test_skip_existing_does_not_keep_another_tasks_output_as_done(tmp_path, ckpt):
    """sr4 with --skip-existing into a folder of deblur outputs of the same names reported them "skipped", exit 0:
    such an input now fails, naming the task its output was made by."""
    src = _png(tmp_path / "a.png", 16, 12)
    assert run("restore", src, "-o", tmp_path / "out", "-c", ckpt, *FAST, "--task", "denoise", "-q").exit_code == 0
    res = run("restore", src, "-o", tmp_path / "out", "-c", ckpt, *FAST, "--task", "sr2", "--skip-existing", "-q")
    assert res.exit_code == 1 and ("exists, made by --task denoise, not sr2: rerun with --overwrite instead of "
                                   "--skip-existing") in res.stderr
    res = run("restore", src, "-o", tmp_path / "out", "-c", ckpt, *FAST, "--task", "denoise", "--skip-existing")
    assert res.exit_code == 0 and "skipped 1" in res.stderr, res.output


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_skip_existing_makes_only_the_missing_outputs_of_a_rerun(tmp_path, ckpt, command):
    """A batch cut short, run again with --skip-existing: finished inputs are "skipped" (their files untouched),
    the rest are made, exit 0 (without it every existing output is a failure, exit 1)."""
    srcs = [_png(tmp_path / f"{n}.png", 16, 12, seed=k) for k, n in enumerate("abc")]
    extra = ["-c", ckpt, *FAST, "--task", "denoise"] if command == "restore" else ["--task", "denoise"]
    assert run(command, *srcs, "-o", tmp_path / "out", *extra, "-q").exit_code == 0
    made = sorted((tmp_path / "out").iterdir())
    kept = {p: p.stat().st_mtime_ns for p in made if p.name.startswith("a")}
    for p in made:
        if not p.name.startswith("a"):
            p.unlink()
    res = run(command, *srcs, "-o", tmp_path / "out", *extra, "--skip-existing", "--json", "-q")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["status"] for r in lines[:-1]] == ["skipped", "ok", "ok"] and lines[-1]["skipped"] == 1
    assert sorted((tmp_path / "out").iterdir()) == made and all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert run(command, *srcs, "-o", tmp_path / "out", *extra, "-q").exit_code == 1
    res = run(command, *srcs, "-o", tmp_path / "out", *extra, "--skip-existing", "--overwrite")
    assert res.exit_code == 2 and "contradict" in res.stderr
    (tmp_path / "d").mkdir()  # d/a.png writes out/a.png too: a collision, never "skipped" for the file of a.png
    other = _png(tmp_path / "d" / "a.png", 16, 12, seed=7)
    res = run(command, srcs[0], other, "-o", tmp_path / "out", *extra, "--skip-existing", "--json", "-q")
    assert res.exit_code == 1 and "would also be written" in res.stderr, res.output
    assert "quoted glob" in res.stderr  # inputs of two folders: a glob keeps their subfolders apart
    assert "skipped" not in [json.loads(line).get("status") for line in res.stdout.splitlines()]
    Image.open(srcs[0]).save(tmp_path / "a.jpg")  # a.png and a.jpg of one folder: a glob would not help
    res = run(command, srcs[0], tmp_path / "a.jpg", *extra, "-q")
    assert res.exit_code == 1 and "would also be written" in res.stderr and "glob" not in res.stderr, res.output


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_a_rerun_of_a_glob_into_its_own_folder_does_not_take_earlier_outputs_for_inputs(tmp_path, ckpt, command):
    """`'p/**/*.png' -o p` writes tagged files beside the inputs; the rerun (--skip-existing) skips every input
    and does not read those outputs as new inputs."""
    (tmp_path / "p" / "a").mkdir(parents=True)
    for sub in ("", "a"):
        _png(tmp_path / "p" / sub / "x.png", 16, 12)
    extra = ["-c", ckpt, *FAST, "--task", "denoise"] if command == "restore" else ["--task", "denoise"]
    pattern = str(tmp_path / "p" / "**" / "*.png")
    assert run(command, pattern, "-o", tmp_path / "p", *extra, "-q").exit_code == 0
    made = sorted(p.name for p in (tmp_path / "p").rglob("*.png"))
    assert len(made) == 4
    res = run(command, pattern, "-o", tmp_path / "p", *extra, "--skip-existing", "--json", "-q")
    summary = json.loads(res.stdout.splitlines()[-1])
    assert res.exit_code == 0 and summary["skipped"] == 2 and summary.get("ok", 0) == 0, res.output
    assert sorted(p.name for p in (tmp_path / "p").rglob("*.png")) == made
    tagged = str(tmp_path / "p" / "*_denoise*.png")  # a glob of outputs only: meant, also with -o elsewhere
    res = run(command, tagged, "-o", tmp_path / "other", *extra, "--json", "-q")
    assert res.exit_code == 0 and json.loads(res.stdout.splitlines()[-1])["ok"] == 1, res.output


def test_an_inputs_outputs_are_written_all_or_nothing(tmp_path, ckpt, monkeypatch):
    """Samples, mean and std map of one input: a failure writing any of them leaves none (a part would read as
    "exists, beside outputs still to make" to --skip-existing), and the rerun makes them all."""
    from ncvsd_cli import images

    real, calls = images._write_synced, []

    def flaky(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(images, "_write_synced", flaky)
    src = _png(tmp_path / "a.png", 16, 12)
    args = ["restore", "--task", "denoise", src, "-c", ckpt, *FAST, "--samples", "2", "--mean", "--std", "-o",
            tmp_path / "out/"]
    res = run(*args)
    assert res.exit_code == 1 and "No space left" in res.stderr, res.output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    monkeypatch.setattr(images, "_write_synced", real)
    assert run(*args, "--skip-existing").exit_code == 0
    assert _files(tmp_path / "out") == {"a_s0.png", "a_s1.png", "a_mean.png", "a_std.png", "a_std_map.png"}
    res = run(*args[:args.index("--samples") + 1], "3", "--mean", "--std", "-o", tmp_path / "out/")  # a third
    # sample: the hint said --skip-existing would add it
    assert res.exit_code == 1 and "keeps it and makes the rest" not in res.stderr, res.output
    assert "--skip-existing skips an input only where all its outputs exist" in res.stderr


def test_an_image_and_its_sidecar_files_listed_together_are_one_input(tmp_path, ckpt):
    """A glob over degrade's output folder lists X.png, X.png.ncvsd.json and X.png.ncvsd.safetensors: one
    measurement, restored once (they failed as colliding outputs, the tensors file as an image without --task)."""
    for name in ("a", "b"):
        assert run("degrade", "--task", "sr2", _png(tmp_path / f"{name}.png", 16, 12, seed=len(name)), "-o",
                   tmp_path / "m" / f"{name}.png").exit_code == 0
    res = run("restore", str(tmp_path / "m" / "*"), "-c", ckpt, *FAST, "-o", tmp_path / "out")
    assert res.exit_code == 0 and "more than once" not in res.stderr, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    files = sorted(str(p) for p in (tmp_path / "m").iterdir())
    res = run("restore", *files, "-c", ckpt, *FAST, "-o", tmp_path / "o2", "--json", "-q")
    assert res.exit_code == 0 and json.loads(res.stdout.strip().splitlines()[-1])["ok"] == 2, res.output
    res = run("restore", tmp_path / "m" / "a.png.ncvsd.safetensors", "-c", ckpt, *FAST, "-o", tmp_path / "o3.png")
    assert res.exit_code == 0 and (tmp_path / "o3.png").is_file(), res.output
    res = run("restore", tmp_path / "m" / "a.png", "-m", tmp_path / "m" / "a.png.ncvsd.json", "-c", ckpt, *FAST,
              "-o", tmp_path / "o4.png")
    assert res.exit_code == 0 and (tmp_path / "o4.png").is_file(), res.output


@pytest.mark.parametrize("task", ["sr4", "sr2", "deblur-gauss", "inpaint-box", "denoise", "inpaint-random"])
def test_restore_plain_png_any_size(task, tmp_path, ckpt):
    f = getattr(operators.get(task), "factor", 1)
    src = _png(tmp_path / "in.png", 7, 5)  # odd: padded to the network's multiple and cropped back
    seed = ["-p", "seed=2"] if task == "inpaint-random" else []  # which pixels are missing
    seed += ["-p", "sigma=1"] if task == "deblur-gauss" else []  # under 32 px no blur width is read
    res = run("restore", "--task", task, src, "-c", ckpt, *FAST, "--no-sidecar", *seed)
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / f"in_{task}.png").size == (5 * f, 7 * f)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_restore_precision_is_applied_and_reported(precision, tmp_path, ckpt):
    src = _png(tmp_path / "in.png", 9, 9)
    res = run("restore", "--task", "denoise", src, "-c", ckpt, *FAST, "--precision", precision, "--json", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["precision"] == precision


def test_restore_stdin_to_stdout(tmp_path, ckpt):
    data = _png(tmp_path / "in.png", 9, 9).read_bytes()
    res = run("restore", "--task", "denoise", "-", "-c", ckpt, *FAST, input=data)
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes.startswith(b"\x89PNG")
    assert images.read_image(res.stdout_bytes).size == (9, 9)
    res = run("restore", "--task", "denoise", "-", "-c", ckpt, *FAST, input=b"a.png\nb photo.png\n")  # `cat list |`
    assert res.exit_code == 1 and "holds text, not an image (a list of file names?" in res.stderr, res.output


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_stdin_on_a_terminal_is_refused_not_waited_on(ckpt, monkeypatch, command):
    from ncvsd_cli.cli import common as cli_common

    monkeypatch.setattr(cli_common, "_stdin_is_terminal", lambda: True)
    res = run(command, "--task", "denoise", "-", "-o", "x.png", *(["-c", ckpt, *FAST] if command == "restore" else []))
    assert res.exit_code == 2 and "standard input, which is a terminal: pipe or redirect" in res.stderr, res.output


def test_an_output_folder_that_is_a_file_is_refused_in_words(tmp_path, ckpt):
    src = _png(tmp_path / "a.png", 9, 9)
    (tmp_path / "afile").write_bytes(b"x")
    res = run("restore", "--task", "denoise", src, "-o", f"{tmp_path / 'afile'}/", "-c", ckpt, *FAST)
    assert res.exit_code == 2 and "a name ending in / is a directory, but this is a file" in res.stderr, res.output
    (tmp_path / "afile.png").write_bytes(b"x")
    res = run("restore", "--task", "denoise", src, _png(tmp_path / "b.png", 9, 9), "-o", tmp_path / "afile.png", "-c", ckpt,
              *FAST)
    assert res.exit_code == 2 and "several inputs need an output directory, but this is a file" in res.stderr


def test_a_file_named_dash_given_as_dot_slash_dash_is_that_file(tmp_path, ckpt, monkeypatch):
    """`./-` (as `find .` lists a file named "-") was read as standard input: "-: empty file (0 bytes)"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_bytes(_png(tmp_path / "in.png", 9, 9).read_bytes())
    res = run("restore", "--task", "denoise", "./-", "-o", "out/", "-c", ckpt, *FAST, "--json", input=b"")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["results"][0]["input"] == "./-"
    assert images.read_image(tmp_path / "out" / "-.png").size == (9, 9)


def test_a_plain_jpeg_is_restored_above_its_quantisation_error(tmp_path, ckpt):
    """A smooth JPEG reads as noise-free, but its quantisation is noise: the level is floored by it (a note says
    so and --json records it); the same pixels as a PNG keep the 8-bit floor 0.01."""
    yy, xx = np.mgrid[0:24, 0:24] / 23.0
    arr = (np.stack([xx, yy, 0.5 * xx * yy], -1) * 200 + 20).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "j.jpg", quality=60)
    Image.open(tmp_path / "j.jpg").save(tmp_path / "p.png")
    for name, level in (("j.jpg", 0.025), ("p.png", 0.01)):
        res = run("restore", "--task", "deblur-gauss", "-p", "sigma=1", tmp_path / name, "-o", tmp_path / "out",
                  "-c", ckpt, *FAST, "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout.splitlines()[-1])["results"][0]["sigma_y"] == level
        assert ("raised for this JPEG's quantisation steps" in res.stderr) == name.endswith(".jpg")
    res = run("restore", "--task", "deblur-gauss", "-p", "sigma=1", "-", "-c", ckpt, *FAST,
              input=(tmp_path / "j.jpg").read_bytes())  # from standard input too
    assert res.exit_code == 0 and "sigma_y 0.025" in res.stderr


def test_a_tile_smaller_than_needed_is_noted(tmp_path, ckpt):
    """--tile on an image the default computes whole says what the tiles cost (tiled work / whole work, from the
    tile layout: 64-px tiles overlapping by at least 16 on 128 px: 3 x 3 tiles fitted to 54 px on this network's
    2-px grid, 9 * 54^2 / 128^2 = 1.60x); a tile as large
    as the image, no --tile or a sidecar measurement of the same size behave as before / say the same."""
    src = _png(tmp_path / "s.png", 32, 32)
    for tile, expected in ((64, "into 9 overlapping tiles, 1.6x the generator work"), (128, None), (None, None)):
        args = ["--tile", tile] if tile else []
        res = run("restore", "--task", "sr4", src, "-o", tmp_path / f"o{tile}.png", "-c", ckpt, *FAST, *args)
        assert res.exit_code == 0, res.output
        assert (expected in res.stderr) if expected else ("overlapping tiles" not in res.stderr), res.stderr
    run("degrade", "--task", "sr4", _png(tmp_path / "c.png", 128, 128), "-o", tmp_path / "m.png")
    res = run("restore", tmp_path / "m.png", "-o", tmp_path / "r.png", "-c", ckpt, *FAST, "--tile", 64, "--json")
    notes = json.loads(res.stdout.splitlines()[-1])["results"][0]["notes"]
    assert res.exit_code == 0 and any("9 overlapping tiles" in n for n in notes)


def test_restore_image_library_call(tmp_path, ckpt, monkeypatch):
    """`restore_image`: K samples of one tensor, a JPEG's quantisation passed on to the measurement, a plain image
    the task cannot use refused with ValueError, an alpha channel's transparency filled by inpaint-mask."""
    y = images.load_image(_png(tmp_path / "lib.png", 9, 11, seed=3))
    out = lib.restore_image(y, "deblur-gauss", params={"sigma": 1.0}, checkpoint=str(ckpt), nfe=2, device="cpu",
                            samples=2)
    assert out.shape == (2, 3, 9, 11) and bool(torch.isfinite(out).all())
    seen, measurement = [], lib.Restorer.measurement
    monkeypatch.setattr(lib.Restorer, "measurement",
                        lambda self, *a, **k: seen.append(k.get("jpeg_sigma")) or measurement(self, *a, **k))
    lib.restore_image(y, "sr2", checkpoint=str(ckpt), nfe=1, device="cpu", jpeg_sigma=0.02)
    assert seen == [0.02]
    with pytest.raises(ValueError, match="deblur-kernel"):
        lib.restore_image(y, "deblur-motion", checkpoint=str(ckpt), device="cpu")
    alpha = torch.ones(1, 1, 9, 11)
    alpha[..., 2:5, 3:7] = 0  # erased: inpaint-mask without a mask fills the transparency, as `ncvsd restore` does
    out = lib.restore_image(y, "inpaint-mask", alpha=alpha, checkpoint=str(ckpt), nfe=1, device="cpu")
    assert out.shape == (1, 3, 9, 11) and (out[..., 6:, :] - y[..., 6:, :]).abs().max() < 1e-4  # opaque: kept


def test_restore_directory_with_a_corrupt_file(tmp_path, ckpt):
    d = tmp_path / "in"
    d.mkdir()
    _png(d / "a.png", seed=1)
    _png(d / "c.png", seed=2)
    (d / "b.png").write_bytes(_png(tmp_path / "x.png").read_bytes()[:50])
    res = run("restore", "--task", "deblur-gauss", d, "-o", tmp_path / "out", "-c", ckpt, *FAST, "--json", "-p",
              "sigma=1")
    assert res.exit_code == 1
    assert _files(tmp_path / "out") == {"a.png", "c.png"}
    assert "b.png" in res.stderr and "Traceback" not in res.output
    summary = json.loads(res.stdout.splitlines()[-1])  # several inputs: JSON Lines, the summary last
    assert (summary["ok"], summary["failed"]) == (2, 1)


def test_same_seed_same_output_whatever_the_batch_size(tmp_path, ckpt):
    from ncvsd_cli.measurement import measurement_from_image

    def restorer(batch_size):
        return lib.Restorer.from_options(lib.RestoreOptions(
            task="sr4", method="pnp-gd", nfe=2, seed=5, samples=2, batch_size=batch_size, checkpoint=str(ckpt)))

    ms = [measurement_from_image(images.load_image(_png(tmp_path / f"{i}.png", 4, 4, seed=i)), "sr4")
          for i in range(3)]
    one = {res.index: res.samples for res in restorer(1).run(ms)}
    four = {res.index: res.samples for res in restorer(4).run(ms)}
    alone = next(iter(restorer(1).run(ms[2:]))).samples
    for i in range(3):
        assert torch.allclose(one[i], four[i], atol=1e-5)
    assert torch.allclose(one[2], alone, atol=1e-5)
    assert not torch.allclose(one[0][0], one[0][1], atol=1e-3)  # samples differ


def test_batch_size_through_the_cli(tmp_path, ckpt):
    for i in range(3):
        _png(tmp_path / f"im{i}.png", 8, 8, seed=i)
    outs = []
    for b in (1, 3):
        assert (
            run(
                "restore",
                "--task",
                "inpaint-box",
                tmp_path / "im*.png",
                "-o",
                tmp_path / f"b{b}",
                "-c",
                ckpt,
                *FAST,
                "-b",
                b,
            ).exit_code
            == 0
        )
        outs.append([np.asarray(Image.open(tmp_path / f"b{b}" / f"im{i}.png"), dtype=int) for i in range(3)])
    for a, b in zip(*outs):
        assert np.abs(a - b).max() <= 1  # identical up to float rounding at the 8-bit boundary


def test_samples_mean_std(tmp_path, ckpt):
    src = _png(tmp_path / "p.png", 8, 8)
    res = run("restore", "--task", "inpaint-box", src, "-c", ckpt, *FAST, "--samples", "3", "--mean", "--std")
    assert res.exit_code == 0, res.output
    names = {f"p_inpaint-box_s{k}.png" for k in range(3)} | {
        "p_inpaint-box_mean.png",
        "p_inpaint-box_std.png",
    }
    assert names <= _files(tmp_path)
    s = [np.asarray(Image.open(tmp_path / f"p_inpaint-box_s{k}.png"), float) for k in range(3)]
    mean = np.asarray(Image.open(tmp_path / "p_inpaint-box_mean.png"), float)
    assert np.abs(mean - np.mean(s, axis=0)).max() <= 1.5
    assert np.asarray(Image.open(tmp_path / "p_inpaint-box_std.png")).max() > 0


def test_a_saturated_std_image_is_warned_of(tmp_path, ckpt, monkeypatch):
    """_std.png holds std x 4: a std of 0.25 or more is clipped there without a word (K=2 reaches 0.71)."""
    from ncvsd_cli.restore import RestoreResult

    monkeypatch.setattr(RestoreResult, "std_image", lambda self: torch.ones_like(self.samples[:1]))
    src = _png(tmp_path / "p.png", 8, 8)
    res = run("restore", "--task", "inpaint-box", src, "-c", ckpt, *FAST, "--samples", "2", "--std", "-q")
    assert res.exit_code == 0 and "p_inpaint-box_std.png: 100.00% of its values saturate" in res.stderr, res.output


def test_grey_rgba_16bit_inputs(tmp_path, ckpt):
    import png

    _png(tmp_path / "g.png", 6, 6, mode="L")
    _png(tmp_path / "a.png", 6, 6, mode="RGBA")
    with open(tmp_path / "w.png", "wb") as f:
        png.Writer(6, 6, greyscale=False, bitdepth=16).write(f, np.full((6, 18), 40000, np.uint16).tolist())
    res = run(
        "restore",
        "--task",
        "denoise",
        tmp_path / "g.png",
        tmp_path / "a.png",
        tmp_path / "w.png",
        "-o",
        tmp_path / "o",
        "-c",
        ckpt,
        *FAST,
    )
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "o" / "g.png").mode == "L"
    assert Image.open(tmp_path / "o" / "a.png").mode == "RGB"


def test_phone_and_web_formats_in_a_folder(tmp_path, ckpt):
    """A folder's HEIC (an iPhone's photo) and AVIF files are inputs like the others; a 10-bit HEIC gives a 16-bit
    PNG; HEIC and AVIF outputs are written."""
    pytest.importorskip("pillow_heif")
    import png
    from PIL import features

    folder = tmp_path / "phone"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "tiny.heic", folder / "IMG_0001.HEIC")
    shutil.copy(Path(__file__).parent / "data" / "tiny10.heic", folder / "C10.HIF")
    avif = features.check("avif")
    if avif:
        Image.open(Path(__file__).parent / "data" / "tiny-heic-source.png").save(folder / "b.avif", quality=90)
    common = ["--task", "denoise", "--method", "denoiser", "-c", ckpt, *FAST]
    res = run("restore", folder, "-o", tmp_path / "out", *common)
    assert res.exit_code == 0, res.output
    assert _files(tmp_path / "out") == {"IMG_0001.png", "C10.png"} | ({"b.png"} if avif else set())
    assert Image.open(tmp_path / "out" / "IMG_0001.png").mode == "RGB"
    assert png.Reader(filename=str(tmp_path / "out" / "C10.png")).asDirect()[3]["bitdepth"] == 16
    assert run("degrade", folder / "C10.HIF", "--task", "denoise", "-o", tmp_path / "m.png").exit_code == 0
    res = run("restore", tmp_path / "m.png", "-o", tmp_path / "m_out.png", "--method", "denoiser", "-c", ckpt, *FAST)
    assert res.exit_code == 0, res.output  # its sidecar records 10 bits
    assert png.Reader(filename=str(tmp_path / "m_out.png")).asDirect()[3]["bitdepth"] == 16
    res = run("restore", folder / "IMG_0001.HEIC", "-o", tmp_path / "x.heic", *common)
    assert res.exit_code == 0 and Image.open(tmp_path / "x.heic").format == "HEIF", res.output
    if avif:
        assert run("restore", folder / "IMG_0001.HEIC", "-o", tmp_path / "x.avif", *common).exit_code == 0
        assert Image.open(tmp_path / "x.avif").format == "AVIF"


def _cutout(path: Path, h: int = 12, w: int = 11, planes: int = 3, bits: int = 8) -> np.ndarray:
    """A photo with transparency (a clear left band, partial opacity, an opaque rest) written as PNG; its alpha."""
    import png

    rng = np.random.default_rng(5)
    top = 2**bits - 1
    alpha = np.full((h, w), top, np.int64)
    alpha[:, :3], alpha[:, 3] = 0, top // 3
    arr = np.concatenate([rng.integers(0, top + 1, (h, w, planes)), alpha[..., None]], -1)
    with open(path, "wb") as f:
        png.Writer(w, h, greyscale=planes == 1, alpha=True, bitdepth=bits).write(f, arr.reshape(h, -1).tolist())
    return alpha / top


def test_transparency_is_carried_to_the_outputs(tmp_path, ckpt):
    """A transparent input's alpha comes back in PNG outputs (samples and mean; the std images have none), with
    the colour whose composite on white is the restoration written by --flatten; a JPEG output and --flatten
    write the composite and say so."""
    alpha = _cutout(tmp_path / "a.png")
    common = ["--task", "denoise", "--method", "denoiser", "-c", ckpt, *FAST]
    res = run("restore", tmp_path / "a.png", "-o", tmp_path / "k", "--samples", "2", "--mean", "--std", "--json",
              *common)
    assert res.exit_code == 0, res.output
    assert "alpha channel carried to the outputs" in res.stderr
    assert "carried to the outputs" in json.loads(res.stdout.splitlines()[-1])["results"][0]["notes"][0]
    for name in ("a_s0", "a_s1", "a_mean"):
        with Image.open(tmp_path / "k" / f"{name}.png") as im:
            assert im.mode == "RGBA" and np.array_equal(np.asarray(im)[..., 3], np.round(alpha * 255))
    assert images.read_image(str(tmp_path / "k" / "a_std.png")).bit_depth == 16  # values: 16 bits, no alpha
    assert Image.open(tmp_path / "k" / "a_std.png").mode == "RGB"
    res = run("restore", tmp_path / "a.png", "-o", tmp_path / "flat.png", "--flatten", *common)
    assert res.exit_code == 0 and "--flatten: the outputs have no alpha channel" in res.stderr, res.output
    flat = np.asarray(Image.open(tmp_path / "flat.png"), float)
    assert run("restore", tmp_path / "a.png", "-o", tmp_path / "kept.png", *common).exit_code == 0
    kept = np.asarray(Image.open(tmp_path / "kept.png"), float)
    a = kept[..., 3:] / 255
    recomposed = kept[..., :3] * a + 255 * (1 - a)
    explained = flat >= 255 * (1 - a) + 1  # a composite no colour explains is written black (clipped)
    assert explained.sum() > 100 and np.abs(recomposed - flat)[explained].max() <= 1.0
    assert np.array_equal(kept[..., :3][alpha == 1], flat[alpha == 1])
    res = run("restore", tmp_path / "a.png", "-o", tmp_path / "j.jpg", *common)
    assert res.exit_code == 0 and "j.jpg has no alpha channel (.png" in res.stderr, res.output
    assert Image.open(tmp_path / "j.jpg").mode == "RGB"
    res = run("restore", tmp_path / "a.png", "-o", tmp_path / "js.jpg", "--samples", "2", "--std", *common)
    assert res.exit_code == 0 and "js_s0.jpg, " in res.stderr and "js_s1.jpg have no alpha" in res.stderr, res.output
    assert "_std" not in res.stderr


@pytest.mark.parametrize(("task", "planes", "bits"), [("sr2", 3, 8), ("inpaint-box", 1, 8), ("deblur-gauss", 3, 16)])
def test_transparency_follows_the_task(tmp_path, ckpt, task, planes, bits):
    """sr upscales the alpha (2x, the transparent band stays clear); inpainting and blurs keep it as it is (the box
    marks missing colour: a clear patch under it stays clear); grey gives LA, 16 bits a 16-bit alpha."""
    import png

    w = 19 if task == "inpaint-box" else 11
    alpha = _cutout(tmp_path / "a.png", w=w, planes=planes, bits=bits)
    if task == "inpaint-box":  # a clear patch under its centred 4-px box
        im = np.asarray(Image.open(tmp_path / "a.png")).copy()
        im[4:8, 7:11, -1] = 0
        alpha[4:8, 7:11] = 0
        Image.fromarray(im).save(tmp_path / "a.png")
    extra = ["-p", "box_size=4"] if task == "inpaint-box" else ["-p", "sigma=1"] if task == "deblur-gauss" else []
    res = run("restore", "--task", task, tmp_path / "a.png", "-o", tmp_path / "o.png", "-c", ckpt, *FAST, *extra)
    assert res.exit_code == 0, res.output
    info = png.Reader(filename=str(tmp_path / "o.png")).read()[3]
    assert (info["alpha"], info["greyscale"], info["bitdepth"]) == (True, planes == 1, bits)
    out = np.asarray(Image.open(tmp_path / "o.png"))[..., -1] / 255 if bits == 8 else \
        read_alpha16(tmp_path / "o.png")
    how = " (upscaled bicubically)" if task == "sr2" else ""
    assert f"carried to the outputs{how}\n" in res.stderr
    if task == "sr2":
        assert out.shape == (24, 22) and out[:, :5].max() == 0 and out[:, 9:].min() == 1
    else:
        assert np.array_equal(np.round(out * (2**bits - 1)), np.round(alpha * (2**bits - 1)))


def read_alpha16(path: Path) -> np.ndarray:
    import png

    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    return np.asarray(list(rows), float).reshape(h, w, info["planes"])[..., -1] / 65535


# ----------------------------------------------------------------------------------------------- exit codes
@pytest.mark.parametrize(
    "args",
    [
        ["--task", "sr3"],  # unknown task
        ["--task", "sr4", "--device", "tpu"],  # bad device
        ["--task", "sr4", "--std"],  # std needs samples >= 2
        ["--task", "sr4", "--mean"],  # so does mean (of one sample it is a copy)
        ["--task", "sr4", "-o", "-", "--json"],
        ["--task", "sr4", "--method", "magic"],
        ["--task", "sr4", "--preset", "/nonexistent.yaml"],
        ["--task", "sr4", "--precision", "fp16"],
        ["--task", "sr4", "--method", "pnp-gd", "--nfe", "1"],  # one call from noise ignores y
        ["--task", "sr4", "-o", "one.png", "__second__"],  # one image name for two inputs
        ["--task", "sr4", "--preset", "__second__"],  # a PNG given as the preset file
        ["--task", "sr4", "--no-sidecar", "-m", "__second__"],  # ignore sidecars, yet use this one
    ],
)
def test_usage_errors_exit_2(tmp_path, ckpt, args):
    src = _png(tmp_path / "i.png", 4, 4)
    args = [_png(tmp_path / "j.png", 4, 4) if a == "__second__" else a for a in args]
    res = run("restore", src, "-c", ckpt, *args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert not any(p.name.startswith("i_") for p in tmp_path.iterdir()) and not (tmp_path / "one.png").exists()


def test_a_plain_image_to_deblur_motion_too_small_to_read_its_kernel(tmp_path, ckpt):
    """A photo's motion blur is not the preset's seed-0 synthetic kernel: it is read from the image
    (tests/test_motion_estimate.py), and an image too small to read it from fails (exit 1, pointing at
    deblur-kernel) unless -p seed or -p kernel names the kernel; a sidecar from degrade carries its own."""
    src = _png(tmp_path / "clean.png", 16, 16)
    res = run("restore", "--task", "deblur-motion", src, "-c", ckpt, "-o", tmp_path / "o.png")
    assert res.exit_code == 1 and "too small to read a motion blur" in res.stderr, res.output
    assert "deblur-kernel -p kernel=K.png" in res.stderr and not (tmp_path / "o.png").exists(), res.output
    for task, hint in (("inpaint-random", "inpaint-mask"), ("phase-retrieval", "sidecar"),
                       ("inpaint-mask", "-p mask=M.png"), ("deblur-kernel", "-p kernel=K.png")):  # the same for these
        res = run("restore", "--task", task, src, "-c", ckpt, "-o", tmp_path / "o.png")
        assert res.exit_code == 2 and hint in res.stderr and not (tmp_path / "o.png").exists(), res.output
    res = run("restore", "--task", "inpaint-random", src, "-c", ckpt, "-p", "seed=5", *FAST, "-q", "-o",
              tmp_path / "random.png")
    assert res.exit_code == 0 and (tmp_path / "random.png").exists(), res.output
    line = np.zeros((9, 9), np.uint8)
    line[4, 2:7] = 255  # a kernel image: the blur path bright on black
    Image.fromarray(line).save(tmp_path / "k.png")
    for extra in (["-p", "seed=3"], ["-p", f"kernel={tmp_path / 'k.png'}"]):  # its size, the kernel's
        res = run("restore", "--task", "deblur-motion", src, "-c", ckpt, "--method", "wiener", "-q", "--overwrite",
                  "-o", tmp_path / "o.png", *extra)
        assert res.exit_code == 0 and (tmp_path / "o.png").exists(), res.output
    assert run("degrade", "--task", "deblur-motion", "-p", "kernel_size=9", src, "-o", tmp_path / "m.png").exit_code == 0
    res = run("restore", tmp_path / "m.png", "-c", ckpt, "--method", "wiener", "-q", "-o", tmp_path / "r.png")
    assert res.exit_code == 0 and (tmp_path / "r.png").exists(), res.output
    res = run("restore", "--task", "deblur-motion", tmp_path / "m.png", src, "-c", ckpt, "--method", "wiener", "-q",
              "-o", tmp_path / "mixed")  # among sidecar inputs a plain image fails alone
    assert res.exit_code == 1 and "clean.png: a 16x16 image is too small to read a motion blur" in res.stderr, res.output
    assert sorted(p.name for p in (tmp_path / "mixed").iterdir()) == ["m.png"]


def test_plain_image_box_note_preset_params_and_stem_clash(tmp_path, ckpt):
    """A plain image to inpaint-box is told which box is repainted; a bad operator parameter in a preset file is a
    usage error before any work, as with -p; two inputs with one name stem are told to rename, not to use -o DIR."""
    src = _png(tmp_path / "photo.png", 16, 12)
    res = run("restore", "--task", "inpaint-box", src, "-c", ckpt, "--method", "biharmonic", "--json", "-q")
    assert res.exit_code == 0, res.output
    notes = json.loads(res.stdout.splitlines()[-1])["results"][0]["notes"]
    assert any("centred 6x8 box is treated as missing" in n for n in notes)
    (tmp_path / "p.yaml").write_text("operator: {box_size: 32}\n")
    res = run("restore", "--task", "sr2", src, "-c", ckpt, "--preset", tmp_path / "p.yaml", "-o", tmp_path / "o.png")
    assert res.exit_code == 2 and "--preset operator" in res.stderr and "box_size" in res.stderr, res.output
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(src).save(folder / "a.png")
    Image.open(src).save(folder / "a.jpg")
    res = run("restore", "--task", "sr2", folder, "-c", ckpt, "--method", "bicubic", "-q", "-o", tmp_path / "out")
    assert res.exit_code == 1 and "same name stem" in res.stderr and "use -o DIR" not in res.stderr, res.output


def test_a_glob_over_subfolders_keeps_them_in_the_output_folder(tmp_path, ckpt):
    """A camera's 100/IMG_1.png and 101/IMG_1.png, named by one quoted glob, are restored to out/100/ and out/101/
    (each with its own measurement); named one by one they clash and the second is refused."""
    for sub in ("100", "101"):
        (tmp_path / "dcim" / sub).mkdir(parents=True)
        _png(tmp_path / "dcim" / sub / "IMG_1.png", 12, 10)
    res = run("degrade", "--task", "sr2", str(tmp_path / "dcim" / "**" / "*.png"), "-q", "-o", tmp_path / "m")
    assert res.exit_code == 0 and (tmp_path / "m" / "101" / "IMG_1.png.ncvsd.json").exists(), res.output
    res = run("restore", str(tmp_path / "m" / "**" / "*"), "-c", ckpt, "--method", "bicubic", "-q", "--json",
              "-o", tmp_path / "out")
    results = json.loads(res.stdout.splitlines()[-1])["results"]
    assert res.exit_code == 0 and [r["outputs"] for r in results] == [
        [str(tmp_path / "out" / sub / "IMG_1.png")] for sub in ("100", "101")], res.output
    res = run("restore", *(tmp_path / "m" / sub / "IMG_1.png" for sub in ("100", "101")), "-c", ckpt, "--method",
              "bicubic", "-q", "-o", tmp_path / "flat")
    assert res.exit_code == 1 and "quoted glob" in res.stderr, res.output


def test_no_task_and_no_sidecar_is_a_usage_error(tmp_path):
    """A plain photo without --task: exit 2, and the error names the common tasks by what happened to the photo
    (every name a real task)."""
    import operators
    from ncvsd_cli.cli.restore import TASK_GUIDE

    res = run("restore", _png(tmp_path / "i.png", 4, 4))
    assert res.exit_code == 2 and TASK_GUIDE in res.stderr and res.stderr.count("\n") == 1, res.stderr
    named = set(re.findall(r"\b(?:sr\d|deblur-\w+|denoise|inpaint-\w+)\b", TASK_GUIDE))
    assert len(named) == 8 and named <= set(operators.names()), named
    res = run("restore", "-m", tmp_path / "nosuch.json")  # a missing input: exit 1 as with --task
    assert res.exit_code == 1 and "nosuch.json" in res.stderr and "--task is required" not in res.stderr
    _png(tmp_path / "f.png", 4, 4)
    (tmp_path / "f.png.ncvsd.json").write_text("{not json")
    res = run("restore", tmp_path / "f.png")
    assert res.exit_code == 2 and "f.png.ncvsd.json" in res.stderr, res.stderr


def test_without_task_each_sidecar_says_its_own_and_a_plain_image_is_refused(tmp_path, ckpt):
    """Inputs measured for different tasks restore in one call, each with its sidecar's task; a plain image
    among them is not given another input's task (it needs --task) and the others are still restored."""
    src = _png(tmp_path / "clean.png", 16, 16)
    assert run("degrade", "--task", "sr4", src, "-o", tmp_path / "a.png").exit_code == 0
    assert run("degrade", "--task", "inpaint-box", src, "-o", tmp_path / "b.png").exit_code == 0
    plain = _png(tmp_path / "plain.png", 4, 4, seed=3)
    res = run("restore", tmp_path / "a.png", tmp_path / "b.png", plain, "-c", ckpt, *FAST, "-o", tmp_path / "o",
              "--json", "-q")
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(summary["task"]) == ["inpaint-box", "sr4"]
    assert Image.open(tmp_path / "o" / "a.png").size == (16, 16) and (tmp_path / "o" / "b.png").exists()
    assert not (tmp_path / "o" / "plain.png").exists() and "plain.png: --task is required" in res.stderr
    folder = tmp_path / "f"  # a folder restored twice beside its inputs: the second run skips the first's outputs
    folder.mkdir()
    for name in ("a.png", "b.png"):
        for f in tmp_path.glob(f"{name}*"):  # the preview, its sidecar and the sidecar's tensors
            shutil.copy(f, folder / f.name)
    for _ in range(2):
        res = run("restore", folder, "-c", ckpt, *FAST, "-q", "--overwrite")
        assert res.exit_code == 0, res.output
    assert sorted(p.name for p in folder.glob("*_*.png")) == ["a_sr4.png", "b_inpaint-box.png"]
    assert run("restore", folder, "--no-sidecar", "-c", ckpt).exit_code == 2  # plain images need --task


@pytest.mark.parametrize("order", [("m", "b"), ("b", "m")])
def test_a_method_one_sidecar_refuses_fails_that_input_alone_in_either_order(tmp_path, order):
    """--method wiener over an inpaint-box measurement listed before a blur's refused the whole batch (exit 2);
    listed after it, the inpainting failed alone. Both orders now restore the blur."""
    src = _png(tmp_path / "clean.png", 40, 40)
    assert run("degrade", "--task", "inpaint-box", src, "-o", tmp_path / "m.png", "-q").exit_code == 0
    assert run("degrade", "--task", "deblur-gauss", src, "-o", tmp_path / "b.png", "-q").exit_code == 0
    res = run("restore", *[tmp_path / f"{n}.png" for n in order], "--method", "wiener", "-o", tmp_path / "o", "-q")
    assert res.exit_code == 1, res.output
    assert (tmp_path / "o" / "b.png").is_file() and not (tmp_path / "o" / "m.png").exists()
    assert "method 'wiener' needs a circular blur operator" in res.stderr
    alone = run("restore", tmp_path / "m.png", "--method", "wiener", "-o", tmp_path / "o2", "-q")
    assert alone.exit_code == 2 and "method 'wiener'" in alone.stderr  # one task, refused up front as before


@pytest.mark.parametrize("case", ["missing", "garbage", "wrong-kind", "hash-mismatch", "truncated"])
def test_checkpoint_problems_exit_3(tmp_path, ckpt, case):
    src = _png(tmp_path / "i.png", 4, 4)
    bad = tmp_path / "bad.safetensors"
    if case == "missing":
        bad = tmp_path / "nope.safetensors"
    elif case == "garbage":
        bad.write_bytes(b"\x00" * 64)
    elif case == "wrong-kind":
        bad = _ckpt(tmp_path, kind="teacher")
    elif case == "hash-mismatch":  # a file named like a manifest entry whose bytes differ
        from ncvsd_cli.checkpoints import load_manifest

        listed = sorted(load_manifest()["files"])
        if not listed:
            pytest.skip("the manifest lists no file")
        bad = tmp_path / listed[0]
        shutil.copy(ckpt, bad)
    elif case == "truncated":
        bad.write_bytes(ckpt.read_bytes()[:-100])
    res = run("restore", "--task", "denoise", "--sigma-y", "0.05", src, "-c", bad, *FAST)  # no estimate note
    assert res.exit_code == 3, res.output
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
    assert not (tmp_path / "i_denoise.png").exists()


def test_outputs_never_overwrite_inputs_or_existing_files(tmp_path, ckpt):
    src = _png(tmp_path / "i.png", 4, 4)
    before = src.read_bytes()
    res = run("restore", "--task", "denoise", src, "-o", src, "-c", ckpt, *FAST)
    assert res.exit_code == 1 and "input" in res.stderr and src.read_bytes() == before
    assert run("restore", "--task", "denoise", src, "-c", ckpt, *FAST).exit_code == 0
    assert run("restore", "--task", "denoise", src, "-c", ckpt, *FAST).exit_code == 1  # exists
    assert run("restore", "--task", "denoise", src, "-c", ckpt, *FAST, "--overwrite").exit_code == 0


def test_max_pixels_guard(tmp_path, ckpt):
    src = _png(tmp_path / "i.png", 4, 4)
    res = run("restore", "--task", "sr4", src, "-c", ckpt, *FAST, "--max-pixels", "100")
    assert res.exit_code == 1 and "max-pixels" in res.stderr
    assert not (tmp_path / "i_sr4.png").exists()


def test_wrong_size_for_its_sidecar(tmp_path, ckpt):
    src = _png(tmp_path / "c.png", 8, 8)
    assert run("degrade", "--task", "denoise", src, "-o", tmp_path / "m.png").exit_code == 0
    _png(tmp_path / "m.png", 6, 6)  # replaced by an image of another size
    res = run("restore", tmp_path / "m.png", "-c", ckpt, *FAST)
    assert res.exit_code == 1 and "wrong size" in res.stderr


def test_nan_from_the_network_is_reported_not_written(tmp_path, ckpt, monkeypatch):
    from ncvsd_cli.networks import GenerativeDenoiser

    monkeypatch.setattr(
        GenerativeDenoiser, "forward", lambda self, y, *a, **k: torch.full_like(y, float("nan"))
    )
    src = _png(tmp_path / "i.png", 4, 4)
    res = run("restore", "--task", "denoise", src, "-c", ckpt, *FAST)
    assert res.exit_code == 1 and "NaN" in res.stderr
    assert _files(tmp_path) == {"i.png"}


def test_interrupt_leaves_no_partial_output(tmp_path, ckpt, monkeypatch):
    src = _png(tmp_path / "i.png", 4, 4)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "_publish", interrupted)  # Ctrl-C in the middle of writing
    res = run("restore", "--task", "denoise", src, "-c", ckpt, *FAST)
    assert res.exit_code == 130
    assert _files(tmp_path) == {"i.png"}


# ----------------------------------------------------------------------------------------------------- sample
def test_sample_grid_and_directory(tmp_path, ckpt):
    res = run(
        "sample", "-c", ckpt, "--nfe", "1", "--seeds", "0-3", "-o", tmp_path / "grid.png", "--device", "cpu", "--json"
    )
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "grid.png").size == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)
    assert json.loads(res.stdout.splitlines()[-1])["results"][0]["size"] == [38, 38]  # the grid's, not a sample's
    again = run("sample", "-c", ckpt, "--nfe", "1", "--seeds", "0-3", "-o", tmp_path / "grid.png", "--device", "cpu")
    assert again.exit_code == 1 and "exists (--overwrite replaces it)" in again.stderr  # a grid cannot be skipped
    assert "--skip-existing" not in again.stderr, again.output  # exit 1 as restore's and degrade's existing output
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "000002.png").write_bytes(b"kept")
    some = run("sample", "-c", ckpt, "--nfe", "1", "--seeds", "2,5", "-o", tmp_path / "d", "--device", "cpu", "--json")
    lines = [json.loads(line) for line in some.stdout.splitlines()]
    assert some.exit_code == 1 and [r["status"] for r in lines[-1]["results"]] == ["failed", "ok"], some.output
    assert (tmp_path / "d" / "000002.png").read_bytes() == b"kept" and (tmp_path / "d" / "000005.png").exists()
    (tmp_path / "d" / "000005.png").unlink()
    res = run(
        "sample",
        "-c",
        ckpt,
        "--nfe",
        "4",
        "--seeds",
        "2,5",
        "-o",
        tmp_path / "d",
        "--device",
        "cpu",
        "--json",
        "-b",
        "1",
        "--overwrite",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.splitlines()[-1])
    assert _files(tmp_path / "d") == {"000002.png", "000005.png"} and summary["nfe"] == 4
    assert all(r["size"] == [16, 16] for r in summary["results"]), summary  # as the grid's and restore's
    typo = run("sample", "-c", ckpt, "--nfe", "1", "--seeds", "0", "-o", tmp_path / "g.txt", "--device", "cpu")
    assert typo.exit_code == 2 and "not an image suffix" in typo.output and not (tmp_path / "g.txt").exists()
    dotted = run("sample", "-c", ckpt, "--nfe", "1", "--seeds", "0", "-o", f"{tmp_path / 'run.v2'}/", "--device", "cpu")
    assert dotted.exit_code == 0 and _files(tmp_path / "run.v2") == {"000000.png"}
    (tmp_path / "plain").write_text("keep")  # a file where the folder goes: one usage error, not one per seed
    taken = run("sample", "-c", ckpt, "--nfe", "1", "--seeds", "0-3", "-o", tmp_path / "plain", "--json")
    assert taken.exit_code == 2 and "is not a directory" in taken.stderr, taken.output
    assert json.loads(taken.stdout.splitlines()[-1])["failed"] == 0 and (tmp_path / "plain").read_text() == "keep"
    huge = run("sample", "-c", ckpt, "--seeds", "0", "--resolution", "100000", "-o", tmp_path / "h.png")
    assert huge.exit_code == 2 and "need an estimated" in huge.stderr and not (tmp_path / "h.png").exists()
    twice = run("sample", "-c", ckpt, "--seeds", "0-2,1", "-o", tmp_path / "t", "--device", "cpu", "--json")
    assert twice.exit_code == 0 and "sampled once: 1" in twice.stderr, twice.output
    assert _files(tmp_path / "t") == {"000000.png", "000001.png", "000002.png"}


def test_sample_from_the_teacher(tmp_path, ckpt):
    """--teacher: EDM's Heun sampler on a teacher checkpoint; odd NFE, --ts refused, a generator file refused as
    the wrong kind; a seed's sample does not depend on its batch."""
    teacher = _ckpt(tmp_path, kind="teacher")
    res = run("sample", "--teacher", "-c", teacher, "--nfe", "3", "--seeds", "0-2", "-o", tmp_path / "d",
              "--device", "cpu", "--json", "-b", "2")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["precision"] == "fp32"  # auto keeps a teacher in fp32 off CUDA (it ran in bf16 here only)
    assert summary["nfe"] == 3 and summary["sampler"] == "heun" and _files(tmp_path / "d") == {
        "000000.png", "000001.png", "000002.png"}
    alone = run("sample", "--teacher", "-c", teacher, "--nfe", "3", "--seeds", "2", "-o", tmp_path / "one",
                "--device", "cpu")
    assert alone.exit_code == 0, alone.output
    a, b = (np.asarray(Image.open(p), np.int16)
            for p in (tmp_path / "d" / "000002.png", tmp_path / "one" / "000002.png"))
    assert np.abs(a - b).max() <= 1 and a.std() > 0
    for bad, words in ((["--nfe", "4"], "odd"), (["--ts", "0,39"], "--ts sets the generator"),
                       (["--ts", "0,39", "--nfe", "63"], "--ts sets the generator")):  # not "give one of them"
        out = run("sample", "--teacher", "-c", teacher, *bad, "--seeds", "0", "-o", tmp_path / "x.png")
        assert out.exit_code == 2 and words in out.stderr and not (tmp_path / "x.png").exists(), out.output
    wrong = run("sample", "--teacher", "-c", ckpt, "--nfe", "3", "--seeds", "0", "-o", tmp_path / "w.png")
    assert wrong.exit_code == 3 and "teacher" in wrong.stderr and not (tmp_path / "w.png").exists(), wrong.output
    assert "--teacher --nfe 3: 2 Heun step(s) from sigma 80 are too coarse" in res.stderr  # noise: warned of
    fine = run("sample", "--teacher", "-c", teacher, "--nfe", "13", "--seeds", "0", "-o", tmp_path / "f.png", "-q")
    assert fine.exit_code == 0 and "too coarse" not in fine.stderr, fine.output


def test_sample_refuses_a_grid_its_format_cannot_hold_before_sampling_and_records_what_made_it(tmp_path, ckpt,
                                                                                                monkeypatch):
    """A WebP grid over 16383 px failed after every sample was drawn ("usage error", all lost); --ts 0,39 --nfe 40
    ignored --nfe; the summary did not say the ts, size, device or precision."""
    from ncvsd_cli.sampling import generate

    monkeypatch.setattr(generate, "sample_images", lambda *a, **k: pytest.fail("sampled before the refusal"))
    res = run("sample", "-c", ckpt, "--seeds", "0-1199", "--resolution", "512", "-b", "1", "-o", tmp_path / "g.webp",
              "--device", "cpu")
    assert res.exit_code == 2 and "a 17992x17992 px image is too large for WEBP" in res.stderr, res.output
    both = run("sample", "-c", ckpt, "--ts", "0,39", "--nfe", "40", "-o", tmp_path / "t.png")
    assert both.exit_code == 2 and "makes 1 denoiser call(s), --nfe says 40" in both.stderr
    monkeypatch.undo()
    res = run("sample", "-c", ckpt, "--nfe", "2", "--seeds", "0", "-o", tmp_path / "s.png", "--device", "cpu",
              "--json", "-q")
    summary = json.loads(res.stdout.splitlines()[-1])
    assert res.exit_code == 0 and summary["ts"] == [10, 22, 39] and summary["resolution"] == 16, res.output
    assert summary["device"] == "cpu" and summary["precision"] in ("fp32", "bf16")


def test_restore_refuses_an_output_beyond_its_formats_size_before_the_work(tmp_path, ckpt, monkeypatch):
    from ncvsd_cli.restore import Restorer

    monkeypatch.setattr(Restorer, "load", lambda *a, **k: pytest.fail("weights loaded before the refusal"))
    src = _png(tmp_path / "wide.png", 4, 4100)
    res = run("restore", "--task", "sr4", src, "-c", ckpt, *FAST, "-o", tmp_path / "w.webp", "--sigma-y", "0.05")
    assert res.exit_code == 1 and "a 16400x16 px image is too large for WEBP" in res.stderr, res.output
    assert not (tmp_path / "w.webp").exists()


def test_std_of_a_mean_method_is_refused(tmp_path, ckpt):
    """--std over pnp-gd-warm-mean8 mapped the spread of 8-sample means, sqrt(8) below the posterior std, titled
    "posterior std"."""
    src = _png(tmp_path / "p.png", 8, 8)
    res = run("restore", "--task", "inpaint-box", src, "-c", ckpt, "--method", "pnp-gd-warm-mean8", "--samples", "2",
              "--std")
    assert res.exit_code == 2 and "--method pnp-gd-warm --samples 8 --mean --std" in res.stderr, res.output
    alone = run("restore", "--task", "inpaint-box", src, "-c", ckpt, "--method", "pnp-gd-warm-mean8", "--std")
    assert alone.exit_code == 2 and "sqrt(8)" in alone.stderr, alone.output  # said first, not "--samples >= 2"


def test_sample_to_a_folder_keeps_the_batches_finished_before_an_interruption(tmp_path, ckpt, monkeypatch):
    from ncvsd_cli.sampling import generate

    real = generate.sample_batches

    def interrupted(*args, **kwargs):
        batches = real(*args, **kwargs)
        yield next(batches)
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "sample_batches", interrupted)
    res = run("sample", "-c", ckpt, "--seeds", "0-5", "-b", "2", "-o", tmp_path / "s", "--device", "cpu")
    assert res.exit_code == 130 and "finished so far are kept" in res.stderr
    assert _files(tmp_path / "s") == {"000000.png", "000001.png"}  # the first batch, whole files only
    res = run("sample", "-c", ckpt, "--seeds", "0-3", "-b", "2", "-o", f"{tmp_path / 'j.png'}/", "--device", "cpu",
              "--json", "-q")  # -o NAME.png/ : a folder (it wrote a grid file); "not_done" names the seeds left
    assert res.exit_code == 130 and (tmp_path / "j.png" / "000001.png").is_file()
    assert json.loads(res.stdout.splitlines()[-1])["not_done"] == ["seed 2", "seed 3"]
    monkeypatch.setattr(generate, "sample_batches", real)  # the rerun samples only the missing seeds
    before = (tmp_path / "s" / "000001.png").read_bytes()
    res = run("sample", "-c", ckpt, "--seeds", "0-5", "-b", "2", "-o", tmp_path / "s", "--device", "cpu",
              "--skip-existing", "--json", "-q")
    summary = json.loads(res.stdout.splitlines()[-1])
    assert res.exit_code == 0 and (summary["ok"], summary["skipped"]) == (4, 2), res.output
    assert len(_files(tmp_path / "s")) == 6 and (tmp_path / "s" / "000001.png").read_bytes() == before
    res = run("sample", "-c", ckpt, "--seeds", "0-5", "-o", tmp_path / "s", "--skip-existing")
    assert res.exit_code == 0 and "skipped 6 seed(s)" in res.stderr, res.output
    res = run("sample", "-c", ckpt, "--seeds", "0-5", "-o", tmp_path / "s", "--skip-existing", "--overwrite")
    assert res.exit_code == 2 and "contradict" in res.stderr


def test_sample_depends_only_on_the_seed(tmp_path, ckpt):
    from ncvsd_cli.checkpoints import load_checkpoint

    model, cfg = load_checkpoint(ckpt)
    a = sample_images(model, cfg, [0, 1, 2], nfe=2, batch_size=3)
    b = sample_images(model, cfg, [2], nfe=2, batch_size=1)
    assert a.shape == (3, 3, 16, 16) and torch.allclose(a[2], b[0], atol=1e-5)
    assert not torch.allclose(a[0], a[1])


def test_sample_class_conditional(tmp_path):
    ck = _ckpt(tmp_path, preset="tiny-cond")
    res = run(
        "sample",
        "-c",
        ck,
        "--seeds",
        "0-1",
        "--class-label",
        "2",
        "-o",
        tmp_path / "g.png",
        "--device",
        "cpu",
    )
    assert res.exit_code == 0, res.output
    assert (
        run("sample", "-c", ck, "--seeds", "0", "--class-label", "7", "-o", tmp_path / "h.png").exit_code == 2
    )


@pytest.mark.parametrize("label", ["0", "1"])
def test_a_class_label_for_an_unconditional_checkpoint_is_refused(tmp_path, ckpt, label):
    """--class-label 0 on an unconditional model was taken (and ignored); 1 was refused."""
    res = run("sample", "-c", ckpt, "--seeds", "0", "--class-label", label, "-o", tmp_path / "h.png")
    assert res.exit_code == 2 and "unconditional" in res.stderr, res.output
    assert not (tmp_path / "h.png").exists()


@pytest.mark.parametrize("method", ["dps", "daps", "wiener"])
def test_other_methods(tmp_path, method):
    src = _png(tmp_path / "i.png", 6, 6)
    ck = [] if method == "wiener" else ["-c", _ckpt(tmp_path, kind="teacher"), "--nfe", "50" if method == "daps" else "5"]
    ck += ["-p", "sigma=1"]  # 6 px: too small to read the blur width from
    res = run("restore", "--task", "deblur-gauss", src, "--method", method, *ck, "--json")
    assert res.exit_code == 0, res.output
    if method == "wiener":  # no network evaluations to set
        assert run("restore", "--task", "deblur-gauss", src, "--method", method, "--nfe", "5").exit_code == 2
    assert json.loads(res.stdout.splitlines()[-1])["method"] == method and (tmp_path / "i_deblur-gauss.png").is_file()


def test_degrade_stdin_to_stdout_and_measurement_option(tmp_path, ckpt):
    data = _png(tmp_path / "c.png", 8, 8).read_bytes()
    res = run("degrade", "--task", "denoise", "-", "-o", "-", input=data)
    assert res.exit_code == 0 and images.read_image(res.stdout_bytes).size == (8, 8)
    assert run("degrade", "--task", "sr2", tmp_path / "c.png", "-o", tmp_path / "m.png").exit_code == 0
    res = run(
        "restore", "--measurement", tmp_path / "m.png.ncvsd.json", "-c", ckpt, *FAST, "-o", tmp_path / "r.png"
    )
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "r.png").size == (8, 8)


def test_train_init_teacher_errors_are_one_line(tmp_path):
    teacher, other = _ckpt(tmp_path, kind="teacher"), _ckpt(tmp_path, preset="tiny-cond")
    data = tmp_path / "imgs"
    data.mkdir()
    _png(data / "a.png", 16, 16)
    common = ("--data", data, "--device", "cpu", "--duration", "1steps", "--batch", "2", "--quiet")
    wrong_kind = run("train", "--init-teacher", other, "--arch", "tiny", "--out", tmp_path / "a", *common)
    assert wrong_kind.exit_code == 3 and "teacher is needed" in wrong_kind.output
    mismatch = run("train", "--init-teacher", teacher, "--arch", "tiny-cond", "--out", tmp_path / "b", *common)
    assert mismatch.exit_code == 2 and "from the network being trained" in mismatch.output
    ok = run("train", "--init-teacher", teacher, "--out", tmp_path / "c", *common)
    assert ok.exit_code == 0, ok.output


def test_distill_init_generator_errors_are_one_line(tmp_path):
    teacher = _ckpt(tmp_path, kind="teacher")
    wrong_kind = run("distill", "--teacher", teacher, "--init-generator", teacher, "--out", tmp_path / "a",
                     "--device", "cpu", "--duration", "1steps", "--quiet")
    assert wrong_kind.exit_code == 3 and "generator is needed" in wrong_kind.output
    other = _ckpt(tmp_path, preset="tiny-cond")
    mismatch = run("distill", "--teacher", teacher, "--init-generator", other, "--out", tmp_path / "b",
                   "--device", "cpu", "--duration", "1steps", "--quiet")
    assert mismatch.exit_code == 2 and "from the network being trained" in mismatch.output
    missing = run("distill", "--teacher", teacher, "--init-generator", tmp_path / "none.safetensors", "--out",
                  tmp_path / "c", "--device", "cpu", "--duration", "1steps", "--quiet")
    assert missing.exit_code == 3


@pytest.mark.parametrize("task, method", [("sr4", "pnp-gd-warm"), ("inpaint-box", "pnp-gd-warm"),
                                          ("inpaint-random", "pnp-gd-warm"), ("phase-retrieval", "pnp-gd"),
                                          ("denoise", "denoiser")])
def test_restore_default_method_is_the_presets(task, method, tmp_path, ckpt):
    src = _png(tmp_path / "clean.png", 16, 12)
    assert run("degrade", "--task", task, src, "-o", tmp_path / "m.png").exit_code == 0
    res = run("restore", tmp_path / "m.png", "-c", ckpt, *FAST, "--json", "-q")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["method"] == method


@pytest.mark.parametrize("task, nfe, sigma_max", [("inpaint-box", 3, 0.3), ("inpaint-mask", 3, 0.3),
                                                  ("inpaint-random", 10, 0.1), ("deblur-gauss", 10, 0.7)])
def test_restore_default_nfe_is_the_warm_schedule(task, nfe, sigma_max, tmp_path, ckpt, monkeypatch):
    """Without --nfe, pnp-gd-warm runs the preset's warm_start schedule (inpainting: sigma_max 0.3, 3 calls)."""
    from ncvsd_cli.sampling.methods import PnPMethod

    seen = []
    original = PnPMethod.arguments
    monkeypatch.setattr(PnPMethod, "arguments", lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
    src = _png(tmp_path / "clean.png", 16, 12)
    params = ["-p", f"mask={_png(tmp_path / 'mask.png', 16, 12, mode='L')}"] if task == "inpaint-mask" else []
    assert run("degrade", "--task", task, *params, src, "-o", tmp_path / "m.png").exit_code == 0
    res = run("restore", tmp_path / "m.png", "-c", ckpt, "--device", "cpu", "--method", "pnp-gd-warm", "--json", "-q")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.splitlines()[-1])
    assert (report["method"], report["nfe"], report["results"][0]["nfe"]) == ("pnp-gd-warm", nfe, nfe)
    sigmas = seen[-1].sigmas  # what the sampler was given
    assert len(sigmas) == nfe + 1 and float(sigmas[0]) == pytest.approx(sigma_max)


def test_a_mask_marking_the_hole_in_white_is_noted_and_inverted_on_request(tmp_path, ckpt):
    """Most editors' masks are white = hole; ours are white = known. A mask keeping under half the picture gets a
    note naming -p invert=true; with it, the hole (and only it) is filled."""
    src = _png(tmp_path / "photo.png", 15, 13)
    m = np.zeros((15, 13), np.uint8)
    m[4:9, 3:8] = 255  # white = the object to remove
    Image.fromarray(m).save(tmp_path / "hole.png")

    def restore(*extra: str) -> dict:
        res = run("restore", "--task", "inpaint-mask", src, "-p", f"mask={tmp_path / 'hole.png'}", *extra, "-c", ckpt,
                  "--method", "biharmonic", "--json", "-q", "--overwrite", "-o", tmp_path / "out.png")
        assert res.exit_code == 0, res.output
        return {**json.loads(res.stdout.splitlines()[-1])["results"][0], "stderr": res.stderr}

    first = restore()
    assert any("keeps only 13% of the pixels" in n and "invert=true" in n for n in first["notes"])
    assert "photo.png: the mask keeps only 13%" in first["stderr"] and "ncvsd: warning: " in first["stderr"]  # -q
    assert not any("keeps only" in n for n in restore("-p", "invert=true")["notes"])
    out, before = np.asarray(Image.open(tmp_path / "out.png")), np.asarray(Image.open(src))
    assert (out[m == 0] == before[m == 0]).all() and (out[m == 255] != before[m == 255]).any()


def test_grow_fills_the_soft_edges_of_a_mark_that_its_mask_misses(tmp_path, ckpt):
    """A red line drawn anti-aliased (soft edges half the colour) and a mask marking where it is at least half
    opaque: the edges stay pinkish in the fill; -p grow=1 makes holes of them, and the output near the line comes
    back closer to the clean photo. Pixels farther away are kept exactly either way."""
    clean = np.asarray(Image.open(_png(tmp_path / "clean.png", 21, 19))).astype(float)
    alpha = np.zeros((21, 19))
    alpha[:, 9], alpha[:, 8], alpha[:, 10] = 1.0, 0.4, 0.4  # a vertical line with soft edges
    marked = clean * (1 - alpha[..., None]) + np.array([230.0, 20, 20]) * alpha[..., None]
    Image.fromarray(marked.round().astype(np.uint8)).save(tmp_path / "marked.png")
    Image.fromarray(((alpha <= 0.5) * 255).astype(np.uint8)).save(tmp_path / "mask.png")

    def error(*extra: str) -> float:
        res = run("restore", "--task", "inpaint-mask", tmp_path / "marked.png", "-p", f"mask={tmp_path / 'mask.png'}",
                  *extra, "-c", ckpt, "--method", "biharmonic", "-q", "--overwrite", "-o", tmp_path / "out.png")
        assert res.exit_code == 0, res.output
        out = np.asarray(Image.open(tmp_path / "out.png")).astype(float)
        assert (out[:, :7] == marked[:, :7].round()).all() and (out[:, 12:] == marked[:, 12:].round()).all()
        return float(np.abs(out[:, 7:12] - clean[:, 7:12]).mean())

    kept, grown = error(), error("-p", "grow=1")
    assert grown < 0.5 * kept, (kept, grown)


@pytest.mark.parametrize("order", [("fits", "other"), ("other", "fits")])
def test_a_mask_of_one_size_fails_the_other_images_alone_in_any_order(tmp_path, ckpt, order):
    """A mask that suits some inputs: those are restored and the others fail alone (exit 1), whichever comes first
    (the first image alone decided: exit 2 and nothing written when it was the odd one); a mask that suits none is
    a usage error before the model loads."""
    files = {"fits": _png(tmp_path / "fits.png", 15, 13), "other": _png(tmp_path / "other.png", 16, 16, seed=1)}
    Image.fromarray(np.full((15, 13), 255, np.uint8)).save(tmp_path / "mask.png")
    args = ["restore", "--task", "inpaint-mask", "-p", f"mask={tmp_path / 'mask.png'}", "-c", ckpt, "--method",
            "biharmonic", "-q", "-o", tmp_path / "out"]
    res = run(*args, *(files[k] for k in order))
    assert res.exit_code == 1 and "other.png" in res.stderr, res.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["fits.png"]
    res = run(*args[:-1], tmp_path / "out2", files["other"])
    assert res.exit_code == 2 and "--param" in res.stderr


def test_restore_warm_start_refuses_phase_retrieval(tmp_path, ckpt):
    src = _png(tmp_path / "clean.png", 16, 12)
    assert run("degrade", "--task", "phase-retrieval", src, "-o", tmp_path / "m.png").exit_code == 0
    res = run("restore", tmp_path / "m.png", "-c", ckpt, *FAST, "--method", "pnp-gd-warm", "-q")
    assert res.exit_code == 2 and "no warm start" in res.output


def test_mean_and_std_images_are_of_the_saved_clipped_samples():
    """--mean / --std describe the sample images as written (clipped to [-1, 1]), not the raw sampler output."""
    samples = torch.tensor([1.6, 0.4, -0.2]).view(3, 1, 1, 1)
    res = lib.RestoreResult(index=0, samples=samples)
    assert torch.allclose(res.mean(), torch.tensor(0.4).view(1, 1, 1, 1))
    unit = torch.tensor([1.0, 0.7, 0.4])
    expected = (unit.std() * lib.STD_SCALE).clamp(0, 1) * 2 - 1
    assert torch.allclose(res.std_image(), expected.view(1, 1, 1, 1))


def test_restore_denoiser_method(tmp_path, ckpt):
    """denoise defaults to the generator alone (1 call at sigma_y); --nfe refines; other tasks and bad NFE are usage
    errors (exit 2)."""
    src = _png(tmp_path / "clean.png", 16, 12)
    assert run("degrade", "--task", "denoise", "--sigma-y", "0.2", src, "-o", tmp_path / "m.png").exit_code == 0
    for nfe, flags in ((1, []), (3, ["--nfe", "3"])):
        res = run("restore", tmp_path / "m.png", "-c", ckpt, "--device", "cpu", "--json", "-q", "--overwrite", *flags)
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout.splitlines()[-1])
        assert (report["method"], report["results"][0]["nfe"], report["results"][0]["operator_evals"]) == (
            "denoiser", nfe, 0)
    assert run("restore", tmp_path / "m.png", "-c", ckpt, "--device", "cpu", "--nfe", "40", "-q").exit_code == 2
    assert run("degrade", "--task", "sr4", src, "-o", tmp_path / "s.png").exit_code == 0
    wrong = run("restore", tmp_path / "s.png", "-c", ckpt, "--device", "cpu", "--method", "denoiser", "-q")
    assert wrong.exit_code == 2 and "only solves the denoise task" in wrong.output


def test_restore_uses_each_sidecars_noise_level(tmp_path, ckpt):
    """Measurements with different recorded sigma_y restored in one call give what each gives alone (the denoiser's
    input level is sigma_y), and what an explicit --sigma-y of that level gives."""
    for name, level in (("a", "0.2"), ("b", "0.05")):
        src = _png(tmp_path / f"{name}.png", 16, 12, seed=len(name))
        out = tmp_path / f"{name}_m.png"
        assert run("degrade", "--task", "denoise", "--sigma-y", level, src, "-o", out).exit_code == 0
    both, alone, flag, low = (tmp_path / d for d in ("both", "alone", "flag", "low"))
    for d in (both, alone, flag, low):
        d.mkdir()
    args = ["-c", ckpt, "--device", "cpu", "--precision", "fp32", "-q"]
    assert run("restore", tmp_path / "a_m.png", tmp_path / "b_m.png", "-o", both, *args).exit_code == 0
    for name in ("a", "b"):
        assert run("restore", tmp_path / f"{name}_m.png", "-o", alone, *args).exit_code == 0
        assert np.array_equal(np.asarray(Image.open(both / f"{name}_m.png")),
                              np.asarray(Image.open(alone / f"{name}_m.png"))), name
    assert run("restore", tmp_path / "a_m.png", "--sigma-y", "0.2", "-o", flag, *args).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(flag / "a_m.png")),
                          np.asarray(Image.open(alone / "a_m.png")))
    assert run("restore", tmp_path / "a_m.png", "--sigma-y", "0.05", "-o", low, *args).exit_code == 0
    assert not np.array_equal(np.asarray(Image.open(low / "a_m.png")),
                              np.asarray(Image.open(alone / "a_m.png")))


@pytest.mark.parametrize("option", [["--lr", "-1"], ["--lr", "nan"], ["--batch", "0"], ["--precision", "fp64"],
                                    ["--rampup-kimg", "-2"], ["--p-std", "0"]])
def test_train_refuses_bad_options_before_writing_anything(tmp_path, option):
    res = run("train", "--data", "builtin", "--out", tmp_path / "run", "--duration", "1steps", *option)
    assert res.exit_code == 2, res.output
    assert option[0] in res.stderr and not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", [["--g-lr-scale", "-1"], ["--d-lr-scale", "nan"], ["--gan-warmup-kimg", "-5"],
                                    ["--gan-loss-scaling", "-1"], ["--lr", "0"]])
def test_distill_refuses_bad_options_in_one_line_before_writing_anything(tmp_path, option):
    res = run("distill", "--teacher", "builtin64-teacher", "--data", "builtin", "--out", tmp_path / "run",
              "--duration", "1steps", *option)
    assert res.exit_code == 2, res.output
    assert f"{option[0]} must be" in res.stderr and "╭" not in res.output and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("option", "message"), [(["--nfe", "2,,4"], "has an empty item"), (["--nfe", ","], "is empty"),
                                               (["--tasks", "sr4,"], "has an empty item")])
def test_bench_refuses_empty_list_items(tmp_path, option, message):
    res = run("bench", "--dataset", "builtin", "--out", tmp_path / "b", *option)
    assert res.exit_code == 2 and f"{option[0]}" in res.stderr and message in res.stderr, res.output
    assert not (tmp_path / "b").exists()


def test_bench_refuses_a_resolution_lpips_cannot_measure(tmp_path):
    res = run("bench", "--dataset", "builtin", "--resolution", "30", "--out", tmp_path / "b")
    assert res.exit_code == 2 and "--resolution 30" in res.stderr and not (tmp_path / "b").exists()


def test_checkpoints_info_of_a_file_that_is_no_checkpoint_exits_3(tmp_path):
    res = run("checkpoints", "info", _png(tmp_path / "a.png", 4, 4))
    assert res.exit_code == 3 and "not a readable checkpoint" in res.stderr


def test_image_bytes_are_not_written_to_a_terminal(monkeypatch):
    import io

    from ncvsd_cli.cli import common

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Tty())
    with pytest.raises(common.UsageError, match="terminal"):
        common.check_stdout({"x": ["-"]}, as_json=False)
    common.check_stdout({"x": ["out.png"]}, as_json=True)  # JSON to a terminal is fine


def runner_80(args: list[str]) -> str:
    """`ncvsd ARGS --help` as an 80-column terminal shows it."""
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    return res.output


def test_help_epilogs_wrap_at_any_width():
    """Typer's rich help keeps every newline of an epilog, so the source's hard-wrapped prose broke mid-sentence
    at 80 columns: prose paragraphs become one line, an example's "(comment)" goes under its command."""
    from ncvsd_cli.cli import common, degrade, restore, sample

    text = "Examples:\n\n  ncvsd x a.png      (writes b.png,\n                     4x larger)\n\nOne\nsentence."
    assert common.epilog(text) == "Examples:\n\n  ncvsd x a.png\n      (writes b.png, 4x larger)\n\nOne sentence."
    for module in (degrade, restore, sample):
        for para in common.epilog(module.EPILOG).split("\n\n"):
            assert para.startswith("  ") or "\n" not in para, para
    res = run("restore", "--help")
    assert res.exit_code == 0 and "ncvsd restore --task sr4 small.png" in res.output
    # a command longer than EXAMPLE_WIDTH is continued with " \\" between words outside quotes, an option with its
    # value (Rich wrapped it at column 80 with nothing to say so: the copied first line failed)
    long = "  cat l.txt | xargs -d '\\n x' ncvsd restore --task deblur-gauss blurry/ -o restored/ --nfe 8 --json"
    lines = common._shell_lines(long, width=60).split("\n")
    assert all(len(line) <= 60 for line in lines) and all(line.endswith(" \\") for line in lines[:-1]), lines
    assert " ".join(line.removesuffix(" \\").strip() for line in lines) == long.strip()
    assert "'\\n x'" in lines[0] and any("-o restored/" in line for line in lines), lines
    for args in ([], ["restore"], ["bench"], ["train"], ["distill"], ["checkpoints"], ["checkpoints", "import"]):
        page = runner_80(args)
        assert not [line for line in page.splitlines() if line.rstrip().endswith(" -o")], page
        page = "\n".join(line.rstrip() for line in page.split("Examples:")[-1].split("Options")[0].splitlines())
        examples = page.split("\n\n")  # a command continued in the source (bench's
        commands = [p for p in examples if p.lstrip().startswith(("ncvsd", "torchrun", "cat"))]  # --out) was
        for para in commands:  # appended past the " \" lines, and comments wrapped to column 1 by Rich
            lines = para.rstrip().split("\n")
            shell = [line for line in lines if not line.strip().startswith("(") and not line.startswith(" " * 8)]
            assert all(line.rstrip().endswith(" \\") for line in shell[:-1]), para
            assert all(line.startswith("   ") for line in lines), para


def test_sample_to_a_folder_writes_the_finite_samples_and_reports_a_nan_one(tmp_path, ckpt, monkeypatch):
    from ncvsd_cli.sampling import generate

    real = generate.sample_batches

    def one_nan(*args, **kwargs):
        for chunk, x in real(*args, **kwargs):
            yield chunk, torch.where(torch.tensor(chunk).view(-1, 1, 1, 1) == 1, float("nan"), x)

    monkeypatch.setattr(generate, "sample_batches", one_nan)
    res = run("sample", "-c", ckpt, "--seeds", "0-2", "-b", "2", "-o", tmp_path / "s", "--device", "cpu", "--json")
    assert res.exit_code == 1 and "seed 1: the network produced NaN/inf" in res.stderr
    assert json.loads(res.stdout.splitlines()[-1])["ok"] == 2 and _files(tmp_path / "s") == {"000000.png", "000002.png"}


def test_an_input_that_runs_out_of_memory_fails_alone(tmp_path, monkeypatch):
    """A MemoryError while an input is measured (a header far larger than its file, let through by the estimate)
    stopped the whole batch as "internal error: MemoryError" with no result; now that input fails, named, and the
    others are restored."""
    from ncvsd_cli.restore import Restorer

    big, small = _png(tmp_path / "big.png"), _png(tmp_path / "small.png", seed=1)
    real = Restorer.measurement

    def measurement(self, y, task, *args, source=None, **kwargs):
        if source == big.name or str(source).endswith("big.png"):
            raise MemoryError
        return real(self, y, task, *args, source=source, **kwargs)

    monkeypatch.setattr(Restorer, "measurement", measurement)
    res = run("restore", "--task", "sr4", "--method", "classical", big, small, "-o", tmp_path / "out", "--json")
    assert res.exit_code == 1, res.output
    assert "big.png: ran out of memory" in res.output and "internal error" not in res.output
    assert (tmp_path / "out" / "small.png").is_file() and not (tmp_path / "out" / "big.png").exists()


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_inputs_that_would_write_the_same_output_are_all_refused(tmp_path, command):
    """photo.png and photo.jpg into one -o DIR: the first was written and the second refused, so which one came
    back depended on the order, and a --skip-existing rerun failed both ("exists, beside outputs still to make")
    forever. Now neither is written, and a rerun says the same."""
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "photo.png")
    Image.open(src / "photo.png").save(src / "photo.jpg", quality=95)
    extra = ["--task", "sr4"] + (["--method", "classical"] if command == "restore" else [])
    for again in ("", "--skip-existing"):
        res = run(command, src, "-o", tmp_path / "out", *extra, "--json", "-q", *([again] if again else []))
        lines = [json.loads(line) for line in res.stdout.splitlines()]
        assert res.exit_code == 1 and [r["status"] for r in lines[:-1]] == ["failed", "failed"], res.output
        assert all("none of them is written" in r["error"] for r in lines[:-1]), lines
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_inputs_without_task_fail_for_their_own_reason(tmp_path, ckpt):
    """Without --task: missing inputs fail as they do with it (exit 1, the name said once), and a file that is not
    an image among sidecar inputs is called that, not a plain image needing --task."""
    res = run("restore", tmp_path / "nonexist.png", "-c", ckpt)
    assert res.exit_code == 1 and res.stderr.count("nonexist.png") == 1, res.output
    assert "no such file or directory" in res.stderr
    clean = _png(tmp_path / "clean.png", 16, 12)
    assert run("degrade", "--task", "denoise", clean, "-o", tmp_path / "m.png", "-q").exit_code == 0
    (tmp_path / "fake.png").write_text("not an image")
    res = run("restore", tmp_path / "m.png", tmp_path / "fake.png", "-c", ckpt, *FAST, "-o", tmp_path / "out", "-q")
    assert res.exit_code == 1 and "fake.png: not an image" in res.stderr and "--task" not in res.stderr, res.output
    assert (tmp_path / "out" / "m.png").exists()


def test_messages_for_phone_and_web_inputs(tmp_path, ckpt):
    """What a user of phone and web pictures is told: a broken symbolic link as such; an unknown output suffix with
    the suffixes that work; a GIF output's palette as a warning (also under -q); --mean without --samples with
    the mean-of-8 method of the task; a HEIC whose nclx colour (HDR PQ, no ICC) the outputs cannot tag, as a
    warning under -q too, a Display P3 one carried as an ICC profile; a degraded HEIC preview as lossy."""
    src = _png(tmp_path / "a.png", 24, 24)
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    common = ["--task", "denoise", "--method", "denoiser", "-c", ckpt, *FAST]
    res = run("restore", tmp_path / "gone.jpg", *common)
    assert res.exit_code != 0 and "gone.jpg: a broken symbolic link (to " in res.stderr, res.output
    (tmp_path / "dir").mkdir()  # in a folder it was left out without a word (exit 0)
    (tmp_path / "dir" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    _png(tmp_path / "dir" / "b.png", 24, 24)
    res = run("restore", tmp_path / "dir", "-o", tmp_path / "dir_out", *common)
    assert res.exit_code == 1 and "dir/gone.jpg: a broken symbolic link (to " in res.stderr, res.output
    assert (tmp_path / "dir_out" / "b.png").is_file()
    res = run("restore", src, "-o", tmp_path / "o.xyz", *common)
    assert res.exit_code != 0 and "unknown image format '.xyz'; use .png, .jpg, .webp" in res.stderr, res.output
    res = run("restore", src, "-o", tmp_path / "o.gif", "-q", *common)
    assert res.exit_code == 0 and "warning: " in res.stderr and "a GIF holds 256 colours" in res.stderr, res.output
    res = run("restore", src, "--mean", *common)
    assert res.exit_code == 2 and "--method denoiser-mean8 gives the mean of 8" in res.stderr, res.output
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.from_pillow(Image.open(src)).save(tmp_path / "pq.heic", quality=90, color_primaries=9,
                                                  transfer_characteristics=16)
    res = run("restore", tmp_path / "pq.heic", "-o", tmp_path / "pq.png", "-q", *common)
    assert res.exit_code == 0 and "warning: " in res.stderr, res.output
    assert "colour tagged BT.2020 / PQ (HDR) (HEIF nclx, no ICC profile)" in res.stderr, res.output
    pillow_heif.from_pillow(Image.open(src)).save(tmp_path / "p3.heic", quality=90, color_primaries=12,
                                                  transfer_characteristics=13)
    res = run("restore", tmp_path / "p3.heic", "-o", tmp_path / "p3.png", *common)  # P3: carried as ICC
    assert res.exit_code == 0 and "warning" not in res.stderr and "its Display P3 colour" in res.stderr
    assert Image.open(tmp_path / "p3.png").info["icc_profile"][36:40] == b"acsp"
    res = run("degrade", src, "--task", "denoise", "-o", tmp_path / "d.heic")
    assert res.exit_code == 0 and "d.heic: a lossy preview" in res.stderr, res.output


def test_format_names_the_outputs_format(tmp_path, ckpt):
    """--format sets the outputs' format in a folder or beside the inputs; `same` keeps each input's (a phone's
    IMG_1.HEIC and IMG_1.JPG then no longer claim one name, which is refused with that hint); the std images stay
    PNG (they hold values, and the heat map is a PNG); a bad format or one beside -o FILE is a usage error."""
    pytest.importorskip("pillow_heif")
    folder = tmp_path / "phone"
    folder.mkdir()
    src = _png(folder / "b.png", 20, 20)
    Image.open(src).save(folder / "IMG_1.JPG", quality=90)
    shutil.copy(Path(__file__).parent / "data" / "tiny.heic", folder / "IMG_1.HEIC")
    common = ["--task", "denoise", "--method", "denoiser", "-c", ckpt, *FAST]
    res = run("restore", folder, "-o", tmp_path / "same", "--format", "same", *common)
    assert res.exit_code == 0 and _files(tmp_path / "same") == {"IMG_1.heic", "IMG_1.jpg", "b.png"}, res.output
    assert [Image.open(tmp_path / "same" / n).format for n in ("IMG_1.heic", "IMG_1.jpg")] == ["HEIF", "JPEG"]
    res = run("restore", folder, "-o", tmp_path / "jpg", "--format", "JPG", *common)
    assert res.exit_code == 1 and _files(tmp_path / "jpg") == {"b.jpg"}, res.output
    assert "--format same keeps each one's own format" in res.stderr
    res = run("restore", src, "--format", "webp", "--samples", "2", "--std", "-o", tmp_path / "s/", *common)
    assert res.exit_code == 0 and _files(tmp_path / "s") == {"b_s0.webp", "b_s1.webp", "b_std.png", "b_std_map.png"}
    assert Image.open(tmp_path / "s" / "b_std_map.png").format == "PNG"
    res = run("restore", src, "--format", "xyz", *common)
    assert res.exit_code == 2 and "--format xyz: unknown image format '.xyz'; use same, or .png" in res.stderr
    res = run("restore", src, "--format", "jpg", "-o", tmp_path / "x.png", *common)
    assert res.exit_code == 2 and "names one file, whose suffix sets its format" in res.stderr, res.output
    res = run("restore", src, "--format", "jpg", "-o", "-", *common)  # stdout: in the format asked for
    assert res.exit_code == 0 and res.stdout_bytes.startswith(b"\xff\xd8"), res.output
    res = run("restore", "-", "--format", "webp", *common, input=src.read_bytes())
    assert res.exit_code == 0 and res.stdout_bytes[8:12] == b"WEBP", res.output
    (tmp_path / "res.v2").mkdir()  # an existing folder with a dot in its name is a folder
    res = run("restore", src, "--format", "jpg", "-o", tmp_path / "res.v2", *common)
    assert res.exit_code == 0 and _files(tmp_path / "res.v2") == {"b.jpg"}, res.output
    assert run("degrade", src, "--task", "denoise", "-o", tmp_path / "m" / "m.jpg").exit_code == 0
    res = run("restore", tmp_path / "m" / "m.jpg.ncvsd.json", "--format", "same", "-o", tmp_path / "ms/",
              "--method", "denoiser", "-c", ckpt, *FAST)  # a sidecar named directly: its image's format
    assert res.exit_code == 0 and _files(tmp_path / "ms") == {"m.jpg"}, res.output


def test_a_scans_resolution_is_kept_at_its_print_size(tmp_path, ckpt):
    """restore keeps a 300-dpi scan's resolution (with --strip-metadata too: it is no private data), and an sr4
    output, with 4x the pixels, gets 1200 dpi: the same print size."""
    Image.open(_png(tmp_path / "a.png", 20, 24)).save(tmp_path / "scan.jpg", quality=90, dpi=(300, 300))  # 24 x 20
    common = ["-c", ckpt, *FAST, "--strip-metadata"]
    assert run("restore", tmp_path / "scan.jpg", "-t", "denoise", "--method", "denoiser", "-o", tmp_path / "d.png",
               *common).exit_code == 0
    assert run("restore", tmp_path / "scan.jpg", "-t", "sr4", "-o", tmp_path / "s.tif", *common).exit_code == 0
    assert Image.open(tmp_path / "d.png").info["dpi"] == pytest.approx((300, 300), abs=0.05)
    with Image.open(tmp_path / "s.tif") as im:
        assert im.size == (96, 80) and im.info["dpi"] == pytest.approx((1200, 1200))


def test_a_photos_exif_is_kept_unless_stripped(tmp_path, ckpt):
    """restore copies a phone photo's EXIF (model, capture date, GPS) into its outputs, without the orientation
    (the pixels are turned), and its XMP (keywords, title), without develop settings; --strip-metadata writes
    neither."""
    from test_xmp import PHOTO_XMP

    exif = Image.Exif()
    exif[0x0110], exif[0x0112] = "iPhone 13", 6
    exif.get_ifd(0x8769)[0x9003] = "2026:11:30 10:00:00"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 30.0, 12.34)})
    Image.open(_png(tmp_path / "a.png", 20, 24)).save(tmp_path / "p.jpg", quality=90, exif=exif.tobytes(),
                                                       xmp=PHOTO_XMP)
    common = ["--task", "denoise", "--method", "denoiser", "-c", ckpt, *FAST]
    assert run("restore", tmp_path / "p.jpg", "-o", tmp_path / "k.jpg", *common).exit_code == 0
    kept = Image.open(tmp_path / "k.jpg").getexif()
    assert (kept.get(0x0110), kept.get(0x0112), kept.get_ifd(0x8769).get(0x9003)) == ("iPhone 13", None,
                                                                                        "2026:11:30 10:00:00")
    assert [float(v) for v in kept.get_ifd(0x8825)[2]] == pytest.approx([52.0, 30.0, 12.34])
    assert Image.open(tmp_path / "k.jpg").size == (20, 24)  # turned
    xmp = Image.open(tmp_path / "k.jpg").info["xmp"]
    assert b"Rottnest" in xmp and b"crs:" not in xmp.replace(b"xmlns:crs", b"")
    assert run("restore", tmp_path / "p.jpg", "-o", tmp_path / "k.tif", *common).exit_code == 0  # both in a TIFF
    with Image.open(tmp_path / "k.tif") as tif:
        assert tif.getexif().get(0x0110) == "iPhone 13" and b"Rottnest" in tif.info["xmp"]
    assert run("restore", tmp_path / "p.jpg", "-o", tmp_path / "s.png", "--strip-metadata", *common).exit_code == 0
    assert not Image.open(tmp_path / "s.png").getexif() and "Rottnest" not in _xmp_text(tmp_path / "s.png")
    assert _source_type(tmp_path / "s.png") == ["compositeWithTrainedAlgorithmicMedia"]  # the AI label only


def _xmp_text(path) -> str:
    """An image's XMP packet as text ("" without one)."""
    with Image.open(path) as im:
        packet = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or b""
    return packet.decode() if isinstance(packet, bytes) else packet


def _source_type(path) -> list[str]:
    """The IPTC Digital Source Types in an image's XMP."""
    packet = _xmp_text(path)
    return re.findall(r"DigitalSourceType>http://cv\.iptc\.org/newscodes/digitalsourcetype/(\w+)<", packet)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_outputs_are_labelled_as_made_by_ai_or_an_algorithm(tmp_path, ckpt, suffix):
    """Restorations and samples carried no mark that a generative model drew their details; a camera photo's
    digitalCapture was even copied into its AI-edited restoration."""
    from ncvsd_cli import xmp

    src = tmp_path / "p.jpg"
    camera = xmp.labelled(None, "digitalCapture")
    Image.open(_png(tmp_path / "a.png", 20, 24)).save(src, quality=90, xmp=camera)
    assert _source_type(src) == ["digitalCapture"]
    for method, label in (("denoiser", xmp.EDITED_BY_AI), ("nl-means", xmp.ENHANCED)):
        out = tmp_path / f"{method}{suffix}"
        budget = FAST if method == "denoiser" else ["--device", "cpu"]
        res = run("restore", src, "-o", out, "--task", "denoise", "--method", method, "-c", ckpt, *budget)
        assert res.exit_code == 0, res.output
        assert _source_type(out) == [label], method
    res = run("sample", "-c", ckpt, "--seeds", "0", "-o", tmp_path / f"g{suffix}", "--device", "cpu", "-q")
    assert res.exit_code == 0 and _source_type(tmp_path / f"g{suffix}") == [xmp.GENERATED], res.output


@pytest.mark.parametrize("lossless", [True, False])
def test_a_lossless_webp_stays_lossless(tmp_path, ckpt, lossless):
    """--format same writes a lossless WebP's restoration as a lossless WebP (not at quality 95), a lossy one's
    lossy."""
    from ncvsd_cli import images

    Image.open(_png(tmp_path / "a.png", 20, 24)).save(tmp_path / "w.webp", lossless=lossless, quality=90)
    assert run("restore", tmp_path / "w.webp", "-t", "denoise", "--method", "denoiser", "--format", "same",
               "-o", tmp_path / "out", "-c", ckpt, *FAST).exit_code == 0
    assert images.is_lossy_webp((tmp_path / "out" / "w.webp").read_bytes()) == (not lossless)


def test_tasks_lists_every_operator_with_its_parameters_method_and_plain_image_needs():
    """There was no way to list the tasks but the --task option's help: `ncvsd tasks` names each registered
    operator with what it measures, its -p parameters and defaults, its default method and what a plain image
    needs (or the parameters it is restored with instead)."""
    import operators

    res = run("tasks", "--json")
    assert res.exit_code == 0, res.output
    records = {r["task"]: r for r in json.loads(res.stdout)}
    assert set(records) == set(operators.names())
    assert records["sr4"]["method"] == "pnp-gd-warm" and records["sr4"]["plain_image"] == "yes"
    assert records["denoise"]["method"] == "denoiser" and records["denoise"]["parameters"] == {}
    assert records["phase-retrieval"]["plain_image"] == "sidecar only"
    assert records["inpaint-mask"]["plain_image"] == "needs -p mask=..."
    assert records["inpaint-mask"]["parameters"] == {"mask": None, "invert": False, "grow": 0.0}
    gauss = records["deblur-gauss"]
    assert gauss["parameters"]["boundary"] == "circular" and gauss["plain_image_parameters"] == {"boundary": "reflect"}
    assert records["deblur-motion"]["parameters"]["kernel_size"] == 61  # the preset's, as degrade uses it
    assert all(r["summary"] for r in records.values())
    text = run("tasks").stdout
    assert "sr4" in text and "plain image: yes (restored with boundary=reflect)" in text


def test_a_json_run_stopped_before_its_inputs_lists_them_as_not_done(tmp_path):
    """A usage error found before the inputs' report (no --task for plain images) wrote "results": [] and no
    "not_done", which the README promises for every early stop."""
    a, b = _png(tmp_path / "a.png", 8, 8), _png(tmp_path / "b.png", 8, 8, seed=1)
    for args in (("restore", a, b), ("degrade", a, b, "--task", "nope"),  # (also --json beside an image on
                 *((cmd, a, b, "--task", "sr2", "-o", "-") for cmd in ("restore", "degrade"))):  # stdout)
        res = run(*args, "--json")
        assert res.exit_code == 2, res.output
        doc = json.loads(res.stdout.strip().splitlines()[-1])
        assert doc["not_done"] == [str(a), str(b)] and doc["results"] == [], doc
        assert {"ok", "failed", "skipped"} <= doc.keys(), doc  # one schema for scripts, whatever stopped it


def test_a_gif_grid_of_samples_warns_of_its_palette(tmp_path, ckpt):
    """restore warned that a GIF output is reduced to 256 colours; sample wrote one without a word."""
    res = run("sample", "-c", ckpt, "--seeds", "0", "-o", tmp_path / "g.gif", "--device", "cpu", "-q")
    assert res.exit_code == 0 and "a GIF holds 256 colours" in res.stderr, res.output


def test_a_sigma_above_1_is_warned_of_as_a_likely_0_255_level(tmp_path, ckpt):
    """`--sigma-y 25` (a level on the 0-255 scale) buried the image in noise without a word."""
    src = _png(tmp_path / "p.png", 8, 8)
    res = run("degrade", "--task", "denoise", "--sigma-y", "25", src, "-o", tmp_path / "m.png", "-q")
    assert res.exit_code == 0 and "25 / 127.5 = 0.1961 here" in res.stderr, res.output
    res = run("restore", "--task", "denoise", "--sigma-y", "25", src, "-c", ckpt, *FAST, "-o", tmp_path / "r.png",
              "-q")
    assert res.exit_code == 0 and "--sigma-y 25 is on the [-1, 1] scale" in res.stderr, res.output
    quiet = run("degrade", "--task", "denoise", "--sigma-y", "0.2", src, "-o", tmp_path / "n.png", "-q")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


@pytest.mark.parametrize(("oversample", "warned"), [("0", True), ("3.5", True), ("4", False), ("8", False)])
def test_phase_retrieval_below_the_papers_oversample_is_warned_of(tmp_path, oversample, warned):
    """-p oversample=0 measured an image whose Fourier magnitudes cannot determine it, without a word."""
    src = _png(tmp_path / "p.png", 8, 8)
    res = run("degrade", "--task", "phase-retrieval", "-p", f"oversample={oversample}", src, "-o",
              tmp_path / "m.png", "-q")
    assert res.exit_code == 0, res.output
    assert ("less than the paper's 4" in res.stderr) == warned, res.stderr


def test_a_sample_written_meanwhile_is_skipped_under_skip_existing(tmp_path):
    """Two `sample --skip-existing` runs into one folder: the second failed every seed another wrote meanwhile,
    advising --overwrite."""
    import torch

    from ncvsd_cli.cli import common
    from ncvsd_cli.cli.sample import _write_sample

    path = tmp_path / "000000.png"
    path.write_bytes(_png(tmp_path / "x.png", 4, 4).read_bytes())  # written by the other process
    for skip, status in ((True, "skipped"), (False, "failed")):
        report = common.Report("sample")
        _write_sample(torch.zeros(3, 4, 4), str(path), 0, False, report, skip, quiet=True)
        assert [r["status"] for r in report.results] == [status]


def test_a_rerun_over_named_files_leaves_earlier_outputs_out_under_skip_existing(tmp_path, ckpt):
    """`ls s/*.png | xargs -n 2 ncvsd restore --skip-existing` a second time named s/a_denoise.png itself: it was
    restored again (a_denoise_denoise.png), on every rerun once more."""
    a, b = _png(tmp_path / "a.png", 8, 8), _png(tmp_path / "b.png", 8, 8, seed=1)
    common = ["--task", "denoise", "--method", "denoiser", "-c", ckpt, *FAST, "--sigma-y", "0.1"]
    assert run("restore", a, *common).exit_code == 0
    res = run("restore", tmp_path / "a_denoise.png", b, *common, "--skip-existing", "--json")  # (a.png: in another
    # invocation of xargs, as xargs -n 2 splits the list)
    assert res.exit_code == 0 and "left out 1 input(s) named as an earlier run's outputs" in res.stderr, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_denoise.png", "b.png", "b_denoise.png"]
    res = run("restore", tmp_path / "a_denoise.png", *common)  # named without --skip-existing: restored
    assert res.exit_code == 0 and (tmp_path / "a_denoise_denoise.png").is_file(), res.output


def test_a_terminal_is_told_where_the_outputs_went(tmp_path, monkeypatch):
    """On a terminal (not --quiet, not --json) the last line names what was written: the names are made from the
    inputs' (x_sr4.png), and nothing said so. Piped or redirected stderr stays as it was."""
    from ncvsd_cli.cli import common

    src = _png(tmp_path / "a.png")
    res = run("degrade", "--task", "sr2", src, "-o", tmp_path / "m.png")
    assert res.exit_code == 0 and "wrote" not in res.stderr  # (stderr is no terminal here)
    monkeypatch.setattr(common, "stderr_is_terminal", lambda: True)
    res = run("degrade", "--task", "sr2", src, "-o", tmp_path / "m2.png")
    assert res.stderr.strip().splitlines()[-1] == f"ncvsd: wrote {tmp_path / 'm2.png'}, {tmp_path / 'm2.png'}" \
        f".ncvsd.json, {tmp_path / 'm2.png'}.ncvsd.safetensors", res.stderr
    assert "wrote" not in run("degrade", "--task", "sr2", src, "-o", tmp_path / "m3.png", "-q").stderr
    report = common.Report("restore")
    for name, status in (("a.png", "ok"), ("b.png", "ok"), ("c.png", "failed"), ("d.png", "skipped")):
        report.results.append({"input": name, "status": status, "outputs": [f"out/{name}"] * (status != "failed")})
    assert report.recap() == "restore: 2 ok, 1 skipped, 1 failed; outputs in out"
    assert common.Report("restore", results=[{"input": "-", "status": "ok", "outputs": ["-"]}]).recap() is None


def test_outputs_say_the_settings_that_made_them(tmp_path, ckpt):
    """Each restored sample, the mean and each sampled seed carry their settings in XMP (ncvsd:Task, Method, NFE,
    Seed, Sample, Model): `--json` said them, the picture did not (which seed made this one?)."""
    from ncvsd_cli import xmp

    src = _png(tmp_path / "a.png")
    assert run("degrade", "--task", "sr2", src, "-o", tmp_path / "m.png").exit_code == 0
    res = run("restore", tmp_path / "m.png", "-c", ckpt, *FAST, "--samples", "2", "--mean", "--seed", "5", "-o",
              tmp_path / "out", "-q")
    assert res.exit_code == 0, res.output
    settings = {p.name: xmp.made_with(Image.open(p).info.get("xmp")) for p in (tmp_path / "out").iterdir()}
    assert {s.pop("Precision") for s in settings.values()} <= {"fp32", "bf16"}, settings
    common = {"Task": "sr2", "Method": "pnp-gd-warm", "NFE": "2", "Seed": "5", "SigmaY": "0.05",
              "Model": Path(ckpt).name}
    assert settings == {"m_s0.png": {**common, "Sample": "1 of 2"}, "m_s1.png": {**common, "Sample": "2 of 2"},
                        "m_mean.png": {**common, "Sample": "mean of 2"}}, settings
    res = run("sample", "-c", ckpt, "--seeds", "3,4", "--nfe", "1", "-o", tmp_path / "s", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.output
    got = xmp.made_with(Image.open(tmp_path / "s" / "000004.png").info["xmp"])
    assert got["Seed"] == "4" and got["NFE"] == "1" and got["Model"] == Path(ckpt).name, got
    assert got["Precision"] in {"fp32", "bf16"} and int(got["Resolution"]) > 0, got


def test_help_shows_the_box_size_form_takes_dash_h_and_keeps_seed_columns_narrow():
    """Rich ate "[h,w]" from the -p help ("box_size (px, or );"); `-h` was "No such option"; --seed's max= printed
    "[0<=x<=9223372036854775807]" in the option column, squeezing every description to 25 columns at 80."""
    runner = CliRunner()
    for command in ("restore", "degrade"):
        res = runner.invoke(app, [command, "-h"], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "box_size (px, or [h,w]);" in res.output, res.output
        assert "9223372036854775807" not in res.output
        big = runner.invoke(app, [command, "--seed", str(2**63), "x.png", "--task", "sr4"])
        assert big.exit_code == 2 and "above the largest seed" in big.output, big.output
    assert runner.invoke(app, ["-h"]).exit_code == 0
