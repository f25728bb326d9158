"""Single-process and `torchrun` (DDP) execution for the training commands.

Under `torchrun` the environment holds RANK, WORLD_SIZE and LOCAL_RANK; we then join a process group (NCCL on
CUDA, gloo on CPU). Gradients are averaged with one coalesced all-reduce per update (`all_reduce_grads`), which
is what DDP does, but works for the three networks of distillation whose parameters are frozen in turn.
"""

from __future__ import annotations

import datetime

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """rank, world_size, local_rank and the torch.device this process trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when CUDA is available else cpu; 'cuda' -> cuda:<local_rank>; 'cpu', 'cuda:N' as
    given; ValueError for anything else, or CUDA not available (`networks.inference.resolve_device`'s rules)."""
    from ncvsd_cli.networks.inference import resolve_device as parse_device

    dev = parse_device(device, "--device")
    if dev.type == "cuda":
        if ":" not in str(device):  # (auto, cuda: each torchrun process its own GPU)
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def init(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if the environment says so; otherwise a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if dev.type == "cuda":  # fixed training shapes: let cuDNN pick its fastest kernels (EDM2 does the same)
        torch.backends.cudnn.benchmark = True
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kwargs)
    return DistInfo(rank, world, local, dev)


def shutdown(failed: bool = False) -> None:
    """Leave the process group (if any), after the other ranks have reached this point too: a rank that tears gloo
    down while another still talks to it can abort at exit ("terminate called without an active exception").
    failed: this rank stops on an error the others do not share (a file only it drew): it leaves at once, so that
    their next collective fails now (PeerLost) instead of after the barrier's 60 s."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1 and not failed:
            try:  # bounded: a rank that crashed must not keep the others here
                if dist.get_backend() == "gloo":
                    dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
                else:
                    dist.barrier()
            except RuntimeError:
                pass
        dist.destroy_process_group()


#: What a collective's error says when another rank left (gloo; NCCL) or died.
PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator was aborted",
             "remote process exited")


def lost_a_peer(exc: BaseException) -> bool:
    """Whether `exc`, raised by a collective in a world of several, says another rank is gone."""
    return world_size() > 1 and isinstance(exc, RuntimeError) and any(t in str(exc) for t in PEER_LOST)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (no-op in a world of one)."""
    if world_size() == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Average the gradients of `params` over ranks in one flat all-reduce; missing grads count as zeros."""
    if world_size() == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def all_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (for logged losses)."""
    if world_size() == 1:
        return values
    v = values.clone()
    dist.all_reduce(v)
    return v / world_size()


def all_max(values: list[float], device: torch.device) -> list[float]:
    """Element-wise maximum of a few numbers over ranks (decisions every rank must share: stop, snapshot)."""
    if world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], device=device, dtype=torch.float32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
