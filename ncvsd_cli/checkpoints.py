"""Checkpoint files: safetensors weights with a JSON config, a manifest of shipped files, and lookup.

Format (docs/architecture.md, "Checkpoints"): one safetensors file per model; its `__metadata__` holds the key "ncvsd" with a
JSON object {format_version, kind, preset, arch, img_resolution, img_channels, label_dim, sigma_data, gamma,
provenance: {data, steps, date, command, ...}}. Loading reads that config, builds the network with
`ncvsd_cli.networks.build_network(config)` and loads the tensors strictly. Nothing pickled is ever executed.

Lookup order for a name (`resolve_checkpoint`): an existing path, then `$NCVSD_CHECKPOINTS`, then the shipped folder
(the package `ncvsd_checkpoints`, i.e. `checkpoints/` in the source tree), then a model-zoo name (`ncvsd_cli.zoo`:
downloaded and converted on first use), then the user cache (`$XDG_CACHE_HOME/ncvsd`, default `~/.cache/ncvsd`).
A pickle path is converted once into the cache by the safe importer; a URL of a zoo file means its zoo name.

Verification goes by content: a file is checked against its size and sha256 when its name is listed in
`checkpoints/manifest.yaml`, when a record (NAME.record.json, written when the cache converts a download or a
pickle) sits beside it, or when its safetensors header is the header of any such file (a renamed or copied file
is recognised by it: the header holds the tensor layout and the config with its provenance).

torch and safetensors are imported inside the functions that need them, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT_VERSION = 1
METADATA_KEY = "ncvsd"
SUFFIX = ".safetensors"
ENV_DIR = "NCVSD_CHECKPOINTS"
SHIPPED_PACKAGE = "ncvsd_checkpoints"
MANIFEST_NAME = "manifest.yaml"
RECORD_SUFFIX = ".record.json"
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header
KINDS = ("teacher", "generator", "score", "discriminator")

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable, does not match the manifest, or does not fit the network.

    The CLI maps it to exit code 3 with its message on one line.
    """


class NotANetworkCheckpoint(CheckpointError):
    """A safetensors file without an "ncvsd" config (e.g. the LPIPS backbone weights)."""


# --------------------------------------------------------------------------------------------- hashing, manifest
def sha256_file(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """Lower-case hex sha256 of a file, read in `chunk_size` byte chunks (cached per path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(chunk_size), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def shipped_dir() -> Path:
    """Folder of the shipped weights: the installed package `ncvsd_checkpoints` (`checkpoints/` in a checkout)."""
    return Path(str(importlib.resources.files(SHIPPED_PACKAGE)))


def cache_dir() -> Path:
    """User cache for downloaded or imported weights: `$XDG_CACHE_HOME/ncvsd`, default `~/.cache/ncvsd`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ncvsd"


def load_manifest() -> dict[str, Any]:
    """The shipped manifest as {"defaults": {kind: file}, "files": {file: {sha256, size, licence, provenance}}}."""
    path = shipped_dir() / MANIFEST_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint manifest not found at {path}; the installation is incomplete")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CheckpointError(f"checkpoint manifest {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint manifest {path} must be a mapping, got {type(data).__name__}")
    defaults, files = data.get("defaults") or {}, data.get("files") or {}
    if not isinstance(defaults, dict) or not isinstance(files, dict):
        raise CheckpointError(f"checkpoint manifest {path}: 'defaults' and 'files' must be mappings")
    for name, entry in files.items():
        if not isinstance(entry, dict) or "sha256" not in entry or "size" not in entry:
            raise CheckpointError(f"checkpoint manifest {path}: entry {name!r} needs 'sha256' and 'size'")
    return {"defaults": defaults, "files": files}


def manifest_entry(path: str | os.PathLike, *, licence: str = "", **provenance: Any) -> str:
    """A YAML snippet for `files:` in the manifest describing `path` (for maintainers adding a file)."""
    p = Path(path)
    entry = {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size, "header_sha256": header_sha256(p),
                      "licence": licence, "provenance": provenance}}
    return yaml.safe_dump(entry, sort_keys=False)


def verify_file(path: str | os.PathLike, entry: dict[str, Any]) -> None:
    """Check a file's size and sha256 against a manifest entry; raise CheckpointError naming both hashes."""
    p = Path(path)
    size = p.stat().st_size
    if int(entry["size"]) != size:
        hint = ""
        with open(p, "rb") as f:
            if f.read(40).startswith(b"version https://git-lfs"):
                hint = " (it is a Git LFS pointer: run `git lfs pull`)"
        raise CheckpointError(
            f"checksum mismatch for {p.name} ({p}): expected size {entry['size']} bytes and sha256 "
            f"{entry['sha256']}, found size {size} bytes and sha256 {sha256_file(p)}{hint}")
    actual = sha256_file(p)
    if actual != str(entry["sha256"]).lower():
        raise CheckpointError(
            f"checksum mismatch for {p.name} ({p}): expected sha256 {entry['sha256']}, actual {actual}; "
            "the file is corrupt or was replaced")


def header_sha256(path: str | os.PathLike) -> str | None:
    """sha256 of a safetensors file's header (8-byte length + JSON), the file's identity whatever its name;
    None when the file is not a safetensors file."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return None
        n = int.from_bytes(head, "little")
        if n > MAX_HEADER_BYTES:
            return None
        body = f.read(n)
    if len(body) < n or not body.startswith(b"{"):
        return None
    return hashlib.sha256(head + body).hexdigest()


def record_path(path: str | os.PathLike) -> Path:
    """The record beside a converted file: NAME.safetensors -> NAME.record.json."""
    p = Path(path)
    return p.with_name(p.name.removesuffix(SUFFIX) + RECORD_SUFFIX)


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The record of a file the cache converted ({name, sha256, size, header_sha256, licence, source, fix}),
    or None when there is none or it is unreadable."""
    try:
        record = json.loads(record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "sha256" in record and "size" in record else None


def write_record(path: str | os.PathLike, *, name: str, licence: str | None, source: dict[str, Any],
                 fix: str) -> dict[str, Any]:
    """Record the sha256, size and header hash of a converted file with its source (atomic write); returns it.
    fix: what the user runs when the file no longer matches (e.g. "run `ncvsd checkpoints download NAME --force`")."""
    p = Path(path)
    record = {"name": name, "file": p.name, "sha256": sha256_file(p), "size": p.stat().st_size,
              "header_sha256": header_sha256(p), "licence": licence, "source": source, "fix": fix}
    from ncvsd_cli.images import atomic_write_bytes

    atomic_write_bytes(record_path(p), json.dumps(record, indent=2).encode())
    return record


def verify_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Check a converted file against its record; raise CheckpointError with the record's fix."""
    try:
        verify_file(path, record)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; {record.get('fix') or 'convert it again'}") from None


#: How to get the shipped checkpoints back (the package is installed from a wheel or a clone, not from PyPI yet).
REINSTALL = ("reinstall ncvsd from where it came (`pip install --force-reinstall DIST.whl`, or in a clone "
             "`git checkout -- checkpoints/ && pip install .`)")


def _known_files() -> list[tuple[str, dict[str, Any], str]]:
    """(name, entry with sha256/size/header_sha256, fix) for every manifest file and every cache record."""
    reinstall = f"or {REINSTALL}"
    out = [(name, entry, f"use the shipped one (`--checkpoint {name.removesuffix(SUFFIX)}`) {reinstall}")
           for name, entry in load_manifest()["files"].items()]
    for folder in (cache_dir(), cache_dir() / "imported"):
        for rec_file in sorted(folder.glob(f"*{RECORD_SUFFIX}")) if folder.is_dir() else ():
            record = read_record(folder / (rec_file.name.removesuffix(RECORD_SUFFIX) + SUFFIX))
            if record:
                out.append((str(record.get("file")), record, str(record.get("fix") or "convert it again")))
    return out


def verify_if_listed(path: str | os.PathLike) -> str:
    """Verify `path` by content: against the manifest entry of its name, the record beside it, or the entry whose
    safetensors header it carries (a renamed copy). Returns "verified" or "not in manifest"; raises
    CheckpointError on a mismatch, saying which file it is a damaged copy of and what to run."""
    p = Path(path)
    entry = load_manifest()["files"].get(p.name)
    if entry is not None:
        try:
            verify_file(p, entry)
        except CheckpointError as exc:
            if p.parent.resolve() == shipped_dir().resolve():
                raise CheckpointError(f"{exc}; {REINSTALL}") from None
            raise CheckpointError(f"{exc}; if it is a model of yours, give it a name of its own ({p.name} is a shipped "
                                  "checkpoint's name, and is checked as that one)") from None
        return "verified"
    record = read_record(p)
    if record is not None:
        verify_record(p, record)
        return "verified"
    header = header_sha256(p)
    for name, known, fix in _known_files() if header else ():
        if known.get("header_sha256") == header:
            if sha256_file(p) != str(known["sha256"]).lower() or p.stat().st_size != int(known["size"]):
                raise CheckpointError(
                    f"checksum mismatch for {p.name} ({p}): it is a copy of {name} (same header) but its sha256 "
                    f"is {sha256_file(p)}, expected {known['sha256']}; the file is damaged: {fix}")
            return "verified"
    return "not in manifest"


def locate_shipped_file(filename: str) -> Path:
    """Path of a shipped file (e.g. "lpips-alex.safetensors"), verified against the manifest's size and sha256.

    Raises CheckpointError when the file is not listed, missing, or its hash differs.
    """
    entry = load_manifest()["files"].get(filename)
    if entry is None:
        raise CheckpointError(f"{filename} is not listed in the checkpoint manifest {shipped_dir() / MANIFEST_NAME}")
    path = shipped_dir() / filename
    if not path.is_file():
        raise CheckpointError(f"shipped file {filename} is listed in the manifest but missing from {shipped_dir()}")
    verify_file(path, entry)
    return path


def default_checkpoint(kind: str = "generator") -> str:
    """File name of the default checkpoint of `kind` ("generator" or "teacher") from the manifest's `defaults`."""
    defaults = load_manifest()["defaults"]
    name = defaults.get(kind)
    if not name:
        configured = ", ".join(f"{k}={v}" for k, v in defaults.items()) or "none"
        raise CheckpointError(
            f"no default {kind} checkpoint is configured (manifest defaults: {configured}); "
            "pass a checkpoint name or path explicitly")
    return str(name)


# ---------------------------------------------------------------------------------------------------- lookup
def search_locations() -> list[tuple[str, Path]]:
    """(label, folder) pairs in lookup order: "env" ($NCVSD_CHECKPOINTS, if set), "shipped", "cache"."""
    locations = []
    env = os.environ.get(ENV_DIR)
    if env:
        locations.append(("env", Path(env).expanduser()))
    locations.append(("shipped", shipped_dir()))
    locations.append(("cache", cache_dir()))
    return locations


def env_location_problem() -> str | None:
    """Why $NCVSD_CHECKPOINTS, when set, is not searched: "not a folder" (a file) or "missing"; None otherwise."""
    env = os.environ.get(ENV_DIR)
    if not env or Path(env).expanduser().is_dir():
        return None
    return "not a folder" if Path(env).expanduser().exists() else "missing"


def location_files(folder: Path) -> list[Path]:
    """A search location's checkpoint files: its *.safetensors, then, for a `ncvsd train` / `distill` run folder
    (NCVSD_CHECKPOINTS=runs/exp1), its snapshots/ (`run_snapshots`, oldest first). [] for a missing folder."""
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob(f"*{SUFFIX}")) if p.is_file()] + [p for _, _, p in run_snapshots(folder)]


def _available_names() -> list[str]:
    """The safetensors files of `search_locations()`, less those that are not networks (e.g. LPIPS weights)."""
    names = []
    for _, folder in search_locations():
        if folder.is_dir():
            for p in location_files(folder):
                try:
                    read_config(p)
                except NotANetworkCheckpoint:
                    continue
                except CheckpointError:
                    pass  # listed: resolving it by name gives the reason it cannot load
                names.append(p.name)
    return sorted(set(names))


def is_pickle(path: str | os.PathLike) -> bool:
    """Whether a file is a pickle (".pkl" / ".pickle", or the protocol-2+ opcode where safetensors has '{')."""
    p = Path(path)
    if p.suffix.lower() in (".pkl", ".pickle"):
        return True
    with open(p, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[0] == 0x80 and 2 <= head[1] <= 5 and head[8:9] != b"{"


def _zoo_names() -> list[str]:
    from ncvsd_cli import zoo

    try:
        return zoo.names()
    except CheckpointError:
        return []


#: The command whose runs hold snapshots of each network kind.
SNAPSHOT_TRAINERS = {"teacher": "train", "generator": "distill"}

#: snapshots/<kind>-<kimg>-<sigma_rel>.safetensors as `ncvsd train` / `distill` name them (training.common;
#: version 0.1.0 wrote whole kimg, `teacher-0000170-0.050`, which sorts before `teacher-0000170.500-0.050`).
SNAPSHOT_NAME = re.compile(r"^(teacher|generator)-\d{7}(?:\.\d{3})?-(\d\.\d{3})" + re.escape(SUFFIX) + "$")


def run_snapshots(run_dir: Path) -> list[tuple[str, str, Path]]:
    """[(kind, sigma_rel as "0.050", path)] of a run folder's snapshots, oldest first (other files ignored)."""
    files = sorted(run_dir.glob(f"snapshots/*{SUFFIX}"))
    return [(m[1], m[2], p) for p in files if (m := SNAPSHOT_NAME.match(p.name))]


def run_snapshot(run_dir: str | os.PathLike, kind: str, sigma_rel: float = 0.05) -> Path:
    """The newest snapshots/<kind>-<kimg>-<sigma_rel>.safetensors of a `ncvsd train` / `distill` run folder
    (kind "teacher" or "generator"; sigma_rel: the EMA length, 0.05 or 0.1). Raises CheckpointError if none."""
    held = run_snapshots(Path(run_dir))
    files = [p for k, r, p in held if k == kind and r == f"{sigma_rel:.3f}"]
    if not files:
        pairs = sorted({(k, r) for k, r, _ in held})
        kinds = sorted({k for k, _ in pairs})
        if kinds and kind not in kinds:  # a teacher run where a generator is needed, or the other way round
            made_by = f"an `ncvsd {SNAPSHOT_TRAINERS[kind]}` run" if kind in SNAPSHOT_TRAINERS else "a run"
            raise CheckpointError(f"{run_dir} is a run of a {' and '.join(kinds)}; a {kind} is needed here: give "
                                  f"{made_by} or a {kind} checkpoint")
        raise CheckpointError(f"{run_dir} holds no {kind} snapshot with EMA sigma_rel {sigma_rel:.3f}" + (
            f" (EMA lengths there: {', '.join(r for _, r in pairs)}; name a snapshot file to use one)" if pairs
            else " (none yet)"))
    return files[-1]


def resolve_checkpoint(name_or_path: str | os.PathLike, *, quiet: bool = False, kind: str | None = None) -> Path:
    """Find a checkpoint: an existing file path, a run folder of `ncvsd train` / `distill` (its newest snapshot
    of `kind`, EMA sigma_rel 0.05; without `kind`, of the one kind it holds), else a bare name (".safetensors"
    optional) in `search_locations()`, where a model-zoo name comes before the cache.

    A zoo name (or the URL of a zoo file) not yet in the cache is downloaded and converted (`ncvsd_cli.zoo.ensure`);
    a pickle path is converted once into the cache by the safe importer. quiet: no notes or progress bars.
    Raises CheckpointError listing the folders searched, the names available there and the zoo.
    """
    from ncvsd_cli import zoo

    raw = os.fspath(name_or_path)
    if not raw:
        raise ValueError("empty checkpoint name")  # a usage error (CLI exit 2), not a checkpoint problem
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", raw):
        entry = zoo.find(raw)
        if entry is None:
            raise CheckpointError(
                f"{raw} is not a file of the model zoo ({', '.join(_zoo_names()) or 'empty'}); download it "
                "yourself and convert it with `ncvsd checkpoints import FILE -o NAME.safetensors`")
        raw = entry.name
    explicit = Path(raw).expanduser()
    if explicit.is_symlink() and not explicit.exists():
        raise CheckpointError(f"{raw}: a broken symbolic link (to {os.readlink(explicit)}, which does not exist)")
    if explicit.is_file():
        return zoo.import_into_cache(explicit, quiet=quiet) if is_pickle(explicit) else explicit
    searched = []
    kinds = {k for k, _, _ in run_snapshots(explicit)} if explicit.is_dir() else set()
    if kinds and (kind in kinds or (kind is None and len(kinds) == 1)):
        path = run_snapshot(explicit, kind or kinds.pop())
        zoo._say(f"{raw}: its newest snapshot, {path.relative_to(explicit)}", quiet)
        return path
    if explicit.is_dir():
        if kind is not None and kinds:
            run_snapshot(explicit, kind)  # raises: names the kind(s) the run holds
        inside = sorted(p.name for p in explicit.glob(f"*{SUFFIX}")) + sorted(
            f"snapshots/{p.name}" for p in explicit.glob(f"snapshots/*{SUFFIX}"))[-2:]
        if not inside and (explicit / "run.json").is_file():  # a run still before its first snapshot
            raise CheckpointError(f"{raw} is an ncvsd training run with no snapshot yet (its first is written after "
                                  "the run's --snapshot interval, and at its end)")
        raise CheckpointError(f"{raw} is a folder, not a checkpoint file" + (
            f"; in it: {', '.join(inside[:6])}" if inside else "; it holds no .safetensors file"))
    if explicit.exists():  # /dev/null, a fifo: there, but no file to read a checkpoint from
        raise CheckpointError(f"checkpoint {raw!r} is not a regular file")
    if os.sep in raw or (os.altsep and os.altsep in raw):
        searched.append(str(explicit))
    else:
        candidates = [raw] if raw.endswith(SUFFIX) else [raw + SUFFIX, raw]
        for label, folder in search_locations():
            if label == "cache" and zoo.find(raw) is not None:
                return zoo.ensure(zoo.find(raw).name, quiet=quiet)
            problem = env_location_problem() if label == "env" else None
            searched.append(f"{folder} ({label}{f': {problem}' if problem else ''})")
            for cand in candidates:
                for place in (folder, folder / "snapshots") if SNAPSHOT_NAME.match(cand) else (folder,):
                    if (place / cand).is_file():
                        return place / cand
    import difflib

    available = _available_names()  # reads each file's header: once
    known = available + _zoo_names()
    pool = [n for n in known + [n.removesuffix(SUFFIX) for n in known]  # a name of the kind needed
            if kind is None or not any(other in n for other in KINDS if other != kind)]
    close = difflib.get_close_matches(os.path.basename(raw), pool, n=1)
    raise CheckpointError(
        f"checkpoint {raw!r} not found{f' (did you mean {close[0]}?)' if close else ''}; looked in: "
        f"{'; '.join(searched)}; available: {', '.join(available) or 'none'}; "
        f"model zoo (downloaded on first use): {', '.join(_zoo_names()) or 'none'}")


# ------------------------------------------------------------------------------------------------ the format
#: Leading bytes of files given by mistake as checkpoints, and what they are.
_FORMAT_MAGIC = ((b"PK\x03\x04", "a zip archive, as torch.save writes"), (b"\x89PNG", "a PNG image"),
                 (b"\xff\xd8\xff", "a JPEG image"), (b"RIFF", "a RIFF file (WebP image?)"),
                 *((b"\x80" + bytes([v]), "a Python pickle") for v in (2, 3)),
                 *((b"\x80" + bytes([v]) + b"\x95", "a Python pickle") for v in (4, 5)))


def file_format(path: str | os.PathLike) -> str | None:
    """What a file given as a checkpoint is by its first bytes (`_FORMAT_MAGIC`), or None (unknown or unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    return next((what for magic, what in _FORMAT_MAGIC if head.startswith(magic)), None)


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The "ncvsd" JSON config stored in a checkpoint's safetensors metadata (no tensors are read)."""
    from safetensors import safe_open

    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        other = file_format(p)
        state = p.name == "state.pt" and (p.parent / "log.jsonl").exists()  # a training run's resume state
        hint = (f": it is a training run's resume state; -c {p.parent} restores with the run's newest snapshot"
                if state and other else
                f": it is {other} (ncvsd reads safetensors files with an ncvsd config; `ncvsd checkpoints import` "
                "converts the authors' network pickles)" if other else f": {exc}")
        raise CheckpointError(f"{p} is not a readable safetensors file{hint}") from exc
    if METADATA_KEY not in metadata:
        raise NotANetworkCheckpoint(f"{p} has no '{METADATA_KEY}' config in its metadata; it is not an ncvsd checkpoint")
    try:
        config = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p}: the '{METADATA_KEY}' metadata is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):  # `checkpoints list` failed on one such file: "internal error: AttributeError"
        raise CheckpointError(f"{p}: the '{METADATA_KEY}' metadata holds a JSON {type(config).__name__}, not the "
                              "config object")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{p}: checkpoint format_version {version!r} is not supported "
                              f"(this ncvsd reads versions up to {FORMAT_VERSION})")
    if config.get("kind") not in KINDS:
        raise CheckpointError(f"{p}: kind {config.get('kind')!r} is not one of {', '.join(KINDS)}")
    return config


def read_network_config(path: str | os.PathLike) -> dict[str, Any]:
    """`read_config`, checked that it builds a network (its shape read as `memory.network_shape` does, which the
    memory checks before loading use): CheckpointError naming the file otherwise (an unknown or mistyped
    architecture field was an "internal error: TypeError" or an input's failure, before the loader's own check)."""
    from ncvsd_cli import memory

    config = read_config(path)
    check_tensors_fit(path, config)
    try:
        memory.network_shape(config)
    except Exception as exc:  # whatever the config's builder raises: the file is the problem
        raise CheckpointError(f"{path}: cannot build the network from its config ({type(exc).__name__}: "
                              f"{str(exc)[:200]})") from exc
    return config


def check_tensors_fit(path: str | os.PathLike, config: dict[str, Any]) -> None:
    """CheckpointError unless the file's tensors (names, shapes, float dtypes; read from its header) are those of
    the network `config` describes, whose size is bounded from the config before it is built (`least_parameters`):
    a 434 KB file whose config named 57 G parameters took 22 GB to list; integer weights loaded unsaid; `info`
    called files "not in manifest" that `restore -c` refused."""
    from ncvsd_cli import memory
    from ncvsd_cli.networks.build import architecture

    stored = header_tensors(path)
    try:  # (the constructors' defaults filled in: a config may leave any arch key out)
        least = least_parameters(architecture(config))
    except (TypeError, ValueError, AttributeError):
        least = 0
    held = sum(math.prod(shape) for shape, _ in stored.values())
    if least > held:
        raise CheckpointError(f"{Path(path).name} does not fit the {config['kind']} network its config describes: "
                              f"that network has at least {least:,} parameters, the file holds {held:,} values")
    try:
        wanted = memory.state_shapes(config)
    except Exception as exc:  # whatever the config's builder raises: the file is the problem
        raise CheckpointError(f"{path}: cannot build the network from its config ({type(exc).__name__}: "
                              f"{str(exc)[:200]})") from exc
    problems = [f"missing {', '.join(sorted(set(wanted) - set(stored))[:3])}" if set(wanted) - set(stored) else "",
                f"unexpected {', '.join(sorted(set(stored) - set(wanted))[:3])}" if set(stored) - set(wanted) else "",
                *[f"{k} is {stored[k][0]} in the file, {shape} in the network" for k, shape in wanted.items()
                  if k in stored and stored[k][0] != shape][:3],
                *[f"{k} holds {dtype} values, not floats" for k, (_, dtype) in stored.items()
                  if dtype not in FLOAT_DTYPES][:3]]
    if any(problems):  # `checkpoints info` / `list` said "not in manifest" of files `restore -c` refused
        raise CheckpointError(f"{Path(path).name} does not fit the {config['kind']} network its config describes: "
                              + "; ".join(p for p in problems if p))


#: safetensors dtypes a network's weights may be stored in (integer weights loaded into float parameters unsaid).
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def header_tensors(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
    """{name: (shape, safetensors dtype)} of a safetensors file's tensors, from its header (nothing else read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118


def least_parameters(arch: Any) -> int:
    """A lower bound on the parameters of the U-Net an arch config describes (one 3x3 convolution per block and
    level of the encoder, model_channels x channel_mult wide), computed without building it; 0 where it cannot be
    read (the builder then says why)."""
    try:
        width, blocks = int(arch["model_channels"]), int(arch["num_blocks"])
        return blocks * sum(9 * (width * int(m)) ** 2 for m in arch["channel_mult"])
    except (KeyError, TypeError, ValueError):
        return 0



def _checkpoint_config(model: torch.nn.Module, config: dict[str, Any]) -> dict[str, Any]:
    """Complete a config for saving: format version, model attributes, provenance with a date."""
    import datetime

    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    kind = config.get("kind")
    if kind not in KINDS:
        raise ValueError(f"config['kind'] = {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(config.get("arch"), dict):
        raise TypeError(f"config['arch'] must be a dict of architecture arguments, got {config.get('arch')!r}")
    out = dict(config)
    out["format_version"] = FORMAT_VERSION
    out.setdefault("preset", None)
    for attr in ("img_resolution", "img_channels", "label_dim", "sigma_data", "gamma"):
        value = getattr(model, attr, None)
        if attr not in out and isinstance(value, (int, float)):
            out[attr] = value
    provenance = dict(out.get("provenance") or {})
    provenance.setdefault("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    out["provenance"] = provenance
    json.dumps(out)  # raises TypeError early for values JSON cannot hold
    return out


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, config: dict[str, Any], *,
                    dtype: torch.dtype | None = None, overwrite: bool = True) -> Path:
    """Write `model.state_dict()` to a safetensors file with `config` as JSON in the metadata key "ncvsd".

    config: {"kind": teacher|generator|score|discriminator, "preset", "arch": {...}, "provenance": {data, steps,
    command, ...}, ...}; img_resolution, img_channels, label_dim, sigma_data and gamma are filled from the model's
    attributes when absent, provenance.date defaults to now (UTC). dtype: cast floating tensors (e.g. torch.float16
    to halve the file), default None keeps them. The write is atomic (temp file in the same folder + os.replace);
    overwrite False never replaces an existing file, one another process made meanwhile included
    (images.OutputExistsError). Returns the path written.
    """
    from safetensors.torch import save

    meta = _checkpoint_config(model, config)
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        ptr = t.untyped_storage().data_ptr()
        t = t.clone() if ptr in seen else t.contiguous()  # safetensors refuses shared storage
        seen.add(t.untyped_storage().data_ptr())
        tensors[name] = t
    from ncvsd_cli.images import atomic_write_bytes

    # serialised here and written by our atomic writer: safetensors' save_file makes a temporary file of its own
    # beside the target (.tmpXXXXXX), which a kill left behind, one snapshot's size each time
    data = save(tensors, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True), "format": "pt"})
    return atomic_write_bytes(Path(path), data, overwrite=overwrite)  # never half written; the umask's permissions


#: What each network kind drives, for the message of a checkpoint of the wrong kind.
KIND_USES = {"teacher": "a teacher drives the methods dps, daps and teacher-mmse, and `sample --teacher`",
             "generator": "a generator drives pnp-gd, pnp-gd-warm, denoiser and their -mean8 / -fit4 forms"}


def load_checkpoint(name_or_path: str | os.PathLike, device: str | torch.device = "cpu", kind: str | None = None,
                    dtype: torch.dtype | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the network a checkpoint describes and load its weights strictly; returns (model in eval mode, config).

    name_or_path: see `resolve_checkpoint`. kind: when given, the checkpoint's kind must equal it. dtype: dtype of
    the floating weights, default None = torch.float32 (fp16 files are widened exactly; half-precision compute on
    CUDA comes from the network's use_fp16 option). Files are verified by content first (`verify_if_listed`).
    Never unpickles anything (a pickle path goes through the safe importer). device: a torch.device, or "cpu",
    "cuda", "cuda:N", "auto" (ValueError where it is not available here). Raises CheckpointError.
    """
    import torch
    from safetensors.torch import load_file

    from ncvsd_cli.networks import build_network

    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} or None, got {kind!r}")
    path = resolve_checkpoint(name_or_path, kind=kind)
    verify_if_listed(path)
    config = read_config(path)
    if kind is None or config["kind"] == kind:  # its tensors against the config's network, before building it
        check_tensors_fit(path, config)
    if kind is not None and config["kind"] != kind:
        uses = KIND_USES.get(config["kind"], "a part of a training state")
        raise CheckpointError(f"{path.name} holds a {config['kind']} network ({uses}), but a {kind} is needed "
                              "here")
    try:
        with torch.random.fork_rng(devices=[]):  # the discarded random init leaves the caller's stream alone
            model = build_network(config)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path.name}: cannot build the network from its config: {exc}") from exc
    state = load_file(str(path), device="cpu")
    dtype = torch.float32 if dtype is None else dtype
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"{path.name} does not fit the {config['kind']} network its config describes: "
                              f"{' '.join(line.strip() for line in first[:3])}") from exc
    check_finite_weights(model, path.name)
    from ncvsd_cli.networks.inference import resolve_device

    device = resolve_device(str(device))  # "cuda" without CUDA (a torch.device too), "mps": a ValueError naming it
    return model.to(device=device, dtype=dtype).eval(), config


def check_finite_weights(model: Any, name: Any) -> None:
    """CheckpointError (CLI exit 3) when a network holds NaN or inf parameters or buffers: a damaged or diverged
    checkpoint, found before any input is restored."""
    import torch

    tensors = [*model.parameters(), *model.buffers()] if isinstance(model, torch.nn.Module) else []
    if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors):
        raise CheckpointError(f"{name}: the network weights contain NaN or inf values (damaged or diverged "
                              "checkpoint)")


# --------------------------------------------------------------------------------------------------- listing
@dataclass
class CheckpointInfo:
    """What `ncvsd checkpoints list/info` shows about one file."""

    name: str
    path: str
    location: str
    size: int
    sha256: str
    kind: str | None = None
    preset: str | None = None
    img_resolution: int | None = None
    status: str = ""
    licence: str | None = None
    #: how the file was made, as the shipped manifest (or a zoo download's record) states it; fuller than the
    #: config's own provenance, which names the trainer's local paths
    origin: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _finite_tensors(path: Path) -> bool:
    """Whether every floating-point tensor of the safetensors file `path` is finite (one tensor in memory at a time)."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())  # a safe_open handle, not a dict
        return all(not t.is_floating_point() or bool(torch.isfinite(t).all()) for t in map(f.get_tensor, names))


def checkpoint_info(name_or_path: str | os.PathLike, location: str | None = None) -> CheckpointInfo:
    """Describe a checkpoint: size, sha256, config and verification status ("verified", "not in manifest",
    "MISMATCH: ...", or "unreadable: ..." for files without an ncvsd config or with NaN / inf weights). Raises
    CheckpointError if not found."""
    path = resolve_checkpoint(name_or_path)
    if location is None:
        location = next((label for label, folder in search_locations() if folder.is_dir() and path.resolve() in
                         {p.resolve() for p in location_files(folder)}), "path")
    listed = load_manifest()["files"].get(path.name) or read_record(path) or {}
    sha256 = sha256_file(path)
    if listed.get("sha256") not in (None, sha256):  # another file of a listed name: the listing is not its story
        listed = {}
    info = CheckpointInfo(name=path.name, path=str(path), location=location, size=path.stat().st_size,
                          sha256=sha256, licence=listed.get("licence"),
                          origin=dict(listed.get("provenance") or listed.get("source") or {}))
    try:
        info.status = verify_if_listed(path)
    except CheckpointError as exc:
        info.status = f"MISMATCH: {exc}"
    try:
        info.config = read_network_config(path)
    except NotANetworkCheckpoint:
        info.status += "; not a network checkpoint"
        return info
    except CheckpointError as exc:
        if not info.status.startswith("MISMATCH"):
            info.status += f"; unreadable: {exc}"
        return info
    info.kind, info.preset = info.config.get("kind"), info.config.get("preset")
    if not _finite_tensors(path):  # as `load_checkpoint` refuses it (the sha256 read the whole file already)
        info.status += "; unreadable: the weights contain NaN or inf values (damaged or diverged checkpoint)"
    info.img_resolution = info.config.get("img_resolution")
    info.licence = info.licence or (info.config.get("provenance") or {}).get("licence")
    return info


def list_checkpoints() -> list[CheckpointInfo]:
    """Every checkpoint file of every search location (`location_files`), in lookup order (earlier entries shadow
    later ones)."""
    return [checkpoint_info(p, location=label) for label, folder in search_locations() for p in location_files(folder)]
