"""Inference settings of a loaded network: memory format and compute precision (restore, sample, bench).

- channels_last (NHWC) on every device: oneDNN and cuDNN convolutions and the per-pixel norms over channels run
  faster in it (measured on the 2-core build machine, builtin64 generator at 256 px: 0.93 s -> 0.68-0.76 s per
  call); results equal NCHW up to float32 rounding.
- precision "bf16" on CPU: activations and weights in bfloat16 (norms and the EDM preconditioning stay float32),
  worth it only where the CPU has native bfloat16 (AMX or AVX512-BF16: 0.68 s -> 0.30 s per call there).
  "auto" picks it on such CPUs, float32 elsewhere; on CUDA the checkpoint's own use_fp16 setting is kept.
"""

from __future__ import annotations

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """True when this CPU executes bfloat16 matrix/convolution instructions natively (AMX tiles or AVX512-BF16)."""
    cpu = torch.cpu
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private torch helpers; absent -> False
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


def resolve_device(spec: str = "auto", name: str = "device") -> torch.device:
    """`auto|cpu|cpu:0|cuda|cuda:N` (or a torch.device) -> torch.device; auto = cuda if available, else cpu.
    ValueError naming `name` and the spec when it is malformed or the device is not available here."""
    import re

    s = str(spec).strip().lower()
    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if s in ("cpu", "cpu:0"):  # (str(torch.device("cpu", 0)))
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", s)
    if m:
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {spec}: CUDA is not available on this machine (use {name} cpu)")
        index = int(m.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"{name} {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device("cuda", index)
    if s == "mps":  # operators keep float64 buffers (kernels, SVD factors), which MPS cannot hold
        raise ValueError(f"{name} mps is not supported yet (the operators use float64); use {name} cpu")
    raise ValueError(f"{name} {spec!r} is not one of auto, cpu, cuda, cuda:N")


def resolve_precision(precision: str, device: torch.device | str, kind: str = "generator") -> str:
    """'auto' -> 'bf16' on a CPU with native bfloat16, else 'fp32'; 'fp32'/'bf16' unchanged (ValueError otherwise).
    On CUDA the answer is 'checkpoint' for 'auto' (the checkpoint's use_fp16 decides). kind "teacher" with 'auto'
    stays 'fp32' off CUDA: DPS differentiates through the teacher, and bfloat16 gradients there are untested."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda":
        return "checkpoint"
    return "bf16" if cpu_has_native_bf16() and kind != "teacher" else "fp32"


def prepare_for_inference(net: torch.nn.Module, precision: str = "auto",
                          device: torch.device | str = "cpu", kind: str = "generator") -> str:
    """Put `net` (a Precond / GenerativeDenoiser) in channels_last and set its compute precision; returns the
    precision in effect ('fp32', 'bf16' or 'checkpoint'; `resolve_precision`, a teacher's under 'auto' included). Call
    after moving it to `device`.
    """
    effective = resolve_precision(precision, device, kind)
    net.to(memory_format=torch.channels_last)
    if effective == "checkpoint":
        return effective
    half, on_cuda = effective == "bf16", torch.device(device).type == "cuda"
    preconds = [m for m in net.modules() if hasattr(m, "compute_dtype")]  # the Precond* inside, wrappers included
    if not preconds:
        raise TypeError(f"{type(net).__name__} has no EDM2 preconditioning module to set the precision of")
    for m in preconds:
        m.cpu_bf16 = half and not on_cuda
        if on_cuda:
            m.use_fp16, m.fp16_dtype = half, "bfloat16" if half else m.fp16_dtype
    return effective
