"""The prepared benchmark scripts run end to end on the CPU with tiny settings (their real runs need a GPU or
minutes): `benchmarks/gpu_speed.sh --tiny`, `benchmarks/bench_batching.py`, `benchmarks/blur_boundary.py` and others."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    # the shell scripts call python3: the interpreter running the tests, also from a venv that is not activated
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT), "NCVSD_PROGRESS": "0"}


def _photo48(path: Path) -> Path:
    """The bundled example photo at 48x48 px, written to `path` (its folder created)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(ROOT / "ncvsd_cli/examples/astronaut.png").convert("RGB").resize((48, 48)).save(path)
    return path


def _script(tmp_path: Path, name: str, *args: str) -> Path:
    """Run benchmarks/<name> on one 48-px photo folder with `args` (its output folder: the returned path)."""
    val = _photo48(tmp_path / "val" / "a.png").parent
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), str(val), "--out", str(out), *args],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return out


def test_gpu_speed_script_tiny_on_cpu(tmp_path):
    out = tmp_path / "speed"
    res = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_speed.sh"), "--device", "cpu", "--tiny", "--threads",
                          "1", "--precisions", "fp32", "--out", str(out)], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {(r["batch"], r["row"]) for r in rows} == {(b, n) for b in (1, 2)
                                                      for n in ("pass", "default", "paper49", "tpass", "dps", "daps")}
    for r in rows:
        assert r["seconds"] > 0 and r["images_per_s"] > 0 and r["floor_ratio"] > 0
    assert {r["nfe"] for r in rows if r["row"] == "default"} == {10}
    assert "| fp32" in (out / "summary.md").read_text()
    assert not (out / "bench-batching").exists()  # the bench comparison is for real runs only


def test_bench_batching_script(tmp_path):
    out = tmp_path / "bb"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_batching.py"), "--device", "cpu", "--batch",
                          "2", "--limit", "2", "--tasks", "inpaint-box", "--methods", "pnp-gd,pnp-gd-warm",
                          "--nfe", "2", "--out", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["rows"] == 4 and set(doc["wall_s"]) == {"1", "2"} and all(len(w) == 2 for w in doc["wall_s"].values())
    assert max(doc["max_abs_score_difference"].values()) < 1e-3
    assert "Speed-up" in (out / "summary.md").read_text()


def test_heldout_bars_compare_the_right_rows():
    """`heldout_bars.bars`: one sample against the best classical LPIPS, the mean of 8 against the best classical
    PSNR, the denoiser against the noisy input (pseudo-inverse)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("heldout_bars", ROOT / "benchmarks/heldout_bars.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def row(task, method, psnr, lpips):
        return {"task": task, "method": method, "psnr_mean": psnr, "lpips_alex_mean": lpips}

    (sr4,) = mod.bars("restore", [row("sr4", "pnp-gd-warm", 20.0, 0.40), row("sr4", "pnp-gd-warm-mean8", 24.0, 0.3),
                                  row("sr4", "bicubic", 25.0, 0.46), row("sr4", "pseudo-inverse", 23.0, 0.45)])
    assert sr4["lpips_classical"] == 0.45 and sr4["classical_lpips_method"] == "pseudo-inverse"
    assert sr4["psnr_classical"] == 25.0 and sr4["bar_lpips"] and not sr4["bar_psnr8"]
    (den,) = mod.bars("denoise05", [row("denoise", "denoiser", 33.0, 0.06), row("denoise", "denoiser-mean8", 35, 0.1),
                                    row("denoise", "teacher-mmse", 37.0, 0.08),
                                    row("denoise", "pseudo-inverse", 32.0, 0.05)])
    assert den["lpips_noisy"] == 0.05 and not den["bar_lpips"] and den["psnr_mmse"] == 37.0
    assert "psnr_nl_means" not in den  # a run without it (before nl-means existed)
    (den,) = mod.bars("denoise20", [row("denoise", "denoiser", 30.0, 0.1), row("denoise", "denoiser-mean8", 30, 0.2),
                                    row("denoise", "teacher-mmse", 31.0, 0.09), row("denoise", "nl-means", 29.5, 0.11),
                                    row("denoise", "pseudo-inverse", 20.0, 0.46)])
    assert den["lpips_nl_means"] == 0.11 and den["psnr_nl_means"] == 29.5 and den["bar_lpips"]


def test_blur_boundary_script(tmp_path):
    """benchmarks/blur_boundary.py on one 48-px photo: both models, both methods, a summary and a grid."""
    from PIL import Image

    out = _script(tmp_path, "blur_boundary.py", "--tasks", "deblur-gauss")
    rows = (out / "rows.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("image,task,method,model,psnr,lpips,seconds")
    assert "| deblur-gauss | pnp-gd-warm | reflect |" in (out / "summary.md").read_text()
    assert Image.open(out / "grid-deblur-gauss.jpg").size == (4 * 48, 48)


def test_blur_estimate_script(tmp_path):
    """benchmarks/blur_estimate.py on one 48-px photo: accuracy rows, the input and the four restorations, a
    summary that counts photos below the input, and a grid."""
    from PIL import Image

    out = _script(tmp_path, "blur_estimate.py", "--widths", "1.5")
    assert len((out / "accuracy.csv").read_text().splitlines()) == 1 + 5 * 2 + 4
    rows = (out / "restore.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0] == "image,width,noise,kernel,estimate,psnr,lpips"
    summary = (out / "summary.md").read_text()
    assert "| 1.5 | 0.05 | estimated |" in summary and "| 1.5 | 0.05 | input |" in summary
    assert "| 0/1 |" in summary.split("| input |")[1].splitlines()[0]  # the input is never below itself
    assert Image.open(out / "grid-1.5.jpg").size == (6 * 48, 48)


def test_lossy_blur_reading_script(tmp_path):
    """benchmarks/lossy_blur_reading.py on one 48-px photo at 96 px: each blur read plainly and through the JPEG's
    coding, one restoration per blur and reading, the summary's tables and the grid."""
    from PIL import Image

    out = _script(tmp_path, "lossy_blur_reading.py", "--size", "96", "--restore", "1")
    rows = (out / "readings.csv").read_text().splitlines()
    assert len(rows) == 1 + 7 and rows[0] == "set,photo,noise,quality,blur,truth,plain,plain_s,coded,coded_s,coded_model"
    assert len((out / "restore.csv").read_text().splitlines()) == 1 + 2 * 2
    summary = (out / "summary.md").read_text()
    assert "| 0.04 | 75 | disk | 5 |" in summary and "| disk | 5 | coded |" in summary
    assert Image.open(out / "grid-restore.jpg").size == (4 * 96, 2 * 96)


def test_blur_edges_script(tmp_path):
    """benchmarks/blur_edges.py on one 48-px photo at 64 px: each blur read without and with the edge check (PNG and
    JPEG); --edges: the edge statistic over its grid, the rows' limits at least EDGE_OFFSET."""
    out = _script(tmp_path, "blur_edges.py", "--size", "64", "--noise", "0", "--qualities", "0,90")
    rows = (out / "readings.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 7 and rows[0] == "photo,noise,quality,blur,truth,off,on,capped"
    assert "| 0 | PNG | gauss | 3 |" in (out / "summary.md").read_text()
    out = _script(tmp_path, "blur_edges.py", "--size", "64", "--edges")
    rows = (out / "edges.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 3 * 8 and rows[0] == "photo,noise,quality,blur,truth,luma_noise,edge_width,limit"
    assert all(float(r.split(",")[-1]) >= 1.0 for r in rows[1:])
    assert "| 0.16 | gauss | 6 |" in (out / "edges.md").read_text()


def test_motion_short_script(tmp_path):
    """benchmarks/motion_short.py on one photo (halved, cut to 256 px: the bundled example) for two shake lengths,
    restored with 1 network call: the kernel read and the identity, each a PSNR."""
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(ROOT / "ncvsd_cli/examples/astronaut.png").convert("RGB").resize((512, 512)).save(photos / "a.png")
    script = (ROOT / "benchmarks/motion_short.py").read_text()
    assert "LENGTHS = (3, 5, 7, 9, 13)" in script
    res = subprocess.run([sys.executable, "-c", ("import sys, runpy; sys.argv = sys.argv[1:]; "
                          "import ncvsd_cli.restore as r; f = r.restore_image; "
                          "r.restore_image = lambda *a, **k: f(*a, **{**k, 'nfe': 1}); "
                          "sys.path.insert(0, 'benchmarks'); import motion_short as m; m.LENGTHS = (3, 9); m.main()"),
                          "motion_short.py", str(photos), "--out", str(tmp_path / "out"), "--limit", "1", "--first",
                          "0"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = (tmp_path / "out" / "short.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 and rows[0] == "photo,length,extent,input,read,identity"
    assert "| read − identity" in (tmp_path / "out" / "summary.md").read_text()


def test_cg_iterations_script(tmp_path):
    """benchmarks/cg_iterations.py on one 48-px photo: every method at every noise level, now and before."""
    photo = _photo48(tmp_path / "a.png")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks/cg_iterations.py"), str(photo), "--out",
                          str(tmp_path / "cg")], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [line for line in (tmp_path / "cg" / "summary.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 2 * (1 + 3 * 3) and sum("| now |" in r for r in rows) == 10


def test_noise_level_script(tmp_path):
    """benchmarks/noise_level.py on one 48-px photo: both settings at both noise levels, a summary and a grid."""
    from PIL import Image

    out = _script(tmp_path, "noise_level.py", "--cases", "sr4")
    rows = (out / "rows.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 and rows[0] == "set,image,case,noise,sigma_y,psnr,lpips,seconds"
    assert len((out / "readings.csv").read_text().splitlines()) == 1 + 3
    assert "| validation | sr4 | 0.0 |" in (out / "summary.md").read_text()
    assert Image.open(out / "grid-validation-sr4.jpg").size == (4 * 48, 2 * 48)


def test_noise_estimator_script(tmp_path):
    """benchmarks/noise_estimator.py on one 48-px photo: readings of both estimators for every case and level, the
    denoise restorations before and now at the levels they read (one restoration where they agree)."""
    out = _script(tmp_path, "noise_estimator.py", "--cases", "denoise")
    readings = [r.split(",") for r in (out / "readings.csv").read_text().splitlines()]
    assert readings[0] == ["set", "image", "case", "noise", "Haar", "patches"] and len(readings) == 1 + 4 * 4 + 6
    noisy = next(r for r in readings if r[2] == "denoise" and r[3] == "0.1")
    assert abs(float(noisy[5]) - 0.1) < 0.015  # the astronaut at 48 px: the patches read the noise added
    rows = [r.split(",") for r in (out / "rows.csv").read_text().splitlines()]
    assert rows[0] == ["set", "image", "case", "noise", "sigma_y", "level", "psnr", "lpips", "seconds"]
    assert len(rows) == 1 + 4 * 2
    for before, now in zip(rows[1::2], rows[2::2], strict=True):
        assert (before[4], now[4]) == ("before", "now") and (before[5] != now[5] or before[6:] == now[6:])
    assert "| validation | denoise | 0.05 |" in (out / "summary.md").read_text()


def test_grey_noise_script(tmp_path):
    """benchmarks/grey_noise.py on one 48-px photo (as validation and held-out): colour readings equal before and
    now, grey ones closer to the noise added now, the grey denoisings at both levels and the picture."""
    val = _photo48(tmp_path / "val" / "a.png").parent
    out = _script(tmp_path, "grey_noise.py", "--heldout", str(val))
    rows = [r.split(",") for r in (out / "grey-readings.csv").read_text().splitlines()]
    assert rows[0] == ["set", "image", "size", "colour", "noise", "before", "now"] and len(rows) == 1 + 2 * 2 * 2 * 6
    for r in rows[1:]:
        if r[3] == "colour":
            assert r[5] == r[6]
        elif r[4] in ("0.0", "0.01"):
            assert float(r[6]) < float(r[5])
    text = (out / "grey.md").read_text()
    assert text.count("| validation | a | ") == 3 and (out / "grey-validation-a.png").is_file()


def test_jpeg_inputs_script(tmp_path):
    """benchmarks/jpeg_inputs.py on one 48-px photo: both floors at two qualities, the levels used, a summary and
    a grid; at quality 95 both floors are 0.01, so both rows are one restoration."""
    from PIL import Image

    out = _script(tmp_path, "jpeg_inputs.py", "--cases", "deblur-gauss-width-read", "--qualities", "50,95")
    rows = (out / "rows.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 and rows[0] == "set,image,case,quality,sigma_y,level,jpeg_sigma,psnr,lpips,seconds"
    q95 = [r.split(",") for r in rows[1:] if r.split(",")[3] == "95"]
    assert q95[0][5] == q95[1][5] == "0.01" and q95[0][7:9] == q95[1][7:9]
    q50 = {r.split(",")[4]: r.split(",") for r in rows[1:] if r.split(",")[3] == "50"}
    assert q50["JPEG floor"][6] == "0.0292"  # libjpeg's quality-50 steps 16, 11, 12, 12
    levels = {k: float(v[5]) for k, v in q50.items()}  # the same reading, floored at 0.01 or hypot(0.01, 0.029)
    assert levels["JPEG floor"] == min(max(levels["8-bit floor"], 0.03), 0.2)
    readings = (out / "readings.csv").read_text().splitlines()
    assert readings[0] == "set,image,case,quality,read,jpeg_sigma,jpeg_error" and len(readings) == 1 + 2
    assert "| validation | deblur-gauss-width-read | 50 |" in (out / "summary.md").read_text()
    assert Image.open(out / "grid-validation-deblur-gauss-width-read.jpg").size == (4 * 48, 2 * 48)


def test_baseline_sweep_script(tmp_path):
    """benchmarks/baseline_sweep.py on one photo: DPS's zeta at 2 steps, one row per value, keyed by the parameter."""
    out = _script(tmp_path, "baseline_sweep.py", "--method", "dps", "--param", "zeta", "--values", "1,0.5",
                  "--nfe", "2", "--tasks", "sr4")
    rows = json.loads((out / "rows.json").read_text())
    assert [(r["task"], r["zeta"]) for r in rows] == [("sr4", 1.0), ("sr4", 0.5)]
    assert all(0 <= r["lpips"] <= 1 and r["psnr"] > 0 for r in rows)


def test_motion_long_shakes_script(tmp_path):
    """benchmarks/motion_long_shakes.py on one photo (256-px centre square for the reading, 128 px for the
    restoration) with 21-px kernels: the reading rows with their halves' agreement, the restoration rows with the
    input's scores, and the picture."""
    import csv

    from PIL import Image

    photo = _photo48(tmp_path / "val" / "a.png")
    Image.open(ROOT / "ncvsd_cli/examples/astronaut.png").convert("RGB").resize((128, 128)).save(photo)
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks/motion_long_shakes.py"), "--out", str(out), "--read",
                          str(photo.parent), "--val", str(photo.parent), "--sizes", "21"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    read = list(csv.DictReader((out / "reading.csv").read_text().splitlines()))
    assert [(r["size"], r["noise"], r["read"]) for r in read] == [("21", "0.01", "31"), ("21", "0.04", "31")]
    assert all(0 < float(r["agreement"]) <= 1 and 0 < float(r["similarity"]) <= 1 for r in read)
    rows = list(csv.DictReader((out / "restore.csv").read_text().splitlines()))
    assert [(r["image"], r["seed"]) for r in rows] == [("a", "0"), ("a", "10")]  # two kernels
    assert all(float(r["lpips"]) < float(r["input_lpips"]) for r in rows)  # sharper than the shaken input
    assert Image.open(out / "a-k21-s0.png").size == (3 * 128, 128)


def test_camera_noise_check_counts_readings_against_the_true_std(monkeypatch):
    """`camera_noise_check.summary`: per view and demosaicing, readings within 0.7-1.5x / under 0.5x / over 1.5x the
    true std, the 4x4 test, and clean photos read above their colour reading by more than restore's rounding."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # it imports camera_noise (OpenCV only when it runs)
    spec = importlib.util.spec_from_file_location("camera_noise_check", ROOT / "benchmarks/camera_noise_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def row(photo, a, true, read, colour=0.01, luma2=0.04, luma4=0.05, view="whole256", demosaic="ea"):
        return {"photo": photo, "view": view, "demosaic": demosaic, "a": a, "true": true, "read": read,
                "colour": colour, "luma2": luma2, "luma4": luma4}

    rows = [row("p", 0.0, 0.0, 0.01), row("q", 0.0, 0.0, 0.02),  # q: read above its colour reading
            row("p", 0.002, 0.04, 0.04), row("q", 0.002, 0.04, 0.01, luma4=0.2),  # q: texture fails the 4x4 test
            row("p", 0.008, 0.08, 0.13), row("q", 0.008, 0.08, 0.12)]
    table = mod.summary(rows)
    assert "| whole256 | ea | 2 | 0.002 | 1 | 1 | 0 | 0 | 1 | 1/2 |" in table, table
    assert "| whole256 | ea | 2 | 0.008 | 1 | 0 | 1 | 0 | 2 | 1/2 |" in table, table
    assert table.startswith("2 photos")


def test_camera_colour_test_summary_splits_training_photos_and_counts_refusals(monkeypatch):
    """`camera_colour_test.summary`: colour2 / l2 where the 4x4 reading raised the level, clean crops it raised (and
    whether the colour test refuses them), readings within 0.7-1.5x / under 0.5x without and with the test."""
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # it imports camera_noise (OpenCV only when it runs)
    spec = importlib.util.spec_from_file_location("camera_colour_test", ROOT / "benchmarks/camera_colour_test.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def row(photo, demosaic, a, true, colour2, l2=0.04, colour=0.01, coarse=None):
        return {"photo": photo, "view": "centre", "demosaic": demosaic, "a": a, "true": true, "colour": colour,
                "colour2": colour2, "l1": 0.02, "l2": l2, "l4": l2, "coarse": l2 if coarse is None else coarse}

    rows = [row("grass", "clean", 0.0, 0.0, 0.008, l2=0.3), row("sky", "clean", 0.0, 0.0, 0.004, coarse=0.0),
            row("grass", "ea", 0.002, 0.04, 0.045), row("sky", "ea", 0.002, 0.04, 0.002),  # sky: refused noise
            row("sky", "white", 0.2, 0.2, 0.2, l2=0.5, colour=0.19)]  # white on texture: the colour reading kept
    table = mod.summary(rows, train={"grass"})
    assert "| white 0.2 | 1 | 0.950 / 0.950 / 0.950 / 0.950 / 0.950 |" in table, table
    assert "| others | white | 0.2 | 1 | 0 / 1 | 0 / 0 |" in table, table
    assert "| grass | training | centre | 0.0100 | 0.3000 | 0.027 | True |" in table, table
    assert "| training | ea | 1 | 1.125 / 1.125 / 1.125 / 1.125 / 1.125 |" in table, table
    assert "| others | ea | 0.002 | 1 | 1 / 0 | 0 / 1 |" in table and "| training | ea | 0.002 | 1 | 1 / 1 | 0 / 0 |" in table


def test_clean_noise_views_summary_counts_high_readings_per_view(monkeypatch):
    """`clean_noise_views.summary`: per view, levels above 0.02 and 0.05 and the largest; the rows above 0.02."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # it imports camera_noise (OpenCV only when it runs)
    mod = _module("clean_noise_views")
    rows = [{"photo": p, "view": v, "side": 256, "colour": 0.003, "coarse": c, "level": lv}
            for p, v, c, lv in (("grass", "centre", 0.3, 0.3), ("sky", "centre", 0.0, 0.0025),
                                ("wall", "centre", 0.03, 0.03), ("grass", "bicubic 1/4", 0.0, 0.01))]
    table = mod.summary(rows, jpeg=85)
    assert "| centre | 3 | 2 | 1 | 0.3000 |" in table and "| bicubic 1/4 | 1 | 0 | 0 | 0.0100 |" in table, table
    assert "| grass | centre | 0.0030 | 0.3000 | 0.3000 |" in table and "| sky |" not in table
    assert table.startswith("Clean photos, JPEG quality 85")


def test_jpeg_colour_test_summary_applies_the_colour_rule_to_the_readings(monkeypatch):
    """`jpeg_colour_test.summary`: the level before (luma readings taken as read) and now (`coded_colour_backs`'
    rule: kept only with the colour strong noise keeps through the coding), per case and photo set apart."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # it imports camera_noise (OpenCV only when it runs)
    mod = _module("jpeg_colour_test")

    def row(photo, kind, lev, true, cells, fine, coarse, c4, level):
        return {"photo": photo, "view": "centre", "kind": kind, "lev": lev, "q": 85, "true": true, "colour": 0.004,
                "cells": cells, "fine": fine, "coarse": coarse, "c4": c4, "level": level}

    rows = [row("grass", "clean", 0, 0.0, 0.008, 0.02, 0.4, 0.5, 0.4),  # texture: no colour, refused
            row("wall", "clean", 0, 0.0, 0.008, 0.02, 0.2, 0.5, 0.02),  # the 4x4 test refuses it already
            row("grass", "white", 0.3, 0.3, 0.15, 0.3, 0.3, 0.3, 0.3),  # strong noise keeps its colour
            row("wall", "white", 0.03, 0.03, 0.003, 0.01, 0.03, 0.035, 0.03)]  # weak: the coding keeps no colour
    table = mod.summary(rows, train={"grass"})
    assert "the recorded level equals the rule before in 4, now in 3." in table, table
    assert "| training | 85 | 1 | 1 / 0 | 1 / 0 | 0.400 / 0.020 |" in table, table
    assert "| others | 85 | 1 | 0 / 0 | 0 / 0 | 0.020 / 0.020 |" in table, table
    assert "| training | white 0.3 | 85 | 1 | 0.300 | 1 / 1 | 0 / 0 | 0 / 0 |" in table, table
    assert "| others | white 0.03 | 85 | 1 | 0.030 | 1 / 1 | 0 / 0 | 0 / 0 |" in table, table
    assert "Clean views still read above 0.05 now:" in table and "| grass | centre |" not in table
    rows[0].update(coarse=0.19, c4=0.2, level=0.19)  # under CODED_COLOUR_MIN_LEVEL: not tested by colour
    assert "| training | 85 | 1 | 1 / 1 | 1 / 1 | 0.190 / 0.190 |" in mod.summary(rows, train={"grass"})
    chroma = [{"photo": "grass", "demosaic": "vng", "lev": 1, "blur": 2, "sub": s, "q": 95, "true": 0.08,
               "level": level, "without": 0.1} for s, level in ((0, 0.005), (0, 0.1), (2, 0.1))]
    table = mod.chroma_summary(chroma)
    assert "| vng | 0.008 | 2 | 4:4:4 | 95 | 2 | 0.080 | 0.100 | 2 / 1 | 0 / 1 |" in table, table
    assert "| vng | 0.008 | 2 | 4:2:0 | 95 | 1 | 0.080 | 0.100 | 1 / 1 | 0 / 0 |" in table, table


def _module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_nl_means_strength_script_parts():
    """benchmarks/nl_means_strength.py: its photos are training views on [-1, 1] at 256 px, and its denoiser (the
    library's settings) removes most of the noise at the rule's strength."""
    import numpy as np
    from skimage.metrics import peak_signal_noise_ratio

    from ncvsd_cli.training.data import BUILTIN_HELDOUT, BUILTIN_TRAIN

    mod = _module("nl_means_strength")
    assert set(mod.PHOTOS) <= set(BUILTIN_TRAIN) and not set(mod.PHOTOS) & set(BUILTIN_HELDOUT)
    x = mod.photo("rocket")[:64, :64]
    assert x.shape == (64, 64, 3) and -1 <= x.min() and x.max() <= 1
    y = x + 0.1 * np.random.default_rng(0).standard_normal(x.shape)
    out = mod.denoise(y, 0.1, mod.nl_means_strength(0.1))
    assert peak_signal_noise_ratio(x, out, data_range=2) > peak_signal_noise_ratio(x, y, data_range=2) + 5


def test_noisy_jpeg_ratio_script_sets_the_bound_back(monkeypatch):
    """benchmarks/noisy_jpeg_ratio.py reads each file's level with both bounds by setting the module constant:
    it is set back afterwards, also when the reading raises."""
    from ncvsd_cli import measurement

    mod = _module("noisy_jpeg_ratio")
    seen = []

    class Fake:
        def measurement(self, y, task, jpeg_sigma=None):
            seen.append(measurement.LOSSY_DENOISE_SCALE_RATIO)
            if len(seen) == 2:
                raise ValueError("boom")
            return type("M", (), {"sigma_y": 0.05})()

    assert mod.level(Fake(), None, 0.01, 1.4) == 0.05
    try:
        mod.level(Fake(), None, 0.01, 3.0)
    except ValueError:
        pass
    assert seen == [1.4, 3.0] and measurement.LOSSY_DENOISE_SCALE_RATIO == 2.0


def test_jpeg_chroma_swaps_luma_and_chroma_without_changing_either(monkeypatch):
    """benchmarks/jpeg_chroma.py's inputs: the luma of one image with the chroma of another; swapping an image with
    itself gives it back, and the swapped image's luma is the first's, its chroma the second's."""
    import torch
    from kornia.color import rgb_to_ycbcr

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its imports of the scripts beside it
    mod = _module("jpeg_chroma")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 9, 7, generator=g) - 0.5
    b = a + torch.rand(1, 3, 9, 7, generator=g) * 0.1 - 0.05  # mixes within the RGB cube (kornia clips to it)
    torch.testing.assert_close(mod.swap_chroma(a, a), a, atol=1e-5, rtol=0)
    mixed = rgb_to_ycbcr((mod.swap_chroma(a, b) + 1) / 2)
    torch.testing.assert_close(mixed[:, :1], rgb_to_ycbcr((a + 1) / 2)[:, :1], atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[:, 1:], rgb_to_ycbcr((b + 1) / 2)[:, 1:], atol=1e-5, rtol=0)


def test_alpha_fringe_script(tmp_path):
    """benchmarks/alpha_fringe.py on one photo at 48 px: the carried and attached errors, the carried rim the
    closer to the truth (the white the rim was composited on is taken out), the summary and the grid."""
    import csv

    from PIL import Image

    out = _script(tmp_path, "alpha_fringe.py", "--size", "48", "--limit", "1")
    with open(out / "rows.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    assert list(row) == ["photo", "carried_rim", "carried_visible", "attached_rim", "attached_visible", "rim_clipped"]
    assert float(row["carried_rim"]) < float(row["attached_rim"])
    assert "| **mean** |" in (out / "summary.md").read_text()
    assert Image.open(out / "grid.jpg").size == (3 * 48, 48)


def test_motion_read_level_script(tmp_path):
    """benchmarks/motion_read_level.py on one 128-px photo with a 17-px shake: the input's row and one per level,
    the reading cached (a rerun adds nothing)."""
    from PIL import Image

    photo = _photo48(tmp_path / "val" / "a.png")
    Image.open(ROOT / "ncvsd_cli/examples/astronaut.png").convert("RGB").resize((128, 128)).save(photo)
    args = [sys.executable, str(ROOT / "benchmarks/motion_read_level.py"), str(photo.parent), str(tmp_path / "out"),
            "--stride", "1", "--sizes", "17", "--levels", "0.02,0.05"]
    for _ in range(2):
        res = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600, check=False)
        assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    assert [r["sigma"] for r in rows] == ["input", "0.02", "0.05"] and (tmp_path / "out" / "a-17.npz").exists()
    assert all(r["apsnr"] >= r["psnr"] - 0.5 and 0 < r["lpips"] < 1 for r in rows)  # (the shift's border left out)
    assert rows[1]["lpips"] < rows[0]["lpips"]  # sharper than the shaken input


def test_teacher_copy_spread_script():
    """benchmarks/teacher_copy_spread.py with few chains: the exact G spreads as the posterior on the exactness
    schedule, the teacher copy (γ 0.1) clearly less; one row per task and generator; denoising's `denoiser` alike
    (its own table)."""
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks/teacher_copy_spread.py"), "--chains", "400"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    tables = res.stdout.split("\n\n")
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): float(line.split("|")[3])
            for line in tables[0].splitlines() if line.startswith("| ") and "---" not in line and "task" not in line}
    assert len(rows) == 9
    for task in ("sr4", "deblur-gauss", "inpaint-random"):
        assert 0.85 < rows[(task, "exact G")] < 1.15 and rows[(task, "copy γ 0.1")] < 0.75, rows
    denoise = {tuple(c.strip() for c in line.split("|")[1:3]): float(line.split("|")[3])  # denoising's table
               for line in tables[1].splitlines() if line.startswith("| ") and "---" not in line and "σ_y" not in line}
    assert len(denoise) == 9 and all(0.85 < denoise[("exact G", s)] < 1.15 for s in ("0.05", "0.1", "0.2"))
    assert all(denoise[("copy γ 0.1", s)] < 0.5 for s in ("0.05", "0.1", "0.2")), denoise
