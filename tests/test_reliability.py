"""Reliability and safety of the commands, table-driven over classes of bad or unusual input: images, sidecars,
output targets, signals, seeds and exit codes. Every case runs through the CLI on tiny images, with a tiny random
checkpoint (or the shipped model where the promise is about it) and --nfe 2."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ncvsd_cli import images
from ncvsd_cli import measurement as meas
from ncvsd_cli.checkpoints import save_checkpoint
from ncvsd_cli.cli import app
from ncvsd_cli.networks import build_network, network_config

runner = CliRunner()
FAST = ["--nfe", "2", "--device", "cpu"]


def run(*args, input: bytes | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def _tiny(folder: Path, nan: bool = False) -> Path:
    torch.manual_seed(0)
    cfg = network_config("generator", "tiny")
    net = build_network(cfg)
    if nan:
        with torch.no_grad():
            next(net.parameters()).view(-1)[0] = float("nan")
    path = folder / ("nan.safetensors" if nan else "tiny.safetensors")
    save_checkpoint(net, path, cfg)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory.mktemp("ckpt"))


def _png(path: Path, h: int = 8, w: int = 8, seed: int = 0, **save) -> Path:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, **save)
    return path


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _no_traceback(res) -> None:
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output


def _script(code: str, *args, **kw) -> subprocess.CompletedProcess:
    """Run `code` then the ncvsd app with `args` in a fresh Python (for signals and file descriptors)."""
    prog = code + "\nimport sys\nfrom ncvsd_cli.cli import app\nsys.argv = ['ncvsd'] + sys.argv[1:]\napp()\n"
    return subprocess.run([sys.executable, "-c", prog, *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False, **kw)


# ------------------------------------------------------------------------------------- input images (classes)
def _tiff_float(path: Path) -> Path:
    import tifffile

    tifffile.imwrite(path, np.random.default_rng(0).random((8, 8, 3), dtype=np.float32), photometric="rgb")
    return path


def _tiff_pages(path: Path) -> Path:
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        for i in range(2):
            tif.write(np.full((8, 8, 3), 60 * i, np.uint8), photometric="rgb")
    return path


def _png16(path: Path) -> Path:
    import png

    arr = np.random.default_rng(0).integers(0, 65536, (8, 8 * 3), dtype=np.uint16)
    with open(path, "wb") as f:
        png.Writer(8, 8, greyscale=False, bitdepth=16).write(f, arr)
    return path


ICC = b"\x00\x00\x02\x0cfake profile for the test " + bytes(range(200))

INPUT_CLASSES = {  # name: (make(path) -> path, exit code, text expected on stderr)
    "plain PNG": (lambda p: _png(p), 0, ""),
    "0-byte file": (lambda p: (p.write_bytes(b""), p)[1], 1, "empty"),
    "text file": (lambda p: (p.write_bytes(b"hello, not an image"), p)[1], 1, "not an image"),
    "truncated PNG": (lambda p: (p.write_bytes(_png(p).read_bytes()[:60]), p)[1], 1, "p.png"),
    "float RGB TIFF": (_tiff_float, 0, ""),
    "two-page TIFF": (_tiff_pages, 0, "first of 2 TIFF pages"),
    "16-bit PNG": (_png16, 0, ""),
    "PNG with ICC profile": (lambda p: _png(p, icc_profile=ICC), 0, ""),
}


@pytest.mark.parametrize("kind", list(INPUT_CLASSES))
def test_input_classes(tmp_path, ckpt, kind):
    make, code, text = INPUT_CLASSES[kind]
    suffix = ".tif" if "TIFF" in kind else ".png"
    src = make(tmp_path / f"p{suffix}")
    res = run("restore", "--task", "denoise", src, "-o", tmp_path / "out.png", "-c", ckpt, *FAST)
    assert res.exit_code == code, res.output
    assert text in res.stderr
    _no_traceback(res)
    assert not [n for n in _files(tmp_path) if n.endswith(".tmp")]


def test_16_bit_and_icc_profile_are_kept(tmp_path, ckpt):
    """16-bit sources give 16-bit PNGs (pypng), and the ICC profile of the source is copied into the outputs."""
    import png

    for name, src in (("deep", _png16(tmp_path / "deep.png")), ("icc", _png(tmp_path / "icc.png", icc_profile=ICC))):
        out = tmp_path / f"{name}_out.png"
        assert run("restore", "--task", "denoise", src, "-o", out, "-c", ckpt, *FAST).exit_code == 0
        depth = png.Reader(filename=str(out)).read()[3]["bitdepth"]
        with Image.open(out) as im:
            icc = im.info.get("icc_profile")
        assert (depth, icc) == ((16, None) if name == "deep" else (8, ICC))
    help_text = run("restore", "--help").output
    assert "16-bit PNG" in help_text and "ICC" in help_text
    res = run("restore", "--task", "denoise", tmp_path / "deep.png", "-o", tmp_path / "deep.jpg", "-c", ckpt, *FAST,
              "--json")
    assert res.exit_code == 0 and "deep.jpg with 8 (a .png or .tif output keeps 16)" in res.stderr, res.output
    assert any("deep.jpg with 8" in n for n in json.loads(res.stdout.splitlines()[-1])["results"][0]["notes"])
    res = run("restore", "--task", "denoise", tmp_path / "deep.png", "-o", tmp_path / "deep.tif", "-c", ckpt, *FAST)
    assert res.exit_code == 0 and "bits per sample" not in res.stderr, res.output
    import tifffile

    with tifffile.TiffFile(tmp_path / "deep.tif") as tif:
        assert tif.pages[0].dtype == np.uint16  # a 16-bit TIFF, as the 16-bit source
    tifffile.imwrite(tmp_path / "float.tif", np.random.default_rng(0).random((16, 16, 3)).astype(np.float32),
                     photometric="rgb")
    res = run("restore", "--task", "denoise", tmp_path / "float.tif", "-o", tmp_path / "float.png", "-c", ckpt, *FAST)
    assert res.exit_code == 0 and "bits per sample" not in res.stderr, res.output  # 16 is all a file keeps
    if importlib.util.find_spec("pillow_heif"):
        res = run("restore", "--task", "denoise", tmp_path / "deep.png", "-o", tmp_path / "deep.heic", "-c", ckpt,
                  *FAST)
        assert res.exit_code == 0 and "deep.heic with 10 (a .png or .tif" in res.stderr, res.output
        assert images.read_image(tmp_path / "deep.heic").bit_depth == 10


def test_stdin_messages_name_stdin(ckpt):
    res = run("restore", "--task", "denoise", "-", "-c", ckpt, *FAST, input=b"garbage bytes")
    assert res.exit_code == 1 and "<stdin>: not an image" in res.stderr and "<bytes>" not in res.stderr


# ------------------------------------------------------------------------------------------- sidecars
@pytest.fixture
def measured(tmp_path) -> Path:
    """measured/{a,b,c}.png from `ncvsd degrade --task deblur-gauss` (sidecars beside them)."""
    folder = tmp_path / "measured"
    folder.mkdir()
    for i, name in enumerate("abc"):
        res = run("degrade", "--task", "deblur-gauss", _png(tmp_path / f"{name}.png", seed=i), "-o",
                  folder / f"{name}.png", "--seed", i)
        assert res.exit_code == 0, res.output
    return folder


def _edit(side: Path, change) -> None:
    meta = json.loads(side.read_text())
    change(meta)
    side.write_text(json.dumps(meta))


SIDECAR_CORRUPTIONS = {  # name: (input, change(meta) or raw text)
    "invalid JSON in the first input": ("a", "{not json"),
    "operator is a string": ("b", lambda m: m.update(operator="deblur-gauss")),
    "preview is a list": ("b", lambda m: m.update(preview=["b.png"])),
    "kernel_size 100001": ("b", lambda m: m["operator"].update(kernel_size=100001)),
    "negative sigma_y": ("b", lambda m: m.update(sigma_y=-0.1)),
    "NaN sigma_y": ("b", lambda m: m.update(sigma_y=float("nan"))),
    "sigma_y as text": ("b", lambda m: m.update(sigma_y="0.05")),
    "huge image_shape": ("b", lambda m: m["operator"].update(image_shape=[3, 100000, 100000])),
    "unknown version": ("b", lambda m: m.update(version=99)),
    "wrong measurement_shape": ("b", lambda m: m.update(measurement_shape=[3, 4, 4])),
    "tensors modified": ("b", lambda m: m.update(tensors_sha256="0" * 64)),
    "a list instead of an object": ("b", "[1, 2, 3]"),
    "source_bit_depth 0": ("b", lambda m: m.update(source_bit_depth=0)),
}
#: The message's words per case, where the field is named.
SIDECAR_MESSAGES = {"source_bit_depth 0": "source_bit_depth must be an integer 1-32, got 0"}


@pytest.mark.parametrize("case", list(SIDECAR_CORRUPTIONS))
def test_one_bad_sidecar_fails_alone(measured, tmp_path, ckpt, case):
    """A bad sidecar is reported with its input (one line, exit 1); the other inputs are restored."""
    name, change = SIDECAR_CORRUPTIONS[case]
    side = meas.sidecar_paths(measured / f"{name}.png")[0]
    side.write_text(change) if isinstance(change, str) else _edit(side, change)
    res = run("restore", measured, "-o", tmp_path / "out", "-c", ckpt, *FAST)
    assert res.exit_code == 1, res.output
    assert _files(tmp_path / "out") == {f"{n}.png" for n in "abc" if n != name}
    assert f"{name}.png" in res.stderr and SIDECAR_MESSAGES.get(case, "") in res.stderr
    _no_traceback(res)


def test_swapped_sidecars_are_refused_and_an_edited_preview_is_noted(measured, tmp_path, ckpt):
    a, b = (meas.sidecar_paths(measured / f"{n}.png")[0] for n in "ab")
    text_a, text_b = a.read_text(), b.read_text()
    a.write_text(text_b)
    b.write_text(text_a)
    res = run("restore", measured / "a.png", measured / "b.png", "-o", tmp_path / "out", "-c", ckpt, *FAST)
    assert res.exit_code == 1 and res.stderr.count("was written for") == 2, res.output
    a.write_text(text_a)
    b.write_text(text_b)
    # an edited preview of the same size: restored from the sidecar, and said so
    arr = np.asarray(Image.open(measured / "c.png")).copy()
    arr[0, 0] = 255 - arr[0, 0]
    Image.fromarray(arr).save(measured / "c.png")
    res = run("restore", measured / "c.png", "-o", tmp_path / "c_out.png", "-c", ckpt, *FAST, "--quiet")
    assert res.exit_code == 0 and "c.png was changed" in res.stderr, res.output


def test_a_consistently_renamed_measurement_still_restores(measured, tmp_path, ckpt):
    """Renaming the preview, its sidecar and its tensors together keeps them bound (by content hash)."""
    for old, new in zip((measured / "a.png", *meas.sidecar_paths(measured / "a.png")),
                        (measured / "z.png", *meas.sidecar_paths(measured / "z.png"))):
        old.rename(new)
    res = run("restore", measured / "z.png", "-o", tmp_path / "z_out.png", "-c", ckpt, *FAST)
    assert res.exit_code == 0, res.output


def test_the_tensors_path_in_a_sidecar_is_never_followed(measured, tmp_path, ckpt):
    """The tensors file is the one named after the sidecar itself, never a path the sidecar records."""
    _edit(meas.sidecar_paths(measured / "a.png")[0], lambda m: m.update(tensors="/dev/zero"))
    res = run("restore", measured / "a.png", "-o", tmp_path / "a_out.png", "-c", ckpt, *FAST)
    assert res.exit_code == 0, res.output


def test_a_zlib_bomb_in_a_sidecar_array_is_refused_before_it_inflates(tmp_path):
    res = run("degrade", "--task", "deblur-motion", "-p", "kernel_size=9", _png(tmp_path / "x.png", 16, 16), "-o",
              tmp_path / "m.png")
    assert res.exit_code == 0, res.output
    bomb = base64.b64encode(zlib.compress(bytes(512 * 2**20), 9)).decode()  # 512 MiB of zeros in ~0.5 MB
    _edit(meas.sidecar_paths(tmp_path / "m.png")[0], lambda m: m["operator"]["kernel"].update(data=bomb))
    with pytest.raises(meas.MeasurementError, match="other than its declared"):
        meas.load_measurement(tmp_path / "m.png")


def test_restore_a_directory_of_measurements_without_task(measured, tmp_path, ckpt):
    res = run("restore", measured, "-o", tmp_path / "out", "-c", ckpt, *FAST)
    assert res.exit_code == 0, res.output
    assert _files(tmp_path / "out") == {"a.png", "b.png", "c.png"}


# ------------------------------------------------------------------------------------ outputs and stdout
OUTPUT_TARGETS = {  # name: (-o relative to tmp_path or absolute, message)
    "unknown suffix": ("o.xyz", "unknown image format"),
    "inside /proc": ("/proc/ncvsd-test/o.png", "/proc"),
    "a file in the way": ("blocker/o.png", "not a directory"),
    "a folder inside /proc": ("/proc/ncvsd-test/", "/proc"),  # usage error (exit 2): every input would fail
}


@pytest.mark.parametrize("case", list(OUTPUT_TARGETS))
def test_bad_output_targets_fail_before_any_work(tmp_path, ckpt, monkeypatch, case):
    from ncvsd_cli.restore import Restorer

    def no_work(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(Restorer, "from_options", classmethod(no_work))
    (tmp_path / "blocker").write_text("a file")
    target, message = OUTPUT_TARGETS[case]
    res = run("restore", "--task", "denoise", _png(tmp_path / "i.png"), "-o", tmp_path / target, "-c", ckpt,
              *FAST)
    assert res.exit_code in (1, 2) and message in res.stderr, res.output
    assert "work started" not in res.output
    if target.endswith("/"):
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1  # one line, not one per input


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_stdout_conflicts_are_usage_errors(ckpt, command):
    args = ["--task", "denoise", "-", "--json"] + (["-c", ckpt, *FAST] if command == "restore" else [])
    res = run(command, *args, input=_png_bytes())
    assert res.exit_code == 2 and "stdout" in res.stderr, res.output


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_closed_stdout_is_a_one_line_error(tmp_path):
    src = _png(tmp_path / "i.png")
    command = f'"{sys.executable}" -m ncvsd_cli degrade --task denoise "{src}" -o "{tmp_path / "o.png"}" --json >&-'
    res = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2 and "standard output is closed" in res.stderr and "Traceback" not in res.stderr


def test_a_broken_pipe_is_exit_1_without_traceback(tmp_path):
    src = _png(tmp_path / "big.png", 256, 256)  # the noisy preview (> 64 kB) does not fit in a pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "ncvsd_cli", "degrade", "--task", "denoise", src, "-o", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1 and "broken pipe" in err
    assert "Traceback" not in err and "Exception ignored" not in err


@pytest.mark.parametrize("command", ["restore", "degrade"])
def test_outputs_created_meanwhile_are_never_replaced(tmp_path, ckpt, monkeypatch, command):
    """Two runs to the same -o: the second finds the name taken at publication time and fails (exit 1);
    the first one's file is untouched and no temporary or partial file is left."""
    target = tmp_path / "o.png"
    real = images._write_synced

    def other_process_wins(path, data):
        real(path, data)
        if not target.exists():
            target.write_bytes(b"the other run's output")

    monkeypatch.setattr(images, "_write_synced", other_process_wins)
    extra = ["-c", ckpt, *FAST] if command == "restore" else []
    res = run(command, "--task", "denoise", _png(tmp_path / "i.png"), "-o", target, *extra)
    assert res.exit_code == 1 and "exists" in res.stderr, res.output
    assert target.read_bytes() == b"the other run's output"
    assert _files(tmp_path) == {"i.png", "o.png"}  # no preview without its sidecar, no temporary file


# ------------------------------------------------------------------------------------------ signals
SEND_DURING_WRITE = """
import os, signal
from ncvsd_cli import images
real = images._write_synced
def write(path, data):
    real(path, data[:10])
    os.kill(os.getpid(), signal.{sig})
    real(path, data)
images._write_synced = write
"""


@pytest.mark.parametrize("sig, code", [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)])
def test_a_signal_during_a_write_leaves_nothing_behind(tmp_path, sig, code):
    src = _png(tmp_path / "i.png")
    res = _script(SEND_DURING_WRITE.format(sig=sig), "degrade", "--task", "denoise", src, "-o", tmp_path / "o.png")
    assert res.returncode == code, res.stderr
    assert _files(tmp_path) == {"i.png"}
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_the_console_command_ends_by_the_signal(tmp_path, sig):
    """`main` (the `ncvsd` script) cleans up, then ends by the signal itself (a shell's $? is 128 + N)."""
    src = _png(tmp_path / "i.png")
    res = subprocess.run([sys.executable, "-c", _main_prog(SEND_DURING_WRITE.format(sig=sig)), "degrade", "--task",
                          "denoise", str(src), "-o", str(tmp_path / "o.png")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == -getattr(signal, sig), res.stderr
    assert "outputs finished so far are kept" in res.stderr and _files(tmp_path) == {"i.png"}


def test_an_interrupted_json_run_still_ends_with_its_summary(tmp_path):
    """--json stopped by a signal: the lines of the inputs finished, then the summary ("interrupted", exit code
    128 + N), so a consumer tells a cut stream from a finished one (it ended with the last image's line)."""
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png")
    stop_second = SEND_DURING_WRITE.format(sig="SIGTERM").replace(
        "def write(path, data):", "calls = []\ndef write(path, data):\n    calls.append(path)\n    if len(calls) < 4:\n"
        "        return real(path, data)")
    res = _script(stop_second, "degrade", "--task", "denoise", a, b, "-o", tmp_path / "out", "--json")
    assert res.returncode == 143, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r.get("status") for r in lines] == ["ok", None]
    assert lines[-1]["interrupted"] == "SIGTERM" and lines[-1]["exit_code"] == 143 and lines[-1]["ok"] == 1
    assert lines[-1]["not_done"] == [str(b)]  # the input cut short, named for a rerun (a.png is done)


def test_ctrl_c_stops_a_shell_loop_over_images(tmp_path):
    """Ctrl-C reaches the whole foreground group; bash stops a `for` loop only when its command died by SIGINT
    (a plain exit 130 reads as "handled", and the loop went on with the next image)."""
    src = _png(tmp_path / "i.png")
    ctrl_c = SEND_DURING_WRITE.replace("os.kill(os.getpid(), signal.{sig})", "os.killpg(0, signal.SIGINT)")
    command = shlex.join([sys.executable, "-c", _main_prog(ctrl_c), "degrade", "--task", "denoise", str(src)])
    loop = f"for i in 1 2; do {command} -o {tmp_path}/o$i.png; echo next; done"
    res = subprocess.run(["bash", "-c", loop], capture_output=True, text=True, timeout=300, check=False,
                         start_new_session=True)
    assert "next" not in res.stdout and res.returncode == -signal.SIGINT, res.stderr


def _main_prog(code: str) -> str:
    return code + "\nimport sys\nfrom ncvsd_cli.cli import main\nsys.argv = ['ncvsd'] + sys.argv[1:]\nmain()\n"


def test_a_signal_ignored_by_the_caller_stays_ignored(tmp_path):
    """Under nohup (SIGHUP ignored) a hang-up does not stop the command."""
    code = "import signal\nsignal.signal(signal.SIGHUP, signal.SIG_IGN)\n" + SEND_DURING_WRITE.format(sig="SIGHUP")
    res = _script(code, "degrade", "--task", "denoise", _png(tmp_path / "i.png"), "-o", tmp_path / "o.png")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o.png").is_file()


# --------------------------------------------------------------------------------------- exit codes
DEV = ["--device", "cpu"]
EXIT_CODES = {  # name: (arguments, exit code, stderr text); {src}, {ckpt}, {nan}, {out} are filled in
    "restore: operator parameter of a wrong type": (
        ["restore", "--task", "inpaint-box", "-p", "box_size=abc", "{src}", "-c", "{ckpt}", *DEV], 2, "--param"),
    "restore: kernel_size 100001": (
        ["restore", "--task", "deblur-gauss", "-p", "kernel_size=100001", "{src}", "-c", "{ckpt}", *DEV], 2,
        "<= 2049"),
    "degrade: unknown operator parameter": (["degrade", "--task", "deblur-gauss", "-p", "foo=1", "{src}"], 2, "foo"),
    "degrade: seed 2^64": (["degrade", "--task", "denoise", "--seed", str(2**64), "{src}"], 2, "--seed"),
    "degrade: NaN sigma_y": (["degrade", "--task", "denoise", "--sigma-y", "nan", "{src}"], 2, "--sigma-y"),
    "sample: seed 2^64 before the model loads": (
        ["sample", "--seeds", str(2**64), "-c", "/nonexistent.safetensors", *DEV], 2, "--seeds"),
    "sample: a huge seed range": (["sample", "--seeds", "0-99999999999", "-c", "{ckpt}", *DEV], 2, "more than"),
    "restore: NaN weights": (["restore", "--task", "denoise", "{src}", "-c", "{nan}", *DEV], 3, "NaN"),
    "sample: NaN weights": (["sample", "--seeds", "0", "-c", "{nan}", *DEV], 3, "NaN"),
}


@pytest.mark.parametrize("case", list(EXIT_CODES))
def test_exit_codes(tmp_path, ckpt, case):
    args, code, text = EXIT_CODES[case]
    fill = {"src": _png(tmp_path / "i.png"), "ckpt": ckpt, "nan": _tiny(tmp_path, nan=True)}
    res = run(*[a.format(**fill) for a in args], "-o", tmp_path / "o.png")
    assert res.exit_code == code and text in res.stderr, res.output
    _no_traceback(res)


def test_bench_out_that_cannot_be_written_is_one_line(tmp_path):
    res = run("bench", "--dataset", "builtin", "--methods", "classical", "--tasks", "denoise", "--out",
              "/proc/ncvsd-bench", "--device", "cpu")
    assert res.exit_code == 2 and "--out /proc/ncvsd-bench: cannot write there" in res.stderr, res.output
    (tmp_path / "afile").write_text("x")
    res = run("bench", "--dataset", "builtin", "--methods", "classical", "--tasks", "denoise", "--out",
              tmp_path / "afile", "--device", "cpu")
    assert res.exit_code == 2 and "afile exists and is not a folder" in res.stderr, res.output


# ------------------------------------------------------------------------------------------- bench
def test_bench_resume_writes_the_grid_image_a_kill_skipped(tmp_path):
    """A kill between a row and its grid image: --resume redoes that row, so the grid equals a clean run's."""
    from ncvsd_cli.bench import BenchConfig, report, run_bench

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        tmp_path / "imgs" / "im0.png")

    def cfg(out, **kw):
        return BenchConfig(dataset=str(tmp_path / "imgs"), out=str(out), tasks=["inpaint-box"], methods=["biharmonic"],
                           nfe=[1], resolution=32, grid_images=1, **kw)

    run_bench(cfg(tmp_path / "clean"), progress=False)
    sample = report.sample_path(tmp_path / "clean", "inpaint-box", "im0", "biharmonic-nfe0")
    clean = sample.read_bytes()
    sample.unlink()  # the row is in the CSV, its image is not
    again = run_bench(cfg(tmp_path / "clean", resume=True), progress=False)
    assert again.computed == 1 and sample.read_bytes() == clean


# ------------------------------------------------------------------------------------ seeds and determinism
@pytest.mark.parametrize("restore_seed", [7, 8])
def test_restoration_noise_is_independent_of_the_measurement_noise(restore_seed):
    """degrade --seed 7, then restore with --seed 7 or 8: with an exact Gaussian prior the restoration's own
    noise, (x_hat - E[x0 | y]) / sqrt(Var), must be uncorrelated with the measurement noise (y - x) / sigma_y, and
    the error distributed alike whichever seed restores (3069 pixels: 4 standard errors = 0.072)."""
    from ncvsd_cli.measurement import degrade
    from ncvsd_cli.restore import RestoreOptions, Restorer
    from ncvsd_cli.sampling.gaussian import GaussianPrior

    sigma_y, s = 0.2, 0.5
    prior = GaussianPrior(0.0, s)
    x = prior.sample((1, 3, 33, 31), torch.Generator().manual_seed(0)).clamp(-1, 1)
    m = degrade(x, "denoise", sigma_y=sigma_y, seed=7)
    opts = RestoreOptions(task="denoise", method="denoiser", seed=restore_seed).validate()
    (res,) = list(Restorer(prior.denoiser, None, opts).run([m]))
    v = 1 / (1 / s**2 + 1 / sigma_y**2)
    own = (res.samples - v * m.y / sigma_y**2) / math.sqrt(v)
    noise = (m.y - x) / sigma_y
    corr = float(torch.corrcoef(torch.stack([own.flatten(), noise.flatten()]))[0, 1])
    assert abs(corr) < 0.072
    mse = float(((res.samples - x) ** 2).mean())
    # given x: posterior variance + the mean's noise term + its shrinkage bias, (1 - v / sigma_y^2)^2 x^2
    expected = v + (v / sigma_y) ** 2 + (1 - v / sigma_y**2) ** 2 * float((x**2).mean())
    assert mse == pytest.approx(expected, rel=0.1)


def test_two_images_restored_together_do_not_share_their_noise():
    """With an exact Gaussian prior and two identical-size inputs, the restorations' own noises are uncorrelated."""
    from ncvsd_cli.measurement import measurement_from_image
    from ncvsd_cli.restore import RestoreOptions, Restorer
    from ncvsd_cli.sampling.gaussian import GaussianPrior

    prior = GaussianPrior(0.0, 0.5)
    ys = [torch.rand((1, 3, 33, 31), generator=torch.Generator().manual_seed(i)) - 0.5 for i in range(2)]
    ms = [measurement_from_image(y, "denoise", sigma_y=0.2) for y in ys]
    opts = RestoreOptions(task="denoise", method="denoiser", batch_size=2).validate()
    res = {r.index: r.samples for r in Restorer(prior.denoiser, None, opts).run(ms)}
    v = 1 / (1 / 0.25 + 1 / 0.04)
    own = [(res[i] - v * ms[i].y / 0.04).flatten() for i in range(2)]
    assert abs(float(torch.corrcoef(torch.stack(own))[0, 1])) < 0.072


def test_stream_seeds_are_distinct_and_stable():
    from operators.noise import stream_seed

    assert stream_seed("measurement", 0) != stream_seed("restore", 0, 0) != stream_seed("restore", 0, 1)
    assert stream_seed("restore", 3, 1) == stream_seed("restore", 3, 1) < 2**63


#: tensor_key(torch.arange(12.0).reshape(1, 3, 2, 2)) since the keys were introduced: every input's noise follows it.
KEY_OF_ARANGE_12 = 13423468741438650450


@pytest.mark.parametrize("t", [torch.arange(12.0).reshape(1, 3, 2, 2), torch.rand(1, 3, 701, 700)[..., ::2],
                               torch.rand(3, 5).half(), torch.zeros(0, 3)])
def test_a_tensors_key_is_the_blake2b_of_its_float64_values_and_shape(t):
    """The key that seeds an input's noise (`tensor_key`) is hashed a piece at a time (a 48 MP image is not copied
    whole as float64): the same 64 bits as one hash of the shape and every value as float64, so restorations stay
    reproducible across versions (pinned for one tensor)."""
    import hashlib

    from operators.noise import tensor_key

    whole = str(tuple(t.shape)).encode() + t.double().contiguous().numpy().tobytes()  # over 2^20 values: 2 pieces
    assert tensor_key(t) == int.from_bytes(hashlib.blake2b(whole, digest_size=8).digest(), "little")
    assert tensor_key(torch.arange(12.0).reshape(1, 3, 2, 2)) == KEY_OF_ARANGE_12


def test_degrade_gives_each_input_its_own_noise(tmp_path):
    """One `ncvsd degrade` call over three inputs, two of them the same picture under other names: different
    pictures get uncorrelated noise, the same picture the same noise (order and names do not matter)."""
    rng = np.random.default_rng(0)
    pics = {n: rng.integers(0, 256, (33, 35, 3), dtype=np.uint8) for n in ("a", "b")}
    pics["c"] = pics["a"]
    for name, arr in pics.items():
        Image.fromarray(arr).save(tmp_path / f"{name}.png")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["degrade", "--task", "denoise", "--sigma-y", "0.1", "--seed", "5",
                                   *(str(tmp_path / f"{n}.png") for n in "abc"), "-o", f"{out}/", "--quiet"])
    assert res.exit_code == 0, res.output
    noise = {n: (meas.load_measurement(out / f"{n}.png").y
                 - images.load_image(tmp_path / f"{n}.png")).flatten() for n in "abc"}
    assert torch.equal(noise["a"], noise["c"])
    assert abs(float(torch.corrcoef(torch.stack([noise["a"], noise["b"]]))[0, 1])) < 0.06  # 3,465 values
    assert float(noise["a"].std()) == pytest.approx(0.1, rel=0.05)


def test_batch_size_reproducibility_as_promised(tmp_path):
    """The promise of `restore --help`, with the shipped model: --batch-size 1 gives bytes that do not depend on
    the other inputs; another batch size differs by float rounding only (a few pixels by a level or two)."""
    help_text = " ".join(run("restore", "--help").output.split())
    assert "whatever --batch-size" not in help_text and "does not depend on the other inputs" in help_text
    srcs = [_png(tmp_path / f"i{k}.png", 10, 12, seed=k) for k in range(3)]
    common = ["--task", "deblur-gauss", "--nfe", "2", "--seed", "3", "--device", "cpu", "--precision", "fp32", "-p",
              "sigma=1"]
    for name, args in (("b1", [*srcs, "-b", "1"]), ("b3", [*srcs, "-b", "3"]), ("alone", [srcs[2], "-b", "1"])):
        res = run("restore", *args, *common, "-o", f"{tmp_path / name}{os.sep}")
        assert res.exit_code == 0, res.output
    assert (tmp_path / "alone" / "i2.png").read_bytes() == (tmp_path / "b1" / "i2.png").read_bytes()
    for k in range(3):
        a, b = (np.asarray(Image.open(tmp_path / d / f"i{k}.png"), dtype=int) for d in ("b1", "b3"))
        assert np.abs(a - b).max() <= 2 and (a != b).mean() < 0.01


def test_interrupted_merge_leaves_no_temporary(tmp_path, monkeypatch):
    from ncvsd_cli.bench import results

    part = tmp_path / "part.csv"
    cols = results.columns("alex")
    with results.RowWriter(part, cols):
        pass

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(results.csv.DictWriter, "writeheader", interrupted)
    with pytest.raises(KeyboardInterrupt):
        results.merge([part], tmp_path / "per_image.csv", cols)
    assert _files(tmp_path) == {"part.csv"}


def test_signal_exit_codes_are_documented():
    assert "143" in run("restore", "--help").output and "143" in run("degrade", "--help").output


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_handlers_are_put_back_after_a_command(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    assert run("degrade", "--task", "denoise", _png(tmp_path / "i.png"), "-o", tmp_path / "o.png").exit_code == 0
    assert signal.getsignal(signal.SIGTERM) == before



@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_bench_stopped_by_a_signal_exits_128_plus_signum(tmp_path, monkeypatch, signum, code):
    from typer.testing import CliRunner

    import ncvsd_cli.bench as bench
    from ncvsd_cli.cli import app, common

    def stopped(*args, **kwargs):
        raise common.Terminated(signum)

    monkeypatch.setattr(bench, "run_bench", stopped)
    res = CliRunner().invoke(app, ["bench", "--methods", "classical", "--out", str(tmp_path / "b"), "--quiet"])
    assert res.exit_code == code and "interrupted before any row was finished" in res.output
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "per_image.csv").write_text("dataset,image\nx,y\n")  # a finished row: --resume continues
    res = CliRunner().invoke(app, ["bench", "--methods", "classical", "--out", str(tmp_path / "b"), "--quiet"])
    assert res.exit_code == code and "--resume" in res.output
