"""The model zoo: published weights by name (the `remote:` section of checkpoints/manifest.yaml), downloaded on
first use, converted once with the safe importer (`ncvsd_cli.pickle_import`) into the ncvsd cache and verified by
content from then on.

An entry: {kind, preset, source: {hub: REPO, revision, file} or {url}, file, ema, sha256 (published, or null),
size, licence, data, purpose, expect: {img_resolution, label_dim, model_channels, ...}, teacher}. `expect` is
checked against the converted network. $NCVSD_ZOO names another YAML file whose `remote:` section replaces the
shipped one (mirrors, tests).

In the cache (`ncvsd_cli.checkpoints.cache_dir()`): NAME.safetensors, the conversion; NAME.record.json, the sha256
of the downloaded file and of the conversion (`ncvsd_cli.checkpoints.RECORD_SUFFIX`); downloads/FILE, plain-URL
downloads (removed after a successful conversion); imported/, pickles given to --checkpoint, converted once.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ncvsd_cli import checkpoints as ck
from ncvsd_cli.checkpoints import CheckpointError

ENV_ZOO = "NCVSD_ZOO"
KINDS = ("generator", "teacher")


@dataclass(frozen=True)
class ZooEntry:
    """One published file (see the module docstring for the fields)."""

    name: str
    kind: str
    file: str
    licence: str
    purpose: str = ""
    preset: str | None = None
    hub: str | None = None
    revision: str = "main"
    url: str | None = None
    ema: str = "ema"
    sha256: str | None = None
    size: int | None = None
    data: str | None = None
    teacher: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def source_url(self) -> str:
        """Where the file is published (the hub's resolve URL or the plain URL)."""
        if self.hub:
            return f"https://huggingface.co/{self.hub}/resolve/{self.revision}/{self.file}"
        return str(self.url)

    @property
    def download_command(self) -> str:
        """The command that (re-)downloads and converts this entry."""
        return f"ncvsd checkpoints download {self.name} --force"


def _zoo_file() -> Path:
    return Path(os.environ[ENV_ZOO]).expanduser() if os.environ.get(ENV_ZOO) else ck.shipped_dir() / ck.MANIFEST_NAME


def load_zoo() -> dict[str, ZooEntry]:
    """The zoo, name -> ZooEntry, from the manifest's `remote:` section (or $NCVSD_ZOO). Raises CheckpointError
    naming the entry and field for malformed data."""
    path = _zoo_file()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CheckpointError(f"model zoo {path} is unreadable: {' '.join(str(exc).split())}") from exc
    remote = data.get("remote") or {} if isinstance(data, dict) else None
    if not isinstance(remote, dict):
        raise CheckpointError(f"model zoo {path}: 'remote' must be a mapping of names to entries")
    zoo = {}
    for name, raw in remote.items():
        if not isinstance(raw, dict):
            raise CheckpointError(f"model zoo {path}: entry {name!r} must be a mapping")
        source = raw.get("source") or {}
        if not isinstance(source, dict):
            raise CheckpointError(f"model zoo {path}: entry {name!r}: source must be a mapping (hub/url, file)")
        if raw.get("kind") not in KINDS or not raw.get("licence") or not (source.get("hub") or source.get("url")):
            raise CheckpointError(f"model zoo {path}: entry {name!r} needs kind ({' or '.join(KINDS)}), licence "
                                  "and source.hub or source.url")
        file = source.get("file") or str(source.get("url", "")).rsplit("/", 1)[-1].split("?")[0]
        sha256 = raw.get("sha256")
        if sha256 is not None and not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha256)):
            raise CheckpointError(f"model zoo {path}: entry {name!r}: sha256 must be 64 hexadecimal digits in "
                                  f"quotes (or null), not {sha256!r}")
        zoo[str(name)] = ZooEntry(
            name=str(name), kind=raw["kind"], file=file, licence=str(raw["licence"]),
            purpose=str(raw.get("purpose") or ""), preset=raw.get("preset"), hub=source.get("hub"),
            revision=str(source.get("revision") or "main"), url=source.get("url"), ema=str(raw.get("ema", "ema")),
            sha256=sha256.lower() if sha256 else None, size=raw.get("size"),
            data=raw.get("data"), teacher=raw.get("teacher"), expect=dict(raw.get("expect") or {}))
    return zoo


def find(name_or_url: str) -> ZooEntry | None:
    """The entry called `name_or_url` (".safetensors" optional) or published at that URL; None otherwise."""
    zoo = load_zoo()
    name = name_or_url.removesuffix(ck.SUFFIX)
    if name in zoo:
        return zoo[name]
    bare = name_or_url.split("?")[0]
    return next((e for e in zoo.values() if e.source_url.split("?")[0] == bare or (e.url and e.url == bare)
                 or (e.hub and bare.endswith(f"/{e.hub}/resolve/{e.revision}/{e.file}"))), None)


def names() -> list[str]:
    """Zoo names, in manifest order."""
    return list(load_zoo())


def converted_path(name: str) -> Path:
    """Where the conversion of zoo entry `name` lives: cache_dir()/NAME.safetensors."""
    return ck.cache_dir() / f"{name}{ck.SUFFIX}"


def _file_hint(entry: ZooEntry) -> str:
    """How to use a zoo file downloaded elsewhere: each command's option that takes it."""
    flags = ("-c FILE to restore, --teacher FILE to distill or bench, --init-teacher FILE to train"
             if entry.kind == "teacher" else "-c FILE to restore, sample or bench, --init-generator FILE to distill")
    return (f"download {entry.source_url} where there is network access and give the file itself ({flags}; "
            f"FILE = {entry.file}, imported safely, once)")


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"ncvsd: {message}", file=sys.stderr, flush=True)


def _fetch(entry: ZooEntry, record: dict[str, Any] | None, force: bool, quiet: bool):
    from ncvsd_cli import download

    if entry.hub:
        revision = (record or {}).get("source", {}).get("commit") or entry.revision  # pinned at first download
        return download.hub_download(entry.hub, entry.file, revision, force=force, quiet=quiet)
    return download.url_download(str(entry.url), ck.cache_dir() / "downloads" / entry.file, force=force, quiet=quiet)


def _check_expectations(entry: ZooEntry, config: dict[str, Any], what: str = "the downloaded file",
                        fix: str = "the published file changed or the zoo entry is wrong") -> None:
    """CheckpointError when `config` is not the network the zoo entry describes (kind, then `expect`)."""
    if config.get("kind") != entry.kind:
        raise CheckpointError(f"{entry.name}: {what} holds a {config.get('kind')} network, the zoo describes a "
                              f"{entry.kind}; {fix}")
    for key, want in entry.expect.items():
        got = config.get(key, config.get("arch", {}).get(key))
        if got != want:
            raise CheckpointError(f"{entry.name}: {what} has {key}={got!r}, the zoo describes {want!r}; {fix}")


def _check_hand_import(entry: ZooEntry, target: Path, config: dict[str, Any]) -> None:
    """`_check_expectations` of a file imported by hand at the zoo entry's place (no download record)."""
    _check_expectations(entry, config, f"{target} (imported by hand)",
                        f"import the zoo's own file there, or `{entry.download_command}`")


def ensure(name: str, *, force: bool = False, quiet: bool = False) -> Path:
    """The verified conversion of zoo entry `name`, downloading and converting it first when needed.

    A conversion already in the cache is checked against its record (sha256), and one imported by hand (no record)
    is used as it is, with a note; `force` downloads and converts again. The downloaded file must match the
    published sha256 (zoo entry, or the hub's LFS object id) and, for a re-download, the recorded one. Raises
    CheckpointError with the command that fixes the problem: unknown name (lists the zoo), offline and not
    downloaded, download failure, hash mismatch, wrong architecture.
    """
    from filelock import FileLock

    from ncvsd_cli import download

    entry = load_zoo().get(name)
    if entry is None:
        raise CheckpointError(f"{name!r} is not in the model zoo; available: {', '.join(names()) or 'none'}")
    target = converted_path(name)
    _cache_folder(target.parent)
    with FileLock(str(target.with_name(f".{name}.lock"))):
        record = ck.read_record(target)
        if target.is_file() and record and not force:
            ck.verify_record(target, record)
            return target
        if target.is_file() and not force:  # put there by `ncvsd checkpoints import ... -o` (no download record)
            _check_hand_import(entry, target, ck.read_config(target))
            _say(f"{name}: using {target}, imported without a download record (`{entry.download_command}` "
                 "replaces it with the verified download)", quiet)
            return target
        if download.is_offline() and not _cached_source(entry, record):
            raise CheckpointError(f"{name} is not downloaded and HF_HUB_OFFLINE is set: run "
                                  f"`ncvsd checkpoints download {name}` with network access first, or "
                                  f"{_file_hint(entry)}")
        _say(f"{name}: {entry.licence} ({entry.source_url}); by downloading it you accept its terms", quiet)
        try:
            fetched = _fetch(entry, record, force, quiet)
        except CheckpointError as exc:  # e.g. no network on this machine: the file itself works as well
            raise CheckpointError(f"{exc}. If this machine has no network access, {_file_hint(entry)}") from exc
        expected = entry.sha256 or fetched.published_sha256 or (record or {}).get("source", {}).get("sha256")
        if expected and fetched.sha256 != expected:
            raise CheckpointError(f"checksum mismatch for the download of {name} ({fetched.path}): expected sha256 "
                                  f"{expected}, actual {fetched.sha256}; the download is corrupt: run "
                                  f"`{entry.download_command}`")
        if entry.size is not None and fetched.size != int(entry.size):
            raise CheckpointError(f"{name}: downloaded {fetched.size} bytes, the zoo lists {entry.size}; run "
                                  f"`{entry.download_command}`")
        _say(f"{name}: {entry.file} verified (sha256 {fetched.sha256[:16]}...); converting it (once)", quiet)
        from ncvsd_cli.pickle_import import import_pickle

        source = {"zoo": name, "url": fetched.url, "file": entry.file, "sha256": fetched.sha256, "size": fetched.size,
                  "commit": fetched.commit, "revision": entry.revision if entry.hub else None,
                  "published_sha256": expected}
        provenance = {"zoo": name, "url": entry.source_url, "licence": entry.licence, "teacher": entry.teacher,
                      "commit": fetched.commit}
        tmp = target.with_name(f".{name}.converting{ck.SUFFIX}")
        try:
            _, config = import_pickle(fetched.path, tmp, ema_key=entry.ema, data=entry.data,
                                      command=f"ncvsd checkpoints download {name}", provenance=provenance)
            _check_expectations(entry, config)
            os.replace(tmp, target)
        except CheckpointError as exc:
            if expected:
                raise
            raise CheckpointError(f"{exc}; no published sha256 vouches for {fetched.path}: if the download is "
                                  f"incomplete, `{entry.download_command}` fetches it again") from exc
        finally:
            tmp.unlink(missing_ok=True)
        record = ck.write_record(target, name=name, licence=entry.licence, source=source,
                                 fix=f"run `{entry.download_command}`")
        if not entry.hub:
            fetched.path.unlink(missing_ok=True)  # the conversion holds the same weights
        _say(f"{name}: ready at {target} (sha256 {record['sha256'][:16]}...)", quiet)
        return target


def _cached_source(entry: ZooEntry, record: dict[str, Any] | None) -> bool:
    """Whether the published file is already here, so an offline conversion is possible."""
    if not entry.hub:
        return (ck.cache_dir() / "downloads" / entry.file).is_file()
    try:
        from huggingface_hub import try_to_load_from_cache

        from ncvsd_cli.download import _hub_cache
    except ImportError:
        return False
    revision = (record or {}).get("source", {}).get("commit") or entry.revision
    hit = try_to_load_from_cache(entry.hub, entry.file, cache_dir=_hub_cache(), revision=revision)
    return isinstance(hit, str)


def status(entry: ZooEntry) -> dict[str, Any]:
    """What `ncvsd checkpoints list` shows for a zoo entry: downloaded or not, size, licence, source."""
    target = converted_path(entry.name)
    present = target.is_file()
    record = ck.read_record(target) if present else None
    by_hand = present and record is None  # `checkpoints import ... -o` there: used as it is (`ensure`)
    state = "downloaded" if record else "imported by hand: not verified" if by_hand else "not downloaded"
    if record and target.stat().st_size != int(record.get("size") or -1):  # (a hash of each would take minutes)
        state = (f"DAMAGED: {target.stat().st_size} bytes, recorded {record.get('size')} "
                 f"(`ncvsd checkpoints download {entry.name} --force`)")
    resolution = entry.expect.get("img_resolution")
    if by_hand:  # what `ensure` checks before using it: another network there was listed as the zoo's
        try:
            config = ck.read_config(target)
            resolution = config.get("img_resolution", resolution)
            _check_hand_import(entry, target, config)
        except (CheckpointError, OSError, ValueError) as exc:
            state = f"MISMATCH: {exc}"
    return {"name": entry.name, "kind": entry.kind, "preset": entry.preset,
            "img_resolution": resolution, "licence": entry.licence, "location": "zoo",
            "source": entry.source_url, "purpose": entry.purpose, "downloaded": record is not None,
            "path": str(target) if present else None,
            "size": (record or {}).get("size") or (target.stat().st_size if by_hand else entry.size),
            "sha256": (record or {}).get("sha256") or "",
            "status": state}


def _cache_folder(folder: Path, alternative: str = "") -> None:
    """Make the cache folder `folder`, or CheckpointError saying which (XDG_CACHE_HOME naming a file, a read-only
    home) and what to do; `alternative` is added to the advice."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot make the cache folder {folder} ({exc.strerror or exc}): set XDG_CACHE_HOME "
                              f"to a writable folder{alternative}") from None


def import_into_cache(src: Path, *, quiet: bool = False) -> Path:
    """A pickle given where a checkpoint is expected: converted once into cache_dir()/imported/STEM-SHA12.safetensors
    (the name carries the pickle's sha256, so a changed pickle is converted again). Raises CheckpointError."""
    from filelock import FileLock

    from ncvsd_cli.pickle_import import import_pickle

    digest = ck.sha256_file(src)
    folder = ck.cache_dir() / "imported"
    same = sorted(p for p in folder.glob(f"*-{digest[:12]}{ck.SUFFIX}")  # the same pickle, another name (a link)
                  if (ck.read_record(p) or {}).get("source", {}).get("sha256") == digest)
    target = same[0] if same else folder / f"{src.stem}-{digest[:12]}{ck.SUFFIX}"
    _cache_folder(target.parent, f"; or convert it yourself: ncvsd checkpoints import {src} -o FILE.safetensors")
    with FileLock(str(target.with_name(f".{target.name}.lock"))):
        record = ck.read_record(target)
        if target.is_file() and record:
            ck.verify_record(target, record)
            return target
        _say(f"{src.name} is a pickle: importing it safely into {target} (once; "
             f"`ncvsd checkpoints import` does the same to a path of your choice)", quiet)
        tmp = target.with_name(f".{target.stem}.converting{ck.SUFFIX}")
        try:
            import_pickle(src, tmp, command=f"ncvsd checkpoints import {src.name}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        ck.write_record(target, name=target.stem, licence=None,
                        source={"file": src.name, "path": str(src), "sha256": digest, "size": src.stat().st_size},
                        fix=f"delete it and use {src} again")
    return target
