"""Strict JSON out of the commands: NaN as null, file names whose bytes are not UTF-8 readable and exact."""

import base64
import json
import logging
import math
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ncvsd_cli import strict_json
from ncvsd_cli.cli import app

RAW = b"caf\xe9.png"  # Latin-1 "cafe" with an accent: not UTF-8
NAME = os.fsdecode(RAW)  # how Python hands it over (argv, listdir): "caf\udce9.png"


def _strictly_parsed(line: str):
    """A parse as a strict reader (serde_json, Go) does it: UTF-8 bytes, no lone surrogates after decoding."""
    doc = json.loads(line.encode("utf-8"))

    def walk(v):
        if isinstance(v, str):
            v.encode("utf-8")  # raises on a lone surrogate
        elif isinstance(v, dict):
            [walk(k) or walk(x) for k, x in v.items()]
        elif isinstance(v, list):
            [walk(x) for x in v]

    walk(doc)
    return doc


@pytest.mark.parametrize("value", [{"a": 1, "b": [1.5, "x"], "c": None}, ["é", {"k": "✓"}], "plain", 3, True])
def test_valid_values_pass_unchanged(value):
    assert strict_json.strict(value) == value
    assert json.loads(strict_json.dumps(value)) == value


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_become_null(bad):
    assert json.loads(strict_json.dumps({"x": [bad, 1.0], "y": bad})) == {"x": [None, 1.0], "y": None}


def test_undecodable_name_is_readable_with_its_exact_bytes_beside_it():
    doc = _strictly_parsed(strict_json.dumps({"input": NAME, "outputs": ["ok.png", "out/" + NAME], "n": 1}))
    assert doc["input"] == "caf\ufffd.png" and base64.b64decode(doc["input_base64"]) == RAW
    assert doc["outputs"] == ["ok.png", "out/caf\ufffd.png"]
    assert doc["outputs_base64"][0] is None and base64.b64decode(doc["outputs_base64"][1]) == b"out/" + RAW
    assert os.fsdecode(base64.b64decode(doc["input_base64"])) == NAME  # round trip to the file's name
    assert "n_base64" not in doc


def test_other_lone_surrogates_and_key_collisions_do_not_break_the_output():
    """A lone surrogate that is no file-name byte (from JSON text, metadata) is written as U+FFFD without bytes; a
    caller's own key + "_base64" is kept."""
    doc = _strictly_parsed(strict_json.dumps({"a": "x\ud83d", "b": ["\ud83d"], "k": NAME, "k_base64": "mine"}))
    assert doc["a"] == "x\ufffd" and "a_base64" not in doc and doc["b_base64"] == [None]
    assert doc["k"] == "caf\ufffd.png" and doc["k_base64"] == "mine"
    assert strict_json.escaped(NAME) == "caf\\xe9.png" and strict_json.escaped("é") == "é"


def _write_odd_named_image(folder):
    folder.mkdir(parents=True, exist_ok=True)
    path = os.path.join(os.fsencode(folder), RAW)
    try:
        Image.fromarray(np.full((19, 21, 3), 128, np.uint8)).save(os.fsdecode(path))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    return os.fsdecode(path)


def test_restore_json_with_a_non_utf8_name_is_strict(tmp_path):
    src = _write_odd_named_image(tmp_path / "in")
    res = CliRunner().invoke(app, ["restore", "--task", "denoise", "--sigma-y", "0.1", src, "-o",
                                   str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    first, summary = _strictly_parsed(lines[0]), _strictly_parsed(lines[-1])
    assert os.fsdecode(base64.b64decode(first["input_base64"])) == src
    written = os.fsdecode(base64.b64decode(first["outputs_base64"][0]))
    assert os.path.isfile(written) and written == os.path.join(str(tmp_path / "out"), NAME)
    assert summary["results"][0]["input_base64"] == first["input_base64"]


def test_bench_ids_escape_undecodable_bytes(tmp_path):
    from ncvsd_cli.bench.datasets import image_folder

    _write_odd_named_image(tmp_path / "d")
    Image.fromarray(np.zeros((19, 21, 3), np.uint8)).save(tmp_path / "d" / "ok.png")
    ids = [im.id for im in image_folder(tmp_path / "d", 16).images]
    assert sorted(ids) == ["caf\\xe9", "ok"]
    [i.encode("utf-8") for i in ids]  # the results' CSV and markdown are UTF-8


def test_bench_on_a_non_utf8_folder_writes_its_results(tmp_path):
    """bench stopped with "surrogates not allowed" writing per_image.csv when the folder or an image was so named."""
    folder = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"d\xe9s"))
    _write_odd_named_image(tmp_path / folder)
    out = tmp_path / "out"
    logging.disable(logging.CRITICAL)  # pytest-xdist cannot send captured log records holding such a name
    try:
        res = CliRunner().invoke(app, ["bench", "--dataset", folder, "--tasks", "sr4", "--methods", "classical",
                                       "--limit", "1", "--out", str(out), "--json", "--quiet"])
    finally:
        logging.disable(logging.NOTSET)
    assert res.exit_code == 0, res.output
    rows = (out / "per_image.csv").read_text(encoding="utf-8").splitlines()
    assert rows[1].startswith("d\\xe9s,caf\\xe9,"), rows[:2]
    assert "d\\xe9s" in (out / "summary.md").read_text(encoding="utf-8")
    _strictly_parsed(res.stdout)
