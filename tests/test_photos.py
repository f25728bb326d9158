"""The `photos` training set: manifest, exclusion of held-out / validation photos, .rcc reading, building from
unpacked packages (no network), the pyramid + decode cache of folder/zip sources, `--data photos`, the preset."""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ncvsd_cli.training import data, photos

LICENCE = re.compile(r"^(CC0-1\.0|Public Domain|CC-BY(-SA)?-\d\.\d|L?GPL-\d(\.0)?\+?.*)$")


def _png(a: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt, **kw)
    return buf.getvalue()


def _colour(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour picture (gradients + one blob), unlike any excluded photo."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    blob = np.exp(-((yy - rng.random()) ** 2 + (xx - rng.random()) ** 2) * 20)
    return (np.stack([xx, yy, blob], -1) * 255).astype(np.uint8)


def test_manifest_lists_enough_licensed_colour_photos():
    doc = photos.load_manifest()
    items = doc["photos"]
    assert len(items) >= 100
    assert sum("people" in e["tags"] for e in items) >= 5 and sum("animal" in e["tags"] for e in items) >= 50
    assert all(LICENCE.match(e["licence"]) for e in items), {e["licence"] for e in items}
    assert all(re.fullmatch(r"[0-9a-f]{64}", e["sha256"]) for e in items)
    assert {e["package"] for e in items} == set(doc["packages"])
    assert sum(p["photos"] for p in doc["packages"].values()) == len(items)


def test_permissive_subset_is_large_enough_and_holds_people_and_animals():
    items = [e for e in photos.load_manifest()["photos"] if photos.is_permissive(e["licence"])]
    assert len(items) >= 100
    assert sum("people" in e["tags"] for e in items) >= 5 and sum("animal" in e["tags"] for e in items) >= 30


@pytest.mark.parametrize("licence, permissive", [
    ("Public Domain", True), ("CC0-1.0", True), ("CC-BY-2.0", True), ("CC-BY-4.0", True),
    ("CC-BY-SA-4.0", False), ("CC-BY-SA-3.0", False), ("GPL-2+", False), ("LGPL-3.0", False),
    ("CC-BY-NC-4.0", False), ("CC-BY-", False), ("", False), ("proprietary", False),
])
def test_licence_classes(licence, permissive):
    assert photos.is_permissive(licence) is permissive


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "grace_hopper"])
@pytest.mark.parametrize("change", ["none", "half", "jpeg"])
def test_heldout_and_validation_photos_are_refused(name, change):
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            a = np.asarray(Image.open(f).convert("RGB"))
    else:
        import skimage.data

        a = getattr(skimage.data, name)()
    im = Image.fromarray(a)
    if change == "half":
        im = im.resize((im.width // 2, im.height // 2), Image.LANCZOS)
    blob = _png(np.asarray(im), "JPEG", quality=75) if change == "jpeg" else _png(np.asarray(im))
    assert photos.excluded_match(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))) == name
    with pytest.raises(ValueError, match="held-out / validation"):
        photos._photo(blob, "x", 512)


@pytest.mark.parametrize("name", ["rocket", "hubble_deep_field", "retina"])
def test_other_photos_are_not_mistaken_for_excluded_ones(name):
    import skimage.data

    assert photos.excluded_match(getattr(skimage.data, name)()) is None


def _write_manifest(tmp_path, entries, packages=None):
    packages = packages or {"pkg": {"version": "1.0-1", "deb_sha256": "0" * 64, "photos": len(entries)}}
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"packages": packages, "photos": entries}))
    return path


def _entry(name, rel, blob, member=None):
    e = {"name": name, "package": "pkg", "version": "1.0-1", "path": rel, "licence": "CC0-1.0", "author": "someone",
         "tags": ["animal"], "sha256": hashlib.sha256(blob).hexdigest()}
    return {**e, "member": member} if member else e


@pytest.mark.parametrize("field, value, message", [
    ("path", "usr/share/imgaug/quokka.jpg", "held-out or validation"),
    ("licence", "", "lacks"),
    ("version", "2.0-1", "not in the table"),
])
def test_manifest_validation(tmp_path, field, value, message):
    entry = {**_entry("a", "usr/a.png", b"x"), field: value}
    with pytest.raises(ValueError, match=message):
        photos.load_manifest(_write_manifest(tmp_path, [entry]))


def _rcc(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """A version-3 Qt resource file holding /dir/<name> for each of `files` ({name: (bytes, zlib?)})."""
    names, name_off = b"", {}
    for n in ["dir", *files]:
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    blobs, data_off = b"", {}
    for n, (raw, packed) in files.items():
        payload = struct.pack(">I", len(raw)) + zlib.compress(raw) if packed else raw
        data_off[n] = len(blobs)
        blobs += struct.pack(">I", len(payload)) + payload
    node = lambda off, flags, a, b: struct.pack(">IHII", off, flags, a, b) + b"\0" * 8
    tree = node(0, 2, 1, 1) + node(name_off["dir"], 2, len(files), 2)
    for n, (_, packed) in files.items():
        tree += struct.pack(">IHHHI", name_off[n], 1 if packed else 0, 0, 0, data_off[n]) + b"\0" * 8
    header = 24
    return b"qres" + struct.pack(">IIIII", 3, header, header + len(tree) + len(names), header + len(tree), 0) \
        + tree + names + blobs


def test_rcc_members_round_trip():
    files = {"a.webp": (b"first" * 10, False), "b.png": (b"second" * 50, True)}
    assert photos.rcc_members(_rcc(files)) == {f"/dir/{n}": raw for n, (raw, _) in files.items()}
    with pytest.raises(ValueError, match="not a Qt resource"):
        photos.rcc_members(b"PK\3\4")


def test_the_installed_module_builds_the_set_and_refuses_a_bad_manifest(tmp_path, capsys):
    """The messages pointed at benchmarks/build_photos.py, which installed copies lack: `python -m
    ncvsd_cli.training.photos` builds the set (the script calls it)."""
    import runpy
    import sys

    a = _png(_colour(41, 67, 1))
    root = tmp_path / "cache" / "unpacked" / "pkg_1.0-1"
    (root / "usr").mkdir(parents=True)
    (root / ".complete").touch()
    (root / "usr" / "a.png").write_bytes(a)
    manifest = _write_manifest(tmp_path, [_entry("a", "usr/a.png", a)])
    photos.main([str(tmp_path / "set.zip"), "--cache", str(tmp_path / "cache"), "--manifest", str(manifest),
                 "--short-side", "20"])
    assert json.loads(capsys.readouterr().out)["photos"] == 1 and (tmp_path / "set.zip").is_file()
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "build_photos.py"
    argv = sys.argv
    try:
        sys.argv = [str(script), str(tmp_path / "s2"), "--cache", str(tmp_path / "cache"), "--manifest", str(manifest)]
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    assert json.loads(capsys.readouterr().out)["photos"] == 1
    bad = _write_manifest(tmp_path, [{**_entry("a", "usr/a.png", a), "licence": ""}])
    with pytest.raises(SystemExit, match="error: .*lacks"):
        photos.main([str(tmp_path / "o"), "--cache", str(tmp_path / "cache"), "--manifest", str(bad)])


@pytest.mark.parametrize("out_name", ["set", "set.zip"])
def test_build_from_unpacked_packages(tmp_path, out_name):
    a, b = _png(_colour(41, 67, 1)), _png(_colour(90, 37, 2), "JPEG", quality=95)
    root = tmp_path / "cache" / "unpacked" / "pkg_1.0-1"
    (root / "usr").mkdir(parents=True)
    (root / ".complete").touch()
    (root / "usr" / "a.png").write_bytes(a)
    (root / "usr" / "res.rcc").write_bytes(_rcc({"b.jpg": (b, True)}))
    manifest = _write_manifest(tmp_path, [_entry("a", "usr/a.png", a), _entry("b", "usr/res.rcc", b, "/dir/b.jpg")])
    summary = photos.build_photos(tmp_path / out_name, tmp_path / "cache", manifest, short_side=20)
    assert summary["photos"] == 2 and summary["animals"] == 2
    src = data.folder_or_zip_source(tmp_path / out_name)
    assert len(src) == 2 * len(photos.SCALES)
    sizes = sorted(src.get(i).shape[:2] for i in range(len(src)))
    assert sizes == sorted([(20, 33), (10, 16), (49, 20), (24, 10)])
    if out_name.endswith(".zip"):
        with zipfile.ZipFile(tmp_path / out_name) as zf:
            assert "ATTRIBUTION.txt" in zf.namelist()
            assert json.loads(zf.read("dataset.json"))["scales"] == list(photos.SCALES)


@pytest.mark.parametrize("policy, expected", [("permissive", ["a", "c"]), ("all", ["a", "b", "c"])])
def test_build_keeps_the_licence_policy(tmp_path, policy, expected):
    blobs = {n: _png(_colour(24, 24, i)) for i, n in enumerate("abc")}
    licences = {"a": "CC0-1.0", "b": "CC-BY-SA-4.0", "c": "CC-BY-3.0"}
    root = tmp_path / "cache" / "unpacked" / "pkg_1.0-1"
    root.mkdir(parents=True)
    (root / ".complete").touch()
    for n, blob in blobs.items():
        (root / f"{n}.png").write_bytes(blob)
    entries = [{**_entry(n, f"{n}.png", blob), "licence": licences[n]} for n, blob in blobs.items()]
    out = tmp_path / "set.zip"
    manifest = _write_manifest(tmp_path, entries)
    summary = photos.build_photos(out, tmp_path / "cache", manifest, 16, licences=policy)
    assert summary["photos"] == len(expected) and summary["licences"] == policy
    with zipfile.ZipFile(out) as zf:
        assert sorted(n[:-5] for n in zf.namelist() if n.endswith(".webp")) == expected
        credits = zf.read("ATTRIBUTION.txt").decode()
        assert ("CC-BY-SA-4.0" in credits) is (policy == "all")
    assert data.folder_or_zip_source(out).licences == policy
    first = photos.build_photos(tmp_path / "one", tmp_path / "cache", _write_manifest(tmp_path, entries), 16,
                                limit=1, licences=policy)
    assert first["photos"] == 1
    with pytest.raises(ValueError, match="licence policy"):
        photos.build_photos(out, tmp_path / "cache", _write_manifest(tmp_path, entries), licences="some")
    only_sa = [e for e in entries if e["name"] == "b"]
    with pytest.raises(ValueError, match="no photos under"):
        photos.build_photos(out, tmp_path / "cache", _write_manifest(tmp_path, only_sa),
                            licences="permissive")


def test_a_folder_rebuild_replaces_the_whole_set(tmp_path):
    """Rebuilding a folder under a narrower licence policy leaves none of the earlier build's photos behind
    (they would be trained on under the new policy's name); a folder of other files is refused, not replaced."""
    blobs = {n: _png(_colour(24, 24, i)) for i, n in enumerate("ab")}
    root = tmp_path / "cache" / "unpacked" / "pkg_1.0-1"
    root.mkdir(parents=True)
    (root / ".complete").touch()
    for n, blob in blobs.items():
        (root / f"{n}.png").write_bytes(blob)
    licences = {"a": "CC0-1.0", "b": "CC-BY-SA-4.0"}
    manifest = _write_manifest(tmp_path, [{**_entry(n, f"{n}.png", b), "licence": licences[n]}
                                          for n, b in blobs.items()])
    out = tmp_path / "set"
    photos.build_photos(out, tmp_path / "cache", manifest, 16, licences="all")
    assert sorted(p.name for p in out.glob("*.webp")) == ["a.webp", "b.webp"]
    photos.build_photos(out, tmp_path / "cache", manifest, 16, licences="permissive")
    assert sorted(p.name for p in out.glob("*.webp")) == ["a.webp"]
    assert data.folder_or_zip_source(out).licences == "permissive" and len(data.folder_or_zip_source(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "manifest.yaml", "set"]  # no temporary left
    (out / ".DS_Store").write_bytes(b"Finder")  # hidden clutter is not "other files"
    photos.build_photos(out, tmp_path / "cache", manifest, 16, licences="permissive")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="other than an earlier photos build"):
        photos.build_photos(tmp_path / "mine", tmp_path / "cache", manifest, 16)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_cached_deb_of_another_version_is_not_taken(tmp_path, monkeypatch):
    """Only the manifest's version is looked for (a cached older .deb would fail the sha256 check forever)."""
    deb = b"the 1.0-1 package"
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / "pkg_0.9-1_all.deb").write_bytes(b"an older package")
    calls = []

    def fake_run(cmd, cwd=None, check=True):
        calls.append(cmd[:2])
        if cmd[0] == "apt-get":
            (Path(cwd) / "pkg_1%3a1.0-1_all.deb").write_bytes(deb)
        else:
            Path(cmd[-1]).mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(photos.subprocess, "run", fake_run)
    info = {"version": "1:1.0-1", "deb_sha256": hashlib.sha256(deb).hexdigest()}
    roots = photos.fetch_packages({"pkg": info}, tmp_path)
    assert calls == [["apt-get", "download"], ["dpkg-deb", "-x"]] and (roots["pkg"] / ".complete").exists()


@pytest.mark.parametrize("problem", ["sha256", "grey"])
def test_build_refuses_bad_photos(tmp_path, problem):
    a = _colour(30, 30)
    if problem == "grey":
        a = np.repeat(a[..., :1], 3, axis=2)
    blob = _png(a)
    root = tmp_path / "cache" / "unpacked" / "pkg_1.0-1"
    root.mkdir(parents=True)
    (root / ".complete").touch()
    (root / "a.png").write_bytes(blob if problem != "sha256" else blob + b"tampered")
    with pytest.raises(ValueError, match="sha256" if problem == "sha256" else "grey"):
        photos.build_photos(tmp_path / "out", tmp_path / "cache", _write_manifest(tmp_path, [_entry("a", "a.png", blob)]))


@pytest.mark.parametrize("scales", [None, [1.0, 0.5], [1.0, 0.5, 0.25]])
def test_folder_source_pyramid_and_decode_cache(tmp_path, monkeypatch, scales):
    for i in range(3):
        (tmp_path / f"p{i}.png").write_bytes(_png(_colour(33, 45, i)))
    if scales:
        (tmp_path / "dataset.json").write_text(json.dumps({"labels": None, "scales": scales}))
    calls = []
    decode = data._decode
    monkeypatch.setattr(data, "_decode", lambda blob, name="": calls.append(1) or decode(blob, name))
    src = data.folder_or_zip_source(tmp_path)
    n = len(scales or [1.0])
    assert len(src) == 3 * n
    for _ in range(2):
        shapes = [src.get(i).shape for i in range(len(src))]
    assert len(calls) == 3  # each file decoded once
    assert shapes[:n] == [(round(33 * s), round(45 * s), 3) for s in (scales or [1.0])]
    stream = data.ImageStream(src, 15, batch=4, seed=1)
    assert stream.next()[0].shape == (4, 3, 15, 15)


def test_pyramid_levels_below_the_crop_are_left_out(tmp_path):
    """A level smaller than the training crop would be upscaled (blurred) to it: left out, except each image's
    largest, so a small image still counts once. Labels follow their images."""
    (tmp_path / "big.png").write_bytes(_png(_colour(64, 80, 0)))    # levels 64, 32, 16 px short side
    (tmp_path / "small.png").write_bytes(_png(_colour(20, 30, 1)))  # all below a 24 px crop
    labels = [["big.png", 1], ["small.png", 0]]
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": labels, "scales": [1.0, 0.5, 0.25]}))
    src = data.folder_or_zip_source(tmp_path, min_side=24)
    assert sorted(src.get(i).shape[:2] for i in range(len(src))) == [(20, 30), (32, 40), (64, 80)]
    assert sorted(zip([src.get(i).shape[0] for i in range(len(src))], src.labels)) == [(20, 0), (32, 1), (64, 1)]
    assert len(data.folder_or_zip_source(tmp_path)) == 6  # without a crop size: every level
    assert len(data.open_source(str(tmp_path), 12)) == 4  # training passes its crop: big 64, 32, 16; small 20


def test_folder_source_rejects_bad_scales(tmp_path):
    (tmp_path / "p.png").write_bytes(_png(_colour(9, 9)))
    (tmp_path / "dataset.json").write_text(json.dumps({"scales": [2.0]}))
    with pytest.raises(ValueError, match="scales"):
        data.folder_or_zip_source(tmp_path)


@pytest.mark.parametrize(("meta", "match"), [
    ("{not json", "dataset.json is not valid JSON"),
    ("[1, 2]", "holds a JSON list, not an object"),
    ('{"labels": [["a.png", 0]]}', "gives no label for b.png"),
    ('{"labels": [["a.png", "cat"], ["b.png", 1]]}', "label 'cat' of a.png is not a class number"),
    ('{"labels": {"a.png": 0}}', "must be a list of"),
    ('{"labels": [["a.png", 0], ["b.png", 1], ["./a.png", 2]]}', "a.png is labelled twice, 0 and 2"),
    ('{"scales": "half"}', "scales"),
])
@pytest.mark.parametrize("as_zip", [False, True])
def test_a_malformed_dataset_json_is_named_in_the_error(tmp_path, meta, match, as_zip):
    files = {"a.png": _png(_colour(9, 9)), "b.png": _png(_colour(9, 9, 1)), "dataset.json": meta.encode()}
    where = tmp_path / "set"
    if as_zip:
        where = tmp_path / "set.zip"
        with zipfile.ZipFile(where, "w") as zf:
            for name, content in files.items():
                zf.writestr(name, content)
    else:
        where.mkdir()
        for name, content in files.items():
            (where / name).write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(match)) as info:
        data.folder_or_zip_source(where)
    assert "dataset.json" in str(info.value)


@pytest.mark.parametrize("as_zip", [False, True])
def test_a_dataset_json_in_the_folder_that_holds_every_image_is_read(tmp_path, as_zip):
    """`zip -r set.zip set/` puts dataset.json at set/dataset.json: its labels were silently dropped. It is read
    where it lies in the one folder holding every image (names relative to it, "./" as some tools write them); a
    dataset.json beside only some of the images is not."""
    meta = json.dumps({"labels": [["a.png", 3], ["./b.png", 1]]}).encode()
    files = {"set/a.png": _png(_colour(9, 9)), "set/b.png": _png(_colour(9, 9, 1)), "set/dataset.json": meta}
    stray = {**files, "other/c.png": _png(_colour(9, 9, 2))}
    sources = []
    for k, content in enumerate((files, stray)):
        where = tmp_path / f"d{k}"
        if as_zip:
            where = tmp_path / f"d{k}.zip"
            with zipfile.ZipFile(where, "w") as zf:
                for name, data_ in content.items():
                    zf.writestr(name, data_)
        else:
            for name, data_ in content.items():
                (where / name).parent.mkdir(parents=True, exist_ok=True)
                (where / name).write_bytes(data_)
        sources.append(data.folder_or_zip_source(where))
    assert sources[0].labels == [3, 1] and sources[1].labels is None and len(sources[1]) == 3
    with zipfile.ZipFile(tmp_path / "dot.zip", "w") as zf:  # "./" names, labels written from the zip's top
        zf.writestr("./set/a.png", files["set/a.png"])
        zf.writestr("./set/b.png", files["set/b.png"])
        zf.writestr("./set/dataset.json", json.dumps({"labels": [["set/a.png", 5], ["set/b.png", 6]]}))
    assert data.folder_or_zip_source(tmp_path / "dot.zip").labels == [5, 6]


def test_labels_follow_their_images_and_gifs_are_counted_left_out(tmp_path):
    """Every format `restore` reads trains but GIF (palette: banding), which the warning counts; PGM trains as grey."""
    for name, fmt, a in [("a.png", "PNG", _colour(9, 9)), ("b.PGM", "PPM", _colour(9, 9)[..., 0]),
                         ("c.gif", "GIF", _colour(9, 9))]:
        (tmp_path / name).write_bytes(_png(a, fmt))
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["a.png", 3], ["b.PGM", 1]]}))
    src = data.folder_or_zip_source(tmp_path)
    assert len(src) == 2 and src.labels == [3, 1] and src.get(1).shape == (9, 9, 3)
    assert "1 GIF file(s)" in src.warning and "c.gif" in src.warning
    (tmp_path / "a.png").unlink(), (tmp_path / "b.PGM").unlink(), (tmp_path / "dataset.json").unlink()
    with pytest.raises(ValueError, match="holds no images .*GIFs"):
        data.folder_or_zip_source(tmp_path)


def test_data_photos_reads_the_built_set(tmp_path, monkeypatch):
    monkeypatch.setenv(data.PHOTOS_ENV, str(tmp_path / "missing.zip"))
    with pytest.raises(ValueError, match="python -m ncvsd_cli.training.photos"):
        data.open_source("photos", 16)
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "p.png").write_bytes(_png(_colour(21, 19)))
    monkeypatch.setenv(data.PHOTOS_ENV, str(tmp_path / "set"))
    assert len(data.open_source("photos", 16)) == 1


def test_photos128_preset():
    from ncvsd_cli.networks.build import build_network, network_config

    counts = [sum(p.numel() for p in build_network(network_config(k, "photos128")).parameters())
              for k in ("teacher", "generator", "discriminator")]
    assert counts == [8_568_964, 11_134_242, 5_122_588]
    assert build_network(network_config("generator", "photos128")).size_multiple == 16
    assert 2 * (counts[0] + counts[1]) < 50e6  # shipped fp16 teacher + generator under 50 MB
