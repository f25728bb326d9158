"""What a user sees: progress (terminal bars through a pseudo-terminal, status lines elsewhere), the uncertainty heat
map, the bench report (HTML and PNG), JSON Lines, packaging (version, licence, completion, no platform-only imports)
and the help texts' examples. Tiny images, a tiny random checkpoint, --nfe 2."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ncvsd_cli import progress as prog
from ncvsd_cli.checkpoints import save_checkpoint
from ncvsd_cli.cli import app
from ncvsd_cli.networks import build_network, network_config

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = network_config("generator", "tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny-generator.safetensors"
    save_checkpoint(build_network(cfg), path, cfg)
    return path


def _png(path: Path, h: int = 7, w: int = 9, seed: int = 0) -> Path:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


# ------------------------------------------------------------------------------------------------------ progress
class _Call:
    def __init__(self, sigmas=None, kwargs=None, nfe=0):
        self.sigmas, self.kwargs, self.nfe = sigmas, kwargs or {}, nfe


@pytest.mark.parametrize("method, nfe", [("pnp-gd", 5), ("pnp-gd-warm", 3), ("dps", 4), ("daps", 50), ("daps", 11)])
def test_step_callback_counts_every_network_evaluation(method, nfe, odd_image):
    """Each sampler's callbacks add up to exactly the NFE its budget rule promises (Gaussian prior: exact and fast)."""
    import operators
    from ncvsd_cli.sampling.gaussian import GaussianPrior
    from ncvsd_cli.sampling.methods import get_method
    from operators.noise import generators_for_seeds

    prior = GaussianPrior()
    op = operators.create("deblur-gauss", odd_image.shape[1:])
    y = op.measure(odd_image, sigma_y=0.05, generator=torch.Generator().manual_seed(1))
    m = get_method(method)
    call = m.prepare("deblur-gauss", nfe)
    seen: list[tuple[float, float]] = []
    cb = prog.step_callback(call, lambda done, total: seen.append((done, total)))
    model = prior.teacher if m.needs == "teacher" else prior.denoiser
    res = m(model, op, y, call.sigmas, generator=generators_for_seeds([0]), callback=cb, **call.kwargs)
    assert res.nfe == call.nfe == nfe
    assert seen[-1] == (nfe, nfe)
    assert all(a[0] < b[0] for a, b in itertools.pairwise(seen))  # strictly increasing
    assert prog.callbacks_per_run(call) == len(seen)


def test_step_callback_is_none_without_steps():
    assert prog.step_callback(_Call(nfe=0), lambda d, t: None) is None  # classical: nothing to count
    assert prog.step_callback(_Call(kwargs={"nfe": 2}, nfe=2), lambda d, t: None) is None  # unknown iterations
    assert prog.step_callback(_Call(sigmas=[3.0, 2.0, 1.0], nfe=2), None) is None


def test_status_lines_when_not_a_terminal():
    stream = io.StringIO()  # not a terminal
    bar = prog.NestedProgress(2, "restore sr4", quiet=False, interval=0, stream=stream)
    assert bar.mode == "lines"
    for done in (1, 2, 3, 4):
        bar.step(done, 4)
    bar.update(1)
    bar.step(2, 4)
    bar.update(1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("restore sr4: 0/2 img (0%)") and "NFE=1/4" in lines[0] and "batch ETA" in lines[0]
    assert any("1/2 img (50%)" in line for line in lines)
    assert lines[-1].startswith("restore sr4: 2/2 img (100%)")
    assert "\r" not in stream.getvalue()  # no bar drawing in a log file


@pytest.mark.parametrize("batch", [1, 2])
def test_the_last_batch_shows_one_eta(batch, monkeypatch):
    """While the batch in flight finishes the run, its ETA (from its own steps) is the only one on the line; an
    earlier batch's line shows the run's ETA and the batch's apart."""
    now = [100.0]
    monkeypatch.setattr(prog.time, "monotonic", lambda: now[0])
    stream = io.StringIO()
    bar = prog.NestedProgress(2, "restore sr4", quiet=False, interval=0, stream=stream)
    bar.items._clock = lambda: now[0]
    bar.items._start = 90.0  # 10 s of set-up before the first step: no part of the batch's ETA
    bar.begin(batch)
    now[0] += 5.0
    bar.step(1, 4)  # 5 s a step: 15 s left in this batch
    line = stream.getvalue().splitlines()[-1]
    assert ("batch ETA=00:15" in line) is (batch == 1), line
    if batch == 2:
        assert "ETA 00:15" in line and line.count("ETA") == 1, line
    bar.update(batch)
    bar.close()


def test_a_batch_eta_leaves_out_the_time_before_its_first_report(monkeypatch):
    """A tiled restoration's first ETA counted the warm start's classical estimate and the first call's set-up into
    every remaining tile (10:49 predicted, 5:14 taken): later ETAs come from the rate after the first report."""
    now = [100.0]
    monkeypatch.setattr(prog.time, "monotonic", lambda: now[0])
    stream = io.StringIO()
    bar = prog.NestedProgress(1, "restore sr4", quiet=False, interval=0, stream=stream)
    bar.items._clock = lambda: now[0]
    bar.begin(1)
    now[0] += 20.0  # set-up, then the first tile
    bar.step(0.5, 10)
    now[0] += 2.0  # a tile: 4 s an evaluation
    bar.step(1.0, 10)
    line = stream.getvalue().splitlines()[-1]
    assert "ETA 00:36" in line, line  # 9 evaluations x 4 s (it said 03:18: 22 s per evaluation)
    bar.update(1)
    bar.close()


@pytest.mark.parametrize("batch", [1, 2])
def test_an_eta_counts_down_on_the_lines_printed_between_steps(batch, monkeypatch):
    """A large photo's network call takes minutes: the status lines the heartbeat prints meanwhile show the ETA
    (the run's or the batch's) less the time since the step that set it, down to 0, not the same ETA again."""
    now = [100.0]
    monkeypatch.setattr(prog.time, "monotonic", lambda: now[0])
    stream = io.StringIO()
    bar = prog.NestedProgress(2, "restore sr4", quiet=False, interval=0, stream=stream)
    bar.items._clock = lambda: now[0]
    bar.begin(batch)
    now[0] += 60.0
    bar.step(1, 10)  # 60 s a step: 9 min left in this batch
    shown = (lambda t: f"batch ETA={t}") if batch == 1 else (lambda t: f"ETA {t}")
    assert shown("09:00") in stream.getvalue()
    now[0] += 150.0
    assert shown("06:30") in bar.items.status_line()
    now[0] += 3600.0
    assert shown("00:00") in bar.items.status_line()
    bar.update(batch)
    bar.close()


def test_a_training_bar_says_while_a_snapshot_is_written():
    """At 100% the final snapshot takes seconds: the bar shows saving=snapshot meanwhile, and not after."""
    from ncvsd_cli.training.loop import TrainLoop

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    reporter = prog.StatusReporter(4, "ncvsd distill", quiet=False, interval=0, stream=stream)
    reporter.update(4)
    reporter.set_postfix({"loss": "0.5"})
    seen = []

    class Loop:
        def checkpoint(self):
            seen.append(stream.getvalue().rsplit("\r", 1)[-1])

    TrainLoop._checkpoint_shown(Loop(), reporter)
    assert "saving=snapshot" in seen[0] and "loss=0.5" in seen[0] and reporter.postfix == {"loss": "0.5"}
    reporter.close()


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize(("rows", "cols", "mode"), [(24, 80, "bar"), (0, 0, "lines"), (0, 100, "lines")])
def test_a_terminal_of_no_size_gets_status_lines(rows, cols, mode):
    """tqdm draws nothing on a pseudo-terminal of width or height 0 (`script` without a terminal, some containers):
    progress goes there as status lines, and as bars on a terminal of some size."""
    import fcntl
    import struct
    import termios

    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    with os.fdopen(follower, "w") as stream:
        reporter = prog.StatusReporter(2, "restore", interval=0, stream=stream)
        assert reporter.mode == mode and prog.sized_terminal(stream) == (mode == "bar")
        reporter.close()
    os.close(leader)


def test_quiet_prints_nothing():
    stream = io.StringIO()
    bar = prog.NestedProgress(1, "x", quiet=True, interval=0, stream=stream)
    bar.step(1, 2)
    bar.update(1)
    bar.close()
    assert stream.getvalue() == ""


def test_progress_interval_from_environment(monkeypatch):
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "2.5")
    assert prog.default_interval() == 2.5
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "soon")
    assert prog.default_interval() == prog.DEFAULT_INTERVAL


def test_restore_bars_on_a_terminal(tmp_path, ckpt):
    """`ncvsd restore` with stderr on a pseudo-terminal: an images bar that stays at 100 % and a steps bar in NFE."""
    pytest.importorskip("termios", reason="pseudo-terminals are Unix-only")
    import fcntl
    import pty
    import select
    import struct
    import termios

    a, b = _png(tmp_path / "a.png", seed=1), _png(tmp_path / "b.png", seed=2)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    env = {**os.environ, "COLUMNS": "120", "NCVSD_DEBUG": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ncvsd_cli", "restore", "--task", "sr4", str(a), str(b), "-o",
                             str(tmp_path / "out"), "-c", str(ckpt), "--nfe", "3", "--device", "cpu"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, screen
    assert "steps" in screen and "NFE" in screen and "/3" in screen  # the steps bar, in network evaluations
    last = screen.replace("\r", "\n").strip().splitlines()
    kept = [line for line in last if line.startswith("restore sr4")]
    assert kept and "100%" in kept[-1] and "2/2" in kept[-1]  # the images' bar is kept at the end


def test_restore_status_lines_and_json_lines(tmp_path, ckpt, monkeypatch):
    """Not a terminal: status lines with the NFE of the batch in flight; --json: JSON Lines, one object per input
    then the summary with every result, for several inputs as for one (its shape depended on the count)."""
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "0")
    a, b = _png(tmp_path / "a.png", seed=1), _png(tmp_path / "b.png", seed=2)
    res = runner.invoke(app, ["restore", "--task", "sr4", str(a), str(b), str(tmp_path / "missing.png"), "-o",
                              str(tmp_path / "out"), "-c", str(ckpt), "--nfe", "2", "--device", "cpu", "--json"])
    assert res.exit_code == 1  # one input is missing
    assert "restore sr4: 0/2 img (25%)" in res.stderr and "NFE=1/2" in res.stderr  # the batch in flight moves it
    assert "2/2 img (75%)" not in res.stderr and "1/2 img (75%)" in res.stderr  # whole images finished, not rounded
    records = [json.loads(line) for line in res.stdout.splitlines()]  # every line is one JSON object
    assert [r.get("status") for r in records[:-1]] == ["failed", "ok", "ok"]
    assert records[0]["input"].endswith("missing.png")
    assert records[-1]["command"] == "restore" and records[-1]["ok"] == 2 and records[-1]["results"] == records[:-1]
    quiet = runner.invoke(app, ["restore", "--task", "sr4", str(a), "-o", str(tmp_path / "one.png"), "-c",
                                str(ckpt), "--nfe", "2", "--device", "cpu", "--json", "--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    lines = [json.loads(line) for line in quiet.stdout.splitlines()]  # one input: the same shape
    assert [r.get("status") for r in lines] == ["ok", None] and lines[-1]["results"] == lines[:1]



def test_restore_progress_reaches_its_total_when_an_image_fails(tmp_path, ckpt, first_image_fails, monkeypatch):
    """With --samples > --batch-size, an image failing in its first batch gives its later samples up: the status
    line still ends at 6/6 (it ended at 4/6, short of its total)."""
    monkeypatch.setenv("NCVSD_PROGRESS_INTERVAL", "0")
    a, b = _png(tmp_path / "a.png", seed=1), _png(tmp_path / "b.png", seed=2)
    res = runner.invoke(app, ["restore", "--task", "sr4", str(a), str(b), "-o", str(tmp_path / "out"), "-c",
                              str(ckpt), "--nfe", "2", "--device", "cpu", "--samples", "3", "--batch-size", "1",
                              "--method", "pnp-gd"])
    assert res.exit_code == 1 and "out of memory" in res.stderr, res.output
    counts = re.findall(r"restore sr4: (\d+)/6 sample", res.stderr)
    assert counts and counts[-1] == "6", res.stderr


# ------------------------------------------------------------------------------------------------- uncertainty
def test_pixel_std_and_scale_are_analytic():
    from ncvsd_cli.uncertainty import map_scale, pixel_std

    x = -torch.ones(2, 3, 5, 7)
    x[1, :, 1:3, 2:5] = 1.0  # two samples differ by 1 on the [0, 1] scale there: unbiased std 1 / sqrt(2)
    std = pixel_std(x)
    assert std.shape == (5, 7)
    assert torch.allclose(std[1:3, 2:5], torch.full((2, 3), 2**-0.5)) and float(std[0].abs().max()) == 0.0
    assert map_scale(std) == 1.0  # 0.707 rounds up to 1
    assert map_scale(torch.full((4, 4), 0.031)) == 0.05 and map_scale(torch.zeros(3, 3)) == 0.001
    with pytest.raises(ValueError, match=">= 2 samples"):
        pixel_std(x[:1])


def test_heat_map_file_reads_back(tmp_path):
    """The heat map shows the uncertain region bright, the certain one dark, and has a colour bar beside it."""
    import matplotlib

    from ncvsd_cli.uncertainty import COLOUR_MAP, save_std_map

    x = -torch.ones(3, 3, 40, 40)
    x[1:, :, 10:30, 10:30] = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    info = save_std_map(x, tmp_path / "m.png")
    assert info["std_map_max"] >= info["std_max"] > info["std_mean"] > 0
    pic = np.asarray(Image.open(tmp_path / "m.png").convert("RGB")).astype(int)
    assert pic.shape[1] > pic.shape[0]  # the colour bar is beside the map
    dark = (np.array(matplotlib.colormaps[COLOUR_MAP](0.0)[:3]) * 255).round()
    brightness = pic.sum(-1)
    h, w = brightness.shape
    assert (np.abs(pic - dark).sum(-1) <= 6).sum() > 0.05 * h * w  # the certain region: the map's zero colour
    assert brightness.max() > 500  # the uncertain region / the bar's top: bright


@pytest.mark.parametrize("shape", [(40, 40), (24, 48), (24, 96), (24, 256), (256, 24), (3, 5)])
def test_heat_map_colour_bar_labels_its_top_and_every_text_fits(shape):
    """A wide image's short colour bar had no label at its top (0.05): matplotlib's own ticks left it out; beside a
    256x24 strip the bar was 25 px and its label read "the [0, 1] sca" (the bar now lies under a wide map); a narrow
    map's centred title ran off the figure."""
    import matplotlib.text
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ncvsd_cli.uncertainty import std_map_figure

    x = -torch.ones(2, 3, *shape)
    x[1] = -0.95  # a std of 0.0177 on the [0, 1] scale: the scale's top is 0.02
    fig, scale = std_map_figure(x)
    bar = fig.axes[1]
    ticks = bar.get_xticklabels() if shape[1] > 2 * shape[0] else bar.get_yticklabels()
    assert [t.get_text() for t in ticks] == ["0", f"{scale['std_map_max'] / 2:g}", f"{scale['std_map_max']:g}"]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # (labels are placed when drawn)
    renderer = canvas.get_renderer()
    title = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().startswith("sample std")]
    texts = [*title, *ticks, (bar.xaxis if shape[1] > 2 * shape[0] else bar.yaxis).label]
    assert {"sample std, 2 samples", "std on the [0, 1] scale"} <= {t.get_text() for t in texts}
    for text in texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= fig.bbox.x1 + 1 and box.y1 <= fig.bbox.y1 + 1, text
    assert bar._colorbar.extend == "neither"  # every value on the scale; one above it: the bar ends in an arrow
    spread = torch.cat([x, -torch.ones(1, 3, *shape)])
    spread[2, :, 0, 0] = 1.0  # (over the 99th percentile where it is under 1 % of the pixels)
    assert std_map_figure(spread)[0].axes[1]._colorbar.extend == ("max" if shape[0] * shape[1] > 100 else "neither")


def test_restore_std_writes_heat_map_and_scale(tmp_path, ckpt):
    from ncvsd_cli.uncertainty import save_std_map

    a = _png(tmp_path / "a.png", seed=3)
    res = runner.invoke(app, ["restore", "--task", "sr4", str(a), "-c", str(ckpt), "--nfe", "2", "--samples", "2", "--std",
                              "-o", str(tmp_path / "out") + "/", "--json", "--quiet", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout.splitlines()[-1])["results"][0]
    assert [Path(p).name for p in rec["outputs"]] == ["a_s0.png", "a_s1.png", "a_std.png", "a_std_map.png"]
    assert rec["std_map_max"] > 0.001 and rec["std_max"] > 0
    assert save_std_map(torch.zeros(2, 3, 8, 8), tmp_path / "z.png")["std_map_max"] == 0.001  # identical samples
    for method in ("bicubic", "classical"):  # deterministic: several samples would be one image
        res = runner.invoke(app, ["restore", "--task", "sr4", str(a), "--method", method, "--samples", "2", "-q"])
        assert res.exit_code == 2 and "deterministic" in res.output, res.output
    with Image.open(tmp_path / "out" / "a_std_map.png") as pic:
        assert pic.format == "PNG" and pic.width > 28


# ---------------------------------------------------------------------------------------------- bench report
def _summary(tasks=("sr4",), methods=("pnp-gd", "pnp-gd-warm", "dps", "daps", "bicubic", "wiener", "tikhonov",
                                        "biharmonic", "pseudo-inverse")):
    from ncvsd_cli.bench.report import summarize

    rows = []
    for task in tasks:
        for i, m in enumerate(methods):
            for nfe in ((1, 4) if m.startswith("pnp") else (1000,) if m in ("dps", "daps") else (0,)):
                for image in range(2):
                    rows.append({"dataset": "d", "image": f"im{image}", "image_index": image, "task": task,
                                 "method": m, "nfe": nfe, "seed": 0, "run": 0, "network_evals": nfe,
                                 "operator_evals": 2 * nfe, "resolution": 8, "sigma_y": 0.05,
                                 "psnr": 20.0 + i + image, "ssim": 0.5 + 0.01 * i, "lpips_alex": 0.5 - 0.01 * i,
                                 "seconds": 0.1, "peak_mem_mb": 1.0, "mem_kind": "cpu_rss_peak_delta",
                                 "device": "cpu"})
    return summarize(rows, "alex")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.rows, self.bold, self._in_b = [], 0, [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self.rows += tag == "tr"
        self._in_b = tag == "b" or self._in_b

    def handle_endtag(self, tag):
        self._in_b = self._in_b and tag != "b"

    def handle_data(self, data):
        if self._in_b:
            self.bold.append(data)


def test_html_and_png_report_read_back(tmp_path):
    from ncvsd_cli.bench import report

    summary = _summary(tasks=("sr4", "deblur-gauss"))
    for task in ("sr4", "deblur-gauss"):
        for name in ("ground_truth", "measurement", "pnp-gd-nfe4"):
            path = report.sample_path(tmp_path, task, "im0", name)
            path.parent.mkdir(parents=True, exist_ok=True)
            _png(path, 8, 8)
    report.plot_nfe(summary, "alex", tmp_path / report.PLOT_PNG)
    report.plot_grids(tmp_path, summary)
    page = _Page()
    page.feed(report.write_html(tmp_path, summary, "alex", {"dataset": "d", "seed": 0}).read_text())
    assert page.images == ["nfe_plot.png", "grid_deblur-gauss.png", "grid_sr4.png"]
    assert all((tmp_path / src).is_file() for src in page.images)  # linked relative to the page
    assert page.rows == len(summary) + 2  # a header row per task
    best = max(s["psnr_mean"] for s in summary if s["task"] == "sr4")
    assert f"{best:.2f} ± 0.71" in page.bold  # the best PSNR (pseudo-inverse, the last method) is bold
    png = report.write_report_png(tmp_path, summary, "alex", width=900)
    with Image.open(png) as pic:
        assert pic.width == 900 and pic.height > 900


def test_html_report_names_failures_and_reads_without_sight_or_colour(tmp_path):
    """The page says what failed (it showed "images: 3" beside rows of 2 and no word of the third), explains a
    best-of-K row, marks its table headers for screen readers, fits a phone's width; the plot tells every method by
    marker or dash pattern, not colour alone, and its y range holds a baseline at the top (axhline is left out of
    autoscaling: the pseudo-inverse's line sat on the frame)."""
    from ncvsd_cli.bench import report

    summary = _summary(tasks=("sr4", "deblur-gauss"))
    summary.append({**summary[0], "aggregation": "best-of-2", "runs": 2})
    html = report.write_html(tmp_path, summary, "alex", {"dataset": "d", "images": 3, "failed": "1 (first: x.png)"})
    text = html.read_text()
    assert "<li>failed: 1 (first: x.png)</li>" in text and "best-of-K: per image the best of K runs" in text
    assert text.count("<caption>") == 2 and 'name="viewport"' in text and "PSNR (dB)" in text
    assert text.count('<th scope="col">') == 2 * 9 and text.count('<th scope="row">') == len(summary)
    fig = report.nfe_figure(summary, "alex")
    styles = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_label().startswith("_"):
                continue
            dashes = getattr(line, "_unscaled_dash_pattern", None) or line.get_linestyle()  # ("--" for any pattern)
            styles.setdefault(line.get_label(), (line.get_marker(), str(dashes)))
            low, high = ax.get_ylim()
            assert all(low < y < high for y in line.get_ydata()), (line.get_label(), ax.get_ylim())
    assert len(styles) == 9 and len(set(styles.values())) == 9, styles


@pytest.mark.parametrize("width", [900, 1400])
def test_report_png_table_text_stays_in_its_cells(width):
    """A long plug-in method name overflowed its cell (every column had an even share of the width)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ncvsd_cli.bench.report import table_figure

    row = ["4", "single", "3", "23.45 ± 0.71", "0.712 ± 0.020", "0.285 ± 0.030", "1.234", "123.4"]
    lines = [["method", "NFE", "aggregation", "images", "PSNR ↑", "SSIM ↑", "LPIPS-alex ↓", "s / image", "peak MiB"],
             ["my-plugin-with-a-rather-long-method-name-refined", *row], ["pnp-gd", *row]]
    fig = table_figure(lines, width)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for cell in fig.axes[0].tables[0].get_celld().values():
        text, box = cell.get_text().get_window_extent(renderer), cell.get_window_extent(renderer)
        assert box.x0 <= text.x0 and text.x1 <= box.x1, cell.get_text().get_text()


def test_nfe_plot_legend_is_not_cut_off(tmp_path):
    """One task, nine methods: the legend (right of the plots) must lie inside the saved picture."""
    from ncvsd_cli.bench import report

    report.plot_nfe(_summary(), "alex", tmp_path / "p.png")
    pic = np.asarray(Image.open(tmp_path / "p.png").convert("L")).astype(int)
    ink = np.nonzero((pic < 200).any(axis=0))[0]
    assert pic.shape[1] - ink.max() > 3  # a white margin right of the last legend text
    assert pic.shape[1] > 1.4 * pic.shape[0] * 4.2 / 6.4  # wider than the plots alone: the legend has its room


# ------------------------------------------------------------------------------------------------- packaging
def test_version_license_and_metadata():
    import ncvsd_cli

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ncvsd_cli.__version__"}
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"ncvsd {ncvsd_cli.__version__}"
    assert "MIT License" in (ROOT / "LICENSE").read_text() and meta["project"]["license"] == "MIT AND BSD-3-Clause"
    assert meta["project"]["license-files"] == ["LICENSE", "checkpoints/LICENSE-torchvision.txt",  # SPDX (PEP 639)
                                                "checkpoints/photos-ATTRIBUTION.txt"]  # (CC BY photos credits)
    assert "BSD 3-Clause" in (ROOT / "checkpoints" / "LICENSE-torchvision.txt").read_text()  # the LPIPS backbone's
    classifiers = meta["project"]["classifiers"]
    for version in ("3.10", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")] and meta["project"]["urls"]  # (deprecated
    # beside the SPDX expression: setuptools warns, and will refuse)
    version, changelog = ncvsd_cli.__version__, (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{version}]" in changelog or (version.endswith(".dev0") and "## [Unreleased]" in changelog)


def _complete(words: str) -> list[str]:
    """The candidates bash completion gets for the command line `ncvsd WORDS` (the last word being completed)."""
    env = {**os.environ, "_NCVSD_COMPLETE": "complete_bash", "COMP_WORDS": f"ncvsd {words}",
           "COMP_CWORD": str(len(words.split()))}
    code = "import sys; sys.argv[0] = 'ncvsd'; from ncvsd_cli.cli import main; main()"  # the program's name
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_shell_completion():
    assert _complete("res") == ["restore"]
    assert "--install-completion" in runner.invoke(app, ["--help"]).stdout


@pytest.mark.parametrize(("words", "expected"), [
    ("restore --task s", ["sr2", "sr4", "sr8"]),
    ("degrade -t inpaint-b", ["inpaint-box"]),
    ("restore --method pnp-gd-w", ["pnp-gd-warm", "pnp-gd-warm-mean8"]),
    ("bench --tasks sr4,deblur-g", ["sr4,deblur-gauss"]),
    ("bench --methods dps,da", ["dps,daps"]),
])
def test_shell_completion_of_task_and_method_names(words, expected):
    assert _complete(words) == expected


def test_bench_imports_without_platform_modules():
    """No Unix-only module at import time (Windows has no `resource`); RowCost still times a row."""
    code = (
        "import sys; sys.modules['resource'] = None\n"
        "import ncvsd_cli.bench, ncvsd_cli.bench.runner, ncvsd_cli.cli.bench\n"
        "from ncvsd_cli.bench import memory\n"
        "from pathlib import Path\n"
        "memory._STATUS = memory._CLEAR_REFS = Path('/nonexistent/status')\n"
        "with memory.RowCost('cpu') as c: sum(range(1000))\n"
        "print(c.mem_kind, c.peak_mem_mb, c.seconds >= 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cpu_unmeasured", "0.0", "True"]


# ------------------------------------------------------------------------------------------------------ help
def _commands():
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from (([name, sub], c) for sub, c in cmd.commands.items())
        yield [name], cmd


_COMMANDS = {" ".join(path): cmd for path, cmd in _commands()}


@pytest.mark.parametrize("name", sorted(_COMMANDS))
def test_help_has_working_examples(name):
    """Every command's --help shows examples, and every option an example uses exists on the command it runs."""
    res = runner.invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = res.stdout
    assert "Examples:" in text or "Example:" in text
    examples = [line.strip(" │") for line in text.splitlines() if re.search(rf"\bncvsd(_cli)? {name.split()[0]}\b", line)]
    assert examples, text
    for line in examples:
        rest = re.split(r"\bncvsd(?:_cli)? ", line, maxsplit=1)[1].split("(")[0].split("|")[0]
        words = rest.split()
        used = " ".join(words[:2]) if " ".join(words[:2]) in _COMMANDS else words[0]
        params = _COMMANDS[used].params
        options = {o for p in params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        for flag in re.findall(r"(?<![\w~/.-])(--?[a-zA-Z][\w-]*)", rest):
            assert flag in options, f"{name}: example uses unknown option {flag}: {line}"


def test_cuda_error_names_the_fix(monkeypatch):
    from ncvsd_cli.cli.common import UsageError, parse_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match="use --device cpu"):
        parse_device("cuda")


def test_bench_writes_the_one_page_report(tmp_path):
    """A tiny classical-only bench: report.html and report.png sit beside the results and link only files there."""
    from ncvsd_cli.bench import BenchConfig, run_bench

    data = tmp_path / "photos"
    data.mkdir()
    _png(data / "x.png", 40, 40)
    cfg = BenchConfig(dataset=str(data), out=str(tmp_path / "b"), tasks=["sr4"], methods=["bicubic"], nfe=[1],
                      limit=1, resolution=32, device="cpu")
    outcome = run_bench(cfg, progress=False)
    names = {p.name for p in outcome.files}
    assert {"report.html", "report.png", "nfe_plot.png", "grid_sr4.png"} <= names, outcome.failed
    page = _Page()
    page.feed((tmp_path / "b" / "report.html").read_text())
    assert page.images == ["nfe_plot.png", "grid_sr4.png"] and page.rows == 2


def test_call_progress_adds_tiles_to_the_samplers_count():
    """CallProgress: tiles move the count in fractions of an evaluation, the sampler's callback in whole ones; the
    count passed on never falls back (a callback after its call's last tile) nor passes the total."""
    seen = []
    p = prog.CallProgress(lambda d, t: seen.append((d, t)), 3)
    p.tile(1, 4), p.tile(2, 4), p.tile(4, 4), p.step(1, 3)  # the callback after the call's last tile: no repeat
    p.tile(2, 4), p.step(2, 3), p.step(3, 3), p.tile(4, 4)  # a call beyond the total stays at it
    assert seen == [(0.25, 3.0), (0.5, 3.0), (1.0, 3.0), (1.5, 3.0), (2.0, 3.0), (3.0, 3.0)]


def test_evaluation_counts_and_percentages_read_plainly():
    """NFE counts as people write them (1000, not 1e+03; 0.12 within a tiled evaluation); percentages round down (a
    batch at 99.6 % is not done)."""
    assert [prog.nfe_text(n) for n in (0.12, 2.5, 3.0, 10, 999.6, 1000.0, 1234)] == \
        ["0.12", "2.5", "3", "10", "1000", "1000", "1234"]
    assert prog.percent_down(0.996, 1) == 99 and prog.percent_down(1, 1) == 100 and prog.percent_down(2, 1) == 100
    stream = io.StringIO()
    bar = prog.NestedProgress(1, "restore dps", quiet=False, interval=0, stream=stream)
    bar.begin(1)
    bar.step(996, 1000)
    bar.close()
    assert "0/1 img (99%)" in stream.getvalue() and "NFE=996/1000" in stream.getvalue(), stream.getvalue()


def test_each_status_line_shows_its_own_steps():
    """A status line's percentage and its NFE come from the same step (the line printed before the NFE was set
    showed 90% beside the previous step's NFE=8/10 and batch ETA)."""
    stream = io.StringIO()
    bar = prog.NestedProgress(1, "restore sr4", quiet=False, interval=0, stream=stream)
    bar.begin(1)
    for k in range(1, 10):
        bar.step(k, 10)
    bar.close()
    lines = [line for line in stream.getvalue().splitlines() if "NFE=" in line]
    assert len(lines) >= 9, stream.getvalue()
    for line in lines:
        pct, nfe = re.search(r"\((\d+)%\)", line).group(1), re.search(r"NFE=(\d+)/10", line).group(1)
        assert int(pct) == 10 * int(nfe), line

def test_slow_work_shows_time_per_item():
    """Under 0.1 items/s the status line gives the time per item (a large photo: '2:05:00 per img'), not 8e-05 img/s."""
    rep = prog.StatusReporter(2, "restore", interval=1e9, stream=io.StringIO())
    rep._start = rep._last_line = 0.0  # exact: a large monotonic start + 3600 s rounded to 59:59.99
    now = [0.0]
    rep._clock = lambda: now[0]
    now[0] += 3600.0
    rep.update(0.5)
    line = rep.status_line()
    rep.close()
    assert "2:00:00 per img" in line and "img/s" not in line and "ETA 3:00:00" in line, line
    rep = prog.StatusReporter(1, "restore", interval=1e9, stream=io.StringIO())
    rep._start = rep._last_line = 0.0
    rep._clock = lambda: 15.0  # 15 s in (reading, loading), the steps' ETA 12:25: the time per image agrees
    rep.update(0.016)
    rep.eta = 745.0
    line = rep.status_line()
    rep.close()
    assert "12:40 per img" in line and "ETA 12:25" in line, line  # (it said 16:03 from 15 s / 1.6 %)


def test_a_terminal_bar_counts_whole_items_while_its_fill_moves():
    """On a terminal, a batch in flight moves the bar by fractions but the count shows items finished: 0.75 of 2
    reads 0/2 at 37 % (tqdm's {n:.0f} said 1/2 at 38 %), 1.5 reads 1/2 at 75 %."""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    rep = prog.StatusReporter(2, "restore", interval=0, stream=stream)
    assert rep.mode == "bar"
    rep._bar.mininterval = 0
    rep.update(0.75)
    first = stream.getvalue()
    rep.update(0.75)
    rep.close()
    assert "0/2 img" in first.rsplit("\r", 1)[-1] and "37%" in first.rsplit("\r", 1)[-1], first
    assert "1/2 img" in stream.getvalue().rsplit("\r", 1)[-1], stream.getvalue()
    steps = prog.NestedProgress(1, "restore dps", interval=0, stream=Terminal())
    steps.step(1000, 1000)
    steps._steps.refresh()
    assert "1000/1000 NFE" in steps.stream.getvalue() and "e+03" not in steps.stream.getvalue()
    steps.close()


def test_help_paragraphs_are_unwrapped_and_examples_kept():
    """Rich keeps a docstring's line breaks: prose paragraphs are joined into one line (Rich wraps them to the
    terminal) while indented example lines stay as written, for every command of every group."""
    from ncvsd_cli.cli import app, unwrapped_help

    doc = """First line
    goes on here.

    Examples:

      ncvsd restore a.png
      ncvsd restore b.png
    """
    assert unwrapped_help(doc) == ("First line goes on here.\n\nExamples:\n\n  ncvsd restore a.png\n"
                                   "  ncvsd restore b.png")
    assert unwrapped_help(None) is None

    def commands(typer_app):
        yield from typer_app.registered_commands
        for group in typer_app.registered_groups:
            yield from commands(group.typer_instance)

    docs = [c.callback.__doc__ for c in commands(app)]
    assert len(docs) >= 10
    for doc in docs:
        for paragraph in doc.split("\n\n"):
            assert paragraph.startswith(" ") or "\n" not in paragraph, paragraph


def test_flag_errors_name_the_flag_and_bench_json_is_one_line(tmp_path):
    """Wrong values of --seeds, --ts, --nfe (beyond the generator's 31 steps) and --arch are named in the error;
    bench --json's success summary is one line, as its failure's is (`tail -n 1 | jq` read "}")."""
    for args, said in ((["sample", "--seeds", "a"], "--seeds: 'a' is not a list"),
                       (["sample", "--ts", "9-1"], "--ts: range '9-1' is empty"),
                       (["sample", "--nfe", "32"], "--nfe: the generator samples in 1 to 31 steps"),
                       (["train", "--arch", "nope", "--data", str(tmp_path), "--out", str(tmp_path / "r")],
                        "(--arch); available: builtin64, ")):
        res = runner.invoke(app, [*args, "-o" if args[0] == "sample" else "--quiet", *(
            [str(tmp_path / "s.png")] if args[0] == "sample" else [])])
        assert res.exit_code == 2 and said in res.output, res.output
    img = tmp_path / "img"
    img.mkdir()
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(img / "a.png")
    res = runner.invoke(app, ["bench", "--dataset", str(img), "--tasks", "sr4", "--methods", "bicubic", "--nfe", "1",
                              "--out", str(tmp_path / "b"), "--grid-images", "0", "--json", "-q"])
    assert res.exit_code == 0 and len(res.stdout.strip().splitlines()) == 1, res.output
    assert json.loads(res.stdout)["lpips_net"] == "alex"  # summary.json, on one line
