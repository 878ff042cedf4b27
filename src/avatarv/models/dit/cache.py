"""RefKVCache: reference keys/values per block, computed once per reference and reused.

The reference is clean (t = 0 modulation) and skips the cross-attentions, so its K/V in every block are
the same at every denoising step and in every chunk of a long video (the seed's "Reference Caching"). The
cache is keyed by identity, not by content: the ``RefInputs`` object it was built from (the prepared
reference, made once per job), the version counters of its tensors (an in-place edit changes them) and the
model. Nothing is hashed and nothing is copied to the host, so a step on a GPU never waits for the cache.
Asked for another reference or model it raises (default) or rebuilds (``on_mismatch="rebuild"``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from avatarv.models.dit.inputs import RefInputs
from avatarv.models.dit.sparse_ref_attention import KV

if TYPE_CHECKING:
    from avatarv.models.dit.model import VideoRefDiT


class RefCacheMismatch(RuntimeError):
    """The cache was built from a different reference (or model) than the one given now."""


def _versions(ref: RefInputs) -> tuple:
    """The tensors' in-place version counters and the time offset: what an edit of the same object changes."""
    return (ref.time_offset,) + tuple(None if t is None else t._version for t in (ref.latents, ref.motion, ref.frame_mask))


@dataclass
class RefKVCache:
    on_mismatch: str = "raise"  # "raise" | "rebuild"
    kv: list[KV] | None = None  # per block: (k, v) each [B_ref, H, N_ref, d]
    key_mask: torch.Tensor | None = None  # [B_ref, N_ref] bool, or None (all valid)
    ref: RefInputs | None = None  # the reference it was built from (held, so its identity cannot be reused)
    versions: tuple | None = None
    model: weakref.ref | None = None
    builds: int = 0  # how many times the reference stream was run (tests and benchmarks count it)
    hits: int = field(default=0)

    def _matches(self, model: VideoRefDiT, ref: RefInputs) -> bool:
        return ref is self.ref and _versions(ref) == self.versions and self.model is not None and self.model() is model

    def get(self, model: VideoRefDiT, ref: RefInputs, build=None) -> tuple[list[KV], torch.Tensor | None]:
        """The reference K/V, computed by ``build(ref)`` (default ``model.compute_ref_kv``) on first use."""
        if self.kv is not None and not self._matches(model, ref):
            if self.on_mismatch != "rebuild":
                raise RefCacheMismatch(
                    "RefKVCache was built from a different reference or model; "
                    "make a new cache or use on_mismatch='rebuild'"
                )
            self.clear()
        if self.kv is None:
            self.kv, self.key_mask = (build or model.compute_ref_kv)(ref)
            self.ref, self.versions, self.model = ref, _versions(ref), weakref.ref(model)
            self.builds += 1
        else:
            self.hits += 1
        return self.kv, self.key_mask

    def clear(self) -> None:
        self.kv, self.key_mask, self.ref, self.versions, self.model = None, None, None, None, None
