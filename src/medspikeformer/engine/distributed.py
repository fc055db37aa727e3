"""Data-parallel helpers: process-group setup from ``torchrun`` variables, sharding, reductions.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` set)
the trainer joins a process group — NCCL when training on CUDA, gloo otherwise — wraps the model in
``DistributedDataParallel``, shards the training set with ``DistributedSampler`` and the validation
set with :class:`ShardSampler` (no padding, so every image is counted exactly once), reduces the
metrics across ranks, and lets only rank 0 write files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from medspikeformer.errors import ConfigError

__all__ = [
    "DistInfo",
    "ShardSampler",
    "all_reduce_sum",
    "any_across_ranks",
    "barrier",
    "gather_objects",
    "init_distributed",
    "shutdown_distributed",
]


@dataclass(frozen=True)
class DistInfo:
    """Rank layout of this process (``world_size == 1`` without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: str | None) -> int:
    raw = os.environ.get(name, default)
    if raw is None:
        raise ConfigError(
            f"environment: WORLD_SIZE is {os.environ.get('WORLD_SIZE')} but {name} is not set "
            "(start data-parallel runs with torchrun, which sets RANK, LOCAL_RANK and the master "
            "address)"
        )
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment: {name}={raw!r} is not an integer") from None


def distributed_env() -> tuple[int, int, int]:
    """``(WORLD_SIZE, RANK, LOCAL_RANK)`` from torchrun's environment, checked: integers,
    ``0 <= RANK < WORLD_SIZE`` (a rank outside would wait forever for peers that never come)
    and the master address set; otherwise a one-line ConfigError naming the variable."""
    world = _env_int("WORLD_SIZE", "1")
    if world < 1:
        raise ConfigError(f"environment: WORLD_SIZE={world} must be at least 1")
    if world == 1:
        return 1, 0, 0
    rank = _env_int("RANK", None)
    local_rank = _env_int("LOCAL_RANK", "0")
    if not 0 <= rank < world:
        raise ConfigError(
            f"environment: RANK={rank} must lie in 0…{world - 1} (WORLD_SIZE={world})"
        )
    if local_rank < 0:
        raise ConfigError(f"environment: LOCAL_RANK={local_rank} must not be negative")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ConfigError(
                f"environment: WORLD_SIZE={world} but {name} is not set (use torchrun)"
            )
    return world, rank, local_rank


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group described by torchrun's environment (no-op when WORLD_SIZE ≤ 1)."""
    world, rank, local_rank = distributed_env()
    if world <= 1:
        return DistInfo()
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, False)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, True)


def shutdown_distributed(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``values`` over ranks (float64 on the group's device); returns the summed tensor."""
    if not info.enabled:
        return values
    device = (
        torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    )
    out = values.detach().to(device=device, dtype=torch.float64).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(values.device)


def any_across_ranks(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    if not info.enabled:
        return flag
    return bool(all_reduce_sum(torch.tensor([1.0 if flag else 0.0]), info).item() > 0)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj_rank0, obj_rank1, ...]`` on every rank (just ``[obj]`` without distribution)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, rank + 2·world, ...`` — a disjoint, unpadded shard.

    Unlike ``DistributedSampler`` it never repeats samples to even out the shards, so metrics
    accumulated on all ranks and merged equal a single-process evaluation exactly.
    """

    def __init__(self, length: int, rank: int, world_size: int):
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))
