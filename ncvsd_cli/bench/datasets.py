"""Benchmark image sets: the FFHQ-256 test split, the built-in held-out photos, or any folder / zip of images.

Every image is returned as a (1, C, H, W) tensor in [-1, 1] at the model resolution. Images that are not already
`resolution` x `resolution` are centre-cropped to a square (the shorter side) and resized with antialiased bicubic
interpolation (torch `interpolate(..., antialias=True)`), then clipped to [-1, 1]. Images are listed in sorted
file-name order (zip members by their path inside the archive), so an image's index is stable across runs and ranks.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ncvsd_cli import strict_json
from ncvsd_cli.images import HEIF_SUFFIXES, is_listed_image

#: File suffixes read from folders and zips (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", *HEIF_SUFFIXES)
#: The file that marks a `bench --out` folder (`runner`); a dataset folder's scan leaves such folders out.
OUTPUT_MARKER = "run_settings.json"
#: Size of the standard FFHQ-256 test split (docs/method.md §5: 100 images, sorted file names).
FFHQ_TEST_SIZE = 100
FFHQ_ENV = "NCVSD_FFHQ"

FFHQ_MISSING_MESSAGE = (
    "The 'ffhq' benchmark needs the standard FFHQ-256 test split (100 images of 256x256, read in sorted file-name "
    "order), which cannot be downloaded by ncvsd.\n"
    "Get it from the NCVSD repository (github.com/xypeng9903/ncvsd: the `test.zip` linked in its README, folder "
    "`ffhq_val`), or take FFHQ images 00000-00099 (the DAPS `test-ffhq` split) from the FFHQ dataset "
    "(github.com/NVlabs/ffhq-dataset, 'images1024x1024' resized to 256 or the 256x256 thumbnails).\n"
    "Then pass the folder or zip with `--data PATH`, or set the environment variable NCVSD_FFHQ=PATH."
)


class DatasetError(ValueError):
    """A benchmark image set that cannot be found or read (the CLI maps it to exit code 2)."""


@dataclass(frozen=True)
class BenchImage:
    """One benchmark image: a stable id (file name without suffix), its index in the set, and a loader."""

    id: str
    index: int
    load: Callable[[], torch.Tensor]  # -> (1, C, H, W) in [-1, 1] at the set's resolution
    digest: Callable[[], str] | None = None  # -> the file's content fingerprint (None: a fixed built-in image)


@dataclass(frozen=True)
class BenchDataset:
    """A named, ordered list of images at one resolution."""

    name: str
    images: list[BenchImage]
    resolution: int
    source: str

    def __len__(self) -> int:
        return len(self.images)


def fit_resolution(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Centre-crop (B, C, H, W) to a square of the shorter side, resize to `resolution` (antialiased bicubic), clip.

    An image that is already `resolution` x `resolution` is returned unchanged. resolution >= 1.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top:top + side, left:left + side]
    if side != resolution:
        x = F.interpolate(x.float(), size=(resolution, resolution), mode="bicubic", antialias=True,
                          align_corners=False)
    return x.clamp(-1, 1)


def _decode(source: Path | bytes, resolution: int, name: str, warned: set | None = None) -> torch.Tensor:
    """A dataset file at `resolution` (`fit_resolution`); one smaller than that is enlarged, and a warning says
    that its reference is then an interpolated image (once per name and resolution in `warned`, the dataset's
    set: a file is loaded once per task); so does one with transparency, scored composited on white."""
    from ncvsd_cli.images import read_image  # the one home of file -> tensor conversion

    decoded = read_image(source)
    x, warned = decoded.tensor, warned if warned is not None else set()
    if decoded.alpha is not None and bool((decoded.alpha < 1).any()) and (name, "alpha") not in warned:
        warned.add((name, "alpha"))
        logging.getLogger("ncvsd.bench").warning(
            "%s: has transparency, scored composited on white (its reference too)", name)
    if min(x.shape[-2:]) < resolution and (name, resolution) not in warned:
        warned.add((name, resolution))
        logging.getLogger("ncvsd.bench").warning(
            "%s: %dx%d px, enlarged to %d px: its reference is an interpolated image (--resolution sets the size)",
            name, x.shape[-1], x.shape[-2], resolution)
    return fit_resolution(x, resolution)


def _stem(name: str) -> str:
    return name.rsplit("/", 1)[-1].rsplit(".", 1)[0]


_SAID_OUTPUTS: set[Path] = set()


def _fingerprint(data: bytes) -> str:
    """A dataset file's content fingerprint (`BenchImage.digest`): its sha256, 16 hex digits."""
    return hashlib.sha256(data).hexdigest()[:16]


def _folder_entries(root: Path) -> list[tuple[str, Callable[[int], torch.Tensor], Callable[[], str]]]:
    """The images under `root`, but those in `bench --out` folders (OUTPUT_MARKER) within it: `--dataset .` with
    the default --out found the first run's sample pictures and scored them as images on the next."""
    outputs = {m.parent.absolute() for m in root.rglob(OUTPUT_MARKER) if m.is_file()}
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and is_listed_image(p.relative_to(root).as_posix(), IMAGE_SUFFIXES)
                   and not outputs.intersection(p.absolute().parents))
    if outputs - _SAID_OUTPUTS:  # once per process: the dataset is listed twice per run
        _SAID_OUTPUTS.update(outputs)
        logging.getLogger("ncvsd.bench").warning("%s: left out the bench results in %s", root,
                                                 ", ".join(sorted(str(o.relative_to(root.absolute())) for o in outputs)))
    warned: set = set()
    names = [p.relative_to(root).as_posix() for p in files]  # sub/a.png and other/a.png are warned of apart
    return [(name, (lambda res, p=p, name=name: _decode(p, res, name, warned)),
             (lambda p=p: _fingerprint(p.read_bytes()))) for p, name in zip(files, names)]


def _zip_entries(path: Path) -> list[tuple[str, Callable[[int], torch.Tensor], Callable[[], str]]]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = sorted((i for i in zf.infolist() if not i.is_dir() and is_listed_image(i.filename, IMAGE_SUFFIXES)),
                           key=lambda i: i.filename)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{path} is not a readable zip file: {exc}") from None

    warned: set = set()

    def load(res: int, name: str) -> torch.Tensor:
        with zipfile.ZipFile(path) as zf:
            return _decode(zf.read(name), res, name, warned)

    def digest(name: str) -> str:  # the same fingerprint as a folder's file: a set moved between the two resumes
        with zipfile.ZipFile(path) as zf:
            return _fingerprint(zf.read(name))

    return [(i.filename, (lambda res, n=i.filename: load(res, n)), (lambda n=i.filename: digest(n))) for i in infos]


def _entries(path: Path) -> list[tuple[str, Callable[[int], torch.Tensor]]]:
    if path.is_dir():
        return _folder_entries(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return _zip_entries(path)
    if path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES):  # given by name: hidden or not
        return [(path.name, (lambda res: _decode(path, res, path.name)),
                 (lambda: _fingerprint(path.read_bytes())))]
    raise DatasetError(f"dataset path {path} is not a folder, a zip file or an image")


def _unique_ids(names: list[str]) -> list[str]:
    """File stems; where two collide, relative paths without suffix; where those still do (a.png beside a.jpg),
    whole relative paths. Ids key the rows for --resume and name the sample folders, so they must be unique; a
    name whose bytes are not UTF-8 has each undecodable byte written as its escape (b"caf\\xe9.png" -> "caf\\xe9"),
    so that the results' UTF-8 files can hold it."""
    names = [strict_json.escaped(n) for n in names]
    for ids in ([_stem(n) for n in names], [n.rsplit(".", 1)[0] for n in names], names):
        if len(set(ids)) == len(ids):
            return ids
    raise DatasetError(f"the dataset lists an image twice: {min(n for n in names if names.count(n) > 1)}")


def image_folder(path: str | os.PathLike, resolution: int, name: str | None = None) -> BenchDataset:
    """All images of a folder (recursively), a zip archive or a single image file, in sorted path order.

    `name` defaults to the folder / file name; ids are file stems (or relative paths when stems collide).
    Raises DatasetError when the path does not exist or holds no image.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"dataset path {path} does not exist (--dataset takes ffhq, builtin, or a folder, zip "
                           "or image file)")
    entries = _entries(path)
    if not entries:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {path}")
    ids = _unique_ids([n for n, _, _ in entries])
    images = [BenchImage(id=i, index=k, load=(lambda f=f: f(resolution)), digest=d) for k, (i, (_, f, d)) in
              enumerate(zip(ids, entries))]
    name = name or path.stem or path.resolve().name or "data"  # `--dataset .`: the folder's own name
    return BenchDataset(name=strict_json.escaped(name), images=images, resolution=resolution, source=str(path))


def ffhq_test(resolution: int = 256, data: str | os.PathLike | None = None) -> BenchDataset:
    """The standard FFHQ-256 test split: the first 100 images in sorted file-name order (docs/method.md §5).

    `data` (or $NCVSD_FFHQ) is a folder or zip; with neither, or when it holds fewer than 100 images, DatasetError
    carries FFHQ_MISSING_MESSAGE (what to download and where to put it).
    """
    data = data or os.environ.get(FFHQ_ENV)
    if not data:
        raise DatasetError(FFHQ_MISSING_MESSAGE)
    if not Path(data).expanduser().exists():
        raise DatasetError(f"FFHQ path {data} does not exist.\n{FFHQ_MISSING_MESSAGE}")
    found = image_folder(data, resolution, name="ffhq")
    if len(found) < FFHQ_TEST_SIZE:
        raise DatasetError(f"{data} holds {len(found)} images; the FFHQ-256 test split has {FFHQ_TEST_SIZE}.\n"
                           f"{FFHQ_MISSING_MESSAGE}")
    return BenchDataset(name="ffhq", images=found.images[:FFHQ_TEST_SIZE], resolution=resolution, source=found.source)


def builtin_heldout(resolution: int) -> BenchDataset:
    """The held-out real photos that training never sees (ncvsd_cli.training.data.BUILTIN_HELDOUT), 5 crops each.

    Deterministic crops of each photo at `resolution`: the whole photo (centre square resized, id `<photo>`) and
    the four quadrants of the centre square resized to 2 x resolution (ids `<photo>-q0` .. `-q3`, row-major), so the
    set shows both whole scenes and closer detail. Ordered by crop, then photo (astronaut, coffee, chelsea,
    astronaut-q0, ...), so that `--limit N` spreads over the photos. The photo list comes from the training data module, so the
    benchmark and the training split cannot overlap.
    """
    from ncvsd_cli.training.data import BUILTIN_HELDOUT, heldout_images

    photos = heldout_images(BUILTIN_HELDOUT)
    images: list[BenchImage] = []
    small = [f"{name} ({p.shape[-1]}x{p.shape[-2]})" for name, p in photos.items()
             if min(p.shape[-2:]) < 2 * resolution]
    if small:  # as a folder's small file is said to be (`_decode`)
        largest = min(min(p.shape[-2:]) for p in photos.values()) // 2
        logging.getLogger("ncvsd.bench").warning(
            "builtin at %d px: the quadrant crops of %s are enlarged (their centre squares are under %d px), so their "
            "references are interpolated images; --resolution %d or less keeps every crop at the photos' own pixels",
            resolution, ", ".join(small), 2 * resolution, largest)

    def add(name: str, make: Callable[[], torch.Tensor]) -> None:
        images.append(BenchImage(id=name, index=len(images), load=make))

    for name in BUILTIN_HELDOUT:  # whole photos first, so that --limit 3 already covers every photo
        add(name, lambda p=photos[name]: fit_resolution(p, resolution))
    for q in range(4):
        r, c = divmod(q, 2)
        for name in BUILTIN_HELDOUT:
            add(f"{name}-q{q}", lambda p=photos[name], r=r, c=c: fit_resolution(p, 2 * resolution)[
                ..., r * resolution:(r + 1) * resolution, c * resolution:(c + 1) * resolution].clone())
    return BenchDataset(name="builtin", images=images, resolution=resolution, source="ncvsd_cli.training.data")


def load_dataset(spec: str, resolution: int, data: str | os.PathLike | None = None) -> BenchDataset:
    """Resolve `--dataset`: 'ffhq' (with `data` or $NCVSD_FFHQ), 'builtin', or a PATH (folder, zip or image)."""
    if spec == "ffhq":
        return ffhq_test(resolution, data)
    if spec == "builtin":
        return builtin_heldout(resolution)
    return image_folder(spec, resolution)


def limit(dataset: BenchDataset, n: int | None) -> BenchDataset:
    """The first `n` images (all when n is None); n >= 1."""
    if n is None:
        return dataset
    if n < 1:
        raise ValueError(f"--limit must be >= 1, got {n}")
    return BenchDataset(dataset.name, dataset.images[:n], dataset.resolution, dataset.source)
