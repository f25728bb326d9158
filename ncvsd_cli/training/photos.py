"""The `photos` training set: colour photographs unpacked from Debian packages named in photos_manifest.yaml.

The manifest lists, for every photo, its package, version, path inside the package (and the member inside a Qt
resource file `.rcc` where GCompris keeps its pictures), licence, author and the sha256 of the original bytes.
`build_photos` downloads the packages (`apt-get download PKG=VERSION`), checks every sha256, refuses grey images
and the held-out / validation photos (by name and by content), scales each photo so that its short side is at most
`short_side` px, and writes lossy WebP files (quality 90) into a folder or a zip that
`ncvsd train --data` reads, with a dataset.json that declares the pyramid `SCALES` (training/data.py) and an
ATTRIBUTION.txt (author, licence, source of every photo).

Licence policy: by default only photos under permissive licences (public domain, CC0, CC-BY without share-alike)
are used, so that weights trained on the set can ship under the project's MIT licence with the CC-BY credits of
ATTRIBUTION.txt; `licences="all"` adds the share-alike and GPL photos (CC-BY-SA, GPL, LGPL), whose terms may reach
the trained weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np

MANIFEST_PATH = Path(__file__).with_name("photos_manifest.yaml")
#: Largest short side of a written photo (px): a 128-px crop of the 0.5x level then spans 2/3 of a photo, and the
#: whole set (about 8.5 MiB) travels to a GPU machine beside the repository.
DEFAULT_SHORT_SIDE = 384
#: Pyramid of downscaling factors that training crops from (written to dataset.json; see data.py).
SCALES = (1.0, 0.5)
WEBP_QUALITY = 90
#: 256-bit difference hashes (see `dhash`) of the held-out photos (scikit-image astronaut, coffee, chelsea) and of
#: the model-selection photos of benchmarks/make_validation_set.py; a photo within `MATCH_BITS` of one is refused.
EXCLUDED_DHASH: dict[str, int] = {
    "astronaut": 0xd9b6d2d66656d65664d2669222d0a1e6c266e8e05949091c9906d325e9256d0d,
    "coffee": 0xbb2f7f9fe9c3d8c799e75b4f8dce169e936d05bd0493a49790b591edcbdcc73a,
    "chelsea": 0x2238223142300b321371334d634dc9dced9b8c91b4db985dc975c963c07bc0db,
    "grace_hopper": 0xd6951d49c7db76d81f1a9b0879643284729896df869756916332737058f06350,
    "china": 0xffffe5ffe6ffc77f8bbf8ffc9bbc9bb89bd99bc899f09fc02f141d381d4ce150,
    "flower": 0x87178723cd73c7184e984cc858cc98cc99ca98ca19ce2d8e0f968f468fc69742,
    "raccoon_face": 0x674766460c448d48e605e615e658f2cd1b803326538fd9dfd87b8a0d881e889f,
    "quokka": 0x4c80f480f4007e806a046e44664266454e000b000f8306e0cec0cec842d440d0,
}
#: File names of those photos in their packages (scikit-image, matplotlib, scikit-learn, scipy, imgaug, Pillow).
EXCLUDED_FILES = frozenset({"astronaut.png", "coffee.png", "chelsea.png", "grace_hopper.jpg", "hopper.jpg",
                            "china.jpg", "flower.jpg", "face.dat", "quokka.jpg"})
#: Unrelated photos of the set differ in >= 57 of 256 bits; rescaled or re-encoded copies in < 10.
MATCH_BITS = 40
#: Licence policies of `build_photos`: "permissive" keeps the photos for which `is_permissive` holds, "all" every one.
LICENCE_POLICIES = ("permissive", "all")
_ENTRY_KEYS = ("name", "package", "version", "path", "licence", "author", "tags", "sha256")


def dhash(image: np.ndarray) -> int:
    """256-bit difference hash of an (H, W, 3) uint8 image: grey 17x16 (Lanczos), bit = right pixel > left."""
    from PIL import Image

    g = np.asarray(Image.fromarray(image).convert("L").resize((17, 16), Image.LANCZOS), dtype=np.int16)
    return int("".join("1" if b else "0" for b in (g[:, 1:] > g[:, :-1]).flatten()), 2)


def excluded_match(image: np.ndarray) -> str | None:
    """Name of the held-out / validation photo that `image` (H, W, 3 uint8) is a copy of, or None."""
    h = dhash(image)
    best = min(EXCLUDED_DHASH, key=lambda n: (h ^ EXCLUDED_DHASH[n]).bit_count())
    return best if (h ^ EXCLUDED_DHASH[best]).bit_count() <= MATCH_BITS else None


def is_permissive(licence: str) -> bool:
    """True for public domain, CC0 and CC-BY (any version, without share-alike); False for everything else
    (CC-BY-SA, GPL, LGPL, unknown texts), so that an unrecognised licence is never taken for a permissive one."""
    text = licence.strip()
    return text in ("Public Domain", "CC0-1.0") or (text.startswith("CC-BY-") and text[6:].replace(".", "").isdigit())


def load_manifest(path: str | Path = MANIFEST_PATH) -> dict:
    """The manifest as {"packages": {name: {version, deb_sha256, ...}}, "photos": [entry, ...]}; ValueError when
    an entry lacks a field, a name or sha256 repeats, a package is not in the table or a file is excluded."""
    import yaml

    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    photos, packages = doc.get("photos") or [], doc.get("packages") or {}
    for e in photos:
        missing = [k for k in _ENTRY_KEYS if not e.get(k) and k != "tags"]
        if missing:
            raise ValueError(f"manifest entry {e.get('name')!r} lacks {missing}")
        if e["package"] not in packages or packages[e["package"]]["version"] != e["version"]:
            raise ValueError(f"manifest entry {e['name']!r}: package {e['package']}={e['version']} not in the table")
        if Path(e.get("member") or e["path"]).name in EXCLUDED_FILES:
            raise ValueError(f"manifest entry {e['name']!r} is a held-out or validation photo")
    for key in ("name", "sha256"):
        values = [e[key] for e in photos]
        if len(set(values)) != len(values):
            raise ValueError(f"manifest repeats a {key}")
    return {"packages": packages, "photos": photos}


def rcc_members(blob: bytes) -> dict[str, bytes]:
    """Files inside a compiled Qt resource file (format versions 1-3) as {"/dir/name": bytes}.

    Layout: header "qres", version, offsets of tree / data / names; tree nodes of 14 (v1) or 22 bytes: name offset,
    flags (1 zlib, 2 directory, 4 zstd), then child count + first child, or locale + data offset.
    """
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource (.rcc) file")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    size = 14 if version == 1 else 22
    out: dict[str, bytes] = {}

    def name(offset: int) -> str:
        n = struct.unpack(">H", blob[names + offset:names + offset + 2])[0]
        return blob[names + offset + 6:names + offset + 6 + 2 * n].decode("utf-16-be")

    def walk(index: int, prefix: str) -> None:
        e = tree + index * size
        name_offset, flags = struct.unpack(">IH", blob[e:e + 6])
        path = f"{prefix}/{name(name_offset)}" if index else ""
        if flags & 2:
            count, first = struct.unpack(">II", blob[e + 6:e + 14])
            for child in range(first, first + count):
                walk(child, path)
            return
        at = data + struct.unpack(">I", blob[e + 10:e + 14])[0]
        raw = blob[at + 4:at + 4 + struct.unpack(">I", blob[at:at + 4])[0]]
        if flags & 4:
            raise ValueError(f"{path}: zstd-compressed resources are not supported")
        out[path] = zlib.decompress(raw[4:]) if flags & 1 else raw

    walk(0, "")
    return out


def fetch_packages(packages: dict, cache: Path) -> dict[str, Path]:
    """Download (apt-get download) and unpack (dpkg-deb -x) each package once into `cache`; the .deb sha256 is
    checked. Returns {package: unpacked root}. Already unpacked packages are reused without network."""
    roots = {}
    for pkg, info in packages.items():
        root = cache / "unpacked" / f"{pkg}_{info['version'].replace(':', '%3a')}"
        if not (root / ".complete").exists():
            debs = cache / "debs"
            debs.mkdir(parents=True, exist_ok=True)
            pattern = f"{pkg}_{info['version'].replace(':', '%3a')}_*.deb"  # apt-get download's name, this version
            if not list(debs.glob(pattern)):
                subprocess.run(["apt-get", "download", f"{pkg}={info['version']}"], cwd=debs, check=True)
            found = sorted(debs.glob(pattern))
            digests = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in found}
            deb = next((f for f, d in digests.items() if d == info["deb_sha256"]), None)
            if deb is None:
                raise ValueError(f"{pkg} {info['version']}: no .deb in {debs} has the manifest's sha256 "
                                 f"({', '.join(f'{f.name} {d}' for f, d in digests.items()) or 'none downloaded'})")
            root.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            (root / ".complete").touch()
        roots[pkg] = root
    return roots


def _photo(data: bytes, name: str, short_side: int) -> np.ndarray:
    """Decode, refuse grey or excluded photos, and scale (Lanczos) so that the short side is <= short_side."""
    from PIL import Image

    im = Image.open(io.BytesIO(data)).convert("RGB")
    a = np.asarray(im)
    if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]):
        raise ValueError(f"{name} is a grey image; the set holds colour photographs only")
    match = excluded_match(a)
    if match is not None:
        raise ValueError(f"{name} is a copy of the held-out / validation photo {match!r}")
    s = short_side / min(im.size)
    if s < 1:
        im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
    return np.asarray(im)


def _replace_folder(out: Path, files: dict[str, bytes]) -> None:
    """Write `files` as the folder `out`, whole: built beside it, then swapped in, so that no photo of an earlier
    build (e.g. one of another licence policy) stays behind. A folder holding anything but an earlier build's
    files (dataset.json, ATTRIBUTION.txt, *.webp) is refused, not replaced."""
    import shutil

    out = out.resolve()  # "." or a link: the folder itself
    if out.exists():
        foreign = [p.name for p in out.iterdir() if not p.name.startswith(".")  # .DS_Store and the like
                   and not (p.is_file() and (p.suffix == ".webp" or p.name in files))]
        if foreign:
            raise ValueError(f"{out} holds files other than an earlier photos build ({', '.join(sorted(foreign)[:3])}"
                             "); give an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = out.with_name(f".{out.name}.tmp-{os.getpid()}"), out.with_name(f".{out.name}.old-{os.getpid()}")
    try:
        tmp.mkdir()
        for fname, blob in files.items():
            (tmp / fname).write_bytes(blob)
        if out.exists():
            out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            if old.exists():
                old.rename(out)  # the earlier build stays as it was
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def build_photos(out: str | Path, cache: str | Path, manifest: str | Path = MANIFEST_PATH,
                 short_side: int = DEFAULT_SHORT_SIDE, limit: int | None = None,
                 licences: str = "permissive") -> dict:
    """Build the set into `out` (a folder, or a zip when it ends in .zip) from the manifest's packages (fetched
    into `cache`). `licences`: a LICENCE_POLICIES name (see the module text); `limit` keeps the first N photos
    of the policy (tests). Returns a summary {photos, people, animals, licences, out}."""
    from PIL import Image

    if short_side < 16:
        raise ValueError(f"short side {short_side} px is below 16")
    if licences not in LICENCE_POLICIES:
        raise ValueError(f"licence policy {licences!r} is not one of {', '.join(LICENCE_POLICIES)}")
    doc = load_manifest(manifest)
    photos = [e for e in doc["photos"] if licences == "all" or is_permissive(e["licence"])][:limit or None]
    if not photos:
        raise ValueError(f"the manifest has no photos under the licence policy {licences!r}")
    roots = fetch_packages({p: doc["packages"][p] for p in {e["package"] for e in photos}}, Path(cache))
    files: dict[str, bytes] = {}
    rcc_cache: dict[Path, dict[str, bytes]] = {}
    credits = []
    for e in photos:
        path = roots[e["package"]] / e["path"]
        if e.get("member"):
            rcc_cache.setdefault(path, rcc_members(path.read_bytes()))
            data = rcc_cache[path][e["member"]]
        else:
            data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != e["sha256"]:
            raise ValueError(f"{e['name']}: sha256 differs from the manifest's")
        buf = io.BytesIO()
        Image.fromarray(_photo(data, e["name"], short_side)).save(buf, "WEBP", quality=WEBP_QUALITY, method=6)
        files[f"{e['name']}.webp"] = buf.getvalue()
        credits.append(f"{e['name']}.webp: {e['author']}, {e['licence']}, {e.get('source') or e['package']}")
    files["dataset.json"] = json.dumps({"labels": None, "scales": list(SCALES), "licences": licences}).encode()
    head = f"Photos of the ncvsd `photos` set (licence policy {licences!r}): file: author, licence, source"
    files["ATTRIBUTION.txt"] = ("\n".join([head, *credits]) + "\n").encode()
    out = Path(out)
    if out.suffix == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".zip.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for fname, blob in files.items():  # fixed dates: the same manifest gives the same bytes
                zf.writestr(zipfile.ZipInfo(fname, date_time=(1980, 1, 1, 0, 0, 0)), blob)
        tmp.replace(out)
    else:
        _replace_folder(out, files)
    count = {t: sum(t in (e.get("tags") or []) for e in photos) for t in ("people", "animal")}
    return {"photos": len(photos), "people": count["people"], "animals": count["animal"], "licences": licences,
            "out": str(out)}


def main(argv: list[str] | None = None) -> None:
    """`python -m ncvsd_cli.training.photos OUT --cache DIR [--licences permissive|all]`: build the set (`build_photos`;
    needs `apt-get download` with a Debian bookworm source) and print its summary as JSON."""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m ncvsd_cli.training.photos", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build the `photos` training set (for `ncvsd train --data`): the colour photographs named in\n"
                    "the manifest, unpacked from Debian packages (`apt-get download`, a Debian bookworm source),\n"
                    "checked by sha256, scaled to --short-side and written as WebP with dataset.json and\n"
                    "ATTRIBUTION.txt. Prints a JSON summary.",
        epilog="Example: python -m ncvsd_cli.training.photos ~/.cache/ncvsd/photos.zip --cache /tmp/photo-packages")
    p.add_argument("out", type=Path, help="a folder, or a zip if it ends in .zip")
    p.add_argument("--cache", type=Path, required=True, help="folder for the downloaded and unpacked packages")
    p.add_argument("--manifest", type=Path, default=MANIFEST_PATH, help="the photo list (default: the shipped one)")
    p.add_argument("--short-side", type=int, default=DEFAULT_SHORT_SIDE, help="largest short side in px")
    p.add_argument("--limit", type=int, help="keep only the first N photos (quick tests)")
    p.add_argument("--licences", choices=LICENCE_POLICIES, default="permissive",
                   help="permissive: public domain, CC0, CC-BY only (default); all: also CC-BY-SA, GPL, LGPL")
    a = p.parse_args(argv)
    try:
        summary = build_photos(a.out, a.cache, a.manifest, a.short_side, a.limit, a.licences)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
