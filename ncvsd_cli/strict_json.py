"""Strict JSON (RFC 8259, valid UTF-8) for what the commands write: every NaN or infinite float becomes null, and a
string that is not valid Unicode (a file name whose bytes are not UTF-8, which Python reads as lone surrogates:
b"caf\\xe9.png" -> "caf\\udce9.png") is written readable, each undecodable byte as U+FFFD, with its exact bytes
beside it in base64 under the same key + "_base64" (a list of them, null for valid names, beside a list). Limits:
keys get no bytes (only readable), nor do strings in nested lists, nor a key whose "_base64" twin the caller set."""

from __future__ import annotations

import base64
import json
import math
import os
from typing import Any

#: Suffix of the key holding a name's exact bytes (base64) beside the readable one.
BYTES_SUFFIX = "_base64"


def _invalid(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _name_bytes(text: str) -> bytes | None:
    """The bytes of a file name Python decoded with surrogateescape; None for other lone surrogates (from JSON
    text or metadata), which stand for no bytes."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        return None


def readable(text: str) -> str:
    """`text` with each undecodable byte (a lone surrogate from Python's surrogateescape) as U+FFFD; any other lone
    surrogate as U+FFFD too."""
    if not _invalid(text):
        return text
    raw = _name_bytes(text)
    if raw is None:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return raw.decode("utf-8", "replace")


def escaped(text: str) -> str:
    """`text` with each undecodable byte of a file name written as its escape (b"caf\\xe9" -> "caf\\xe9"): readable,
    valid UTF-8 and distinct for distinct names (ids and folder names that results files hold)."""
    if not _invalid(text):
        return text
    raw = _name_bytes(text)
    return readable(text) if raw is None else raw.decode("utf-8", "backslashreplace")


def exact_bytes(text: str) -> str | None:
    """The bytes of file name `text` as the file system has them (os.fsencode), in base64; None if it has none."""
    raw = _name_bytes(text)
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def strict(value: Any) -> Any:
    """`value` (dicts, lists, tuples, scalars) made strict JSON as the module says; valid input is unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return readable(value)
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, v in value.items():
        key = readable(key) if isinstance(key, str) else key
        out[key] = strict(v)
        beside = f"{key}{BYTES_SUFFIX}"
        if beside in value:  # the caller's own key of that name is kept (a limit: no bytes beside then)
            continue
        raw = exact_bytes(v) if isinstance(v, str) and _invalid(v) else None
        if raw is not None:
            out[beside] = raw
        elif isinstance(v, (list, tuple)) and any(isinstance(s, str) and _invalid(s) for s in v):
            out[beside] = [exact_bytes(s) if isinstance(s, str) and _invalid(s) else None for s in v]
    return out


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps of `strict(value)`, refusing anything left that strict JSON cannot hold."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)
