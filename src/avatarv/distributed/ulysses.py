"""Ulysses sequence parallelism (DeepSpeed-Ulysses, Jacobs et al. 2023) for the VideoRef DiT.

Every rank holds a contiguous range of latent frames (tokens are frame-major, so a frame range is a token
range); per-token work (projections, FFN, modulation, text and audio cross-attention) stays local. Around
self-attention an all-to-all turns sequence shards into head shards: each rank then attends over the
whole sequence for H / P heads, and a second all-to-all turns it back. Reference tokens are sharded the
same way along reference frames, and so are their cached K/V. Frame counts that do not divide the world
size are padded with masked frames (never attended to) and cut off at the end.

``apply_ulysses(model, group)`` sets ``model.sequence_parallel`` and wraps every self-attention's
``attn_fn``; the model's own code is unchanged otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch.distributed.nn import functional as dist_fn

from avatarv.models.dit.attention import LocalWindow


class UlyssesParallel:
    """Frame-range sharding of token sequences over a process group."""

    def __init__(self, group: dist.ProcessGroup | None = None):
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)

    def frames_per_rank(self, frames: int) -> int:
        return math.ceil(frames / self.world)

    def shard(self, x: torch.Tensor, frames: int, pad_value=0) -> torch.Tensor:
        """x ``[B, F·T, ...]`` (frame-major) → this rank's frames ``[B, Fl·T, ...]``, zero-padded past F."""
        b, n = x.shape[:2]
        per_frame = n // frames
        fl = self.frames_per_rank(frames)
        framed = x.reshape(b, frames, per_frame, *x.shape[2:])
        pad = fl * self.world - frames
        if pad:
            filler = torch.full((b, pad, per_frame, *x.shape[2:]), pad_value, dtype=x.dtype, device=x.device)
            framed = torch.cat([framed, filler], dim=1)
        local = framed[:, self.rank * fl : (self.rank + 1) * fl]
        return local.reshape(b, fl * per_frame, *x.shape[2:])

    def frame_valid(self, frames: int, batch: int, per_frame: int, device=None) -> torch.Tensor:
        """``[B, Fl·T]`` bool: False on the padding frames of this rank."""
        fl = self.frames_per_rank(frames)
        idx = torch.arange(self.rank * fl, (self.rank + 1) * fl, device=device)
        return (idx < frames).repeat_interleave(per_frame)[None].expand(batch, -1)

    def gather(self, x_local: torch.Tensor, frames: int) -> torch.Tensor:
        """Inverse of :meth:`shard` (autograd-aware all-gather): ``[B, Fl·T, ...]`` → ``[B, F·T, ...]``."""
        parts = dist_fn.all_gather(x_local.contiguous(), group=self.group)
        full = torch.cat(parts, dim=1)
        per_frame = x_local.shape[1] // self.frames_per_rank(frames)
        return full[:, : frames * per_frame]


class UlyssesAttention:
    """Wraps an attention function: sequence-sharded q/k/v in, sequence-sharded output out."""

    def __init__(self, inner, sp: UlyssesParallel):
        self.inner = inner
        self.sp = sp

    def _seq_to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, Nl, d]`` → ``[B, H/P, P·Nl, d]`` (rank-major sequence order)."""
        p = self.sp.world
        b, h, n, d = x.shape
        send = x.reshape(b, p, h // p, n, d).transpose(0, 1).contiguous()  # [P(dest), B, H/P, Nl, d]
        recv = dist_fn.all_to_all_single(torch.empty_like(send), send, group=self.sp.group)  # [P(src), ...]
        return recv.permute(1, 2, 0, 3, 4).reshape(b, h // p, p * n, d)

    def _heads_to_seq(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H/P, P·Nl, d]`` → ``[B, H, Nl, d]``."""
        p = self.sp.world
        b, hp, n, d = x.shape
        send = x.reshape(b, hp, p, n // p, d).permute(2, 0, 1, 3, 4).contiguous()  # [P(dest), B, H/P, Nl, d]
        recv = dist_fn.all_to_all_single(torch.empty_like(send), send, group=self.sp.group)  # [P(src head grp)]
        return recv.transpose(0, 1).reshape(b, p * hp, n // p, d)

    def _gather_seq(self, t: torch.Tensor) -> torch.Tensor:
        """All-gather along the sequence (dim 1 for [B, N] masks, dim 0 for [N] frame ids); no grad."""
        parts = [torch.empty_like(t) for _ in range(self.sp.world)]
        dist.all_gather(parts, t.contiguous(), group=self.sp.group)
        return torch.cat(parts, dim=t.dim() - 1)

    def __call__(self, q, k, v, key_mask=None, window: LocalWindow | None = None):
        if q.shape[1] % self.sp.world:
            raise ValueError(f"Ulysses needs heads ({q.shape[1]}) divisible by the world size ({self.sp.world})")
        qh, kh, vh = self._seq_to_heads(q), self._seq_to_heads(k), self._seq_to_heads(v)
        full_mask = None if key_mask is None else self._gather_seq(key_mask)
        full_window = None
        if window is not None:
            full_window = LocalWindow(self._gather_seq(window.q_frames), self._gather_seq(window.k_frames), window.radius)
        return self._heads_to_seq(self.inner(qh, kh, vh, key_mask=full_mask, window=full_window))


def apply_ulysses(model, group: dist.ProcessGroup | None = None):
    """Shard ``model``'s sequence over ``group`` (every rank gets the same full inputs and outputs)."""
    sp = UlyssesParallel(group)
    if model.cfg.num_heads % sp.world:
        raise ValueError(f"{model.cfg.num_heads} heads do not split over {sp.world} ranks")
    model.sequence_parallel = sp
    for block in model.blocks:
        block.self_attn.attn_fn = UlyssesAttention(block.self_attn.attn_fn, sp)
    return model
