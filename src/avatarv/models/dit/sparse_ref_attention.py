"""Sparse reference self-attention (the seed's "Sparse Reference Attention").

Generation queries attend to ``[ref keys ; gen keys]``; reference queries attend to reference keys only.
The pattern is asymmetric, so the reference stream never depends on the generated tokens: its K/V per block
are a function of the (clean) reference alone and can be cached across denoising steps and chunks.
Cost per block: O(N_gen·(N_ref + N_gen)) + O(N_ref²) once, instead of O((N_ref + N_gen)²) every step.

Projection names follow Wan2.1's ``WanSelfAttention`` (q, k, v, o, norm_q, norm_k; RMS q/k norm across
heads, then 3D RoPE).
"""

from __future__ import annotations

import torch

from avatarv.models.dit.attention import AttentionProjections, LocalWindow
from avatarv.models.dit.rope import apply_rope

KV = tuple[torch.Tensor, torch.Tensor]  # (k, v), each [B, H, N, d], RoPE applied to k


class SparseRefSelfAttention(AttentionProjections):
    def project(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]):
        """x ``[B, N, D]`` → q, k, v ``[B, H, N, d]`` with q/k normed and rotated."""
        cos, sin = rope
        q = apply_rope(self._heads(self.norm_q(self.q(x))), cos, sin)
        k = apply_rope(self._heads(self.norm_k(self.k(x))), cos, sin)
        v = self._heads(self.v(x))
        return q, k, v

    def forward_ref(
        self,
        ref_x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        ref_key_mask: torch.Tensor | None,
        need_output: bool = True,
    ) -> tuple[torch.Tensor | None, KV]:
        """Reference stream: ref queries see ref keys only. ref_x ``[B, N_ref, D]``.

        Returns the attention output (None when ``need_output`` is False: the last block only needs K/V)
        and the block's reference (k, v) for the generation stream.
        """
        q, k, v = self.project(ref_x, rope)
        out = None
        if need_output:
            mask = ref_key_mask
            if mask is not None:  # a fully masked reference (dropped in training): no empty softmax rows
                mask = mask | ~mask.any(dim=-1, keepdim=True)
            out = self._out(self.attn_fn(q, k, v, key_mask=mask))
        return out, (k, v)

    def forward_gen(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        ref_kv: KV | None,
        ref_key_mask: torch.Tensor | None,
        gen_key_mask: torch.Tensor | None = None,
        window: tuple[torch.Tensor, int] | None = None,
        return_qk: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, KV]:
        """Generation stream: gen queries see ``[ref ; gen]`` keys. x ``[B, N_gen, D]`` → ``[B, N_gen, D]``
        (and, with ``return_qk``, the generated tokens' rotated q and k ``[B, H, N_gen, d]``: InfiniteTalk's
        L-RoPE reads their attention map).

        ``window`` = (frame of each gen token ``[N_gen]``, radius): local temporal attention among generated
        tokens (the SR refiner); reference keys stay visible to all.
        """
        q, k, v = self.project(x, rope)
        gen_qk = (q, k)
        b = x.shape[0]
        key_mask = gen_key_mask
        if ref_kv is not None:
            ref_k, ref_v = ref_kv
            if ref_k.shape[0] != b:  # one cached reference shared by a batch (e.g. CFG branches)
                ref_k = ref_k.expand(b, -1, -1, -1)
                ref_v = ref_v.expand(b, -1, -1, -1)
            k = torch.cat([ref_k, k], dim=2)
            v = torch.cat([ref_v, v], dim=2)
            if ref_key_mask is not None or gen_key_mask is not None:
                ones = torch.ones(b, q.shape[2], dtype=torch.bool, device=x.device)
                ref_ok = torch.ones(b, ref_k.shape[2], dtype=torch.bool, device=x.device)
                if ref_key_mask is not None:
                    ref_ok = ref_key_mask.expand(b, -1)
                key_mask = torch.cat([ref_ok, ones if gen_key_mask is None else gen_key_mask.expand(b, -1)], 1)
        local = None
        if window is not None:
            frames, radius = window
            n_ref = k.shape[2] - q.shape[2]
            k_frames = torch.cat([torch.full((n_ref,), -1, dtype=frames.dtype, device=frames.device), frames])
            local = LocalWindow(frames, k_frames, radius)
        out = self._out(self.attn_fn(q, k, v, key_mask=key_mask, window=local))
        return (out, gen_qk) if return_qk else out
