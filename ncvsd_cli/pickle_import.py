"""Import the authors' EDM2 persistence pickles without executing them (docs/method.md §9).

The published files (`ncvsd-ffhq256-xs.pkl`, `edm2-img64-s-*.pkl`, `edm2-ffhq256-xs.pkl`) are plain pickles of a dict
whose 'ema' entry is the network. Persistent classes (Precond, PrecondCondition, UNet*, Block, MPConv, MPFourier) are
stored as `torch_utils.persistence._reconstruct_persistent_obj(meta)` with meta = {type, version, module_src,
class_name, state}; the authors' loader `exec`s module_src. Here a restricted unpickler records every object
instead of building it:

- persistent objects -> `Recorded(persistent=True, class_name, state)`; module_src is never executed (only hashed);
- classes of the authors' packages (`training`, `torch_utils`, `dnnlib`) referenced by import path, e.g.
  `training.networks_edm2.GenerativeDenoiser`, and torch's ModuleDict / ModuleList -> inert `Recorded` objects;
- tensors via `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter[_with_state]` over storages read by
  `torch.load(bytes, weights_only=True)`; `collections.OrderedDict`; `dnnlib.util.EasyDict` -> a dict;
  a few inert data constructors (torch dtypes, numpy scalars, dtypes and arrays).

Every other global (`os.system`, `builtins.eval`, ...) raises pickle.UnpicklingError("refusing to import ...").
The recorded tree is then flattened into a state dict with the authors' parameter names (which ours share), the
architecture is read from the recorded constructor arguments, our network is built with
`ncvsd_cli.networks.build_network`, loaded strictly and saved with `ncvsd_cli.checkpoints.save_checkpoint`.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

AUTHOR_PACKAGES = ("training", "torch_utils", "dnnlib")
TORCH_CONTAINERS = {
    ("torch.nn.modules.container", "ModuleDict"),
    ("torch.nn.modules.container", "ModuleList"),
    ("torch.nn.modules.container", "Sequential"),
}
# Positional order of the constructors of Precond / PrecondCondition / DiscriminatorCondition (docs/method.md §9).
PRECOND_POSITIONAL = ("img_resolution", "img_channels", "label_dim", "use_fp16", "sigma_data", "logvar_channels")
KIND_OF_CLASS = {"Precond": "teacher", "PrecondCondition": "score"}


@dataclass(frozen=True)
class ImportLimits:
    """What one imported pickle may ask for; past any of them the import is refused (CLI exit 3).

    max_objects: objects and references visited while unwrapping (the released files hold well under 10^5).
    max_depth: nesting of containers and recorded objects (the released files nest about 30 levels).
    max_tensor_bytes: bytes of all tensor storages together (the largest EDM2 ImageNet-64 network, XL, is about
    4.5 GB in float32). numpy arrays are counted at the shape their `_reconstruct` call asks for, which numpy's own
    pickles give as (0,): their data comes from the file's bytes, so the file's size bounds them.
    """

    max_objects: int = 5_000_000
    max_depth: int = 200
    max_tensor_bytes: int = 32 << 30


@dataclass
class Recorded:
    """An object the pickle described, recorded instead of built.

    qualname: "module.Name" for objects referenced by import path, "persistent:Name" for persistent objects.
    args: constructor arguments the pickle passed; state: the `__dict__` (or BUILD state) it set;
    items: dict/list items set on it; module_src_sha256: hash of the embedded (never executed) source.
    """

    qualname: str
    class_name: str
    persistent: bool = False
    version: int | None = None
    args: tuple = ()
    state: Any = None
    items: list = field(default_factory=list)
    module_src_sha256: str | None = None

    @property
    def init_args(self) -> tuple:
        """Positional constructor arguments recorded by the persistence decorator (`_init_args`)."""
        return tuple(self._state_dict().get("_init_args") or ())

    @property
    def init_kwargs(self) -> dict:
        """Keyword constructor arguments recorded by the persistence decorator (`_init_kwargs`)."""
        return dict(self._state_dict().get("_init_kwargs") or {})

    def _state_dict(self) -> dict:
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (dict state, slot state)
        return state if isinstance(state, dict) else {}

    def attr(self, name: str, default: Any = None) -> Any:
        """An attribute from the recorded state (plain attribute or submodule)."""
        state = self._state_dict()
        if name in state:
            return state[name]
        return (state.get("_modules") or {}).get(name, default)


def _stub_class(module: str, name: str) -> type:
    """A class whose 'instances' are Recorded objects: any construction path of pickle (NEWOBJ, REDUCE, BUILD,
    SETITEMS, APPENDS) is recorded and nothing else happens."""

    class _Stub:
        def __new__(cls, *args, **kwargs):
            obj = object.__new__(cls)
            obj.record = Recorded(qualname=f"{module}.{name}", class_name=name, args=args + tuple(kwargs.items()))
            return obj

        def __init__(self, *args, **kwargs):
            pass

        def __setstate__(self, state):
            self.record.state = state

        def __setitem__(self, key, value):
            self.record.items.append((key, value))

        def append(self, value):
            self.record.items.append(value)

        def extend(self, values):
            self.record.items.extend(values)

    _Stub.__name__ = _Stub.__qualname__ = name
    return _Stub


class _EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict: a dict that tolerates a BUILD of attribute state."""


def _reconstruct_persistent_obj(meta: Any) -> Recorded:
    """Record a persistent object from its meta dict; module_src is hashed, never executed (docs/method.md §9)."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise pickle.UnpicklingError(f"unexpected persistent-object meta: {type(meta).__name__} "
                                     f"with keys {sorted(meta) if isinstance(meta, dict) else '-'}")
    src = meta.get("module_src")
    digest = hashlib.sha256(src.encode("utf-8")).hexdigest() if isinstance(src, str) else None
    return Recorded(qualname=f"persistent:{meta['class_name']}", class_name=meta["class_name"], persistent=True,
                    version=meta.get("version"), state=meta.get("state"), module_src_sha256=digest)


def _load_storage_from_bytes(b: bytes):
    """A storage from the bytes of `torch.save(storage)`, read with the weights-only unpickler."""
    if not isinstance(b, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"storage payload must be bytes, got {type(b).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation
        try:
            storage = torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 (torch reports bad payloads with RuntimeError, UnpicklingError...)
            raise pickle.UnpicklingError(f"unreadable tensor storage: {type(exc).__name__}: "
                                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"storage payload holds a {type(storage).__name__}, not a storage")
    return storage


def _no_hooks(hooks: Any) -> None:
    if hooks:
        raise pickle.UnpicklingError("refusing tensor backward hooks in an imported checkpoint")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *extra):
    """torch._utils._rebuild_tensor_v2 with its arguments checked (storage type, integer geometry, no hooks)."""
    from torch._utils import _rebuild_tensor_v2 as rebuild

    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"tensor storage has type {type(storage).__name__}")
    if not all(isinstance(v, int) and v >= 0 for v in (storage_offset, *size, *stride)) or len(size) != len(stride):
        raise pickle.UnpicklingError("tensor geometry must be non-negative integers, one stride per dimension")
    numel = storage.size() if isinstance(storage, torch.TypedStorage) else storage.nbytes()
    extent = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if all(n > 0 for n in size) and extent > numel:
        raise pickle.UnpicklingError(f"tensor of size {tuple(size)} reaches element {extent} of a storage of {numel}")
    _no_hooks(backward_hooks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return rebuild(storage, storage_offset, tuple(size), tuple(stride), bool(requires_grad),
                       collections.OrderedDict())


def _rebuild_parameter(data, requires_grad, backward_hooks, *state):
    """A Parameter; any extra python state of the parameter (`_rebuild_parameter_with_state`) must be empty."""
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter data has type {type(data).__name__}")
    _no_hooks(backward_hooks)
    if state and state[0]:
        raise pickle.UnpicklingError("refusing parameter python state in an imported checkpoint")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """Inert numpy data constructors (scalars, dtypes, arrays) under both the numpy 1 and numpy 2 paths."""
    import numpy as np

    def scalar(dtype, data=None):
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise pickle.UnpicklingError("refusing a numpy object scalar")
        return np.frombuffer(data, dtype=dtype, count=1)[0] if data is not None else dtype.type()

    def reconstruct(subtype, shape, dtype_char):
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError("refusing a numpy array subclass")
        return np.ndarray.__new__(np.ndarray, shape, dtype_char)

    out: dict[tuple[str, str], Any] = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "scalar")] = scalar
        out[(mod, "_reconstruct")] = reconstruct
    return out


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """How protocol 2 pickles bytes (`_codecs.encode(text, "latin1")`), and nothing else of codecs."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {encoding!r}: only protocol 2's bytes are read")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("dnnlib.util", "EasyDict"): _EasyDict,
        ("dnnlib", "EasyDict"): _EasyDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("torch", "Size"): torch.Size,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): _latin1_bytes,
    }
    for dt in ("float16", "bfloat16", "float32", "float64", "int64", "int32", "uint8", "bool"):
        allowed[("torch", dt)] = getattr(torch, dt)
    allowed.update(_numpy_globals())
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds only tensors and plain data, and records everything else (see module docstring)."""

    def __init__(self, file: BinaryIO, limits: ImportLimits | None = None) -> None:
        super().__init__(file)
        self.limits = limits or ImportLimits()
        self.tensor_bytes = 0
        self._allowed = _allowed_globals()
        self._stubs: dict[tuple[str, str], type] = {}
        load_storage = self._allowed[("torch.storage", "_load_from_bytes")]
        self._allowed[("torch.storage", "_load_from_bytes")] = lambda b: self._count(load_storage(b))
        for key, fn in list(self._allowed.items()):
            if key[1] == "_reconstruct" and key[0].startswith("numpy"):
                self._allowed[key] = self._counted_array(fn)

    def _add_bytes(self, n: int) -> None:
        self.tensor_bytes += n
        if self.tensor_bytes > self.limits.max_tensor_bytes:
            raise pickle.UnpicklingError(f"the pickle's tensors exceed {self.limits.max_tensor_bytes} bytes; "
                                         "refusing it")

    def _count(self, storage: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation
            self._add_bytes(storage.nbytes())
        return storage

    def _counted_array(self, reconstruct: Any) -> Any:
        import numpy as np

        def counted(subtype, shape, dtype_char):
            dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
            if not all(isinstance(d, int) and d >= 0 for d in dims):
                raise pickle.UnpicklingError("numpy array shape must be non-negative integers")
            self._add_bytes(int(np.prod(dims, dtype=object)) * np.dtype(dtype_char).itemsize)
            return reconstruct(subtype, shape, dtype_char)

        return counted

    def find_class(self, module: str, name: str) -> Any:
        """Allowlisted globals only; anything else raises UnpicklingError naming module.name. Python 2's names
        (`__builtin__.set` of a protocol 0-2 pickle) are mapped first, as pickle's own fix_imports does."""
        import _compat_pickle

        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        if key in TORCH_CONTAINERS or module.split(".")[0] in AUTHOR_PACKAGES:
            if key not in self._stubs:
                self._stubs[key] = _stub_class(module, name)
            return self._stubs[key]
        raise pickle.UnpicklingError(
            f"refusing to import {module}.{name}: it is not part of an EDM2/NCVSD network pickle "
            "(only tensors, containers and the authors' recorded classes are allowed)")

    def persistent_load(self, pid: Any) -> Any:
        """Plain pickles of the authors carry no persistent ids (torch.save files do: use safetensors instead)."""
        raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}: this looks like a torch.save file, "
                                     "not an EDM2 persistence pickle")


class _Walk:
    """State of one `_unwrap` pass: a memo of visited containers (so shared objects are visited once, and
    cycles terminate) and a count of visits checked against `ImportLimits.max_objects`."""

    def __init__(self, limits: ImportLimits) -> None:
        self.limits, self.memo, self.visits = limits, {}, 0

    def __call__(self, obj: Any, depth: int = 0) -> Any:
        self.visits += 1
        if self.visits > self.limits.max_objects:
            raise pickle.UnpicklingError(f"the pickle holds more than {self.limits.max_objects} objects; "
                                         "refusing it as a decompression bomb")
        if depth > self.limits.max_depth:
            raise pickle.UnpicklingError(f"the pickle nests objects deeper than {self.limits.max_depth} levels; "
                                         "refusing it")
        if hasattr(obj, "record") and isinstance(obj.record, Recorded):
            obj = obj.record
        if not isinstance(obj, (Recorded, dict, list, tuple)):
            return obj
        key = id(obj)
        if key in self.memo:
            return self.memo[key][1]
        if isinstance(obj, Recorded):
            self.memo[key] = (obj, obj)  # the pair keeps `obj` alive, so its id is not reused during the walk
            obj.state = self(obj.state, depth + 1)
            obj.args = self(obj.args, depth + 1)
            obj.items = self(obj.items, depth + 1)
            return obj
        if isinstance(obj, dict):
            out = dict(obj) if isinstance(obj, _EasyDict) else obj
            self.memo[key] = (obj, out)
            for k in list(out):
                out[k] = self(out[k], depth + 1)
            return out
        if isinstance(obj, list):
            out_list: list = []
            self.memo[key] = (obj, out_list)
            out_list.extend(self(v, depth + 1) for v in obj)
            return out_list
        out_tuple = tuple(self(v, depth + 1) for v in obj)  # a tuple cannot contain itself without a list
        self.memo[key] = (obj, out_tuple)
        return out_tuple


def _unwrap(obj: Any, limits: ImportLimits | None = None) -> Any:
    """Recorded objects in place of stub instances, through dicts, lists and tuples; every shared object is
    visited once (memoised). Raises pickle.UnpicklingError past `limits` (objects, nesting depth)."""
    return _Walk(limits or ImportLimits())(obj)


def read_pickle(file: str | os.PathLike | BinaryIO, limits: ImportLimits | None = None) -> Any:
    """Unpickle a persistence pickle with `RestrictedUnpickler`; returns plain data with `Recorded` objects.

    limits: objects, nesting depth and tensor bytes allowed (default `ImportLimits()`). Raises
    pickle.UnpicklingError for any global outside the allowlist and for anything past the limits (MemoryError
    and RecursionError are turned into it too); nothing from the file is executed.
    """
    limits = limits or ImportLimits()

    def load(f: BinaryIO) -> Any:
        try:
            return _unwrap(RestrictedUnpickler(f, limits).load(), limits)
        except (MemoryError, RecursionError, OverflowError) as exc:
            raise pickle.UnpicklingError(f"the pickle asks for more memory or nesting than allowed "
                                         f"({type(exc).__name__}); refusing it") from None

    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return load(f)
    return load(file)


# ------------------------------------------------------------------------------------------ recorded tree -> weights
def recorded_state_dict(obj: Recorded, prefix: str = "", _path: tuple[int, ...] = ()) -> dict[str, torch.Tensor]:
    """Flatten a recorded nn.Module tree into {dotted name: tensor} like `Module.state_dict()`.

    Parameters and buffers (except those in `_non_persistent_buffers_set`) of every recorded module, submodules
    under `name.`; None entries are skipped. A module that contains itself raises ValueError.
    """
    if id(obj) in _path:
        raise ValueError(f"recorded module '{prefix or '<root>'}' contains itself")
    _path = (*_path, id(obj))
    out: dict[str, torch.Tensor] = {}
    state = obj._state_dict()
    if not any(k in state for k in ("_parameters", "_buffers", "_modules")):
        raise ValueError(f"recorded object {obj.qualname} at '{prefix or '<root>'}' is not an nn.Module")
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f"{prefix}{name} is a {type(tensor).__name__}, not a tensor")
            out[prefix + name] = tensor.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, Recorded):
            raise ValueError(f"submodule {prefix}{name} has unexpected type {type(child).__name__}")
        out.update(recorded_state_dict(child, f"{prefix}{name}.", _path))
    return out


def _constructor_kwargs(rec: Recorded) -> dict[str, Any]:
    """Named constructor arguments of a Precond-like persistent object (positional ones mapped by name)."""
    args, kwargs = rec.init_args, rec.init_kwargs
    if len(args) > len(PRECOND_POSITIONAL):
        raise ValueError(f"{rec.class_name} was built with {len(args)} positional arguments; expected at most "
                         f"{len(PRECOND_POSITIONAL)}")
    out = dict(zip(PRECOND_POSITIONAL, args))
    out.update(kwargs)
    for attr in ("img_resolution", "img_channels", "label_dim", "sigma_data", "use_fp16"):
        value = rec.attr(attr)
        if attr not in out and isinstance(value, (bool, int, float)):
            out[attr] = value
    missing = [k for k in ("img_resolution", "img_channels") if k not in out]
    if missing:
        raise ValueError(f"{rec.class_name}: recorded constructor arguments lack {missing}")
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


@dataclass
class ImportedModel:
    """Result of analysing a pickle: config for build_network and the state dict with our names."""

    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    source_class: str
    assumed: dict[str, float] = field(default_factory=dict)  # wrapper settings the pickle lacks -> paper defaults


# The paper's generator settings (sigma_hat = (1 + gamma) sigma, docs/method.md §1.4; the start sigma of sampling),
# taken when a GenerativeDenoiser's recorded state lacks them; the import then records and reports the assumption.
GENERATOR_DEFAULTS = {"gamma": 0.414, "init_sigma": 80.0}


def analyse(data: Any, ema_key: str = "ema") -> ImportedModel:
    """Find the network in unpickled `data` (data[ema_key], or data itself) and describe it.

    GenerativeDenoiser (non-persistent wrapper) around a PrecondCondition -> kind "generator" (weights under
    `model.`, gamma and init_sigma from the wrapper's state); PrecondCondition -> "score"; Precond -> "teacher".
    The config splits the constructor arguments as `ncvsd_cli.networks.build_network` expects (top-level keys
    img_resolution, img_channels, label_dim, sigma_data; the rest under "arch"). Raises ValueError otherwise.
    """
    net = data
    if isinstance(data, dict):
        if ema_key not in data:
            raise ValueError(f"the pickle holds no '{ema_key}' entry (keys: {', '.join(map(str, data))}); "
                             "choose one with `ncvsd checkpoints import FILE --ema KEY -o NAME.safetensors`, then "
                             "use NAME.safetensors")
        net = data[ema_key]
    if not isinstance(net, Recorded):
        what = f"entry '{ema_key}'" if isinstance(data, dict) else "its top-level object"
        raise ValueError(f"{what} is a {type(net).__name__}, not a recorded network (an EDM2 / NCVSD "
                         "persistence pickle holds a dict with the network under 'ema')")
    wrapper = None
    if not net.persistent and net.class_name == "GenerativeDenoiser":
        wrapper, net = net, net.attr("model")
        if not isinstance(net, Recorded) or net.class_name != "PrecondCondition":
            raise ValueError("GenerativeDenoiser does not wrap a recorded PrecondCondition under 'model'")
    if not net.persistent or net.class_name not in KIND_OF_CLASS:
        raise ValueError(f"unsupported network class {net.qualname}; supported: GenerativeDenoiser, "
                         f"{', '.join(KIND_OF_CLASS)}")
    arch = _constructor_kwargs(net)
    config: dict[str, Any] = {
        "kind": "generator" if wrapper is not None else KIND_OF_CLASS[net.class_name],
        "preset": None,
        "img_resolution": int(arch.pop("img_resolution")),
        "img_channels": int(arch.pop("img_channels")),
        "label_dim": int(arch.pop("label_dim", 0)),
        "sigma_data": float(arch.pop("sigma_data", 0.5)),
        "arch": arch,
    }
    assumed: dict[str, float] = {}
    if wrapper is not None:
        for key, default in GENERATOR_DEFAULTS.items():
            config[key] = float(wrapper.attr(key, default))
            if wrapper.attr(key) is None:
                assumed[key] = default
        state = recorded_state_dict(wrapper)
    else:
        state = recorded_state_dict(net)
    return ImportedModel(config=config, state_dict=state, source_class=net.class_name, assumed=assumed)


# ------------------------------------------------------------------------------------------------- conversion
#: How Python's unpickler fails on bytes that are no pickle (its words mean nothing to a user).
GARBAGE_REASONS = ("Memo value not found", "invalid load key", "could not find MARK", "unpickling stack underflow",
                   "pickle data was truncated", "pickle exhausted before end of frame", "Ran out of input")


def import_pickle(src: str | os.PathLike, dst: str | os.PathLike, *, ema_key: str = "ema",
                  command: str | None = None, data: str | None = None, limits: ImportLimits | None = None,
                  provenance: dict[str, Any] | None = None, overwrite: bool = True) -> tuple[Path, dict[str, Any]]:
    """Convert an EDM2/NCVSD persistence pickle into an ncvsd safetensors checkpoint; returns (dst, config).

    The network is rebuilt with `build_network` from the recorded constructor arguments and loaded strictly, so
    every tensor must land on a parameter of the same name and shape. Floating weights are stored in the source's
    dtype (fp16 for the released files; widening to float32 on load is exact). Provenance records the source file
    name and sha256, the entry used, `command` / `data` when given and any `provenance` items. limits: see
    `ImportLimits`. overwrite False: `dst` created meanwhile by another process is not replaced
    (images.OutputExistsError). Raises CheckpointError on any problem (refused globals, a pickle past the limits,
    unsupported classes, names or shapes that do not fit, weights that are not finite, which every loader refuses).
    """
    from ncvsd_cli.checkpoints import (
        CheckpointError,
        check_finite_weights,
        file_format,
        save_checkpoint,
        sha256_file,
    )
    from ncvsd_cli.networks import build_network

    src = Path(src)
    if not src.is_file():
        raise CheckpointError(f"source pickle {src} does not exist")
    other = file_format(src)
    if other and other != "a Python pickle":
        raise CheckpointError(f"cannot import {src.name}: it is {other}, not a network pickle of the authors' code "
                              "(EDM2 / NCVSD `network-snapshot-*.pkl`)")
    try:
        imported = analyse(read_pickle(src, limits), ema_key=ema_key)
    except (pickle.UnpicklingError, ValueError, EOFError) as exc:
        if other is None and str(exc).startswith(GARBAGE_REASONS):  # Python's reason for bytes that are no pickle
            raise CheckpointError(f"cannot import {src.name}: it does not start the way a Python pickle "
                                  "(protocol 2-5) does, so it is not a network pickle of the authors' code (EDM2 / NCVSD "
                                  "`network-snapshot-*.pkl`)") from exc
        raise CheckpointError(f"cannot import {src.name}: {exc}") from exc
    except Exception as exc:  # malformed data reaching a constructor (TypeError, AttributeError, struct.error...)
        raise CheckpointError(f"cannot import {src.name}: not an EDM2/NCVSD network pickle "
                              f"({type(exc).__name__}: {exc})") from exc
    config = imported.config
    config["provenance"] = {
        "source": src.name, "source_sha256": sha256_file(src), "source_class": imported.source_class,
        "ema_key": ema_key, "data": data, "steps": None, "command": command or f"ncvsd checkpoints import {src.name}",
        **(provenance or {}),
        **({"assumed": imported.assumed} if imported.assumed else {}),
    }
    try:  # on the meta device first: recorded arguments of 10**6 channels asked for 8 TB before any check
        with torch.device("meta"):
            model = build_network(config)
    except Exception as exc:  # whatever the recorded arguments make the builder raise
        raise CheckpointError(f"{src.name}: cannot build our network from the recorded arguments "
                              f"{config['arch']}: {type(exc).__name__}: {exc}") from exc
    state = imported.state_dict
    float_dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    ours = model.state_dict()
    missing, unexpected = sorted(set(ours) - set(state)), sorted(set(state) - set(ours))
    if missing or unexpected:
        raise CheckpointError(f"{src.name}: tensor names do not match our {config['kind']} network: "
                              f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}, "
                              f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    bad = [f"{k} {tuple(state[k].shape)} vs {tuple(ours[k].shape)}" for k in ours if state[k].shape != ours[k].shape]
    if bad:
        raise CheckpointError(f"{src.name}: tensor shapes do not match: {'; '.join(bad[:5])}")
    model = build_network(config)  # the sizes are the pickle's own now
    model.load_state_dict({k: v.to(ours[k].dtype) for k, v in state.items()}, strict=True)
    check_finite_weights(model, src.name)  # (a file that would be written, then refused by every loader)
    store = float_dtypes.pop() if len(float_dtypes) == 1 else None
    return save_checkpoint(model, dst, config, dtype=store, overwrite=overwrite), config
