"""The one attention function every attention layer calls.

``q, k, v``: ``[B, H, N, d]``. An optional boolean ``key_mask`` ``[B, Nk]`` (True = attend) removes keys,
e.g. faceless reference frames. Backends (flex_attention, flash, Ulysses) are swapped in by wrapping
this function from outside the model (``Attention.attn_fn``), never by editing the layers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

AttentionFn = Callable[..., torch.Tensor]


def sdpa_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    mask = None
    if key_mask is not None:
        mask = key_mask[:, None, None, :]  # [B, 1, 1, Nk]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
