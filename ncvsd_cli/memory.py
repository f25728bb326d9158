"""Peak memory of one network call, estimated from the architecture alone (no weights loaded), so that a restore can
choose a tile size and refuse too large inputs before it loads anything.

Model (inference, no autograd): the encoders keep every output for the decoder's skip connections, so a
generative-denoiser call (ControlNet encoder + encoder + decoder, docs/method.md §2.4) holds three sets of skips
(the condition's, the input's and their mix) while the decoder runs, plus the working tensors of the block in flight
at full resolution; the teacher UNet holds one set. Attention (§2.2 step 6) adds the (HW, HW) weight matrix per head
at its level unless a fused kernel runs (PyTorch's scaled_dot_product_attention: flash / memory-efficient on CUDA,
flash on CPU), which needs memory linear in HW. Element counts are multiplied by ACTIVATION_FACTOR, calibrated
against the peak resident memory measured on a CPU for the shipped model (benchmarks/memory_calibration.py), which
absorbs allocator slack and temporary copies inside convolutions; CALL_OVERHEAD adds a fixed amount per call.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: Calibrated multiplier on the counted activation elements and fixed per-call overhead (convolution scratch and
#: weight layouts of a new input size), fitted with a margin over the peaks measured by
#: benchmarks/memory_calibration.py (builtin64 generator, float32, 256-768 px: 1.14 bytes/byte slope, ~130 MiB).
ACTIVATION_FACTOR = 1.3
CALL_OVERHEAD = 160 * 2**20
#: Working tensors of the block in flight, in units of (its channels x its pixels): concatenated input, SiLU,
#: convolution outputs, the magnitude-preserving sum.
BLOCK_WORKING_SET = 8
#: Full-size (B, C, H, W) float32 tensors a PnP sampler with a tiled generator holds besides the network call
#: (measurement, iterate, estimate, noise, tiled output and its weights, likelihood-step temporaries).
IMAGE_BUFFERS = 12
#: More full-size float32 tensors the likelihood step of a blur with boundary "reflect" holds (conjugate gradients on
#: a canvas up to ~1.2x the image: iterate, residual, direction, preconditioned residual, products, FFT spectra).
REFLECT_CG_BUFFERS = 14
#: Default memory for one generator call when choosing a tile size: fixed, so that tiled results do not depend on
#: how much memory happens to be free.
DEFAULT_CALL_BUDGET = 4 * 2**30
#: Largest automatic tile side: above it the bottleneck attention costs more per pixel than the overlap saves.
DEFAULT_MAX_TILE = 512

_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class NetworkShape:
    """What the estimate needs from an architecture.

    kind: 'generator', 'score' (both ControlNet-style: two encoders) or 'teacher' (one UNet);
    channels: width per level (cblock); num_blocks: blocks per level; attention_heads: heads per level (0 = no
    attention at that level; the bottleneck always has attention); parameters: number of weights; img_channels.
    """

    kind: str
    channels: tuple[int, ...]
    num_blocks: int
    attention_heads: tuple[int, ...]
    parameters: int
    img_channels: int = 3

    @property
    def size_multiple(self) -> int:
        """H and W of a network input must be multiples of this (2^(levels-1))."""
        return 2 ** (len(self.channels) - 1)


def network_shape(config: dict) -> NetworkShape:
    """NetworkShape of a network config (`networks.build.network_config` or `checkpoints.read_config`); the
    parameter count comes from building the network once per config (on the CPU, no weights read: for the shipped
    networks 0.06 s, where the meta device's first use costs 1.5 s)."""
    import json

    shape = _built(json.dumps(config, sort_keys=True, default=str))[0]
    if isinstance(shape, TypeError):  # (a discriminator: no memory model)
        raise shape
    return shape


def state_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """{name: shape} of the state dict of the network a config describes (the same one build as `network_shape`:
    `checkpoints.check_tensors_fit` compares a file's tensors with it)."""
    import json

    return _built(json.dumps(config, sort_keys=True, default=str))[1]


@functools.lru_cache(maxsize=8)
def _built(config_json: str) -> tuple[NetworkShape | TypeError, dict[str, tuple[int, ...]]]:
    """The NetworkShape (or why there is none) and state-dict shapes of the network `config_json` describes, from
    one build (on the CPU, no weights read: for the shipped networks 0.06 s)."""
    import json

    from ncvsd_cli.networks.build import build_network

    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # its random init leaves the caller's stream alone
        net = build_network(json.loads(config_json))
        shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        try:
            return network_shape_of(net), shapes
        except TypeError as exc:  # a discriminator: no memory model (network_shape raises it; its shapes serve)
            return exc, shapes


def network_shape_of(net: torch.nn.Module) -> NetworkShape:
    """NetworkShape of a built teacher (Precond), generator (GenerativeDenoiser) or score (PrecondCondition)."""
    from ncvsd_cli.networks.edm2_layers import Block
    from ncvsd_cli.networks.precond import GenerativeDenoiser, Precond, PrecondCondition

    net = getattr(net, "_orig_mod", net)  # torch.compile's wrapper
    kind = {GenerativeDenoiser: "generator", PrecondCondition: "score", Precond: "teacher"}.get(type(net))
    if kind is None:
        raise TypeError(f"no memory model for a {type(net).__name__}; expected a teacher, generator or score network")
    unet = next(m for m in net.modules() if hasattr(m, "cblock"))
    levels = len(unet.cblock)
    heads = [0] * levels
    for name, m in net.named_modules():
        if isinstance(m, Block) and m.num_heads:
            res = int(name.rsplit(".", 1)[-1].split("x", 1)[0])  # '<r>x<r>_...' names the training resolution
            level = round(math.log2(unet.img_resolution / res))
            heads[level] = max(heads[level], m.num_heads)
    return NetworkShape(kind, tuple(unet.cblock), unet.num_blocks, tuple(heads),
                        sum(p.numel() for p in net.parameters()), unet.img_channels)


def _level_pixels(h: int, w: int, levels: int) -> list[int]:
    return [math.ceil(h / 2**lv) * math.ceil(w / 2**lv) for lv in range(levels)]


def activation_elements(net: NetworkShape, height: int, width: int) -> int:
    """Activation elements of one image held at the peak of a call (without attention matrices), uncalibrated."""
    c, nb = net.channels, net.num_blocks
    px = _level_pixels(height, width, len(c))
    skips = (1 + nb) * c[0] * px[0] + sum((c[lv - 1] + nb * c[lv]) * px[lv] for lv in range(1, len(c)))
    sets = 1 if net.kind == "teacher" else 3
    return sets * skips + BLOCK_WORKING_SET * c[0] * px[0]


def attention_matrix_bytes(net: NetworkShape, batch: int, height: int, width: int, precision: str = "fp32") -> int:
    """Bytes of the largest (HW, HW) attention weights (scores and their softmax, all heads) that an unfused
    attention holds; 0 when the network has no attention."""
    px = _level_pixels(height, width, len(net.channels))
    return max((2 * batch * h * px[lv] ** 2 * _BYTES[precision] for lv, h in enumerate(net.attention_heads) if h),
               default=0)


@functools.lru_cache(maxsize=8)
def fused_attention_available(device: str = "cpu", precision: str = "fp32") -> bool:
    """True when scaled_dot_product_attention runs a kernel that does not hold the (HW, HW) matrix on `device`
    for `precision` (probed once with a tiny input)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3: no way to ask; count the full matrix
        return False

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    try:
        q = torch.zeros(1, 1, 8, 64, dtype=dtype, device=device)
        with sdpa_kernel(backends):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
    except RuntimeError:
        return False
    return True


def call_bytes(net: NetworkShape | dict, shape: Sequence[int], precision: str = "fp32",
               fused_attention: bool | None = None, device: str = "cpu") -> int:
    """Estimated peak bytes one network call adds to a process that holds the loaded network, for an input of
    `shape` (B, C, H, W), B >= 1, H and W >= 1; `precision` 'fp32', 'bf16' or 'fp16' (activation bytes 4 / 2 / 2);
    `fused_attention` None probes `device`. Includes the cached effective weights (parameters x bytes)."""
    net = network_shape(net) if isinstance(net, dict) else net
    if precision not in _BYTES:
        raise ValueError(f"precision {precision!r}; expected one of {', '.join(_BYTES)}")
    b, _, h, w = (int(v) for v in shape)
    if min(b, h, w) < 1:
        raise ValueError(f"shape must be (B, C, H, W) with B, H, W >= 1, got {tuple(shape)}")
    if fused_attention is None:
        fused_attention = fused_attention_available(device, precision)
    total = ACTIVATION_FACTOR * b * activation_elements(net, h, w) * _BYTES[precision]
    if not fused_attention:
        total += attention_matrix_bytes(net, b, h, w, precision)
    return int(total + CALL_OVERHEAD + net.parameters * _BYTES[precision])


def model_bytes(net: NetworkShape | dict) -> int:
    """Bytes of the loaded float32 weights (the resident model, before any call)."""
    net = network_shape(net) if isinstance(net, dict) else net
    return 4 * net.parameters


def restore_bytes(net: NetworkShape | dict, shape: Sequence[int], tile: int | None = None, precision: str = "fp32",
                  fused_attention: bool | None = None, device: str = "cpu") -> int:
    """Estimated peak bytes of a restore of `shape` (B, C, H, W) with the generator called on tiles of at most
    tile x tile pixels (None: untiled): model + one call on the largest tile (a tiled call takes
    `images_per_call` images at a time) + IMAGE_BUFFERS full images."""
    net = network_shape(net) if isinstance(net, dict) else net
    b, c, h, w = (int(v) for v in shape)
    th, tw = min(h, tile or h), min(w, tile or w)
    per_call = images_per_call(net, b, tile, precision, fused_attention, device) if (th, tw) != (h, w) else b
    return (model_bytes(net) + call_bytes(net, (per_call, c, th, tw), precision, fused_attention, device)
            + IMAGE_BUFFERS * b * c * h * w * 4)


def work_bytes(net: NetworkShape | dict, shape: Sequence[int], backward: bool = False, tile: int | None = None,
               precision: str = "fp32", device: str = "cpu") -> int:
    """Estimated peak bytes of a sampler run on `shape` (B, C, H, W): `restore_bytes`, plus, for a method that
    back-propagates through the network (DPS, `backward`), the activations that pass keeps (two more calls)."""
    need = restore_bytes(net, shape, tile, precision, device=device)
    return need + (2 * call_bytes(net, shape, precision, device=device) if backward else 0)


#: Peak bytes per element (C x H x W) of the output that a classical estimate takes in host memory (NumPy /
#: scikit-image run on the CPU), measured on 512-2048-px outputs: scikit-image's biharmonic fill of an inpainting
#: 410-530 (inpaint-box; 75 s at 2048 px), 780-800 (inpaint-random, 70 % missing), a blur's conjugate gradients on
#: a mirrored canvas (boundary reflect) 79, the other baselines 24-50; a box fill measured again at 1024-1536 px:
#: 445-494, the process's growth with the network's run included.
CLASSICAL_BYTES_PER_ELEMENT = {"biharmonic": 850, "biharmonic-box": 560, "reflect": 80, "other": 50}


def classical_bytes(operator_config: dict | None, shape: Sequence[int], method: str = "classical") -> int:
    """Estimated peak bytes of the classical estimate `method` ("classical" picks by operator, as the warm start
    of pnp-gd-warm does) of an output of `shape` (B, C, H, W) for the operator `operator_config` ({"name", ...})."""
    b, c, h, w = (int(v) for v in shape)
    config = operator_config or {}
    fills = method in ("classical", "biharmonic") and str(config.get("name", "")).startswith("inpaint")
    kind = ("biharmonic-box" if config.get("name") == "inpaint-box" else "biharmonic") if fills \
        else "reflect" if config.get("boundary") == "reflect" else "other"  # (a box: one hole, fewer unknowns' rows)
    return CLASSICAL_BYTES_PER_ELEMENT[kind] * b * c * h * w


def operator_bytes(operator_config: dict | None, image_shape: Sequence[int]) -> int:
    """Host bytes the operator of `operator_config` ({"name", ...}) holds for an output of `image_shape` (C, H, W):
    its class's `setup_bytes` (super-resolution's per-axis matrices grow with the square of the longest side:
    5.7 GB for a 20000-px one); 0 for an operator not registered here."""
    import operators

    try:
        cls = operators.get(str((operator_config or {}).get("name", "")))
    except ValueError:
        return 0
    return int(cls.setup_bytes(tuple(image_shape)))


def images_per_call(net: NetworkShape | dict, batch: int, tile: int, precision: str = "fp32",
                    fused_attention: bool | None = None, device: str = "cpu",
                    budget: int = DEFAULT_CALL_BUDGET) -> int:
    """How many images of a batch of `batch` one tiled call takes: the most (1 to batch) whose call on tile x tile
    pixels fits `budget` bytes, so memory stays bounded whatever --batch-size."""
    net = network_shape(net) if isinstance(net, dict) else net
    k = max(int(batch), 1)
    while k > 1 and call_bytes(net, (k, net.img_channels, tile, tile), precision, fused_attention, device) > budget:
        k -= 1
    return k


def auto_tile_size(net: NetworkShape | dict, batch: int = 1, budget: int = DEFAULT_CALL_BUDGET,
                   precision: str = "fp32", fused_attention: bool | None = None, device: str = "cpu",
                   max_tile: int = DEFAULT_MAX_TILE) -> int:
    """Largest square tile side (a multiple of the network's size multiple, at least 4 times it, at most max_tile)
    whose call_bytes fits `budget` bytes; raises ValueError when even the smallest tile does not fit."""
    net = network_shape(net) if isinstance(net, dict) else net
    m = net.size_multiple
    smallest = 4 * m
    if call_bytes(net, (batch, net.img_channels, smallest, smallest), precision, fused_attention, device) > budget:
        raise ValueError(f"a memory budget of {budget / 2**30:.2f} GiB is too small for a {smallest}x{smallest} tile")
    lo, hi = 4, max(4, max_tile // m)  # in units of m; call_bytes grows with the tile side
    while lo < hi:
        mid = (lo + hi + 1) // 2
        fits = call_bytes(net, (batch, net.img_channels, mid * m, mid * m), precision, fused_attention, device)
        lo, hi = (mid, hi) if fits <= budget else (lo, mid - 1)
    return lo * m


#: Linux's memory counts (a module attribute: tests point it elsewhere).
MEMINFO = "/proc/meminfo"


def available_memory_bytes(device: str = "cpu") -> int | None:
    """Memory a new allocation can use now: free device memory on CUDA; on Linux MemAvailable, or the headroom under
    this process's cgroup memory limit where that is smaller (a container's `--memory`: /proc/meminfo shows the
    host's memory, and a run let through by it was killed by the container's limit); elsewhere psutil's available
    memory; None if unknown."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    free = None
    try:
        with open(MEMINFO) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if free is None:  # macOS, Windows: psutil's count (free + inactive pages; the OS's available physical memory)
        try:
            import psutil

            free = int(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 (not installed, psutil.Error: no check rather than a failed command)
            pass
    limit = cgroup_headroom_bytes()
    return limit if free is None else free if limit is None else min(free, limit)


#: Where cgroup v2 and v1 mount their memory controllers (module attributes: tests point them elsewhere).
CGROUP_V2_ROOT, CGROUP_V1_ROOT = "/sys/fs/cgroup", "/sys/fs/cgroup/memory"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cgroup_headroom_bytes() -> int | None:
    """Bytes left under the tightest cgroup memory limit over this process (v2 memory.max, v1 memory.limit_in_bytes
    and its hierarchical_memory_limit, on the process's folder and every folder above it: Slurm and systemd set
    limits on a parent): the limit less the usage, the reclaimable page cache (inactive_file) counted as free, as the
    kernel reclaims it before it kills; None without a limit or cgroup, or where the files do not read as numbers."""
    own = {}  # the process's cgroup paths: "0::/x" (v2), "4:memory:/x" (v1)
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            own["v2" if parts[0] == "0" else "v1" if "memory" in parts[1].split(",") else ""] = parts[2]
    found = []
    for kind, root, limit_name, usage_name, inactive_name in (
            ("v2", CGROUP_V2_ROOT, "memory.max", "memory.current", "inactive_file"),
            ("v1", CGROUP_V1_ROOT, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")):
        parts = [p for p in own.get(kind, "").split("/") if p]
        # the process's folder and those above it (in a container its cgroup is the mount's root)
        for folder in dict.fromkeys([f"{root}/{'/'.join(parts[:n])}".rstrip("/") for n in range(len(parts), -1, -1)]):
            usage = (_read(f"{folder}/{usage_name}") or "").strip()
            stat = dict(line.split()[:2] for line in (_read(f"{folder}/memory.stat") or "").splitlines()
                        if len(line.split()) >= 2)
            limits = [(_read(f"{folder}/{limit_name}") or "").strip(), stat.get("hierarchical_memory_limit", "")]
            limits = [int(v) for v in limits if v.isdigit() and int(v) < 2**60]  # "max" / a huge number: none
            if not limits or not usage.isdigit():
                continue
            inactive = stat.get(inactive_name, "0")
            used = int(usage) - (int(inactive) if inactive.isdigit() else 0)
            found.append(max(min(limits) - max(used, 0), 0))
    return min(found) if found else None


def format_bytes(n: float) -> str:
    """'3.2 GiB', '850 MiB' (for messages)."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def return_freed_memory() -> None:
    """Hand the C allocator's freed pages back to the system (glibc's malloc_trim; a no-op elsewhere, e.g. macOS,
    Windows, musl). torch's CPU tensors come from malloc, whose arenas keep what images of many sizes freed: a
    process restoring 25 sr4 sizes (48-144 px, the builtin model at 1 NFE) grew from 592 to 1136 MB of RSS, with
    the trim after each to 704 MB; the memory checks (available memory) saw the difference as in use."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (OSError, AttributeError):  # one without malloc_trim (musl)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int  # int malloc_trim(size_t pad)
    return trim
