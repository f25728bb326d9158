"""Strict JSON (RFC 8259, valid UTF-8) for what the commands write: every NaN or infinite float becomes null, and a
string that is not valid Unicode (a file name whose bytes are not UTF-8, which Python reads as lone surrogates:
b"caf\\xe9.png" -> "caf\\udce9.png") is written readable, each undecodable byte as U+FFFD, with its exact bytes
beside it in base64 under the same key + "_base64" (a list of them, null for valid names, beside a list)."""

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


def readable(text: str) -> str:
    """`text` with each undecodable byte (a lone surrogate from Python's surrogateescape) as U+FFFD."""
    return os.fsencode(text).decode("utf-8", "replace") if _invalid(text) else text


def exact_bytes(text: str) -> str:
    """The bytes of `text` as the file system has them (os.fsencode), in base64."""
    return base64.b64encode(os.fsencode(text)).decode("ascii")


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
        if isinstance(v, str) and _invalid(v):
            out[f"{key}{BYTES_SUFFIX}"] = exact_bytes(v)
        elif isinstance(v, (list, tuple)) and any(isinstance(s, str) and _invalid(s) for s in v):
            out[f"{key}{BYTES_SUFFIX}"] = [exact_bytes(s) if isinstance(s, str) and _invalid(s) else None for s in v]
    return out


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps of `strict(value)`, refusing anything left that strict JSON cannot hold."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)
