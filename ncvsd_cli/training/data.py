"""Training data: image folders, zip files (EDM2 dataset-tool layout), `builtin` (scikit-image photos) and `photos`
(the set that `python -m ncvsd_cli.training.photos` makes from Debian packages; training/photos.py).

Every draw is *counter based*: item number `p` of a stream (seed, rank, world_size) is a pure function of those
numbers, so the iterator state is one integer (`position`) and resume is exact (docs/method.md §1.8 "infinite, seeded,
per-epoch shuffled sampler, strided by rank", plus random crops and x-flips).

Items are float tensors (C, H, W) in [-1, 1] (ARCHITECTURE.md conventions). Files are decoded by images.py
(its colour and bit-depth policy, 3 channels); the scikit-image arrays follow the same policy here: grey is
replicated to RGB, alpha is composited onto white, boolean images become 0/255.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import torch

from ncvsd_cli.images import IMAGE_SUFFIXES, is_listed_image

#: Photos bundled inside scikit-image's wheel that load offline (checked on scikit-image 0.26; `eagle`, `lily`,
#: `kidney` are downloaded by pooch and are therefore not listed). `stereo_motorcycle` gives two views.
BUILTIN_ALL: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "stereo_motorcycle", "brick", "grass", "gravel", "camera", "coins", "moon", "page", "text", "clock", "cell",
    "horse", "colorwheel", "logo", "microaneurysms",
)
#: Held out: training on `builtin` never sees these (the benchmark and the README example use them).
BUILTIN_HELDOUT: tuple[str, ...] = ("astronaut", "coffee", "chelsea")
#: The photos that `builtin` training crops from.
BUILTIN_TRAIN: tuple[str, ...] = tuple(n for n in BUILTIN_ALL if n not in BUILTIN_HELDOUT)
#: Downscaling factors applied to every builtin photo (a pyramid), so that 64 px crops also show whole objects.
BUILTIN_SCALES: tuple[float, ...] = (1.0, 0.5, 0.25)
#: Environment variable naming the built `photos` set (folder or zip); default DEFAULT_PHOTOS below.
PHOTOS_ENV = "NCVSD_PHOTOS"
DEFAULT_PHOTOS = Path("~/.cache/ncvsd/photos.zip")
#: Decoded images of a folder/zip source are kept in memory up to this many bytes per process.
DECODE_CACHE_BYTES = 4 << 30
#: What training reads: every image suffix that `restore` reads but GIF (palette images: at most 256 colours, so the
#: model would learn their banding and dither); GIFs in a dataset are counted in its warning.
TRAINING_SUFFIXES = tuple(x for x in IMAGE_SUFFIXES if x != ".gif")


def _to_rgb_uint8(a: np.ndarray) -> np.ndarray:
    """Any skimage/PIL array -> (H, W, 3) uint8 following the colour policy in the module docstring."""
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float64) * (255.0 if a.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 4:  # composite onto white
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        a = np.round(a[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] != 3:
        raise ValueError(f"image with {a.shape[2]} channels; expected 1, 3 or 4")
    return np.ascontiguousarray(a)


def _u8_to_tensor(a: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [-1, 1] (2 p / 255 - 1, docs/method.md §1.1, via images.from_unit)."""
    from ncvsd_cli.images import from_unit

    return from_unit(torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 255.0)


@cache
def builtin_photo(name: str) -> tuple[np.ndarray, ...]:
    """The scikit-image photo `name` as (H, W, 3) uint8 arrays (two for `stereo_motorcycle`)."""
    if name not in BUILTIN_ALL:
        raise ValueError(f"unknown builtin photo {name!r}; choose from {', '.join(BUILTIN_ALL)}")
    import skimage.data

    out = getattr(skimage.data, name)()
    views = out[:2] if name == "stereo_motorcycle" else (out,)
    return tuple(_to_rgb_uint8(v) for v in views)


def heldout_images(names: Sequence[str] = BUILTIN_HELDOUT) -> dict[str, torch.Tensor]:
    """The held-out photos as {name: (1, 3, H, W) float tensor in [-1, 1]}, full size (e.g. astronaut 512x512)."""
    return {n: _u8_to_tensor(builtin_photo(n)[0]).unsqueeze(0) for n in names}


def _rescale(a: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return a
    from PIL import Image

    h, w = a.shape[:2]
    return np.asarray(Image.fromarray(a).resize((round(w * scale), round(h * scale)), Image.LANCZOS))


class ImageSource:
    """A list of decodable images. `get(i) -> (H, W, 3) uint8`; `weights` gives the draw probability of each;
    `licences`: the licence policy its dataset.json declares (the `photos` set: "permissive" or "all"), or None;
    `fingerprint`: what identifies its files wherever they lie (`files_fingerprint`), or None (built in);
    `description`: what the training prints at its start (how many images, from where); `warning`: what it prints
    even when quiet (images smaller than the crop), or None."""

    def __init__(self, images: list, weights: Sequence[float] | None = None, labels: Sequence[int] | None = None,
                 licences: str | None = None, fingerprint: str | None = None, description: str = "",
                 warning: str | None = None):
        if not images:
            raise ValueError("the dataset holds no images")
        self._images, self.licences, self.fingerprint = images, licences, fingerprint
        self.description, self.warning = description, warning
        w = np.asarray(weights if weights is not None else np.ones(len(images)), dtype=np.float64)
        self.weights = w / w.sum()
        self.labels = list(labels) if labels is not None else None

    def __len__(self) -> int:
        return len(self._images)

    def get(self, i: int) -> np.ndarray:
        item = self._images[i]
        return item() if callable(item) else item


def builtin_source(resolution: int, names: Sequence[str] = BUILTIN_TRAIN,
                   scales: Sequence[float] = BUILTIN_SCALES) -> ImageSource:
    """The `builtin` training set: every photo of `names` at every scale whose short side is >= `resolution`.

    Weights: each photo (view) gets total weight 1, split evenly over its scales; colour photos weigh 2x grey ones
    so that the 13 grey textures do not dominate. Raises ValueError if a held-out photo is requested.
    """
    return _builtin_source(int(resolution), tuple(names), tuple(scales))


@lru_cache(maxsize=4)
def _builtin_source(resolution: int, names: tuple[str, ...], scales: tuple[float, ...]) -> ImageSource:
    bad = [n for n in names if n in BUILTIN_HELDOUT]
    if bad:
        raise ValueError(f"held-out photos {bad} must not be used for training")
    images, weights = [], []
    for n in names:
        for view in builtin_photo(n):
            grey = bool(np.all(view[:, :, 0] == view[:, :, 1]) and np.all(view[:, :, 1] == view[:, :, 2]))
            levels = [_rescale(view, s) for s in scales if min(view.shape[:2]) * s >= resolution]
            for lv in levels:
                images.append(lv)
                weights.append((1.0 if grey else 2.0) / len(levels))
    return ImageSource(images, weights, description=f"the {len(names)} built-in scikit-image photos ({len(images)} "
                                                    "views and scales)")


def _decode(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Image file bytes -> (H, W, 3) uint8 under images.py's colour/bit-depth policy; ImageError naming `name`."""
    from ncvsd_cli.images import read_image, to_uint8

    return to_uint8(read_image(data, channels=3, name=name).tensor)


def _dataset_meta(raw: bytes | str, where: str) -> dict:
    """The JSON object of a dataset.json (`where` names it in errors); ValueError when it is not one."""
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{where} holds a JSON {type(meta).__name__}, not an object such as "  # noqa: TRY004
                         '{"labels": [["a.png", 0], ...]}')
    return meta


def dataset_json_name(names: Sequence[str], images: Sequence[str]) -> str | None:
    """Which of a dataset's files (`names`, "/"-separated, relative) is its dataset.json: the one at the top, else
    the one in the folder that holds every image (a zip made by `zip -r set.zip set/` has set/dataset.json), else
    None."""
    top = [n for n in names if _plain_name(n) == "dataset.json"]
    if top:
        return top[0]
    nested = [n for n in names if n.endswith("/dataset.json") and is_listed_image(n, ("/dataset.json",))]
    tops = [n for n in nested if all(_plain_name(i).startswith(_plain_name(n)[: -len("dataset.json")])
                                     for i in images)]
    return tops[0] if len(tops) == 1 else None


def _plain_name(name: str) -> str:
    """A dataset's file name as its images are matched: "/"-separated, without the "./" some tools write."""
    return name.replace("\\", "/").removeprefix("./")


def _read_labels(meta: dict, fnames: list[str], where: str,
                 top: str = "") -> tuple[list[int] | None, list[str]]:
    """Each of `fnames`' integer class label from dataset.json's "labels" ([[fname, int], ...], names relative to
    the folder `top` it lies in, "./" or "\\" written as some tools do), or None without labels, and the labelled
    names that are not among `fnames` (a file removed or renamed); ValueError naming `where` for a malformed list,
    an image labelled twice differently or an image without a label."""
    labels = meta.get("labels")
    if not labels:
        return None, []
    pair = '[fname, integer class] pairs such as ["a.png", 0]'
    if not isinstance(labels, list) or not all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
                                               for e in labels):
        raise ValueError(f'{where}: "labels" must be a list of {pair}')
    top = "" if all(_plain_name(k).startswith(top) for k, _ in labels) else top  # written from the top already
    table = {top + _plain_name(k): v for k, v in labels}
    clash = next(((k, table[top + _plain_name(k)], v) for k, v in labels if table[top + _plain_name(k)] != v), None)
    if clash:
        raise ValueError(f"{where}: {clash[0]} is labelled twice, {clash[2]!r} and {clash[1]!r}: give each image one "
                         "label")
    bad = [(k, v) for k, v in table.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise ValueError(f'{where}: the label {bad[0][1]!r} of {bad[0][0]} is not a class number >= 0 ("labels" '
                         f"holds {pair})")
    missing = [f for f in fnames if _plain_name(f) not in table]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ValueError(f'{where}: "labels" gives no label for {missing[0]}{more}: label every image, or remove '
                         '"labels" to train without them')
    present = {_plain_name(f) for f in fnames}
    return [table[_plain_name(f)] for f in fnames], sorted(k for k in table if k not in present)


class _DecodeCache:
    """Decoded (H, W, 3) uint8 images by name, kept until `limit` bytes are held (later ones decode each time)."""

    def __init__(self, read, limit: int = DECODE_CACHE_BYTES):
        self.read, self.limit, self.held, self.images = read, limit, 0, {}

    def _bytes(self, name: str) -> bytes:
        """The file's bytes; ImageError when it vanished or its zip member is damaged (a run keeps its steps)."""
        from ncvsd_cli.images import ImageError

        try:
            return self.read(name)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ImageError(f"{name}: cannot read the file ({exc})") from None

    def get(self, name: str, scale: float) -> np.ndarray:
        key = (name, scale)
        if key not in self.images:
            full = self.images[(name, 1.0)] if (name, 1.0) in self.images else _decode(self._bytes(name), name)
            a = _rescale(full, scale)
            if self.held + a.nbytes > self.limit:
                return a
            self.images[key], self.held = a, self.held + a.nbytes
        return self.images[key]


def files_fingerprint(entries: Sequence[tuple]) -> str:
    """"N files, sha256 H": H over the sorted (name, size[, crc32]) entries of a dataset's image files (a folder:
    names and sizes; a zip: also the CRC-32 of each member's content), recorded in the checkpoints trained on it so
    that the data is known wherever it lies, not by a path that only existed on one machine. A folder's same-size
    edit keeps it (hashing every byte at each start would cost a read of the whole set)."""
    import hashlib

    digest = hashlib.sha256(json.dumps(sorted(list(e) for e in entries)).encode()).hexdigest()
    return f"{len(entries)} files, sha256 {digest[:16]}"


def _short_sides(path: Path, names: Sequence[str]) -> dict[str, int]:
    """The short side (px) of each image `names` of the folder or zip `path` as shown (EXIF orientation), from its
    header (Pillow opens lazily, so a zip member is read for its first bytes only). Raises ImageError naming every
    unreadable image (the first UNREADABLE_NAMED of them; one at a time, each fix revealed the next)."""
    from PIL import Image, UnidentifiedImageError

    from ncvsd_cli.images import ImageError, image_size
    from operators.params import displayed_size

    sides, bad = {}, []
    with contextlib.ExitStack() as stack:
        zf = None if path.is_dir() else stack.enter_context(zipfile.ZipFile(path))
        for n in names:
            try:
                with (open(path / n, "rb") if zf is None else zf.open(n)) as f, Image.open(f) as im:
                    sides[n] = min(displayed_size(im))
            except (OSError, UnidentifiedImageError, zipfile.BadZipFile) as exc:
                try:  # what Pillow cannot open, `images` may (float TIFF through tifffile)
                    sides[n] = min(image_size((path / n).read_bytes() if zf is None else zf.read(n), name=n))
                except (ImageError, zipfile.BadZipFile):  # a damaged zip member: "Bad CRC-32" was an internal error
                    why = ("not an image format Pillow reads" if isinstance(exc, UnidentifiedImageError)
                           else getattr(exc, "strerror", None) or str(exc))  # Pillow's message names its file object
                    bad.append((n, why))
    if len(bad) == 1:
        raise ImageError(f"{bad[0][0]}: cannot read the image header ({bad[0][1]})")
    if bad:
        named = "; ".join(f"{n} ({why})" for n, why in bad[:UNREADABLE_NAMED])
        more = f", and {len(bad) - UNREADABLE_NAMED} more" if len(bad) > UNREADABLE_NAMED else ""
        raise ImageError(f"{len(bad)} of the {len(names)} images of {path} cannot be read (their headers): {named}"
                         f"{more}; move them out of it or replace them")
    return sides


#: How many unreadable images of a training set the error names (`_short_sides`).
UNREADABLE_NAMED = 5


def folder_or_zip_source(path: str | Path, min_side: int | None = None) -> ImageSource:
    """Images in a folder (recursive; an ncvsd run folder inside it, with run.json and log.jsonl, left out) or a
    zip file, sorted by relative name. Its `dataset.json` (EDM2 dataset-tool
    layout) gives labels ({"labels": [[fname, int], ...]}) and optionally a pyramid ({"scales": [1.0, 0.5]}: every
    image at every downscaling factor, each one item). Decoding is lazy and cached (DECODE_CACHE_BYTES).
    min_side: the training crop; a pyramid level whose short side is below it is left out (it would be upscaled,
    i.e. blurred, to the crop), all but each image's largest (read from the image headers)."""
    path = Path(path)
    skipped: list[Path] = []
    if path.is_dir():
        found = list(path.rglob("*"))
        skipped = sorted({p.parent for p in found if p.name == "run.json" and (p.parent / "log.jsonl").is_file()}
                         - {path})  # an ncvsd run inside the data (its previews are no training data)
        listed = sorted(p for p in found if p.is_file() and not any(d in p.parents for d in skipped))
        names = [p.relative_to(path).as_posix() for p in listed]
        rel = [n for n in names if is_listed_image(n, TRAINING_SUFFIXES)]
        meta_name = dataset_json_name(names, rel)
        meta = _dataset_meta((path / meta_name).read_bytes(), str(path / meta_name)) if meta_name else {}
        entries = [(name, (path / name).stat().st_size) for name in rel]

        def read(name: str) -> bytes:
            return (path / name).read_bytes()
    elif path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if not n.endswith("/"))
            rel = [n for n in names if is_listed_image(n, TRAINING_SUFFIXES)]
            meta_name = dataset_json_name(names, rel)
            meta = _dataset_meta(zf.read(meta_name), f"{path}: {meta_name}") if meta_name else {}
            wanted = set(rel)
            entries = [(i.filename, i.file_size, i.CRC) for i in zf.infolist() if i.filename in wanted]
        handle: dict = {}

        def read(name: str) -> bytes:
            if "zf" not in handle:  # opened lazily, once per process
                handle["zf"] = zipfile.ZipFile(path)
            return handle["zf"].read(name)
    elif path.is_file() and path.suffix.lower() == ".zip":  # a copy or download cut short: no central directory
        raise ValueError(f"--data {str(path)!r} is a damaged or incomplete zip file (its table of contents at the end "
                         "is missing or unreadable): copy or download it again")
    else:
        missing = "" if path.exists() else " (it does not exist)"
        raise ValueError(f"--data {str(path)!r} is neither 'builtin', 'photos', a folder of images nor a zip "
                         f"file{missing}")
    if not rel:
        raise ValueError(f"--data {str(path)!r} holds no images ({', '.join(TRAINING_SUFFIXES)}; GIFs, hidden files and "
                         "ncvsd run folders are left out)")
    scales = meta.get("scales") or [1.0]
    if not isinstance(scales, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1
                                               for v in scales):
        raise ValueError(f"{path}: dataset.json scales {scales} must be a list of numbers in (0, 1]")
    scales = [float(v) for v in scales]
    top = _plain_name(meta_name)[: -len("dataset.json")] if meta_name else ""  # `zip -r set.zip set/`: "set/"
    class_labels, unlisted = _read_labels(meta, rel, f"{path}: {meta_name}", top)
    labels = dict(zip(rel, class_labels or []))
    pairs = [(n, s) for n in rel for s in scales]
    short = _short_sides(path, rel)  # every header now: a file that is no image fails here, not hours into a run
    if min_side and min(scales) < max(scales):
        pairs = [(n, s) for n, s in pairs if s == max(scales) or short[n] * s >= min_side]
    small = [n for n in rel if min_side and short[n] * max(scales) < min_side]
    kept = set(rel)
    gifs = [n for n in names if n not in kept and is_listed_image(n)]
    warnings = [f"{len(small)} of the {len(rel)} images in {path} (e.g. {small[0]}, {short[small[0]]} px) are "
                f"smaller than the {min_side}-px training crop: they are upscaled to it, i.e. blurred, and the model "
                "learns blur from them" if small else "",
                f"{len(gifs)} GIF file(s) in {path} (e.g. {gifs[0]}) are left out: palette images (256 colours) "
                "would teach banding; convert them to PNG to train on them" if gifs else "",
                f"{meta_name} labels {len(unlisted)} file(s) that are not in {path} or not training images (e.g. "
                f"{unlisted[0]}): removed or renamed?" if unlisted else ""]
    warning = "; ".join(w for w in warnings if w) or None
    cache = _DecodeCache(read)
    items = [lambda n=n, s=s: cache.get(n, s) for n, s in pairs]
    return ImageSource(items, labels=[labels[n] for n, _ in pairs] if labels else None,
                       licences=meta.get("licences"), fingerprint=files_fingerprint(entries),
                       description=f"{len(rel)} image(s) from {path}" + (
                           f", {len(pairs)} items with dataset.json's scales" if len(pairs) != len(rel) else "") + (
                           f" (the ncvsd run folder(s) {', '.join(str(d.relative_to(path)) for d in skipped)} "
                           "in it left out)" if skipped else ""),
                       warning=warning)


def photos_path() -> Path:
    """Where `--data photos` is read from: $NCVSD_PHOTOS, else ~/.cache/ncvsd/photos.zip."""
    return Path(os.environ.get(PHOTOS_ENV) or DEFAULT_PHOTOS).expanduser()


def open_source(data: str, resolution: int) -> ImageSource:
    """`builtin`, `photos` or a folder/zip path -> ImageSource."""
    # a folder or zip of that name here is not taken for the set: said (`--data ./photos` names it)
    here = f"; ./{data} here is not used: --data ./{data} trains on it" if data in ("builtin", "photos") and \
        Path(data).exists() else ""
    if data == "builtin":
        source = builtin_source(resolution)
    elif data == "photos":
        path = photos_path()
        if not path.exists():
            raise ValueError(f"no photos set at {path}; build it with `python -m ncvsd_cli.training.photos {path} "
                             f"--cache DIR` or set {PHOTOS_ENV}{here}")
        source = folder_or_zip_source(path, resolution)
    else:
        return folder_or_zip_source(data, resolution)
    if here:
        source.warning = "; ".join(w for w in (source.warning, f"the {data} set is used{here}") if w)
    return source


def _mix(*xs: int) -> int:
    """A 63-bit hash of integers (splitmix64 rounds) used as a per-item seed."""
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h = (h ^ (int(x) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class ImageStream:
    """Infinite stream of (batch, C, R, R) crops in [-1, 1] for one rank, with exact resume (`batch` per rank).

    Global item p (0, 1, 2, ...) is assigned to rank p % world_size. Sources with uniform weights (folders, zips)
    are visited as per-epoch permutations seeded by (seed, epoch); weighted sources (builtin) draw an image with
    probability `weights`. Crop position and x-flip (p = 0.5 when `xflip`) come from the seed (seed, p).
    Images smaller than the crop are upscaled (bicubic) so that their short side equals `resolution`.
    """

    def __init__(self, source: ImageSource, resolution: int, batch: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, xflip: bool = True):
        if resolution < 1 or batch < 1:
            raise ValueError(f"resolution {resolution} and batch {batch} must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.source, self.resolution, self.batch = source, resolution, batch
        self.seed, self.rank, self.world_size, self.xflip = seed, rank, world_size, xflip
        self.position = 0  # number of batches this rank has produced
        self._uniform = bool(np.allclose(source.weights, source.weights[0]))
        self._cum = np.cumsum(source.weights)
        self._perm_cache: tuple[int, np.ndarray] | None = None

    def state_dict(self) -> dict:
        return {"position": self.position, "seed": self.seed, "rank": self.rank, "world_size": self.world_size,
                "items": self.position * self.batch * self.world_size}

    def load_state_dict(self, state: dict) -> None:
        """Continue after the state's last global item, also with another world size (the global batch, batch x
        world size, must then divide the items done; states without "items" kept the global batch)."""
        if state["seed"] != self.seed:
            raise ValueError(f"data seed {state['seed']} in the saved state differs from --seed {self.seed}")
        step_items = self.batch * self.world_size
        items = state.get("items", state["position"] * step_items)
        if items % step_items:
            raise ValueError(f"the saved data position ({items} images) is not a whole number of batches of "
                             f"{step_items}: resume with a --batch that divides {items} (the run's own does)")
        self.position = items // step_items

    def _index(self, p: int, rng: np.random.Generator) -> int:
        n = len(self.source)
        if not self._uniform:
            return int(min(np.searchsorted(self._cum, rng.random() * self._cum[-1], side="right"), n - 1))
        epoch = p // n
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            self._perm_cache = (epoch, np.random.default_rng(_mix(self.seed, epoch, 7)).permutation(n))
        return int(self._perm_cache[1][p % n])

    def item(self, p: int) -> tuple[torch.Tensor, int]:
        """Global item `p` as ((3, R, R) tensor in [-1, 1], label or -1)."""
        crop, label = self._crop(p)
        return _u8_to_tensor(crop), label

    def _crop(self, p: int) -> tuple[np.ndarray, int]:
        """Global item `p` as ((R, R, 3) uint8 crop, label or -1)."""
        rng = np.random.default_rng(_mix(self.seed, p))
        i = self._index(p, rng)
        a = self.source.get(i)
        r = self.resolution
        h, w = a.shape[:2]
        if min(h, w) < r:
            from PIL import Image

            s = r / min(h, w)
            a = np.asarray(Image.fromarray(a).resize((max(r, round(w * s)), max(r, round(h * s))), Image.BICUBIC))
            h, w = a.shape[:2]
        top, left = int(rng.integers(0, h - r + 1)), int(rng.integers(0, w - r + 1))
        crop = a[top:top + r, left:left + r]
        if self.xflip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        label = self.source.labels[i] if self.source.labels is not None else -1
        return crop, label

    def next(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch: (images (B, 3, R, R) in [-1, 1] on `device`, labels (B,) long, -1 if unlabelled)."""
        first = (self.position * self.batch) * self.world_size
        items = [self._crop(first + k * self.world_size + self.rank) for k in range(self.batch)]
        self.position += 1
        from ncvsd_cli.images import from_unit

        u8 = torch.from_numpy(np.stack([c for c, _ in items])).permute(0, 3, 1, 2)  # one conversion per batch
        y = torch.tensor([lab for _, lab in items], dtype=torch.long)
        if torch.device(device).type == "cuda":
            u8 = u8.pin_memory()
        x = from_unit(u8.to(device, non_blocking=True).float() / 255.0).contiguous()
        return x, y.to(device)
