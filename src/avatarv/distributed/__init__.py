"""Parallelism applied to a built DiT from outside (torchtitan style): Ulysses sequence parallelism (as hooks), FSDP2."""

from avatarv.distributed.fsdp import apply_fsdp
from avatarv.distributed.ulysses import (
    ULYSSES_PLAN,
    UlyssesAttention,
    UlyssesParallel,
    apply_ulysses,
    remove_ulysses,
)

__all__ = ["apply_fsdp", "apply_ulysses", "remove_ulysses", "ULYSSES_PLAN", "UlyssesAttention", "UlyssesParallel"]
