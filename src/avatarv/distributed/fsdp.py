"""FSDP2 (``torch.distributed.fsdp.fully_shard``) applied per DiT block and at the root, torchtitan style.

Parameters are sharded across the data-parallel mesh; each block's parameters are all-gathered just before
it runs (the next block is prefetched while the current one computes) and freed after. Mixed precision
runs compute in ``param_dtype`` with fp32 gradient reduction. CPU offload keeps the shards in host memory
between uses — it needs an accelerator to copy to, so it is on by default only when CUDA is present.
The reference stream (``forward_ref`` / ``compute_ref_kv``) is registered as an FSDP forward method so the
same all-gather hooks run for it.
"""

from __future__ import annotations

import torch
from torch.distributed.fsdp import (
    CPUOffloadPolicy,
    MixedPrecisionPolicy,
    OffloadPolicy,
    fully_shard,
    register_fsdp_forward_method,
)


def apply_fsdp(
    model,
    mesh=None,
    param_dtype: torch.dtype | None = None,
    reduce_dtype: torch.dtype = torch.float32,
    cpu_offload: bool | None = None,
    reshard_after_forward: bool = True,
):
    if cpu_offload is None:
        cpu_offload = torch.cuda.is_available()
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    offload = CPUOffloadPolicy() if cpu_offload else OffloadPolicy()
    blocks = list(model.blocks)
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=mp, offload_policy=offload,
                    reshard_after_forward=reshard_after_forward)
        register_fsdp_forward_method(block, "forward_ref")
    # torchtitan: the root is not resharded after forward; backward needs its parameters at once anyway
    fully_shard(model, mesh=mesh, mp_policy=mp, offload_policy=offload, reshard_after_forward=False)
    register_fsdp_forward_method(model, "compute_ref_kv")
    # overlap the next block's all-gather with this block's compute
    for current, nxt in zip(blocks, blocks[1:], strict=False):
        current.set_modules_to_forward_prefetch([nxt])
        nxt.set_modules_to_backward_prefetch([current])
    return model
