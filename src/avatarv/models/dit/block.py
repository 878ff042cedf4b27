"""One VideoRef DiT block: sparse reference self-attention, text and audio cross-attention, AdaLN FFN.

The generation stream follows Wan2.1's ``WanAttentionBlock`` exactly (modulation ``[1, 6, D]`` +
time projection → shift/scale/gate for self-attention and FFN; affine LayerNorm before the text
cross-attention). The audio cross-attention is new and starts as the identity (zero output projection).
The reference stream uses the same weights with the clean-timestep (t = 0) modulation and skips the
cross-attentions, so its K/V depend on the reference alone.
"""

from __future__ import annotations

import torch
from torch import nn

from avatarv.config import DiTConfig
from avatarv.models.dit.cross_attention import AudioCrossAttention, CrossAttention
from avatarv.models.dit.infinitetalk_audio import (
    InfiniteTalkAudioAttention,
    SpeakerAudio,
    SpeakerMap,
    SpeakerPositions,
)
from avatarv.models.dit.layers import FeedForward, FP32LayerNorm, modulate
from avatarv.models.dit.layout import GenLayout
from avatarv.models.dit.sparse_ref_attention import KV, SparseRefSelfAttention


class VideoRefBlock(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.dim
        self.eps = cfg.eps
        self.self_attn = SparseRefSelfAttention(d, cfg.num_heads, cfg.eps)
        self.cross_attn_norm = FP32LayerNorm(d, eps=cfg.eps, elementwise_affine=True)
        self.cross_attn = CrossAttention(d, cfg.num_heads, cfg.eps, image=cfg.image_dim > 0)
        self.audio_attn = self.audio_cross_attn = None
        if cfg.audio_dim and cfg.audio_adapter == "windowed":
            self.audio_norm = FP32LayerNorm(d, eps=cfg.eps, elementwise_affine=True)
            self.audio_attn = AudioCrossAttention(d, cfg.num_heads, cfg.eps)
        elif cfg.audio_dim:  # InfiniteTalk's adapter (models/dit/infinitetalk_audio.py), its parameter names
            self.norm_x = FP32LayerNorm(d, eps=cfg.eps, elementwise_affine=True)
            self.audio_cross_attn = InfiniteTalkAudioAttention(
                d, cfg.num_heads, cfg.audio_token_dim, cfg.lrope_interval, cfg.lrope_range)
            self.speaker_map = SpeakerMap()  # L-RoPE (two speakers); parameter-free stages
            self.speaker_positions = SpeakerPositions(cfg.lrope_interval, cfg.lrope_range)
        self.ffn = FeedForward(d, cfg.ffn_dim)
        self.modulation = nn.Parameter(torch.randn(1, 6, d) / d**0.5)

    def _mod(self, temb6: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """temb6 ``[B, 6, D]`` → six ``[B, 1, D]`` fp32 tensors (shift, scale, gate) × (attention, FFN)."""
        return (self.modulation.float() + temb6.float()).chunk(6, dim=1)

    def forward_ref(
        self,
        ref_x: torch.Tensor,
        temb6_ref: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        ref_key_mask: torch.Tensor | None,
        last: bool,
    ) -> tuple[torch.Tensor | None, KV]:
        """Reference stream. ref_x ``[B, N_ref, D]`` → (next ref_x, or None after the last block; this block's K/V)."""
        shift, scale, gate, c_shift, c_scale, c_gate = self._mod(temb6_ref)
        h = modulate(ref_x, self.eps, shift, scale)
        attn, kv = self.self_attn.forward_ref(h, rope, ref_key_mask, need_output=not last)
        if last:
            return None, kv
        ref_x = (ref_x.float() + attn * gate).type_as(ref_x)
        ff = self.ffn(modulate(ref_x, self.eps, c_shift, c_scale))
        ref_x = (ref_x.float() + ff.float() * c_gate).type_as(ref_x)
        return ref_x, kv

    def forward(
        self,
        x: torch.Tensor,
        temb6: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        text: torch.Tensor | None,
        audio: tuple[torch.Tensor, torch.Tensor] | SpeakerAudio | None,
        layout: GenLayout,
        ref_kv: KV | None,
        ref_key_mask: torch.Tensor | None,
        gen_key_mask: torch.Tensor | None = None,
        window: tuple[torch.Tensor, int] | None = None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generation stream.

        x ``[B, N_gen, D]`` laid out as ``layout`` says. text ``[B, L, D]``; audio: per-frame windows
        (context ``[B, F, L, D]``, mask ``[B, F, L]``) from ``audio_windows``, or the InfiniteTalk adapter's
        :class:`SpeakerAudio`. gen_key_mask ``[B, N_gen]``
        marks padding tokens (sequence parallelism) that no query may attend to. image ``[B, L_img, D]``:
        embedded CLIP image tokens for the I2V image branch (in the text cross-attention), or None.
        """
        shift, scale, gate, c_shift, c_scale, c_gate = self._mod(temb6)
        h = modulate(x, self.eps, shift, scale)
        lrope = isinstance(audio, SpeakerAudio) and audio.speakers > 1
        attn = self.self_attn.forward_gen(h, rope, ref_kv, ref_key_mask, gen_key_mask, window, return_qk=lrope)
        if lrope:
            attn, (q, k) = attn
            with torch.no_grad():  # the reference-frame attention map decides the L-RoPE positions
                amap = self.speaker_map(q, k[:, :, : layout.video_per_frame], audio.masks)
                valid = None
                if gen_key_mask is not None:  # padding tokens (sequence parallelism) stay out of the min / max
                    valid = gen_key_mask.expand(x.shape[0], -1)
                positions = self.speaker_positions(amap, valid)
        x = (x.float() + attn * gate).type_as(x)
        if text is not None or image is not None:
            x = x + self.cross_attn(self.cross_attn_norm(x).type_as(x), text, image=image)
        if audio is not None and self.audio_attn is not None:
            groups = layout.group_by_frame(self.audio_norm(x).type_as(x))
            x = x + layout.ungroup(self.audio_attn.forward_frames(groups, *audio))
        elif isinstance(audio, SpeakerAudio) and self.audio_cross_attn is not None:
            groups = layout.group_by_frame(self.norm_x(x).type_as(x))
            x = x + layout.ungroup(self.audio_cross_attn(groups, audio, positions if lrope else None))
        ff = self.ffn(modulate(x, self.eps, c_shift, c_scale))
        return (x.float() + ff.float() * c_gate).type_as(x)
