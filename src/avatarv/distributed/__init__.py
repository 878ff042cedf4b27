"""Parallelism applied to a built DiT from outside (torchtitan style): Ulysses sequence parallelism, FSDP2."""

from avatarv.distributed.fsdp import apply_fsdp
from avatarv.distributed.ulysses import UlyssesAttention, UlyssesParallel, apply_ulysses

__all__ = ["apply_fsdp", "apply_ulysses", "UlyssesAttention", "UlyssesParallel"]
