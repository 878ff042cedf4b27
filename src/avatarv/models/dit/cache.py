"""RefKVCache: reference keys/values per block, computed once per reference and reused.

The reference is clean (t = 0 modulation) and skips the cross-attentions, so its K/V in every block are
the same at every denoising step and in every chunk of a long video (the seed's "Reference Caching"). The
cache remembers the fingerprint of the reference it was built from; asked for another reference it raises
(default) or rebuilds (``on_mismatch="rebuild"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from avatarv.models.dit.inputs import RefInputs
from avatarv.models.dit.sparse_ref_attention import KV

if TYPE_CHECKING:
    from avatarv.models.dit.model import VideoRefDiT


class RefCacheMismatch(RuntimeError):
    """The cache was built from a different reference (or model) than the one given now."""


@dataclass
class RefKVCache:
    on_mismatch: str = "raise"  # "raise" | "rebuild"
    kv: list[KV] | None = None  # per block: (k, v) each [B_ref, H, N_ref, d]
    key_mask: torch.Tensor | None = None  # [B_ref, N_ref] bool, or None (all valid)
    fingerprint: str | None = None
    model_id: int | None = None
    builds: int = 0  # how many times the reference stream was run (tests and benchmarks count it)
    hits: int = field(default=0)

    def get(self, model: VideoRefDiT, ref: RefInputs, build=None) -> tuple[list[KV], torch.Tensor | None]:
        """The reference K/V, computed by ``build(ref)`` (default ``model.compute_ref_kv``) on first use."""
        fp = ref.fingerprint()
        if self.kv is not None and (fp != self.fingerprint or id(model) != self.model_id):
            if self.on_mismatch != "rebuild":
                raise RefCacheMismatch(
                    "RefKVCache was built from a different reference or model; "
                    "make a new cache or use on_mismatch='rebuild'"
                )
            self.clear()
        if self.kv is None:
            self.kv, self.key_mask = (build or model.compute_ref_kv)(ref)
            self.fingerprint, self.model_id = fp, id(model)
            self.builds += 1
        else:
            self.hits += 1
        return self.kv, self.key_mask

    def clear(self) -> None:
        self.kv, self.key_mask, self.fingerprint, self.model_id = None, None, None, None

    def nbytes(self) -> int:
        if self.kv is None:
            return 0
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.kv)
