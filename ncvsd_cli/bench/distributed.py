"""Sharding a benchmark across `torchrun` ranks.

Rank r of W (environment RANK / WORLD_SIZE, as torchrun sets them) takes images r, r + W, r + 2W, ... of the list
and writes its own CSV part; after a barrier (a gloo process group over torchrun's MASTER_ADDR / MASTER_PORT, with
a long timeout because ranks can finish far apart) rank 0 merges the parts and writes the reports.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")
BARRIER_TIMEOUT = datetime.timedelta(hours=48)


def rank_world() -> tuple[int, int]:
    """(rank, world_size) from RANK / WORLD_SIZE (default 0, 1). Raises ValueError for inconsistent values."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} "
                         "must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} must lie in 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    if world > 1 and not os.environ.get("MASTER_ADDR"):
        raise ValueError(f"WORLD_SIZE={world} but MASTER_ADDR is not set; start sharded benchmarks with torchrun")
    return rank, world


def local_device(device: str, world: int) -> str:
    """Under torchrun, plain "cuda" becomes "cuda:LOCAL_RANK" so that each rank uses its own GPU."""
    if world > 1 and device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """Items rank, rank + world, ... (round robin, so ranks get equal shares of a sorted list)."""
    return list(items[rank::world])


def barrier(world: int) -> bool:
    """Wait for every rank (no-op when world == 1). Returns True when this call created the process group, which
    the caller then destroys with `finish`."""
    if world <= 1:
        return False
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
        created = True
    dist.barrier()
    return created


def finish(created: bool) -> None:
    """Destroy the process group `barrier` created."""
    if created:
        import torch.distributed as dist

        dist.destroy_process_group()
