"""`ncvsd bench` end to end on three tiny images with tiny networks: outputs, columns, resume, shared measurements,
sharding, and the CLI."""

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ncvsd_cli.bench import BenchConfig, methods, results, run_bench
from ncvsd_cli.bench import runner as bench_runner
from ncvsd_cli.checkpoints import CheckpointError

TASKS = ["inpaint-box", "sr4"]
RES = 32  # LPIPS-alex needs >= 31 px; the tiny preset runs at any even size


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Three 16x16 PNGs and tiny generator / teacher checkpoints (32 px)."""
    from ncvsd_cli.checkpoints import save_checkpoint
    from ncvsd_cli.networks import build_network, network_config

    root = tmp_path_factory.mktemp("bench")
    (root / "imgs").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / "imgs" / f"im{i}.png")
    for kind in ("generator", "teacher"):
        torch.manual_seed(0)
        cfg = network_config(kind, "tiny", img_resolution=RES)
        save_checkpoint(build_network(cfg), root / f"{kind}.safetensors", cfg)
    return root


def _cfg(assets, out, **kw):
    base = {"dataset": str(assets / "imgs"), "out": str(out), "tasks": TASKS, "nfe": [1, 2],
            "methods": ["pnp-gd", "pnp-gd-warm", "dps", "classical"], "generator": str(assets / "generator.safetensors"),
            "teacher": str(assets / "teacher.safetensors"), "baseline_nfe": 2, "grid_images": 2}
    return BenchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def first_run(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    return out, run_bench(_cfg(assets, out), progress=False)


def _expected_jobs():
    import operators

    per_task = {}
    for task in TASKS:
        op = operators.create(task, (3, RES, RES))
        per_task[task] = methods.expand_jobs(["pnp-gd", "pnp-gd-warm", "dps", "classical"], [1, 2], 2, op)
    return per_task


def test_outputs_and_columns(first_run):
    out, outcome = first_run
    assert not outcome.failed
    names = {p.name for p in outcome.files}
    assert {"per_image.csv", "summary.md", "summary.json", "nfe_plot.png", *(f"grid_{t}.png" for t in TASKS)} <= names
    for png in ("nfe_plot.png", "grid_sr4.png"):
        with Image.open(out / png) as im:
            assert im.size[0] > 100 and im.size[1] > 100
    rows = results.read_rows(out / "per_image.csv")
    with open(out / "per_image.csv") as fh:
        assert fh.readline().strip().split(",") == results.columns("alex")
    jobs = _expected_jobs()
    assert len(rows) == outcome.computed == 3 * sum(len(j) for j in jobs.values())
    assert {(r["task"], r["method"], r["nfe"]) for r in rows} == {(t, j.method, j.nfe) for t in TASKS
                                                                  for j in jobs[t]}
    for r in rows:
        assert r["dataset"] == "imgs" and r["resolution"] == RES and r["sigma_y"] == 0.05
        assert all(math.isfinite(r[c]) for c in ("psnr", "ssim", "lpips_alex", "seconds", "peak_mem_mb"))
        assert r["lpips_alex"] >= 0 and r["seconds"] > 0 and r["mem_kind"].startswith("cpu")
        if r["method"] in ("pnp-gd", "pnp-gd-warm"):
            assert r["network_evals"] == r["nfe"] and (r["operator_evals"] > 0) == (r["nfe"] > 1)  # (none after
            # the last denoiser call)
        if r["method"] == "dps":
            assert r["nfe"] == r["network_evals"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lpips_net"] == "alex" and "mean" in summary["aggregation"]
    rec = summary["summary"][0]
    for key in ("task", "method", "nfe", "aggregation", "n_images", "psnr_mean", "psnr_std", "ssim_mean",
                "lpips_alex_mean", "lpips_alex_std", "network_evals", "operator_evals", "seconds_mean",
                "peak_mem_mb_max"):
        assert key in rec
    assert rec["n_images"] == 3 and summary["config"]["environment"]["torch"]
    settings = summary["config"]["task_settings"]  # what made the rows: presets change between versions
    assert set(settings) == set(TASKS) and settings["sr4"]["beta"] > 0 and "command" in summary["config"]
    md = (out / "summary.md").read_text()
    assert "## sr4" in md and "LPIPS-alex" in md and "| pnp-gd | 2 |" in md and "mean ± std" in md
    assert f"- resolution: images of {RES}x{RES} px" in md  # what the photos were shrunk to
    # the grid's pictures exist for the first two images only
    assert (out / "samples" / "sr4" / "im1" / "pnp-gd-nfe2.png").exists()
    assert (out / "samples" / "sr4" / "im0" / "measurement.png").exists()
    assert not (out / "samples" / "sr4" / "im2").exists()


def test_resume_computes_nothing_new_and_refuses_without_flag(assets, first_run, tmp_path):
    out, first = first_run
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    with pytest.raises(ValueError, match="--resume"):
        run_bench(_cfg(assets, out2), progress=False)
    again = run_bench(_cfg(assets, out2, resume=True), progress=False)
    assert again.computed == 0 and again.skipped == first.computed
    assert len(results.read_rows(out2 / "per_image.csv")) == first.computed


def test_interrupted_run_loses_nothing(assets, first_run, tmp_path, monkeypatch):
    out, first = first_run
    out2 = tmp_path / "out"
    shutil.copytree(out / "samples", out2 / "samples")  # the grid images of the finished rows are on disk
    lines = (out / "per_image.csv").read_text().splitlines(keepends=True)
    kept = lines[:4]  # header + 3 rows, then a row cut in half
    (out2 / "per_image.csv").write_text("".join(kept) + lines[4][:20])
    computed = []
    res = run_bench(_cfg(assets, out2, resume=True), progress=False, on_row=computed.append)
    assert res.computed == first.computed - 3 == len(computed)
    rows = results.read_rows(out2 / "per_image.csv")
    assert len(rows) == first.computed
    # the same seed gives the same numbers, whether computed in one go or resumed
    ref = {results.row_key(r): r for r in results.read_rows(out / "per_image.csv")}
    for r in rows:
        assert r["psnr"] == pytest.approx(ref[results.row_key(r)]["psnr"], abs=1e-4)


def test_progress_counts_network_calls_of_computed_and_resumed_rows(assets, first_run, tmp_path, monkeypatch):
    """The bar's total weighs each run by its calls (DPS beside PnP-GD), and a resumed run fills it to the end."""
    out, _ = first_run
    out2 = tmp_path / "out"
    shutil.copytree(out, out2)
    lines = (out / "per_image.csv").read_text().splitlines(keepends=True)
    (out2 / "per_image.csv").write_text("".join(lines[:6]))
    bars = []

    class Recorder:
        def __init__(self, total, *args, **kwargs):
            self.total, self.done, self.step = total, 0, lambda *a: None
            bars.append(self)

        def update(self, n):
            self.done += n

        def skip(self, n):  # rows done before: counted, not in the rate
            self.done += n
            self.skipped += n

        def begin(self, cost):
            pass

        skipped = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr("ncvsd_cli.progress.NestedProgress", Recorder)
    run_bench(_cfg(assets, out2, resume=True), progress=False)
    jobs = _expected_jobs()
    expected = 3 * sum(max(j.nfe, 1) for task in TASKS for j in jobs[task])
    assert bars[0].total == expected and bars[0].done == expected and 0 < bars[0].skipped < expected
    assert any(j.method == "dps" and j.nfe > 1 for j in jobs["sr4"])  # runs of unequal weight are in the sweep


def test_every_method_sees_the_same_measurement(assets, tmp_path, monkeypatch):
    seen = {}
    real = methods.run_job

    def spy(job, task, operator, y, *args, **kwargs):
        seen.setdefault(task, []).append((job.method, y.clone()))
        return real(job, task, operator, y, *args, **kwargs)

    monkeypatch.setattr(methods, "run_job", spy)
    run_bench(_cfg(assets, tmp_path / "out", limit=1, nfe=[1]), progress=False)
    for task, calls in seen.items():
        assert len({m for m, _ in calls}) >= 3
        assert all(torch.equal(calls[0][1], y) for _, y in calls), task


@pytest.mark.parametrize("tasks", [["inpaint-box", "sr4"], ["denoise"]])
def test_batched_rows_equal_one_image_per_call(assets, tmp_path, tasks):
    """Every registered method, batch 2 over 3 images (a full and a partial batch), then a resume in one batch of 3
    that must compute only the missing images: every row equals the one-image-per-call run (each image keeps its
    own generators), and each image of a call gets its own scores and estimate."""
    from ncvsd_cli.sampling.methods import method_names

    kw = {"tasks": tasks, "methods": method_names(), "nfe": [1], "grid_images": 3,
          "baseline_nfe": 11}  # daps: at least 10 levels
    ref = run_bench(_cfg(assets, tmp_path / "one", **kw), progress=False)
    out = tmp_path / "batched"
    part = run_bench(_cfg(assets, out, batch_size=2, limit=2, **kw), progress=False)
    rest = run_bench(_cfg(assets, out, batch_size=3, resume=True, **kw), progress=False)
    assert not ref.failed and not part.failed and not rest.failed
    assert rest.skipped == part.computed and part.computed + rest.computed == ref.computed
    one = {results.row_key(r): r for r in results.read_rows(tmp_path / "one" / "per_image.csv")}
    batched = {results.row_key(r): r for r in results.read_rows(out / "per_image.csv")}
    assert one.keys() == batched.keys() and len({k[3] for k in one}) >= 4
    for key, row in batched.items():
        for col in ("psnr", "ssim", "lpips_alex", "network_evals", "operator_evals"):
            assert row[col] == pytest.approx(one[key][col], rel=1e-4, abs=1e-4), (key, col)
    psnr = {k[1]: r["psnr"] for k, r in batched.items() if k[3] == "pnp-gd-warm"}
    assert len(set(psnr.values())) == 3  # per-image scores, not one copied over the batch
    for task in tasks:
        for image in ("im0", "im1", "im2"):
            a = np.asarray(Image.open(next((tmp_path / "one" / "samples" / task / image).glob("pnp-gd-warm-nfe*.png"))))
            b = np.asarray(Image.open(next((out / "samples" / task / image).glob("pnp-gd-warm-nfe*.png"))))
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, (task, image)


def test_other_resolutions_than_the_networks_and_refusal(assets, tmp_path):
    """The networks are convolutional: a bench at twice their resolution runs at that size; a size they cannot
    down-sample evenly is refused before any row, naming the multiple."""
    out = tmp_path / "big"
    res = run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd", "classical"], nfe=[2], limit=1,
                         resolution=2 * RES), progress=False)
    rows = results.read_rows(out / "per_image.csv")
    assert not res.failed and rows and {r["resolution"] for r in rows} == {2 * RES}
    with pytest.raises(ValueError, match="multiple of"):
        run_bench(_cfg(assets, tmp_path / "odd", tasks=["sr4"], methods=["pnp-gd"], nfe=[2], resolution=2 * RES + 1),
                  progress=False)
    with pytest.raises(ValueError, match="LPIPS-alex needs images of at least 31 px per side, and these are 16 px: "
                                         "pass --resolution 32"):  # each row failed on its LPIPS
        run_bench(_cfg(assets, tmp_path / "small", tasks=["sr4"], methods=["pnp-gd"], nfe=[2], resolution=16),
                  progress=False)
    assert not (tmp_path / "small").exists()


def test_memory_refusal_before_any_row(assets, tmp_path, monkeypatch):
    """A batch whose estimated sampler call (beyond the loaded weights) exceeds the available memory is refused
    before any row, naming the estimate and --batch-size; the estimate uses the images there are (3 here, whatever
    --batch-size), and DPS (a backward pass) is estimated above PnP-GD."""
    from ncvsd_cli import memory
    from ncvsd_cli.networks import network_config

    cfg = network_config("generator", "tiny", img_resolution=RES)
    three = memory.work_bytes(cfg, (3, 3, RES, RES)) - memory.model_bytes(cfg)
    assert memory.work_bytes(cfg, (3, 3, RES, RES), backward=True) > three + memory.model_bytes(cfg)
    assert memory.work_bytes(cfg, (1, 3, RES, RES)) - memory.model_bytes(cfg) < three
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device="cpu": three - 1)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="needs an estimated .* --batch-size"):
        run_bench(_cfg(assets, out, methods=["pnp-gd"], nfe=[2], batch_size=64, precision="fp32"), progress=False)
    assert not results.read_rows(out / "per_image.csv")  # fp32: the estimate above (auto is bf16 on AMX CPUs)
    res = run_bench(_cfg(assets, out, methods=["pnp-gd"], nfe=[2], batch_size=64, limit=1, precision="fp32"),
                    progress=False)
    assert res.computed == len(TASKS)


def test_resume_refuses_other_settings(assets, tmp_path):
    """--resume adds rows only under the settings of the folder's earlier rows (resolution, networks, precision,
    presets); a run with only classical methods loads no network and may add to any folder."""
    out = tmp_path / "out"
    run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd"], nfe=[2], limit=1), progress=False)
    with pytest.raises(ValueError, match="resolution 32"):
        run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd"], nfe=[2], limit=1, resume=True,
                       resolution=2 * RES), progress=False)
    copy = shutil.copy(assets / "generator.safetensors", tmp_path / "copy.safetensors")  # the same bytes by
    res = run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd"], nfe=[2], limit=1, resume=True,  # another
                         generator=str(copy)), progress=False)  # path were refused, "generator 'copy...'"
    assert res.skipped == 1 and not res.failed
    from ncvsd_cli.checkpoints import save_checkpoint
    from ncvsd_cli.networks import build_network, network_config

    torch.manual_seed(1)  # other weights
    cfg = network_config("generator", "tiny", img_resolution=RES)
    save_checkpoint(build_network(cfg), tmp_path / "other.safetensors", cfg)
    with pytest.raises(ValueError, match="generator"):
        run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd"], nfe=[2], limit=1, resume=True,
                       generator=str(tmp_path / "other.safetensors")), progress=False)
    res = run_bench(_cfg(assets, out, tasks=["sr4"], methods=["dps"], nfe=[2], limit=1, resume=True),
                    progress=False)  # a method of the other network: "precision_used 'generator fp32', 'teacher fp32'"
    assert res.computed == 1 and not res.failed
    ran = json.loads((out / "run_settings.json").read_text())["generator_precision"]  # auto's choice
    same = run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd"], nfe=[2], limit=1, resume=True,
                          precision=ran), progress=False)  # --precision bf16 after auto's bf16 was refused
    assert same.skipped == 1 and not same.failed
    with pytest.raises(ValueError, match="generator_precision"):
        run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd"], nfe=[2], limit=1, resume=True,
                       precision="fp32" if ran == "bf16" else "bf16"), progress=False)
    res = run_bench(_cfg(assets, out, tasks=["sr4"], methods=["classical"], nfe=[1], limit=1, resume=True,
                         resolution=RES), progress=False)
    assert res.computed >= 1 and not res.failed
    assert "batch_size" in (out / "summary.md").read_text()


def test_preset_file_is_read_once_and_its_content_guards_resume(assets, tmp_path):
    """The --preset YAML is read when the run starts (deleting it mid-run changes nothing) and its content, not
    only its name, is recorded: a resume with the same file name but other values is refused."""
    out, user = tmp_path / "out", tmp_path / "user.yaml"
    user.write_text("warm_start: {sigma_max: 0.5}\n")
    cfg = _cfg(assets, out, tasks=["sr4"], methods=["pnp-gd-warm"], nfe=[1], limit=2, preset_file=str(user))
    cfg.validate()
    user.unlink()
    assert run_bench(cfg, progress=False).computed == 2
    assert json.loads((out / "run_settings.json").read_text())["preset"] == {"warm_start": {"sigma_max": 0.5}}
    user.write_text("warm_start: {sigma_max: 0.9}\n")
    with pytest.raises(ValueError, match="preset"):
        run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd-warm"], nfe=[1], limit=2, resume=True,
                       preset_file=str(user)), progress=False)
    copy = tmp_path / "copy.yaml"  # the same content at another path: no difference (the path was compared too)
    copy.write_text("warm_start: {sigma_max: 0.5}\n")
    again = run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd-warm"], nfe=[1], limit=2, resume=True,
                           preset_file=str(copy)), progress=False)
    assert again.computed == 0 and again.skipped == 2


def test_a_failed_batch_is_retried_one_image_at_a_time(assets, tmp_path, monkeypatch):
    """A call on several images that fails (out of memory, one bad image) is redone image by image: only the
    image that fails alone loses its row."""
    real = methods.run_job
    singles = []

    def flaky(job, task, operator, y, *args, **kwargs):
        if y.shape[0] > 1:
            raise RuntimeError("out of memory (simulated)")
        singles.append(y)
        if len(singles) == 2:  # the second image fails alone too
            raise RuntimeError("bad image (simulated)")
        return real(job, task, operator, y, *args, **kwargs)

    monkeypatch.setattr(methods, "run_job", flaky)
    res = run_bench(_cfg(assets, tmp_path / "out", tasks=["sr4"], methods=["pnp-gd"], nfe=[2], batch_size=3),
                    progress=False)
    assert res.computed == 2 and len(res.failed) == 1 and "/im1/" in res.failed[0] and "bad image" in res.failed[0]


def test_best_of_k_rows_and_label(assets, tmp_path):
    """K runs per image of a sampler, a labelled best-of-K line; a deterministic baseline runs once (its K runs
    would be one image K times) and has no best-of line."""
    out = tmp_path / "out"
    res = run_bench(_cfg(assets, out, tasks=["inpaint-box"], methods=["pnp-gd", "biharmonic"], nfe=[2], limit=2,
                         best_of=2), progress=False)
    rows = results.read_rows(out / "per_image.csv")
    assert sorted(r["run"] for r in rows if r["method"] == "biharmonic") == [0, 0]
    assert not any(s["method"] == "biharmonic" and s["aggregation"] != "mean" for s in res.summary)
    rows = [r for r in rows if r["method"] == "pnp-gd"]
    res.summary = [s for s in res.summary if s["method"] == "pnp-gd"]
    assert res.computed == 6 and sorted({r["run"] for r in rows}) == [0, 1]
    runs0 = [r["psnr"] for r in rows if r["run"] == 0]
    runs1 = [r["psnr"] for r in rows if r["run"] == 1]
    assert runs0 != runs1  # independent samples
    assert {s["aggregation"] for s in res.summary} == {"mean", "best-of-2"}
    assert "best-of-2" in (out / "summary.md").read_text()
    assert "best-of-K: per image the best of K runs" in (out / "report.html").read_text()  # said on the page too
    again = run_bench(_cfg(assets, out, tasks=["inpaint-box"], methods=["pnp-gd", "biharmonic"], nfe=[2], limit=2,
                           resume=True), progress=False)  # --best-of 1: the earlier second runs are not shown
    mean = next(s for s in again.summary if s["method"] == "pnp-gd")
    assert again.computed == 0 and {s["aggregation"] for s in again.summary} == {"mean"} and mean["runs"] == 1
    assert mean["psnr_mean"] == pytest.approx(sum(runs0) / 2)
    assert "best-of" not in (out / "report.html").read_text() and len(results.read_rows(out / "per_image.csv")) == 6


def test_sharded_ranks_merge_to_the_single_run(assets, first_run, tmp_path, monkeypatch):
    out, _ = first_run
    out2 = tmp_path / "out"
    monkeypatch.setattr(bench_runner.distributed, "barrier", lambda world: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    for rank in (1, 0):  # rank 1 first: rank 0 then merges both parts
        monkeypatch.setenv("RANK", str(rank))
        res = run_bench(_cfg(assets, out2, methods=["pnp-gd", "classical"], resume=True), progress=False)
        assert (res.summary is not None) == (rank == 0)
    part1 = results.read_rows(out2 / "per_image.rank1-of-2.csv")
    assert {r["image"] for r in part1} == {"im1"}
    merged = results.read_rows(out2 / "per_image.csv")
    ref = {results.row_key(r): r for r in results.read_rows(out / "per_image.csv")}
    assert {r["image"] for r in merged} == {"im0", "im1", "im2"}
    for r in merged:
        assert r["psnr"] == pytest.approx(ref[results.row_key(r)]["psnr"], abs=1e-4)
    assert not (out2 / bench_runner.FAILED_PART.format(rank=1, world=2)).exists()  # read into the summary
    assert json.loads((out2 / "summary.json").read_text())["config"]["failed"] is None


def test_the_summary_names_every_ranks_failures(tmp_path):
    """Under torchrun the summary said "rank 0: 0" while rank 1 had failed an image: each rank writes its own."""
    (tmp_path / bench_runner.FAILED_PART.format(rank=1, world=3)).write_text(json.dumps(["sr4/b: not an image"]))
    text = bench_runner._failures([], 3, tmp_path)
    assert text.startswith("2 (first: rank 1: sr4/b: not an image;"), text  # rank 2 wrote none: said so
    assert not list(tmp_path.iterdir())  # read once, not left in the output folder
    assert "rank 1: its failures were not recorded" in bench_runner._failures([], 2, tmp_path / "other")
    assert bench_runner._failures(["sr4/a: x"], 1, tmp_path) == "1 (first: sr4/a: x; stderr lists every one)"


def test_cli_end_to_end_and_errors(assets, tmp_path, monkeypatch):
    from ncvsd_cli.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["bench", "--dataset", str(assets / "imgs"), "--tasks", "inpaint-box", "--nfe", "2", "--methods",
            "pnp-gd", "--checkpoint", str(assets / "generator.safetensors"), "--limit", "2", "--device", "cpu",
            "--batch-size", "2", "--out", str(out), "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "| pnp-gd | 2 |" in res.stdout
    res = runner.invoke(app, [*args, "--resume", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["lpips_net"] == "alex"
    monkeypatch.delenv("NCVSD_FFHQ", raising=False)
    res = runner.invoke(app, ["bench", "--dataset", "ffhq", "--methods", "pnp-gd", "--checkpoint",
                              str(assets / "generator.safetensors"), "--out", str(tmp_path / "f")])
    assert res.exit_code == 2 and "NCVSD_FFHQ" in res.output
    res = runner.invoke(app, [*args[:-1], "--out", str(tmp_path / "x"), "--methods", "nope"])
    assert res.exit_code == 2 and "nope" in res.output
    res = runner.invoke(app, ["bench", "--help"])
    assert res.exit_code == 0 and "Examples" in res.output and "--baseline-nfe" in res.output
    monkeypatch.chdir(tmp_path)  # without --out: bench-NAME in the working folder (`ncvsd bench --dataset ffhq`)
    res = runner.invoke(app, [*args[:-3], "--limit", "1", "--quiet"])
    assert res.exit_code == 0 and (tmp_path / "bench-imgs" / "per_image.csv").is_file(), res.output


def test_missing_lpips_weights_stop_the_run_before_any_row_and_keep_stdout_clean(assets, tmp_path, monkeypatch):
    """No VGG backbone here and no internet: exit 3 with the message saying how to make the file, nothing but
    the JSON error summary on stdout (torch.hub's "Downloading" line goes to stderr), no row computed."""
    import urllib.error

    from ncvsd_cli import checkpoints
    from ncvsd_cli.cli import app

    def offline(url, **kwargs):
        print(f'Downloading: "{url}"')  # what torch.hub prints before fetching
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(checkpoints, "search_locations", list)
    out = tmp_path / "vgg"
    res = CliRunner().invoke(app, ["bench", "--dataset", str(assets / "imgs"), "--tasks", "sr4", "--methods",
                                   "classical", "--lpips", "vgg", "--limit", "1", "--out", str(out), "--json"])
    assert res.exit_code == 3 and "LPIPS vgg backbone" in res.stderr, res.output
    summary = json.loads(res.stdout)  # the error summary alone: the download line went to stderr
    assert summary["exit_code"] == 3 and "LPIPS vgg" in summary["error"] and "Downloading" in res.stderr
    assert not list(out.glob("per_image*.csv"))


def test_cli_default_sweep_is_the_library_default_and_holds_the_warm_defaults():
    """`ncvsd bench --nfe` defaults to DEFAULT_NFE, which contains every task's default warm-start NFE."""
    import inspect

    from ncvsd_cli.cli.bench import bench
    from ncvsd_cli.sampling.presets import task_settings

    default = inspect.signature(bench).parameters["nfe"].default.default
    assert tuple(int(n) for n in default.split(",")) == bench_runner.DEFAULT_NFE
    import operators

    warm_tasks = [t for t in operators.names() if task_settings(t)["method"] == "pnp-gd-warm"]
    assert set(operators.names()) - set(warm_tasks) == {"phase-retrieval", "denoise"}  # pnp-gd, denoiser (1 NFE)
    assert 1 in bench_runner.DEFAULT_NFE and "denoiser" in bench_runner.DEFAULT_METHODS
    for task in warm_tasks:
        assert task_settings(task, warm=True)["steps"] - 1 in bench_runner.DEFAULT_NFE


def test_an_unreadable_image_fails_alone(assets, tmp_path):
    """A corrupt file among the images: its rows fail (exit 1 on the CLI) and every other image is benchmarked,
    with the reports written (it used to stop the run with a usage error after the images before it)."""
    data = tmp_path / "imgs"
    shutil.copytree(assets / "imgs", data)
    (data / "im1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tmp_path / "out"
    outcome = run_bench(_cfg(assets, out, dataset=str(data), tasks=["sr4"], methods=["classical"], nfe=[1]),
                        progress=False)
    assert len(outcome.failed) == 1 and outcome.failed[0].startswith("sr4/im1:")
    import csv

    rows = list(csv.DictReader((out / results.CSV_NAME).open()))
    assert {r["image"] for r in rows} == {"im0", "im2"} and outcome.computed == len(rows)
    assert outcome.summary is not None


def test_classical_rows_run_at_the_size_the_network_rows_of_the_same_command_would(assets, tmp_path):
    """A bench of classical methods alone ran ffhq at 256 px, and at the model's 64 with a network method listed:
    bicubic sr4 scored 23.05 dB against 19.13 on the same photos. Now the generator's training size (its header, or
    the zoo's entry, not downloaded) sets it; the dataset's default only where none can be read."""
    import csv

    alone = run_bench(_cfg(assets, tmp_path / "a", tasks=["sr4"], methods=["classical"], nfe=[1], limit=1),
                      progress=False)
    both = run_bench(_cfg(assets, tmp_path / "b", tasks=["sr4"], methods=["pnp-gd", "classical"], nfe=[2], limit=1),
                     progress=False)
    assert alone.computed and both.computed
    rows = [{r["method"]: (r["resolution"], r["psnr"])
             for r in csv.DictReader((tmp_path / d / results.CSV_NAME).open())} for d in ("a", "b")]
    assert rows[0]["bicubic"] == rows[1]["bicubic"] and rows[0]["bicubic"][0] == str(RES)
    with pytest.raises(ValueError, match=f"resolution {RES}, this run uses 48; --resolution {RES} computes more"):
        run_bench(_cfg(assets, tmp_path / "a", tasks=["sr4"], methods=["classical"], nfe=[1], limit=1, resume=True,
                       resolution=48), progress=False)
    unloaded = bench_runner._unloaded_resolution
    assert unloaded(BenchConfig(dataset="ffhq", out="x", methods=["bicubic"], generator="ncvsd-ffhq256-xs")) == 256
    assert unloaded(BenchConfig(dataset="ffhq", out="x", methods=["bicubic"])) == 64  # the shipped builtin64
    with pytest.raises(CheckpointError, match="nosuch"):  # (it said "used for its size", then ran at 64 px)
        unloaded(BenchConfig(dataset="ffhq", out="x", methods=["bicubic"], generator="nosuch"))


def test_a_dataset_of_only_unreadable_images_writes_no_empty_report(tmp_path):
    """Every image failed: exit 1, no summary / plot / report of nothing, and --json's stdout is its one summary."""
    from ncvsd_cli.cli import app

    (tmp_path / "fake.png").write_bytes(b"hello")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["bench", "--dataset", str(tmp_path / "fake.png"), "--tasks", "sr4", "--methods",
                                   "classical", "--out", str(out), "--json", "-q"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 1 and doc["exit_code"] == 1 and "no report written" in doc["error"], res.output
    assert "first failure: " in doc["error"] and "fake" in doc["error"]  # why, not only that nothing was computed
    assert not [p.name for p in out.iterdir() if p.name.startswith(("summary", "report", "nfe_plot"))]
    assert "no report written" in res.stderr  # said under -q too (no recap there)


@pytest.mark.parametrize("task, needed", [("inpaint-mask", "mask"), ("deblur-kernel", "kernel")])
def test_a_task_needing_a_file_says_bench_reads_it_from_a_preset(assets, tmp_path, task, needed):
    with pytest.raises(ValueError, match=rf"--preset YAML file: `operator: {{{needed}: PATH}}`"):
        run_bench(_cfg(assets, tmp_path / "o", tasks=[task], methods=["classical"], nfe=[1]), progress=False)


def test_a_sweep_with_nothing_to_run_is_refused(assets, tmp_path):
    with pytest.raises(ValueError, match="nothing to run"):
        run_bench(_cfg(assets, tmp_path / "o", tasks=["sr4"], methods=["denoiser"], nfe=[1]), progress=False)
    assert not (tmp_path / "o").exists()  # refused before any work: no empty folder left


def test_a_generators_teacher_not_found_is_replaced_with_a_warning(assets, tmp_path, caplog):
    """DPS/DAPS without --teacher use the generator's teacher; when its provenance names a file found nowhere, the
    shipped teacher stands in, and the run says so (it did silently)."""
    import logging

    from ncvsd_cli.bench.runner import _load_networks
    from ncvsd_cli.checkpoints import default_checkpoint, save_checkpoint
    from ncvsd_cli.networks import build_network, network_config

    cfg = network_config("generator", "tiny", img_resolution=RES)
    gen = save_checkpoint(build_network(cfg), tmp_path / "g.safetensors",
                          {**cfg, "provenance": {"teacher": "gone-teacher.safetensors"}})
    with caplog.at_level(logging.WARNING, logger="ncvsd.bench"):
        nets = _load_networks(_cfg(assets, tmp_path / "o", methods=["dps", "pnp-gd"], generator=str(gen),
                                   teacher=None, resolution=RES), "cpu")
    assert nets.info["teacher"]["name"] == default_checkpoint("teacher")
    assert "the generator's teacher gone-teacher.safetensors is not found here" in caplog.text


def test_cli_names_small_images_says_a_failure_once_under_quiet_and_leaves_out_empty_header_lines(tmp_path):
    """A dataset image smaller than the resolution is enlarged, and a warning says its reference is interpolated;
    with -q a failed image's error is printed once (not again as a recap); a classical-only run has no network
    precision, and summary.md leaves the line out instead of printing it empty."""
    from ncvsd_cli.cli import app

    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(data / f"{name}.png")
    (data / "sub").mkdir()
    shutil.copy(data / "a.png", data / "sub" / "a.png")  # the same name in a subfolder is warned of apart
    (data / "c.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    Image.fromarray((rng.random((64, 64, 4)) * 255).astype(np.uint8)).save(data / "d.png")  # composited unsaid
    res = CliRunner().invoke(app, ["bench", "--dataset", str(data), "--tasks", "sr4,inpaint-box", "--methods",
                                   "classical", "--resolution", "64", "--out", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 1, res.output
    lines = res.stderr.splitlines()  # the library's log records as the command's own lines (common.log_lines)
    for name in ("a.png", "sub/a.png"):
        assert sum(m.startswith(f"ncvsd: warning: {name}: 48x40 px, enlarged to 64 px: its reference is an "
                                "interpolated image") for m in lines) == 1, lines  # once, not once per task
    assert res.stderr.count("cannot decode image") == 2, res.stderr  # once a task
    assert sum("d.png: has transparency, scored composited on white" in m for m in lines) == 1, lines
    assert all(m.startswith("ncvsd: ") for m in lines), lines
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "- resolution: images of 64x64 px" in summary and "precision" not in summary


def test_grids_show_this_runs_pictures_and_a_changed_folder_is_refused(assets, tmp_path):
    """A resume with another seed is refused (its pictures and reports would replace the first run's), the same
    seed goes on; the grid has --grid-images rows whatever other sample folders lie there; an image in a subfolder
    gets a flat sample folder; a photo added before a --resume (which shifts the indexes the measurements are drawn
    from) is refused."""
    import hashlib
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(assets / "imgs", folder)
    (folder / "sub").mkdir()
    shutil.copy(folder / "im1.png", folder / "sub" / "im0.png")  # its id: sub/im0
    out = tmp_path / "out"

    def bench(seed: int, resume: bool):
        return run_bench(_cfg(assets, out, dataset=str(folder), tasks=["sr4"], methods=["pseudo-inverse"], nfe=[2],
                              grid_images=2, seed=seed, resume=resume), progress=False)

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    measurement = out / "samples" / "sr4" / "im0" / "measurement.png"
    bench(0, False)
    first = digest(measurement)
    with pytest.raises(ValueError, match="seed 0, this run uses 1 .the folder's sample pictures and reports"):
        bench(1, True)
    assert digest(measurement) == first
    (out / "samples" / "sr4" / "zz_other").mkdir()  # a stray folder: not a grid row
    bench(0, True)
    assert digest(measurement) == first
    grid = Image.open(out / "grid_sr4.png")
    rows = (grid.size[1] - 28) // (max(96, RES) + 4)
    assert rows == 2
    run_bench(_cfg(assets, tmp_path / "all", dataset=str(folder), tasks=["sr4"], methods=["pseudo-inverse"],
                   nfe=[2], grid_images=10), progress=False)
    assert (tmp_path / "all" / "samples" / "sr4" / "sub__im0" / "ground_truth.png").is_file()
    Image.open(folder / "im1.png").save(folder / "aa.png")  # sorts first: every index shifts
    with pytest.raises(ValueError, match="images were added or removed"):
        bench(0, True)


def test_daps_runs_at_a_budget_it_can_use_and_a_smaller_one_is_refused(assets, tmp_path):
    """DAPS at --baseline-nfe 50 (10 levels of 5 ODE steps); under 10 levels its output is noise (refused)."""
    res = run_bench(_cfg(assets, tmp_path / "d", tasks=["sr4"], methods=["daps"], baseline_nfe=50, limit=1),
                    progress=False)
    (row,) = results.read_rows(tmp_path / "d" / "per_image.csv")
    assert not res.failed and row["method"] == "daps" and row["nfe"] == row["network_evals"] == 50
    with pytest.raises(ValueError, match="--baseline-nfe 45 anneals over 9 noise level"):
        run_bench(_cfg(assets, tmp_path / "e", methods=["daps"], baseline_nfe=45), progress=False)
    assert not (tmp_path / "e").exists()


def test_a_missing_dataset_is_said_before_weights_load(assets, tmp_path, monkeypatch):
    """`--dataset ffhq --data missing.zip --lpips vgg` stopped on the LPIPS / checkpoint download (exit 3) and never
    named the missing zip: the dataset is listed first."""
    from ncvsd_cli.bench.datasets import DatasetError

    def no_weights(*args, **kwargs):
        raise AssertionError("weights loaded before the dataset was checked")

    monkeypatch.setattr(bench_runner, "_Scorer", no_weights)
    monkeypatch.setattr(bench_runner, "_load_networks", no_weights)
    for dataset, data in (("ffhq", tmp_path / "missing.zip"), (str(tmp_path / "nope"), None)):
        with pytest.raises(DatasetError, match="does not exist"):
            run_bench(_cfg(assets, tmp_path / "o", dataset=dataset, data=data and str(data)), progress=False)
    assert not (tmp_path / "o").exists()


def test_default_methods_leave_out_daps_at_a_small_baseline_budget(assets, tmp_path, monkeypatch):
    """--baseline-nfe 20 with the default --methods: daps is left out with a warning (even with -q) and the others
    run; named in --methods it is refused (above)."""
    import ncvsd_cli.bench
    from ncvsd_cli.cli import app

    seen = []
    monkeypatch.setattr(ncvsd_cli.bench, "run_bench", lambda cfg, progress: seen.append(cfg) or
                        bench_runner.BenchOutcome(tmp_path))
    base = ["bench", "--dataset", str(assets / "imgs"), "--out", str(tmp_path / "o"), "-q"]
    res = CliRunner().invoke(app, [*base, "--baseline-nfe", "20"])
    assert res.exit_code == 0, res.output
    assert "warning: daps left out of the default methods: daps with --baseline-nfe 20" in res.stderr
    assert seen[-1].methods == [m for m in bench_runner.DEFAULT_METHODS if m != "daps"]
    res = CliRunner().invoke(app, [*base, "--baseline-nfe", "50"])
    assert res.exit_code == 0 and "warning" not in res.stderr and seen[-1].methods == list(bench_runner.DEFAULT_METHODS)


def test_methods_that_skip_a_task_or_an_nfe_are_told(assets, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="ncvsd.bench"):
        run_bench(_cfg(assets, tmp_path / "o", tasks=["sr4"], methods=["pnp-gd", "denoiser"], nfe=[1, 2], limit=1),
                  progress=False)
    assert "sr4: method denoiser does not apply to this task: skipped" in caplog.text
    assert "sr4: pnp-gd runs at --nfe 2 only, not" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ncvsd.bench"), pytest.raises(ValueError, match="from --nfe 2"):
        run_bench(_cfg(assets, tmp_path / "p", tasks=["sr4"], methods=["pnp-gd"], nfe=[1], limit=1), progress=False)
    assert "sr4: method pnp-gd runs from --nfe 2" in caplog.text and "does not apply" not in caplog.text


def _classical(tmp_path, data, out, **kw):
    base = {"dataset": str(data), "out": str(out), "tasks": ["sr4"], "methods": ["bicubic"], "grid_images": 1}
    return run_bench(BenchConfig(**{**base, **kw}), progress=False)


def _pngs(folder, n, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (33, 35, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_a_bench_folder_inside_the_dataset_is_not_scored_and_dot_is_named(tmp_path, monkeypatch, caplog):
    """`--dataset .` with the default --out inside it scored the first run's 12 sample pictures as images on the
    next run; '.' gave an empty dataset name."""
    data = _pngs(tmp_path / "shots", 2, 0)
    monkeypatch.chdir(data)
    first = _classical(tmp_path, ".", data / "bench-data", resolution=32)
    assert first.summary[0]["n_images"] == 2 and first.summary[0]["dataset"] == "shots"
    again = _classical(tmp_path, ".", tmp_path / "second", resolution=32, tasks=["sr4", "sr4"])
    assert again.summary[0]["n_images"] == 2 and again.computed == 2  # sr4 twice: its rows once
    assert "left out the bench results in bench-data" in caplog.text


def test_resume_refuses_another_folders_image_of_the_same_name(tmp_path):
    """A/photos/p0.png and B/photos/p0.png: the second run reported A's numbers as B's ("0 rows computed")."""
    a, b = _pngs(tmp_path / "A" / "photos", 1, 1), _pngs(tmp_path / "B" / "photos", 1, 2)
    _classical(tmp_path, a, tmp_path / "out", resolution=32)
    with pytest.raises(ValueError, match="rows of p0 computed from another file of that name"):
        _classical(tmp_path, b, tmp_path / "out", resolution=32, resume=True)
    shutil.copytree(a, tmp_path / "moved" / "photos")  # the same pictures elsewhere resume
    assert _classical(tmp_path, tmp_path / "moved" / "photos", tmp_path / "out", resolution=32,
                      resume=True).skipped == 1
    import zipfile

    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as zf:  # and from a zip of them
        zf.write(a / "p0.png", "p0.png")
    assert _classical(tmp_path, tmp_path / "photos.zip", tmp_path / "out", resolution=32, resume=True).skipped == 1
    (a / "p1.png").write_bytes(b"not an image")  # an image without rows (it failed) may be replaced
    assert _classical(tmp_path, a, tmp_path / "out", resolution=32, resume=True).failed
    _pngs(tmp_path / "fix", 2, 5)
    shutil.copy(tmp_path / "fix" / "p1.png", a / "p1.png")
    assert _classical(tmp_path, a, tmp_path / "out", resolution=32, resume=True).computed == 1


def test_reports_cover_this_runs_selection_and_bold_only_rows_over_as_many_images(tmp_path, caplog):
    """A --resume over fewer images or other tasks reported the earlier rows beside the new ones (4 images vs 1)
    and bolded the better mean of different images."""
    from ncvsd_cli.bench import report

    data = _pngs(tmp_path / "set", 3, 3)
    _classical(tmp_path, data, tmp_path / "out", resolution=32, tasks=["sr4", "inpaint-box"], methods=["classical"])
    one = _classical(tmp_path, data, tmp_path / "out", resolution=32, limit=1, resume=True)
    assert {s["task"] for s in one.summary} == {"sr4"} and {s["n_images"] for s in one.summary} == {1}
    rows = results.read_rows(tmp_path / "out" / "per_image.csv")
    assert {r["task"] for r in rows} == {"sr4", "inpaint-box"} and {r["image"] for r in rows} == {"p0", "p1", "p2"}
    recs = [{"aggregation": "mean", "n_images": n, "psnr_mean": v} for n, v in ((3, 20.0), (1, 25.0))]
    best = report._best(recs, [("psnr", "", 2, max)])
    assert best == {"psnr": 20.0, "_n": 3} and report._is_best(recs[0], "psnr", best)
    assert not report._is_best({**recs[1], "psnr_mean": 20.0}, "psnr", best)  # as good, over fewer images
    bench_runner._note_unequal_counts([{"task": "sr4", "method": m, "nfe": 0, "image": i}
                                       for m, ims in (("a", "xyz"), ("b", "x")) for i in ims])
    assert "sr4: b at NFE 0 (1) scored on fewer images than the others (3)" in caplog.text


def test_options_the_run_does_not_use_are_warned_of(caplog):
    """--checkpoint nosuch with classical methods only, or --data without --dataset ffhq, ran without a word."""
    bench_runner._note_unused(BenchConfig(dataset="builtin", out="x", methods=["bicubic"], generator="nosuch",
                                          teacher="other", data="/nonexistent"))
    for said in ("--checkpoint nosuch is not used", "--teacher other is not used", "--data /nonexistent is not used"):
        assert said in caplog.text
    caplog.clear()
    bench_runner._note_unused(BenchConfig(dataset="ffhq", out="x", methods=["pnp-gd", "dps"], generator="g",
                                          teacher="t", data="/d"))
    assert "not used" not in caplog.text


def test_reports_name_model_version_and_rows_of_earlier_runs_and_sigma_0(assets, tmp_path):
    """summary.md named no generator or teacher (their keys were looked up where they are not), no version nor
    checksum; a --resume with fewer methods showed the earlier rows under this run's settings; sigma_y 0 had no
    heading."""
    from ncvsd_cli import __version__
    from ncvsd_cli.checkpoints import sha256_file

    out = tmp_path / "out"
    run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd", "bicubic"], nfe=[2], limit=1), progress=False)
    md = (out / "summary.md").read_text()
    sha = sha256_file(assets / "generator.safetensors")
    assert f"- generator: {assets / 'generator.safetensors'} (sha256 {sha[:12]})" in md
    assert f"- ncvsd: {__version__}" in md and "rows_of_earlier_runs" not in md
    config = json.loads((out / "summary.json").read_text())["config"]
    assert config["networks"]["generator"]["sha256"] == sha and config["environment"]["ncvsd"] == __version__
    assert "generator: " in (out / "report.html").read_text()
    run_bench(_cfg(assets, out, tasks=["sr4"], methods=["bicubic"], nfe=[2], limit=1, resume=True, resolution=RES),
              progress=False)
    assert "- rows_of_earlier_runs: sr4 pnp-gd nfe 2" in (out / "summary.md").read_text()
    from ncvsd_cli.bench import report

    heading = report.task_heading("d", "sr4", [{"dataset": "d", "task": "sr4", "sigma_y": 0.0}])
    assert heading == "sr4 (d, sigma_y 0 on [-1, 1])"


def test_out_as_the_dataset_folder_is_refused_and_a_refused_resume_keeps_the_settings(assets, tmp_path):
    data = _pngs(tmp_path / "set", 2, 4)
    with pytest.raises(ValueError, match="is the dataset.s folder"):
        _classical(tmp_path, data, data, resolution=32)
    assert not (data / "run_settings.json").exists()
    _classical(tmp_path, data, tmp_path / "out", resolution=32)
    settings = (tmp_path / "out" / "run_settings.json").read_bytes()
    Image.open(data / "p1.png").save(data / "a0.png")  # sorts first: the indexes shift, the resume is refused
    with pytest.raises(ValueError, match="images were added or removed"):
        _classical(tmp_path, data, tmp_path / "out", resolution=32, resume=True)
    assert (tmp_path / "out" / "run_settings.json").read_bytes() == settings


def test_non_finite_outputs_fail_their_row_and_evals_are_the_counted_calls(assets, tmp_path, monkeypatch, caplog):
    """A method returning +-inf was scored (clamped to black or white); one that reports fewer network
    evaluations than it makes had its own account in the evals column."""
    real = methods.run_job

    def claims_one(job, *args, **kwargs):
        res = real(job, *args, **kwargs)
        res.nfe = 1
        return res

    monkeypatch.setattr(methods, "run_job", claims_one)
    run_bench(_cfg(assets, tmp_path / "a", tasks=["sr4"], methods=["pnp-gd"], nfe=[3], limit=2, batch_size=2),
              progress=False)
    assert [r["network_evals"] for r in results.read_rows(tmp_path / "a" / "per_image.csv")] == [3, 3]
    assert "reports 1 network evaluations per run, the generator was called 3 times per image" in caplog.text

    def image_by_image(job, task, operator, y, network, gens, **kwargs):  # a plug-in that loops over the images
        parts = [real(job, task, operator, y[i:i + 1], network, gens[i:i + 1], **kwargs) for i in range(len(y))]
        return dataclasses.replace(parts[0], x=torch.cat([r.x for r in parts]))

    caplog.clear()
    monkeypatch.setattr(methods, "run_job", image_by_image)
    run_bench(_cfg(assets, tmp_path / "c", tasks=["sr4"], methods=["pnp-gd"], nfe=[3], limit=2, batch_size=2),
              progress=False)
    assert [r["network_evals"] for r in results.read_rows(tmp_path / "c" / "per_image.csv")] == [3, 3]
    assert "network evaluations per run" not in caplog.text  # its own account was right: 3 per image

    def infinite(*args, **kwargs):
        res = real(*args, **kwargs)
        res.x = res.x.clone()
        res.x[0, 0, 0, 0] = float("inf")  # one pixel, no NaN: the finiteness check, not the metrics', refuses it
        return res

    monkeypatch.setattr(methods, "run_job", infinite)
    res = run_bench(_cfg(assets, tmp_path / "b", tasks=["sr4"], methods=["pnp-gd"], nfe=[2], limit=1),
                    progress=False)
    assert res.computed == 0 and "non-finite" in res.failed[0]


def test_a_replaced_checkpoint_and_an_ffhq_data_folder_as_out_are_refused(assets, tmp_path, monkeypatch):
    """run_settings compared checkpoint paths only: a file replaced at the same path had the earlier rows shown
    under its sha256; --dataset ffhq --data DIR --out DIR was not refused (only --dataset was compared)."""
    gen = tmp_path / "g.safetensors"
    shutil.copy(assets / "generator.safetensors", gen)
    out = tmp_path / "out"
    run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd"], nfe=[2], limit=1, generator=str(gen)),
              progress=False)
    shutil.copy(assets / "teacher.safetensors", gen)  # another file at the same path (of the wrong kind even)
    from ncvsd_cli.checkpoints import save_checkpoint
    from ncvsd_cli.networks import build_network, network_config

    torch.manual_seed(1)
    cfg = network_config("generator", "tiny", img_resolution=RES)
    save_checkpoint(build_network(cfg), gen, cfg)
    with pytest.raises(ValueError, match="generator_sha256"):
        run_bench(_cfg(assets, out, tasks=["sr4"], methods=["pnp-gd"], nfe=[2], limit=1, generator=str(gen),
                       resume=True), progress=False)
    monkeypatch.chdir(tmp_path)  # a folder named builtin here is not the builtin set's: --out builtin is fine
    (tmp_path / "builtin").mkdir()
    res = run_bench(BenchConfig(dataset="builtin", out="builtin", tasks=["sr4"], methods=["bicubic"], limit=1,
                                resolution=32), progress=False)
    assert res.computed == 1 and (tmp_path / "builtin" / "run_settings.json").is_file()
    data = _pngs(tmp_path / "ffhq-test", 2, 6)  # the folder read (ffhq's --data), whatever --dataset says
    with pytest.raises(ValueError, match="is the dataset.s folder"):
        bench_runner._check_not_dataset(data, str(data))


def test_a_config_takes_tasks_and_methods_as_a_comma_string_too():
    """BenchConfig(tasks="sr4") iterated the string's letters: "no preset for task 's'"."""
    cfg = BenchConfig(dataset="builtin", out="x", tasks="sr4, denoise", methods="bicubic,")
    cfg.validate()
    assert (cfg.tasks, cfg.methods) == (["sr4", "denoise"], ["bicubic"])


def test_a_second_bench_on_a_folder_in_use_is_refused(tmp_path):
    """Two benches on one --out each replaced per_image.csv under the other: the rows one wrote later were lost,
    and both exited 0 (both also passed the "already holds results" check when started together)."""
    from filelock import FileLock

    from ncvsd_cli.bench import runner

    data, out = _pngs(tmp_path / "d", 1, 0), tmp_path / "o"
    out.mkdir()
    with FileLock(str(out / runner.LOCK_NAME.format(""))), pytest.raises(ValueError, match="in use by another"):
        _classical(tmp_path, data, out)
    outcome = _classical(tmp_path, data, out)  # released: it runs
    assert outcome.computed == 1
    with pytest.raises(ValueError, match="already holds results"):  # (its own lock released at the end)
        _classical(tmp_path, data, out)
    fresh = tmp_path / "new"
    with pytest.raises(ValueError, match="LPIPS-alex needs images of at least"):  # (refused once it holds the lock)
        _classical(tmp_path, data, fresh, resolution=8)
    assert not fresh.exists()  # a refused run leaves no folder (nor its lock)


def test_a_plain_bench_and_torchruns_rank_0_exclude_each_other(tmp_path):
    """A plain run locked .ncvsd-bench.lock and torchrun's ranks their own, so the two ran at once on one folder
    (rank 0's merge replaced the plain run's per_image.csv). Ranks > 0 lock their part file's name."""
    from ncvsd_cli.bench import runner

    held = runner._lock_out(tmp_path, 0, 1)
    with pytest.raises(ValueError, match="in use by another ncvsd bench"):
        runner._lock_out(tmp_path, 0, 2)
    other = runner._lock_out(tmp_path, 1, 2)  # (its part file: no plain run writes it)
    with pytest.raises(ValueError, match="in use"):
        runner._lock_out(tmp_path, 1, 2)
    held.release()
    other.release()
    runner._lock_out(tmp_path, 0, 2).release()


def test_a_network_free_plug_in_method_is_labelled_algorithmic_not_ai(monkeypatch):
    """source_type asked for a ClassicalMethod: a plug-in's needs="none" sampler was labelled "Edited with AI"."""
    from ncvsd_cli import xmp
    from ncvsd_cli.sampling import methods

    monkeypatch.setitem(methods.METHODS, "my-nlm", methods.Method("my-nlm", "none",
                                                                  "ncvsd_cli.sampling.classical:nl_means"))
    assert methods.source_type("my-nlm") == xmp.ENHANCED
    assert methods.source_type("nl-means") == xmp.ENHANCED and methods.source_type("pnp-gd") == xmp.EDITED_BY_AI
    assert methods.source_type("pnp-gd-warm-mean8") == xmp.EDITED_BY_AI


def test_a_generator_given_for_dps_alone_that_names_no_teacher_is_said(assets, caplog):
    """`-c GEN --methods dps`: GEN names the teacher DPS runs; one that names none (no provenance) ran the shipped
    teacher without a word once "--checkpoint is not used" was no longer said."""
    import logging

    cfg = BenchConfig(generator=str(assets / "generator.safetensors"), methods=["dps"], tasks=["sr4"])
    with caplog.at_level(logging.WARNING, logger="ncvsd.bench"):
        bench_runner._note_unused(cfg)
        nets = bench_runner._load_networks(cfg, "cpu", quiet=True)
    assert "names no teacher it was distilled from" in caplog.text and "is not used" not in caplog.text
    assert nets.generator is None and nets.info["teacher"]["name"] == "builtin64-teacher.safetensors"
