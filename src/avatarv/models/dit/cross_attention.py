"""Cross-attention to text (and CLIP image) tokens (Wan's ``cross_attn``) and windowed cross-attention to audio.

Wan2.1 I2V's image branch (``image=True``): the CLIP image tokens have their own key/value projections and key
norm (``k_img``, ``v_img``, ``norm_k_img``); the queries attend to the image tokens and to the text tokens
separately, and the two outputs are summed before the output projection (Wan2.1 ``wan/modules/model.py:
WanI2VCrossAttention``; diffusers ``transformer_wan.py:WanAttnProcessor`` with ``encoder_hidden_states_img``).
Wan splits one concatenated context (image first, 257 tokens); here the two contexts arrive apart.

Audio is per latent frame: ``[B, F, Ka, D]`` (Ka audio tokens per latent frame). The tokens of latent
frame f attend to the audio of frames f − w … f + w only. Instead of a dense [N_gen, N_audio] mask we group
the queries by frame and gather each frame's audio window (``unfold``), so the cost is
O(F · tokens_per_frame · (2w + 1)·Ka) and there is no Python loop over frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avatarv.models.dit.attention import AttentionProjections


class CrossAttention(AttentionProjections):
    def __init__(self, dim: int, num_heads: int, eps: float, image: bool = False):
        super().__init__(dim, num_heads, eps)
        self.k_img = self.v_img = self.norm_k_img = None
        if image:  # Wan2.1 I2V: projections of the (embedded) CLIP image tokens
            self.k_img = nn.Linear(dim, dim)
            self.v_img = nn.Linear(dim, dim)
            self.norm_k_img = nn.RMSNorm(dim, eps=eps)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None, context_mask: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x ``[B, N, D]``, context ``[B, L, D]`` (or None), context_mask ``[B, L]`` bool, image ``[B, L_img, D]``
        embedded image tokens (or None) → ``[B, N, D]``."""
        q = self._heads(self.norm_q(self.q(x)))
        out = None
        if context is not None:
            k = self._heads(self.norm_k(self.k(context)))
            v = self._heads(self.v(context))
            out = self.attn_fn(q, k, v, key_mask=context_mask)
        if image is not None:
            if self.k_img is None:
                raise ValueError("image tokens given but this cross-attention has no image branch (image_dim = 0)")
            k_img = self._heads(self.norm_k_img(self.k_img(image)))
            out_img = self.attn_fn(q, k_img, self._heads(self.v_img(image)))
            out = out_img if out is None else out + out_img
        return self._out(out)


def audio_windows(audio: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather each latent frame's audio window, once per forward (shared by every block).

    audio ``[B, F, Ka, D]`` → context ``[B, F, (2w+1)·Ka, D]`` and mask ``[B, F, (2w+1)·Ka]`` (False where the
    window runs past the first or last frame).
    """
    b, f, ka, d = audio.shape
    w = window
    padded = F.pad(audio, (0, 0, 0, 0, w, w))  # [B, F + 2w, Ka, D]
    valid = F.pad(torch.ones(b, f, ka, dtype=torch.bool, device=audio.device), (0, 0, w, w))
    ctx = padded.unfold(1, 2 * w + 1, 1)  # [B, F, Ka, D, 2w+1]
    ctx = ctx.permute(0, 1, 4, 2, 3).reshape(b, f, (2 * w + 1) * ka, d)
    mask = valid.unfold(1, 2 * w + 1, 1).permute(0, 1, 3, 2).reshape(b, f, (2 * w + 1) * ka)
    return ctx, mask


class AudioCrossAttention(CrossAttention):
    """Per-frame windowed cross-attention. Output projection starts at zero: a new module is the identity."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__(dim, num_heads, eps)
        nn.init.zeros_(self.o.weight)
        nn.init.zeros_(self.o.bias)

    def forward_frames(self, x_frames: torch.Tensor, ctx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x_frames ``[B, F, T, D]`` (T tokens per frame); ctx ``[B, F, L, D]``, mask ``[B, F, L]`` → ``[B, F, T, D]``."""
        b, f, t, d = x_frames.shape
        out = self.forward(x_frames.reshape(b * f, t, d), ctx.flatten(0, 1), mask.flatten(0, 1))
        return out.reshape(b, f, t, d)
