"""Wall-clock time and peak memory of one benchmark row.

- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` at the start of the row (bytes held by
  tensors at the peak, model weights included); mem_kind "cuda_max_allocated".
- CPU: the process's peak resident set size during the row minus its RSS at the start. Linux lets a process reset
  its peak (writing "5" to /proc/self/clear_refs resets VmHWM), so the peak is the row's own
  (mem_kind "cpu_rss_peak_delta"). Where that is impossible the lifetime peak `resource.getrusage().ru_maxrss` is used
  instead, which only shows growth beyond every earlier peak (mem_kind "cpu_maxrss_delta", a lower bound). The
  `resource` module exists only on Unix; without it (Windows) and without /proc, peak memory is not measured
  (mem_kind "cpu_unmeasured", peak 0). Platform-only modules are imported where they are used, never at import.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _maxrss_kb() -> int | None:
    """The process's lifetime peak RSS in KiB, or None where the `resource` module does not exist (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb // 1024 if sys.platform == "darwin" else kb  # macOS reports bytes


class RowCost:
    """Context manager measuring seconds and peak memory (MiB) of the code it wraps on `device`.

    After exit: `.seconds` (float >= 0), `.peak_mem_mb` (float >= 0) and `.mem_kind` (see the module docstring).
    CUDA work is synchronised before both clock readings.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.seconds = 0.0
        self.peak_mem_mb = 0.0
        self.mem_kind = ""

    def __enter__(self) -> RowCost:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.mem_kind = "cuda_max_allocated"
        else:
            self._start_kb = _status_kb("VmRSS")
            if self._start_kb is not None and _reset_hwm() and _status_kb("VmHWM") is not None:
                self.mem_kind = "cpu_rss_peak_delta"
            else:
                self._start_kb = _maxrss_kb()
                self.mem_kind = "cpu_maxrss_delta" if self._start_kb is not None else "cpu_unmeasured"
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.seconds = time.perf_counter() - self._t0
            self.peak_mem_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self.seconds = time.perf_counter() - self._t0
        if self.mem_kind == "cpu_unmeasured":
            return
        peak_kb = _status_kb("VmHWM") if self.mem_kind == "cpu_rss_peak_delta" else _maxrss_kb()
        self.peak_mem_mb = max(0, (peak_kb or 0) - self._start_kb) / 1024
