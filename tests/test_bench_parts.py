"""Unit tests of the benchmark's parts: datasets, seeds and measurements, CSV rows and resume, aggregation."""

import csv
import json
import math
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import operators
from ncvsd_cli.bench import datasets, measurements, report, results


def _png(path, size=(16, 16), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


# ------------------------------------------------------------------------------------------------- datasets
def test_fit_resolution_crops_centre_then_resizes():
    x = torch.linspace(-1, 1, 12 * 20).reshape(1, 1, 12, 20).expand(1, 3, 12, 20)
    assert torch.equal(datasets.fit_resolution(x, 12), x[..., :, 4:16])          # centre square, no resize
    y = datasets.fit_resolution(x, 5)
    assert y.shape == (1, 3, 5, 5) and y.min() >= -1 and y.max() <= 1
    with pytest.raises(ValueError, match="resolution"):
        datasets.fit_resolution(x, 0)


def test_folder_and_zip_give_the_same_sorted_images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, seed in (("b.png", 1), ("a.png", 2), ("c.jpg", 3)):
        _png(folder / name, (20, 13), seed)
    (folder / "notes.txt").write_text("not an image")
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"sub/{p.name}")
    a = datasets.load_dataset(str(folder), 8)
    b = datasets.load_dataset(str(tmp_path / "imgs.zip"), 8)
    assert [i.id for i in a.images] == [i.id for i in b.images] == ["a", "b", "c"]
    assert [i.index for i in a.images] == [0, 1, 2]
    for ia, ib in zip(a.images, b.images):
        xa, xb = ia.load(), ib.load()
        assert xa.shape == (1, 3, 8, 8) and torch.equal(xa, xb)
    assert len(datasets.limit(a, 2)) == 2


@pytest.mark.parametrize("names, ids", [
    (["x/a.png", "y/a.png"], ["x/a", "y/a"]),                      # equal stems: paths without suffix
    (["a.png", "a.jpg", "s/b.png", "s/b.webp"], ["a.jpg", "a.png", "s/b.png", "s/b.webp"]),  # whole paths
])
def test_image_ids_are_unique_so_no_row_or_sample_folder_is_shared(tmp_path, names, ids):
    for k, name in enumerate(names):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        _png(tmp_path / name, seed=k)
    assert [i.id for i in datasets.load_dataset(str(tmp_path), 8).images] == ids


def test_hidden_copies_and_mac_resource_forks_are_not_images(tmp_path):
    """Notebook checkpoint copies would sort first (shifting FFHQ's first 100) and "._x" forks fail to decode;
    the benchmark and training list the same files."""
    from ncvsd_cli.training import data

    _png(tmp_path / "00000.png")
    for junk in (".ipynb_checkpoints/00000-checkpoint.png", "__MACOSX/._00000.png", "._00001.png"):
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    with zipfile.ZipFile(tmp_path.with_suffix(".zip"), "w") as zf:
        for p in sorted(tmp_path.rglob("*")):
            zf.write(p, p.relative_to(tmp_path).as_posix())
    for path in (tmp_path, tmp_path.with_suffix(".zip")):
        assert [i.id for i in datasets.load_dataset(str(path), 8).images] == ["00000"]
        assert len(data.folder_or_zip_source(path)) == 1
    dotted = tmp_path.parent / f"{tmp_path.name}-dotted.zip"  # "./x.png" members, as some zip tools write them
    with zipfile.ZipFile(dotted, "w") as zf:
        zf.writestr(zipfile.ZipInfo("./00000.png"), (tmp_path / "00000.png").read_bytes())
    assert len(data.folder_or_zip_source(dotted)) == 1
    _png(tmp_path / ".hidden.png")  # a hidden image named on its own is the user's choice
    assert len(datasets.load_dataset(str(tmp_path / ".hidden.png"), 8).images) == 1


def test_missing_or_empty_dataset_path(tmp_path):
    with pytest.raises(datasets.DatasetError, match="does not exist"):
        datasets.load_dataset(str(tmp_path / "nope"), 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DatasetError, match="no images"):
        datasets.load_dataset(str(tmp_path / "empty"), 8)


def test_ffhq_missing_message(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.FFHQ_ENV, raising=False)
    with pytest.raises(datasets.DatasetError) as err:
        datasets.load_dataset("ffhq", 32)
    msg = str(err.value)
    assert "--data" in msg and "NCVSD_FFHQ" in msg and "100" in msg and "ffhq_val" in msg
    few = tmp_path / "few"
    few.mkdir()
    _png(few / "00000.png")
    monkeypatch.setenv(datasets.FFHQ_ENV, str(few))
    with pytest.raises(datasets.DatasetError, match="holds 1 images"):
        datasets.load_dataset("ffhq", 32)


def test_ffhq_takes_first_100_sorted_from_zip(monkeypatch, tmp_path):
    path = tmp_path / "ffhq.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in reversed(range(103)):
            zf.writestr(f"ffhq_val/{i:05d}.png", b"")  # never decoded: listing only
    monkeypatch.setenv(datasets.FFHQ_ENV, str(path))
    ds = datasets.load_dataset("ffhq", 256)
    assert len(ds) == 100 and ds.name == "ffhq"
    assert [i.id for i in ds.images[:2]] == ["00000", "00001"] and ds.images[-1].id == "00099"


def test_builtin_is_heldout_and_deterministic():
    from ncvsd_cli.training.data import BUILTIN_HELDOUT, BUILTIN_TRAIN

    ds = datasets.load_dataset("builtin", 32)
    assert len(ds) == 5 * len(BUILTIN_HELDOUT)
    assert {i.id.split("-")[0] for i in ds.images} == set(BUILTIN_HELDOUT)
    assert not set(BUILTIN_HELDOUT) & set(BUILTIN_TRAIN)
    x, x2 = ds.images[1].load(), ds.images[1].load()
    assert x.shape == (1, 3, 32, 32) and torch.equal(x, x2) and x.std() > 0.05


# -------------------------------------------------------------------------------------- seeds, measurements
def test_derive_seed_is_stable_and_distinct():
    s = measurements.derive_seed(0, 3)
    assert s == measurements.derive_seed(0, 3) and 0 <= s < 2**63
    assert len({measurements.derive_seed(a, b, c) for a in range(3) for b in range(3) for c in range(3)}) == 27
    with pytest.raises(ValueError, match="seed"):
        measurements.derive_seed(-1, 0)


def test_measurement_depends_only_on_seed_and_index():
    op = operators.create("inpaint-box", (3, 16, 16))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    y1 = measurements.make_measurement(op, x, 0.05, seed=0, index=4)
    y2 = measurements.make_measurement(op, x, 0.05, seed=0, index=4)
    y3 = measurements.make_measurement(op, x, 0.05, seed=0, index=5)
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)
    assert measurements.measurement_preview(op, y1, (3, 16, 16)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("task", ["sr4", "phase-retrieval"])
def test_measurement_preview_is_an_image(task):
    op = operators.create(task, (3, 16, 16))
    y = op.measure(torch.zeros(1, 3, 16, 16), 0.05, torch.Generator().manual_seed(0))
    p = measurements.measurement_preview(op, y, (3, 16, 16))
    assert p.shape == (1, 3, 16, 16) and p.min() >= -1 and p.max() <= 1 and torch.isfinite(p).all()


# ------------------------------------------------------------------------------------------- CSV and resume
def _row(image="a", method="pnp-gd", nfe=1, run=0, psnr=20.0, lp=0.3, **kw):
    return {"dataset": "d", "image": image, "image_index": 0, "task": "sr4", "method": method, "nfe": nfe,
            "seed": 0, "run": run, "network_evals": nfe, "operator_evals": 2 * nfe, "resolution": 16,
            "sigma_y": 0.05, "psnr": psnr, "ssim": 0.5, "lpips_alex": lp, "seconds": 0.1, "peak_mem_mb": 1.0,
            "mem_kind": "cpu_rss_peak_delta", "device": "cpu", **kw}


def test_row_writer_resume_and_partial_line(tmp_path):
    path = tmp_path / "per_image.csv"
    cols = results.columns("alex")
    with results.RowWriter(path, cols) as w:
        w.write(_row("a"))
        w.write(_row("b"))
    with open(path, "a") as fh:  # an interruption in the middle of a row
        fh.write("d,c,0,sr4,pnp-gd,1,0")
    assert [r["image"] for r in results.read_rows(path)] == ["a", "b"]
    assert results.finished_keys([path]) == {results.row_key(_row("a")), results.row_key(_row("b"))}
    with results.RowWriter(path, cols) as w:  # appending drops the cut line first
        w.write(_row("c"))
    rows = results.read_rows(path)
    assert [r["image"] for r in rows] == ["a", "b", "c"] and rows[0]["nfe"] == 1 and rows[0]["psnr"] == 20.0
    with pytest.raises(ValueError, match="lpips"):
        results.RowWriter(path, results.columns("vgg"))
    with pytest.raises(ValueError, match="missing"), results.RowWriter(path, cols) as w:
        w.write({"dataset": "d"})


def test_merge_deduplicates(tmp_path):
    cols = results.columns("alex")
    for name, images in (("p0.csv", "ab"), ("p1.csv", "bc")):
        with results.RowWriter(tmp_path / name, cols) as w:
            for i in images:
                w.write(_row(i))
    rows = results.merge([tmp_path / "p0.csv", tmp_path / "p1.csv"], tmp_path / "all.csv", cols)
    assert sorted(r["image"] for r in rows) == ["a", "b", "c"]
    assert len(results.read_rows(tmp_path / "all.csv")) == 3


@pytest.mark.parametrize("label, width", [("pnp-gd-warm-mean8\nNFE 16", 96), ("pseudo-inverse", 96),
                                          ("ground truth", 40), ("teacher-mmse", 24)])
def test_grid_column_labels_wrap_and_are_never_cut(label, width):
    """A grid's column label fits its tile by wrapping at hyphens and spaces; every character is kept (it used to
    cut "pnp-gd-warm-mean8" to "pnp-gd-warm-mean" on a 96-px tile)."""
    head = report.column_head(label, width)
    assert all(len(line) <= max(width // 6, 1) or "-" not in line and " " not in line for line in head.split("\n"))
    assert head.replace("\n", "").replace(" ", "") == label.replace("\n", "").replace(" ", "")


# --------------------------------------------------------------------------------------------- aggregation
def test_summary_mean_std_and_labelled_best_of_k(tmp_path):
    rows = [_row("a", run=0, psnr=10.0, lp=0.5), _row("a", run=1, psnr=14.0, lp=0.1),
            _row("b", run=0, psnr=20.0, lp=0.2), _row("b", run=1, psnr=22.0, lp=0.4)]
    mean, best = report.summarize(rows, "alex")
    assert mean["aggregation"] == "mean" and best["aggregation"] == "best-of-2"
    assert mean["n_images"] == 2 and mean["runs"] == 2
    assert mean["psnr_mean"] == pytest.approx((12 + 21) / 2)
    assert mean["psnr_std"] == pytest.approx(np.std([12, 21], ddof=1))
    assert best["psnr_mean"] == pytest.approx((14 + 22) / 2)          # max PSNR per image
    assert best["lpips_alex_mean"] == pytest.approx((0.1 + 0.2) / 2)  # min LPIPS per image, independently
    single = report.summarize([_row("a")], "alex")
    assert len(single) == 1 and math.isnan(single[0]["psnr_std"])  # undefined, not 0
    assert "±" not in report.markdown(single, "alex").split("## ", 1)[1]  # one image: no spread to show
    report.write_summary(tmp_path, [_row("a")], "alex")
    assert json.loads((tmp_path / "summary.json").read_text(), parse_constant=lambda c: 1 / 0)["summary"][0][
        "psnr_std"] is None  # strict JSON: null, no NaN token
    md = report.markdown(report.summarize(rows, "alex"), "alex")
    assert "best-of-2" in md and "LPIPS-alex" in md and "ddof=1" in md
    assert not math.isnan(mean["seconds_mean"])


def test_lpips_column_names_the_net():
    assert results.lpips_column("vgg") == "lpips_vgg" and "lpips_alex" in results.columns("alex")
    with pytest.raises(ValueError, match="squeeze"):
        results.lpips_column("squeeze")


def test_csv_is_plain_csv(tmp_path):
    with results.RowWriter(tmp_path / "x.csv", results.columns("alex")) as w:
        w.write(_row("a", psnr=float("nan")))
    with open(tmp_path / "x.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == results.columns("alex") and rows[1][rows[0].index("psnr")] == "nan"
    assert math.isnan(results.read_rows(tmp_path / "x.csv")[0]["psnr"])


def test_phone_photos_are_training_and_benchmark_images(tmp_path):
    """A folder of HEIC photos (iPhones') is a training source and a benchmark dataset like one of PNGs."""
    import shutil
    from pathlib import Path

    import pytest

    from ncvsd_cli.training import data

    pytest.importorskip("pillow_heif")
    shutil.copy(Path(__file__).parent / "data" / "tiny.heic", tmp_path / "IMG_0001.HEIC")
    _png(tmp_path / "b.png")
    source = data.folder_or_zip_source(tmp_path)
    assert len(source) == 2 and source.get(0).shape == (13, 17, 3)
    assert [i.id for i in datasets.load_dataset(str(tmp_path), 8).images] == ["IMG_0001", "b"]


def test_builtin_says_when_its_crops_are_enlarged(caplog):
    """At --resolution 256 the quadrant crops of coffee and chelsea (photos of 400 and 300 px) were enlarged without
    a word, while a folder's small file is said to be."""
    import logging

    from ncvsd_cli.bench.datasets import builtin_heldout

    with caplog.at_level(logging.WARNING, logger="ncvsd.bench"):
        builtin_heldout(64)
        assert not caplog.records
        builtin_heldout(256)
    (record,) = caplog.records
    assert "coffee (600x400), chelsea (451x300) are enlarged" in record.getMessage()
    assert "astronaut" not in record.getMessage() and "--resolution 150 or less" in record.getMessage()


@pytest.mark.parametrize("task", ["denoise", "sr4"])
def test_a_grey_image_is_measured_with_one_noise_field_as_degrade_does(task):
    """bench gave a grey image's three channels their own noise (three looks, about 2 dB easier than a grey photo
    restored through `ncvsd degrade`): now one field in the three, as degrade; a colour image keeps its own."""
    from ncvsd_cli.measurement import degrade

    grey = torch.linspace(-0.5, 0.5, 16 * 16).reshape(1, 1, 16, 16).expand(1, 3, 16, 16).contiguous()
    op = operators.create(task, (3, 16, 16))
    y = measurements.make_measurement(op, grey, 0.1, 0, 0)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 0], y[:, 2]) and float((y - op(grey)).std()) > 0.05
    assert torch.equal(degrade(grey[:, :1], task, sigma_y=0.1).y[:, 0], degrade(grey[:, :1], task, sigma_y=0.1).y[:, 1])
    colour = grey.clone()
    colour[:, 0] += 0.2
    yc = measurements.make_measurement(op, colour, 0.1, 0, 0) - op(colour)
    assert not torch.allclose(yc[:, 1], yc[:, 2])
