"""Process-group setup and full ↔ sharded state for data-parallel (FSDP2) training.

Checkpoints are always written as *full* state (plain tensors, as a single process writes them), so a run
can be resumed on any number of ranks, and a checkpoint from ``torchrun`` loads in one process. Under
FSDP2 parameters, gradients and optimizer moments are DTensors sharded on dim 0; ``gather_full`` turns a
nested state into plain tensors (a collective: every rank calls it) and ``shard_like`` turns a full state
back into DTensors placed like reference tensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, distribute_tensor


@dataclass(frozen=True)
class WorldInfo:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_distributed(cuda: bool | None = None) -> WorldInfo:
    """Join the process group that ``torchrun`` describes in the environment (no-op for one process).

    NCCL with one GPU per local rank when running on CUDA (``cuda``; default: when CUDA is present), gloo on CPU.
    """
    if dist.is_available() and dist.is_initialized():
        return WorldInfo(dist.get_rank(), dist.get_world_size())
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return WorldInfo()
    if torch.cuda.is_available() if cuda is None else cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return WorldInfo(dist.get_rank(), dist.get_world_size())


def world_info() -> WorldInfo:
    if dist.is_available() and dist.is_initialized():
        return WorldInfo(dist.get_rank(), dist.get_world_size())
    return WorldInfo()


def gather_full(obj):
    """Nested dict/list state with DTensors → the same structure with full plain tensors (collective)."""
    if isinstance(obj, DTensor):
        return obj.full_tensor()
    if isinstance(obj, dict):
        return {k: gather_full(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(gather_full(v) for v in obj)
    return obj


def shard_as(full: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """A full tensor placed like ``ref`` (a DTensor: its mesh and placements; a plain tensor: as is)."""
    if isinstance(ref, DTensor):
        return distribute_tensor(full.to(ref.dtype), ref.device_mesh, ref.placements)
    return full


def shard_like(full: dict[str, torch.Tensor], refs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: shard_as(v, refs[k]) if k in refs else v for k, v in full.items()}


def shard_optimizer_state(full: dict, optimizer: torch.optim.Optimizer) -> dict:
    """A full (single-process layout) optimizer state dict → one whose per-parameter tensors are sharded
    like their parameters; scalars (``step``) stay plain. Parameter ids follow the param-group order, as
    ``Optimizer.state_dict`` numbers them."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    state = {}
    for idx, entry in full["state"].items():
        param = params[int(idx)]
        state[idx] = {
            k: shard_as(v, param) if isinstance(v, torch.Tensor) and v.shape == param.shape else v
            for k, v in entry.items()
        }
    return {"state": state, "param_groups": full["param_groups"]}


def all_reduce_mean(values: dict[str, float], info: WorldInfo) -> dict[str, float]:
    """Average logged scalars over ranks (the same keys on every rank)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.size for k, v in zip(keys, t.tolist(), strict=True)}
