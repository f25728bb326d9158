"""The model zoo end to end without the real network: pickles in the authors' layout (tiny configs) served from a
local HTTP server on 127.0.0.1 that answers like the Hugging Face Hub (HF_ENDPOINT) and like a plain file server,
then download -> verify -> convert -> cache -> `ncvsd restore` / `ncvsd bench` by zoo name, and offline after.
A test zoo (NCVSD_ZOO) keeps the published names but expects the tiny architecture."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from test_import import _authors_kwargs, _randomise, _write_pickle  # pickles in the authors' layout
from typer.testing import CliRunner

from ncvsd_cli import checkpoints as ck
from ncvsd_cli import zoo
from ncvsd_cli.checkpoints import CheckpointError, load_checkpoint, read_config, resolve_checkpoint, sha256_file
from ncvsd_cli.networks import build_network, network_config

REPO_ID = "xypeng9903/ncvsd"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
RES = 32  # the tiny architecture trained "at" 32 px: LPIPS in `bench` needs at least 31


class FakeServer:
    """Files by URL path; HEAD/GET with Range; hub headers (X-Repo-Commit, ETag = sha256) under /REPO/resolve/.
    Knobs: `cut` (close GET responses after this many bytes, `cuts` times), `status` (answer every request with it),
    `corrupt` (flip one bit of the body, keep the ETag). `log` holds (method, path, Range header)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str, str | None]] = []
        self.cut: int | None = None
        self.cuts = 0
        self.status: int | None = None
        self.corrupt = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, body: bool) -> None:
                path = self.path.split("?")[0]
                server.log.append((self.command, path, self.headers.get("Range")))
                if server.status is not None:
                    self.send_response(server.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files.get(path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = hashlib.sha256(data).hexdigest()
                if server.corrupt:
                    data = bytes([data[0]]) + bytes([data[1] ^ 0x01]) + data[2:]
                start = 0
                rng = self.headers.get("Range")
                if rng and body:
                    start = int(rng.split("=")[1].split("-")[0])
                self.send_response(206 if start else 200)
                if "/resolve/" in path:
                    self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("ETag", f'"{etag}"')
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if not body:
                    return
                chunk = data[start:]
                if server.cut is not None and server.cuts > 0:
                    server.cuts -= 1
                    self.wfile.write(chunk[: server.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, path_part: str) -> list[tuple[str, str, str | None]]:
        return [e for e in self.log if e[0] == "GET" and path_part in e[1]]


@pytest.fixture(scope="module")
def pickles(tmp_path_factory) -> dict[str, bytes]:
    """The three published files in the authors' layout with the tiny architecture (random fp16 weights)."""
    folder = tmp_path_factory.mktemp("pickles")
    out = {}
    for name, kind, wrap in [("ncvsd-ffhq256-xs.pkl", "generator", True), ("edm2-ffhq256-xs.pkl", "teacher", False),
                             ("edm2-img64-s-1073741-0.075.pkl", "teacher", False)]:
        config = network_config(kind, "tiny", img_resolution=RES)
        _write_pickle(folder / name, _randomise(build_network(config), seed=len(out)), _authors_kwargs(config),
                      wrap_generator=wrap, extras=wrap)
        out[name] = (folder / name).read_bytes()
    return out


@pytest.fixture
def hub(pickles, tmp_path, monkeypatch):
    """A fresh local server holding the pickles, a test zoo pointing at it, and isolated caches."""
    server = FakeServer()
    server.files[f"/{REPO_ID}/resolve/main/ncvsd-ffhq256-xs.pkl"] = pickles["ncvsd-ffhq256-xs.pkl"]
    server.files[f"/{REPO_ID}/resolve/{COMMIT}/ncvsd-ffhq256-xs.pkl"] = pickles["ncvsd-ffhq256-xs.pkl"]
    server.files[f"/{REPO_ID}/resolve/main/edm2-ffhq256-xs.pkl"] = pickles["edm2-ffhq256-xs.pkl"]
    server.files["/edm2/edm2-img64-s-1073741-0.075.pkl"] = pickles["edm2-img64-s-1073741-0.075.pkl"]
    tiny = {"img_resolution": RES, "img_channels": 3, "label_dim": 0, "model_channels": 16}
    test_zoo = {"remote": {
        "ncvsd-ffhq256-xs": {"kind": "generator", "preset": "tiny", "teacher": "edm2-ffhq256-xs", "data": "FFHQ-256",
                             "source": {"hub": REPO_ID, "revision": "main", "file": "ncvsd-ffhq256-xs.pkl"},
                             "licence": "CC BY-NC-SA 4.0 (test)", "expect": tiny},
        "edm2-ffhq256-xs": {"kind": "teacher", "source": {"hub": REPO_ID, "file": "edm2-ffhq256-xs.pkl"},
                            "licence": "CC BY-NC-SA 4.0 (test)", "expect": tiny},
        "edm2-img64-s": {"kind": "teacher", "licence": "CC BY-NC-SA 4.0 (test)", "expect": tiny,
                         "source": {"url": f"{server.url}/edm2/edm2-img64-s-1073741-0.075.pkl"},
                         "sha256": hashlib.sha256(pickles["edm2-img64-s-1073741-0.075.pkl"]).hexdigest()},
    }}
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(test_zoo))
    for var in ("HF_HUB_OFFLINE", "NCVSD_CHECKPOINTS", "HF_HOME", "http_proxy", "https_proxy", "HTTP_PROXY",
                "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("NCVSD_ZOO", str(tmp_path / "zoo.yaml"))
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _cli(*args):
    from ncvsd_cli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _png(path: Path, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------------------------------------------ the real zoo
@pytest.mark.parametrize("name, preset, hub", [
    ("ncvsd-ffhq256-xs", "ffhq256-xs", True), ("edm2-ffhq256-xs", "ffhq256-xs", True),
    ("edm2-img64-s", "img64-s", False), ("edm2-img64-m", "img64-m", False), ("edm2-img64-l", "img64-l", False),
    ("edm2-img64-xl", "img64-xl", False),
])
def test_shipped_zoo_lists_the_paper_models(monkeypatch, name, preset, hub):
    from ncvsd_cli.networks.presets import PRESETS

    monkeypatch.delenv("NCVSD_ZOO", raising=False)
    entry = zoo.load_zoo()[name]
    assert entry.licence.startswith("CC BY-NC-SA 4.0")
    assert (entry.hub == REPO_ID and entry.file == f"{name}.pkl") if hub else \
        entry.url.startswith(f"https://nvlabs-fi-cdn.nvidia.com/edm2/posthoc-reconstructions/{name}-")
    if preset is not None:
        assert entry.preset == preset
        for key, value in entry.expect.items():  # the expectations are the architecture's own numbers
            assert PRESETS[preset][key] == value, key
    assert entry.kind == ("generator" if name.startswith("ncvsd") else "teacher")


# ------------------------------------------------------------------------------------------------ happy path
def test_hub_download_convert_cache_then_restore_and_bench_offline(hub, pickles, tmp_path, monkeypatch):
    res = _cli("checkpoints", "download", "ncvsd-ffhq256-xs")
    assert res.exit_code == 0, res.output
    path = Path(res.stdout.strip().splitlines()[-1])
    assert path == ck.cache_dir() / "ncvsd-ffhq256-xs.safetensors" and path.is_file()
    assert "CC BY-NC-SA 4.0" in res.stderr and "verified" in res.stderr
    record = ck.read_record(path)
    assert record["source"]["sha256"] == hashlib.sha256(pickles["ncvsd-ffhq256-xs.pkl"]).hexdigest()
    assert record["source"]["commit"] == COMMIT and record["sha256"] == sha256_file(path)
    config = read_config(path)
    assert config["kind"] == "generator" and config["provenance"]["zoo"] == "ncvsd-ffhq256-xs"
    assert config["provenance"]["licence"].startswith("CC BY-NC-SA") and config["provenance"]["teacher"]

    requests = len(hub.log)
    start = time.perf_counter()
    res = _cli("checkpoints", "download", "ncvsd-ffhq256-xs")
    assert res.exit_code == 0 and Path(res.stdout.strip()) == path
    assert len(hub.log) == requests and time.perf_counter() - start < 2.0  # second call: no network, no work

    listed = {r["name"]: r for r in json.loads(_cli("checkpoints", "list", "--json").stdout)
              if r["location"] == "zoo"}
    assert listed["ncvsd-ffhq256-xs"]["downloaded"] and not listed["edm2-img64-s"]["downloaded"]
    assert listed["ncvsd-ffhq256-xs"]["size"] == path.stat().st_size

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.status = 500  # any request now would fail
    img = _png(tmp_path / "face.png")
    out = tmp_path / "restored.png"
    res = _cli("restore", img, "--checkpoint", "ncvsd-ffhq256-xs", "--task", "denoise", "--nfe", "1",
               "--device", "cpu", "-o", out)
    assert res.exit_code == 0, res.output
    assert Image.open(out).size == (16, 16)
    data = tmp_path / "ffhq"
    data.mkdir()
    _png(data / "00000.png")
    res = _cli("bench", "--checkpoint", "ncvsd-ffhq256-xs", "--dataset", data, "--tasks", "inpaint-box",
               "--nfe", "2", "--methods", "pnp-gd", "--limit", "1", "--device", "cpu", "--out", tmp_path / "b",
               "--quiet")
    assert res.exit_code == 0, res.output
    assert "| pnp-gd | 2 |" in res.stdout
    assert len(hub.log) == requests

    res = _cli("restore", img, "--checkpoint", "edm2-ffhq256-xs", "--task", "denoise", "--method", "dps",
               "--device", "cpu", "-o", tmp_path / "t.png")
    assert res.exit_code == 3 and "ncvsd checkpoints download edm2-ffhq256-xs" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_url_download_resumes_and_teacher_loads_by_name(hub, pickles):
    """A plain-URL download cut in every attempt keeps its part file; the next call resumes with a Range request."""
    data = pickles["edm2-img64-s-1073741-0.075.pkl"]
    hub.cut, hub.cuts = len(data) // 10, 10  # 10 % per attempt: the retries of one call do not finish
    with pytest.raises(CheckpointError, match="resumes from there"):
        zoo.ensure("edm2-img64-s", quiet=True)
    part = ck.cache_dir() / "downloads" / "edm2-img64-s-1073741-0.075.pkl.part"
    assert part.is_file() and 0 < part.stat().st_size < len(data)
    hub.cuts = 1  # one more cut, then whole answers: resumed within the call
    before = len(hub.log)
    path = zoo.ensure("edm2-img64-s", quiet=True)
    ranged = [r for r in hub.gets("/edm2/")[-3:] if r[2]]
    assert ranged and len(hub.log) > before
    assert not part.exists() and not (ck.cache_dir() / "downloads" / part.stem).exists()  # removed once converted
    assert ck.read_record(path)["source"]["sha256"] == hashlib.sha256(data).hexdigest()
    from ncvsd_cli.training.distill import load_teacher  # what `ncvsd distill --teacher NAME` calls

    teacher, config, resolved = load_teacher("edm2-img64-s", torch.device("cpu"))
    assert config["kind"] == "teacher" and Path(resolved) == path and teacher.img_resolution == RES


def test_url_download_that_never_connects_claims_no_part_file(tmp_path, monkeypatch):
    """Unreachable (offline): the error names the failure and no part file to resume from, as none was written."""
    import urllib.error

    from ncvsd_cli import download

    def unreachable(url, start):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "_open", unreachable)
    monkeypatch.setattr(download.time, "sleep", lambda s: None)
    with pytest.raises(CheckpointError, match="name resolution") as info:
        download.url_download("https://example.invalid/x.pkl", tmp_path / "x.pkl")
    assert "kept" not in str(info.value) and not list(tmp_path.iterdir())


def test_hub_download_resumes(hub, pickles, monkeypatch):
    """huggingface_hub resumes from its last whole chunk (10 MB; 64 KiB here to mimic a large file)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1 << 16)
    data = pickles["ncvsd-ffhq256-xs.pkl"]
    hub.cut, hub.cuts = len(data) // 2, 1
    try:
        zoo.ensure("ncvsd-ffhq256-xs", quiet=True)
    except CheckpointError:  # huggingface_hub may give up on the first cut; the next call resumes
        zoo.ensure("ncvsd-ffhq256-xs", quiet=True)
    gets = hub.gets("ncvsd-ffhq256-xs.pkl")
    resumed_at = (len(data) // 2) // (1 << 16) * (1 << 16)
    assert len(gets) == 2 and gets[1][2] == f"bytes={resumed_at}-" and resumed_at > 0
    _, config = load_checkpoint("ncvsd-ffhq256-xs", kind="generator")
    assert config["provenance"]["source_sha256"] == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------ failure paths
def test_a_server_that_never_answers_fails_the_download_after_one_timeout(hub, monkeypatch):
    """huggingface_hub retried a server that accepts connections and never answers for over 6 minutes, silently."""
    import socket

    from ncvsd_cli import download

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setattr(download, "TIMEOUT_S", 0.5)
    started = time.monotonic()
    try:
        with pytest.raises(CheckpointError, match="no answer from the server"):
            zoo.ensure("ncvsd-ffhq256-xs", quiet=True)
    finally:
        silent.close()
    assert time.monotonic() - started < 30


def test_no_connection_fails_a_download_at_once(hub, monkeypatch):
    """Offline (a name that does not resolve, a refused connection) huggingface_hub retried for 25 s before the
    same failure: the check before a download of a file not in the cache says so at once."""
    import socket

    import huggingface_hub

    from ncvsd_cli import download

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: pytest.fail("the hub was asked"))
    with pytest.raises(CheckpointError, match="failed \\(no connection: ConnectionRefusedError"):
        download.hub_download(REPO_ID, "ncvsd-ffhq256-xs.pkl", "main", quiet=True)


def test_a_cache_that_cannot_be_made_is_a_checkpoint_error_with_the_way_out(tmp_path, monkeypatch):
    """XDG_CACHE_HOME naming a file made `-c model.pkl` an internal error (NotADirectoryError)."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(CheckpointError, match=r"cannot make the cache folder .*set XDG_CACHE_HOME to a writable "
                                              r"folder; or convert it yourself: ncvsd checkpoints import"):
        zoo.import_into_cache(tmp_path / "model.pkl", quiet=True)
    with pytest.raises(CheckpointError, match="cannot make the cache folder"):
        zoo.ensure("ncvsd-ffhq256-xs", quiet=True)


def test_the_answer_check_leaves_cached_files_refusals_and_redirects_to_the_hub(hub, monkeypatch):
    """The check before a download only times out a silent server: a file in the hub cache is still used with the
    server gone, and a redirect is an answer (urllib followed a HEAD to the CDN as a GET of the whole file)."""
    import socket
    from http.server import HTTPServer

    from ncvsd_cli import download

    first = download.hub_download(REPO_ID, "ncvsd-ffhq256-xs.pkl", "main", quiet=True)
    asked, check = [], download._check_answers
    monkeypatch.setattr(download, "_check_answers", asked.append)
    assert download.hub_download(REPO_ID, "ncvsd-ffhq256-xs.pkl", "main", quiet=True).path == first.path
    assert asked == []  # in the cache: not asked (the hub uses it when the server is gone)
    download.hub_download(REPO_ID, "ncvsd-ffhq256-xs.pkl", "main", force=True, quiet=True)
    assert len(asked) == 1  # --force downloads the whole file again: asked
    monkeypatch.setattr(download, "_check_answers", check)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: refused at once, left to the hub, which uses its cache
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert download.hub_download(REPO_ID, "ncvsd-ffhq256-xs.pkl", "main", quiet=True).path == first.path
    seen = []

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            seen.append((self.command, self.path))
            self.send_response(302)
            self.send_header("Location", "/cdn/file")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        download._check_answers(f"http://127.0.0.1:{server.server_address[1]}/repo/resolve/main/f.pkl")
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("HEAD", "/repo/resolve/main/f.pkl")]


@pytest.mark.parametrize("name", ["ncvsd-ffhq256-xs", "edm2-img64-s"])
def test_corrupted_download_is_refused_then_fixed_by_the_command_it_names(hub, name):
    hub.corrupt = True
    res = _cli("checkpoints", "download", name)
    assert res.exit_code == 3, res.output
    assert "checksum mismatch" in res.output and f"ncvsd checkpoints download {name} --force" in res.output
    assert not zoo.converted_path(name).exists()
    hub.corrupt = False
    res = _cli("checkpoints", "download", name, "--force", "--quiet")
    assert res.exit_code == 0, res.output
    assert zoo.converted_path(name).is_file()


@pytest.mark.parametrize("name", ["ncvsd-ffhq256-xs", "edm2-img64-s"])
def test_server_error_is_one_line(hub, name, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub backs off 23 s over 5 retries
    hub.status = 500
    res = _cli("checkpoints", "download", name, "--quiet")
    assert res.exit_code == 3
    assert len(res.output.strip().splitlines()) == 1 and "HTTP 500" in res.output
    flags = "-c FILE to restore, " + ("--teacher FILE" if name.startswith("edm2") else "sample or bench")  # no network
    assert f"give the file itself ({flags}" in res.output and f"FILE = {zoo.load_zoo()[name].file}" in res.output
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline by choice: the same way out
    res = _cli("checkpoints", "download", name, "--quiet")
    assert res.exit_code == 3 and "HF_HUB_OFFLINE is set" in res.output and f"({flags}" in res.output, res.output


def test_a_truncated_download_without_published_sha256_names_the_command_that_fetches_it_again(hub, pickles,
                                                                                              tmp_path, monkeypatch):
    """A server that gives no length (or a short one) and a zoo entry with no sha256: the conversion fails and
    the message says the file may be incomplete and how to fetch it again (the kept file would fail forever)."""
    doc = yaml.safe_load((tmp_path / "zoo.yaml").read_text())
    doc["remote"]["edm2-img64-s"]["sha256"] = None
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(doc))
    data = pickles["edm2-img64-s-1073741-0.075.pkl"]
    hub.files["/edm2/edm2-img64-s-1073741-0.075.pkl"] = data[: len(data) // 3]
    with pytest.raises(CheckpointError, match="no published sha256 vouches.*download edm2-img64-s --force"):
        zoo.ensure("edm2-img64-s", quiet=True)
    hub.files["/edm2/edm2-img64-s-1073741-0.075.pkl"] = data
    assert zoo.ensure("edm2-img64-s", force=True, quiet=True).is_file()


def test_an_incomplete_chunked_answer_is_retried(tmp_path, monkeypatch):
    """http.client.IncompleteRead (a chunked answer cut short) is a network error: retried, not a traceback."""
    import http.client

    from ncvsd_cli import download

    class Answer:
        status, headers = 200, {}

        def __init__(self, cut):
            self.cut, self.blocks = cut, [b"whole file", b""]

        def read(self, n):
            if self.cut:
                raise http.client.IncompleteRead(b"who")
            return self.blocks.pop(0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    calls = []
    monkeypatch.setattr(download, "_open", lambda url, start: calls.append(start) or Answer(len(calls) == 1))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    fetched = download.url_download("http://127.0.0.1:9/f.pkl", tmp_path / "f.pkl", quiet=True)
    assert len(calls) == 2 and fetched.path.read_bytes() == b"whole file"


def test_damaged_conversion_and_renamed_damaged_copy_are_refused(hub, tmp_path):
    path = zoo.ensure("ncvsd-ffhq256-xs", quiet=True)
    copy = tmp_path / "my-model.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0x10  # one bit in the last tensor
    copy.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="copy of ncvsd-ffhq256-xs.safetensors.*download ncvsd-ffhq256-xs --force"):
        load_checkpoint(copy)
    path.write_bytes(bytes(blob))
    res = _cli("restore", _png(tmp_path / "x.png"), "--checkpoint", "ncvsd-ffhq256-xs", "--task", "denoise",
               "--device", "cpu", "-o", tmp_path / "y.png")
    assert res.exit_code == 3 and "ncvsd checkpoints download ncvsd-ffhq256-xs --force" in res.output


def test_names_urls_and_pickles_as_checkpoints(hub, pickles, tmp_path):
    res = _cli("restore", _png(tmp_path / "x.png"), "--checkpoint", "ncvsd-ffhq256-x", "--task", "denoise",
               "--device", "cpu", "-o", tmp_path / "y.png")
    assert res.exit_code == 3 and "did you mean ncvsd-ffhq256-xs?" in res.output
    assert all(name in res.output.split("model zoo")[1] for name in zoo.names())
    res = _cli("checkpoints", "download", "nope")
    assert res.exit_code == 2 and "ncvsd-ffhq256-xs" in res.output

    by_url = resolve_checkpoint(f"https://huggingface.co/{REPO_ID}/resolve/main/ncvsd-ffhq256-xs.pkl?download=true",
                                quiet=True)
    assert by_url == zoo.converted_path("ncvsd-ffhq256-xs")
    with pytest.raises(CheckpointError, match="checkpoints import"):
        resolve_checkpoint("https://example.com/model.pkl")

    pkl = tmp_path / "ncvsd-ffhq256-xs.pkl"
    pkl.write_bytes(pickles["ncvsd-ffhq256-xs.pkl"])
    first = resolve_checkpoint(pkl, quiet=True)
    assert first.parent == ck.cache_dir() / "imported" and ck.read_record(first)
    mtime = first.stat().st_mtime_ns
    model, config = load_checkpoint(pkl, kind="generator")  # converted once: the second use loads it directly
    assert first.stat().st_mtime_ns == mtime and config["kind"] == "generator"
    torch.testing.assert_close(model.state_dict()["model.logvar_linear.weight"],
                               load_checkpoint(by_url)[0].state_dict()["model.logvar_linear.weight"])


def test_a_zoo_model_imported_by_hand_into_the_cache_is_used_by_name_offline(hub, pickles, tmp_path, monkeypatch):
    """README: `checkpoints import ncvsd-ffhq256-xs.pkl -o ~/.cache/ncvsd/ncvsd-ffhq256-xs.safetensors`, then
    `-c ncvsd-ffhq256-xs` uses that file (it went to the zoo's download, "not downloaded" offline), with a note."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pkl = tmp_path / "ncvsd-ffhq256-xs.pkl"
    pkl.write_bytes(pickles["ncvsd-ffhq256-xs.pkl"])
    target = ck.cache_dir() / "ncvsd-ffhq256-xs.safetensors"
    assert _cli("checkpoints", "import", pkl, "-o", target).exit_code == 0 and not ck.read_record(target)
    res = _cli("restore", _png(tmp_path / "x.png"), "--checkpoint", "ncvsd-ffhq256-xs", "--task", "denoise",
               "--method", "denoiser", "--device", "cpu", "-o", tmp_path / "y.png")
    assert res.exit_code == 0 and "imported without a download record" in res.output, res.output
    assert resolve_checkpoint("ncvsd-ffhq256-xs", quiet=True) == target
    listed = zoo.status(zoo.load_zoo()["ncvsd-ffhq256-xs"])  # it said "not downloaded" while it was used
    assert listed["status"] == "imported by hand: not verified" and listed["path"] == str(target)
    other = ck.cache_dir() / "edm2-ffhq256-xs.safetensors"  # the generator's file under the teacher's name
    shutil.copy(target, other)
    with pytest.raises(CheckpointError, match=r"imported by hand\) holds a generator network, the zoo describes a "
                                              "teacher"):
        resolve_checkpoint("edm2-ffhq256-xs", quiet=True)
    wrong = zoo.status(zoo.load_zoo()["edm2-ffhq256-xs"])  # `list` and `info` called it "not verified", exit 0
    assert wrong["status"].startswith("MISMATCH: edm2-ffhq256-xs:") and "holds a generator" in wrong["status"]
    res = _cli("checkpoints", "info", "edm2-ffhq256-xs")
    assert res.exit_code == 3 and "MISMATCH" in res.stdout and "holds a generator" in res.stderr, res.output


def test_bench_takes_a_published_generators_teacher_or_stops(hub, tmp_path, caplog):
    """`bench -c ncvsd-ffhq256-xs --methods dps` ran DPS with the shipped 64-px teacher ("--checkpoint is not
    used"), and a published teacher that was damaged (or not downloadable offline) was replaced by the shipped one
    at exit 0: the generator's teacher is taken, also without loading the generator, or the run stops (exit 3)."""
    import logging

    from ncvsd_cli.bench import runner

    cfg = runner.BenchConfig(generator="ncvsd-ffhq256-xs", methods=["dps"], tasks=["sr4"])
    with caplog.at_level(logging.WARNING, logger="ncvsd.bench"):
        runner._note_unused(cfg)
        nets = runner._load_networks(cfg, "cpu", quiet=True)
    assert nets.info["teacher"]["name"] == "edm2-ffhq256-xs.safetensors" and nets.generator is None
    assert "is not used" not in caplog.text
    assert not zoo.converted_path("ncvsd-ffhq256-xs").exists()  # its teacher named without downloading it
    teacher = zoo.converted_path("edm2-ffhq256-xs")
    blob = bytearray(teacher.read_bytes())
    blob[-5] ^= 0x10
    teacher.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="download edm2-ffhq256-xs --force"):
        runner._load_networks(replace(cfg, methods=["pnp-gd", "dps"]), "cpu", quiet=True)


def test_checkpoints_list_says_a_damaged_conversion_is_damaged(hub):
    """A zoo conversion truncated after its download listed as "downloaded" (the record's size and hash)."""
    path = zoo.ensure("edm2-ffhq256-xs", quiet=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    listed = {r["name"]: r for r in json.loads(_cli("checkpoints", "list", "--json").stdout) if r["location"] == "zoo"}
    status = listed["edm2-ffhq256-xs"]["status"]
    assert status.startswith("DAMAGED") and "--force" in status


def test_one_pickle_is_converted_once_whatever_its_name(hub, pickles, tmp_path):
    """The same pickle given as a.pkl, as a link to it and as a copy under another name was converted three times,
    into cache files `checkpoints list` does not show."""
    first = tmp_path / "a.pkl"
    first.write_bytes(pickles["edm2-ffhq256-xs.pkl"])
    (tmp_path / "link.pkl").symlink_to(first)
    (tmp_path / "dir with space").mkdir()
    shutil.copy(first, tmp_path / "dir with space" / "b c.pkl")
    paths = {resolve_checkpoint(p, quiet=True) for p in (first, tmp_path / "link.pkl",
                                                           tmp_path / "dir with space" / "b c.pkl")}
    assert len(paths) == 1 and len(list((ck.cache_dir() / "imported").glob("*.safetensors"))) == 1


def test_a_distill_runs_recorded_teacher_serves_though_its_zoo_name_cannot_be_fetched(hub, tmp_path, monkeypatch):
    """A snapshot of a distill run whose teacher is a zoo model: the file its run.json records is used offline; only
    where none is found does the zoo's error stop the run."""
    from ncvsd_cli.bench import runner

    teacher = tmp_path / "edm2-ffhq256-xs.safetensors"
    teacher.write_bytes(b"a teacher file")
    snapshot = tmp_path / "run" / "snapshots" / "g.safetensors"
    monkeypatch.setattr("ncvsd_cli.training.common.run_record", lambda run: {"teacher_path": str(teacher)})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the zoo cannot fetch it
    cfg = {"provenance": {"teacher": teacher.name}}
    assert runner._generators_teacher(cfg, str(snapshot)) == str(teacher)
    with pytest.raises(CheckpointError):
        runner._generators_teacher(cfg, str(tmp_path / "g.safetensors"))  # no run folder: the zoo's error


@pytest.mark.parametrize("entry, match", [
    ("[1, 2]", "must be a mapping"),
    ("{kind: generator, licence: MIT, source: {file: a.pkl}}", "needs kind"),
    ("{kind: painter, licence: MIT, source: {url: 'http://x/a.pkl'}}", "needs kind"),
    ("{kind: generator, licence: MIT, source: {url: 'http://x/a.pkl'}, sha256: " + "1" * 64 + "}", "in quotes"),
    ("{kind: generator, licence: MIT, source: {url: 'http://x/a.pkl'}, sha256: abc}", "64 hexadecimal"),
])
def test_a_malformed_zoo_entry_is_refused_naming_it(tmp_path, monkeypatch, entry, match):
    """An all-digit sha256 read by YAML as a number lost its leading zeros and was compared as digits; now refused."""
    (tmp_path / "zoo.yaml").write_text(f"remote:\n  bad-model: {entry}\n")
    monkeypatch.setenv("NCVSD_ZOO", str(tmp_path / "zoo.yaml"))
    with pytest.raises(CheckpointError, match=match) as err:
        zoo.load_zoo()
    assert "bad-model" in str(err.value)
