"""Seeded Gaussian noise: the one place where per-image generators turn into tensors.

A `Generators` value is either one `torch.Generator` (used for the whole batch) or a sequence with one generator
per batch element, so that each image's noise is independent of the batch it was processed in
(the convention of EDM2's StackedRandomGenerator).

Every consumer of randomness draws from its own stream: `stream_seed(purpose, seed, *keys)` hashes a purpose name
("measurement", "restore", ...) with the user's seed and the consumer's keys (sample index, ...), so the same
`--seed` given to `ncvsd degrade` and `ncvsd restore` never makes the restoration noise repeat the measurement
noise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None


def _draw(fn, shape: Sequence[int], generator: Generators, device, dtype) -> torch.Tensor:
    """`fn` (torch.randn or torch.rand) of `shape` with the generator rules of `randn`."""
    shape = tuple(shape)
    if generator is None or isinstance(generator, torch.Generator):
        gen_device = generator.device if generator is not None else device
        out = fn(shape, generator=generator, device=gen_device, dtype=dtype)
    else:
        gens = list(generator) if isinstance(generator, Sequence) else []
        if not gens or not all(isinstance(g, torch.Generator) for g in gens):
            raise ValueError(f"generator must be a torch.Generator, a list of them (one per image) or None, got "
                             f"{generator!r} (a seed s: torch.Generator().manual_seed(s))")
        if len(gens) != shape[0]:
            raise ValueError(f"got {len(gens)} generators for a batch of {shape[0]}; pass one per image")
        out = torch.stack([fn(shape[1:], generator=g, device=g.device, dtype=dtype) for g in gens])
    return out.to(device) if device is not None else out


def randn(shape: Sequence[int], generator: Generators = None, *, device: torch.device | str | None = None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal tensor of `shape`; with a list of generators, row b is drawn from generator[b].

    Draws happen on the generator's device and are moved to `device`, so CPU generators give the same numbers
    whatever device the computation runs on.
    """
    return _draw(torch.randn, shape, generator, device, dtype)


def randn_like(x: torch.Tensor, generator: Generators = None) -> torch.Tensor:
    """Standard normal tensor shaped like `x`, on x's device and dtype (see `randn`)."""
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)


def rand(shape: Sequence[int], generator: Generators = None, *, device: torch.device | str | None = None,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform [0, 1) tensor, with the same generator rules as `randn`."""
    return _draw(torch.rand, shape, generator, device, dtype)


#: The largest seed accepted anywhere (`--seed`, `degrade`, operator `seed` parameters): torch's generators take
#: 64 bits, and the command line's range is 0..2^63-1.
MAX_SEED = 2**63 - 1


def generators_for_seeds(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One seeded generator per image: `generators_for_seeds([3, 4])` -> [Generator(3), Generator(4)]."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def stream_seed(purpose: str, seed: int, *keys: int) -> int:
    """A 63-bit seed for the random stream of `purpose` (a short name) under the user's `seed` and integer `keys`.

    blake2b of the canonical text "purpose:seed:key1:...": stable across runs, platforms and versions, and two
    different (purpose, seed, keys) give unrelated streams.
    """
    text = ":".join([purpose, *(str(int(k)) for k in (seed, *keys))])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def tensor_key(t: torch.Tensor) -> int:
    """A 64-bit hash of a tensor's values (as float64) and shape: the key of its own random stream, so the same
    input gets the same stream wherever it comes in a batch or an input list, and different inputs unrelated ones."""
    values = t.detach().cpu().reshape(-1)
    digest = hashlib.blake2b(str(tuple(t.shape)).encode(), digest_size=8)
    for chunk in values.split(1 << 20):  # the float64 bytes hashed a piece at a time (a 48 MP image: 1.1 GB whole)
        digest.update(chunk.double().numpy().data)
    return int.from_bytes(digest.digest(), "little")


def stream_generators(purpose: str, seed: int, keys: Sequence[int],
                      device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per key: `stream_generators("restore", 0, [0, 1])` draws sample 0 and sample 1 of seed 0."""
    return generators_for_seeds([stream_seed(purpose, seed, k) for k in keys], device=device)
