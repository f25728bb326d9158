"""Fetching published weight files: the Hugging Face Hub through `huggingface_hub`, plain URLs by a resumable HTTP
download with a progress bar. Every failure is a `CheckpointError` with one line saying what to do.

Environment, read at each call: HF_HUB_OFFLINE (1/true/yes/on: no network at all), HF_ENDPOINT (another hub, e.g. a
mirror or a test server), HF_HUB_CACHE / HF_HOME (where hub files are cached), HF_HUB_DISABLE_PROGRESS_BARS.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ncvsd_cli.checkpoints import CheckpointError, sha256_file

CHUNK = 1 << 20
RETRIES = 3
TIMEOUT_S = 30.0
SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass
class Fetched:
    """A downloaded file: its path, sha256, size, where it came from and (hub files) the commit and the hub's
    published sha256 (the LFS object id, None for files stored without LFS)."""

    path: Path
    sha256: str
    size: int
    url: str
    commit: str | None = None
    published_sha256: str | None = None


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE is set to 1/true/yes/on (honoured for plain URLs too)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_endpoint() -> str:
    """$HF_ENDPOINT without a trailing slash, default https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _hub_cache() -> str | None:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None  # huggingface_hub's default (~/.cache/huggingface/hub)


def _short(exc: BaseException) -> str:
    """The most specific one-line reason in an exception chain (HTTP status if there is one)."""
    seen = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        status = getattr(response, "status_code", None) or getattr(seen, "code", None)
        if isinstance(status, int):
            return f"HTTP {status}"
        seen = seen.__cause__ or seen.__context__
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def hub_download(repo_id: str, filename: str, revision: str, *, force: bool = False,
                 quiet: bool = False) -> Fetched:
    """`huggingface_hub.hf_hub_download` of `filename` at `revision` (a commit hash pins it; a branch is
    resolved by the hub) into the hub cache, which resumes interrupted downloads. Offline, only the cache is
    used. Raises CheckpointError (not installed, offline and not cached, network or server error)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise CheckpointError("downloading from the Hugging Face Hub needs the package huggingface_hub: "
                              "pip install huggingface_hub") from None
    offline = is_offline()
    endpoint = hub_endpoint()
    url = f"{endpoint}/{repo_id}/resolve/{revision}/{filename}"
    kwargs = {"repo_id": repo_id, "filename": filename, "revision": revision, "cache_dir": _hub_cache(),
              "endpoint": endpoint, "force_download": force and not offline, "local_files_only": offline}
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    hub_logger = logging.getLogger("huggingface_hub")
    level, bars_were_off = hub_logger.level, are_progress_bars_disabled()
    hub_logger.setLevel(logging.ERROR)  # its retry/resume warnings span lines; the outcome is reported below
    if quiet:
        disable_progress_bars()
    try:
        if not offline and (force or not _in_hub_cache(repo_id, filename, revision)):  # (force: a whole download)
            _check_answers(url)
        path = Path(hf_hub_download(**kwargs))
    except CheckpointError:
        raise
    except Exception as exc:
        if offline:
            raise CheckpointError(f"{filename} is not in the Hugging Face cache and HF_HUB_OFFLINE is set") from exc
        raise CheckpointError(f"download of {url} failed ({_short(exc)})") from exc
    finally:
        hub_logger.setLevel(level)
        if quiet and not bars_were_off:
            enable_progress_bars()
    blob = Path(os.path.realpath(path))
    published = blob.name if SHA256_RE.fullmatch(blob.name) else None  # LFS blobs are named by their sha256
    commit = path.parent.name if re.fullmatch(r"[0-9a-f]{40}", path.parent.name) else None
    return Fetched(path=path, sha256=sha256_file(path), size=path.stat().st_size, url=url, commit=commit,
                   published_sha256=published)


def _in_hub_cache(repo_id: str, filename: str, revision: str) -> bool:
    """Whether the hub cache holds `filename` at `revision` (huggingface_hub then falls back to it offline)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=_hub_cache(), revision=revision), str)
    except Exception:  # noqa: BLE001 (a cache it cannot read: the download decides)
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is an answer: not followed (urllib would follow a HEAD to the CDN as a GET of the whole file)."""

    def redirect_request(self, *args, **kwargs) -> None:
        return None


def _check_answers(url: str) -> None:
    """CheckpointError when the server of `url` gives no answer within TIMEOUT_S (one HEAD request, redirects not
    followed): huggingface_hub retried a server that accepts connections and never answers for over 6 minutes
    without a word. A host name that does not resolve or a refused connection fails at once too (offline,
    huggingface_hub retried for 25 s before the same error). Any HTTP status is an answer, and a TLS failure is left
    to huggingface_hub, which may trust other certificates (REQUESTS_CA_BUNDLE). Skipped under ALL_PROXY, a proxy
    urllib cannot use."""
    if os.environ.get("ALL_PROXY") or os.environ.get("all_proxy"):
        return
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "ncvsd"})
    try:
        urllib.request.build_opener(_NoRedirect).open(request, timeout=TIMEOUT_S).close()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):  # (socket.timeout is TimeoutError)
            raise CheckpointError(f"download of {url} failed (no answer from the server within {TIMEOUT_S:g} s: "
                                  f"{_short(exc)})") from exc
        if isinstance(reason, (socket.gaierror, ConnectionRefusedError)):  # no network: huggingface_hub retried
            raise CheckpointError(f"download of {url} failed (no connection: {_short(reason)})") from exc  # 25 s


def _open(url: str, start: int) -> urllib.response.addinfourl:
    headers = {"User-Agent": "ncvsd", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def url_download(url: str, dest: str | os.PathLike, *, force: bool = False, quiet: bool = False) -> Fetched:
    """Download `url` to `dest` with a progress bar on stderr, resuming from `dest`.part after an interruption
    (HTTP Range; up to RETRIES resumes within one call). An existing `dest` is reused unless `force`.
    Raises CheckpointError (offline, HTTP or network error, size mismatch); the partial file is kept."""
    from tqdm.auto import tqdm

    dest = Path(dest)
    if dest.is_file() and not force:
        return Fetched(path=dest, sha256=sha256_file(dest), size=dest.stat().st_size, url=url)
    if is_offline():
        raise CheckpointError(f"{dest.name} is not downloaded and HF_HUB_OFFLINE is set")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if force:
        part.unlink(missing_ok=True)
    bar = None
    try:
        for attempt in range(RETRIES + 1):
            start = part.stat().st_size if part.exists() else 0
            try:
                with _open(url, start) as response:
                    if start and response.status != 206:  # the server ignored the range: start over
                        start = 0
                    length = response.headers.get("Content-Length")
                    total = start + int(length) if length is not None else None
                    if bar is None:
                        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                                   desc=dest.name, file=sys.stderr, disable=quiet or None)
                    else:
                        bar.reset(total=total)
                        bar.update(start)
                    with open(part, "ab" if start else "wb") as f:
                        for block in iter(lambda: response.read(CHUNK), b""):
                            f.write(block)
                            bar.update(len(block))
                size = part.stat().st_size
                if total is not None and size != total:
                    raise ConnectionError(f"connection closed after {size} of {total} bytes")
                break
            except urllib.error.HTTPError as exc:
                if exc.code == 416 and start:  # the part file is already complete or longer than the file
                    part.unlink()
                    continue
                raise CheckpointError(f"download of {url} failed (HTTP {exc.code} {exc.reason})") from exc
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # incl. IncompleteRead
                if attempt == RETRIES:
                    reason = getattr(exc, "reason", None) or exc
                    kept = part.stat().st_size if part.exists() else 0
                    raise CheckpointError(f"download of {url} failed ({' '.join(str(reason).split())})" + (
                        f"; {kept} bytes are kept in {part} and the next attempt resumes from there" if kept
                        else "")) from exc
                time.sleep(0.2 * (attempt + 1))
        else:  # every attempt ended in a restart (HTTP 416 on a stale part file)
            raise CheckpointError(f"download of {url} did not complete after {RETRIES + 1} attempts; run the command "
                                  "again to retry")
    finally:
        if bar is not None:
            bar.close()
    os.replace(part, dest)
    return Fetched(path=dest, sha256=sha256_file(dest), size=dest.stat().st_size, url=url)
