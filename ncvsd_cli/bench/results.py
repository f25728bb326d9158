"""Per-image result rows: the CSV columns, an append-and-flush writer, and the resume keys.

One row per (dataset, image, task, method, nfe, seed, run). Rows are written one by one as they are computed and
flushed, so an interrupted bench keeps everything finished; `finished_keys` reads them back for `--resume`.
A line cut short by an interruption is dropped on reading and truncated before the next append.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Columns that identify a row (the resume key).
KEY_COLUMNS = ("dataset", "image", "task", "method", "nfe", "seed", "run")
#: Columns after the LPIPS one. peak_mem_mb is CUDA max allocated (mem_kind "cuda_max_allocated") or, on CPU,
#: the peak resident set size reached during the row minus the RSS at its start ("cpu_rss_peak_delta").
_COST_COLUMNS = ("seconds", "peak_mem_mb", "mem_kind", "device")
_INT_COLUMNS = {"image_index", "nfe", "seed", "run", "network_evals", "operator_evals", "resolution"}
_FLOAT_COLUMNS = {"psnr", "ssim", "seconds", "peak_mem_mb", "sigma_y"}

CSV_NAME = "per_image.csv"


def lpips_column(net: str) -> str:
    """The LPIPS column, named after its backbone: 'lpips_alex' or 'lpips_vgg'."""
    if net not in ("alex", "vgg"):
        raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    return f"lpips_{net}"


def columns(lpips_net: str) -> list[str]:
    """All CSV columns, in order, for LPIPS computed with `lpips_net`."""
    return ["dataset", "image", "image_index", "task", "method", "nfe", "seed", "run", "network_evals",
            "operator_evals", "resolution", "sigma_y", "psnr", "ssim", lpips_column(lpips_net), *_COST_COLUMNS]


def row_key(row: dict[str, Any]) -> tuple[str, ...]:
    """The resume key of a row, as strings (so rows read from CSV and rows in memory compare equal)."""
    return tuple(str(row[c]) for c in KEY_COLUMNS)


def _parse(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k in _INT_COLUMNS:
            out[k] = int(v)
        elif k in _FLOAT_COLUMNS or k.startswith("lpips_"):
            out[k] = float(v) if v not in ("", "nan") else math.nan
        else:
            out[k] = v
    return out


def _drop_partial_tail(path: Path) -> None:
    """Truncate `path` after its last newline (removes a row cut short by an interruption)."""
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Complete rows of one CSV file, typed (ints, floats); incomplete or unparsable lines are skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for raw in reader:
            if None in raw or any(v is None for v in raw.values()):
                continue  # too many / too few fields: an interrupted line
            try:
                rows.append(_parse(raw))
            except ValueError:
                continue
    return rows


def csv_header(path: str | os.PathLike) -> list[str] | None:
    """The header of an existing CSV file, or None when it is missing or empty."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), None)


class RowWriter:
    """Append rows to a CSV file, one flushed line per row (`with RowWriter(path, cols) as w: w.write(row)`).

    An existing file must have exactly `cols` as its header (ValueError naming both otherwise: for example results
    computed with another LPIPS net must go to another --out).
    """

    def __init__(self, path: str | os.PathLike, cols: list[str]):
        self.path = Path(path)
        self.cols = list(cols)
        header = csv_header(self.path)
        if header is not None and header != self.cols:
            raise ValueError(f"{self.path} has columns {header}, this run writes {self.cols}; "
                             "use the same --lpips net or another --out directory")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if header is not None:
            _drop_partial_tail(self.path)
        self._fh = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=self.cols, extrasaction="raise")
        if header is None:
            self._writer.writeheader()
            self._fh.flush()

    def write(self, row: dict[str, Any]) -> None:
        """Write one row (all columns required) and flush it to disk."""
        missing = [c for c in self.cols if c not in row]
        if missing:
            raise ValueError(f"row is missing columns {missing}")
        self._writer.writerow({c: _fmt(row[c]) for c in self.cols})
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return v


def finished_keys(paths: Iterable[str | os.PathLike]) -> set[tuple[str, ...]]:
    """Keys of every complete row in `paths` (used by --resume)."""
    return {row_key(r) for p in paths for r in read_rows(p)}


def merge(paths: Iterable[str | os.PathLike], out: str | os.PathLike, cols: list[str]) -> list[dict[str, Any]]:
    """Union of the rows in `paths` (first occurrence of each key wins), sorted, written atomically to `out`."""
    seen: dict[tuple[str, ...], dict[str, Any]] = {}
    for p in paths:
        for r in read_rows(p):
            seen.setdefault(row_key(r), r)
    rows = sorted(seen.values(), key=lambda r: (r["task"], r["method"], r["nfe"], r["image_index"], r["run"]))
    from ncvsd_cli.images import atomic_path

    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:  # no temporary file survives any exit
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: _fmt(r.get(c, "")) for c in cols})
    return rows
