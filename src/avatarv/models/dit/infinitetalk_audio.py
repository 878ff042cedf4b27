"""InfiniteTalk's / MultiTalk's audio adapter, as an option of the one DiT (``DiTConfig.audio_adapter``).

Follows MeiGen-AI/InfiniteTalk ``wan/modules/multitalk_model.py`` (``AudioProjModel``, ``WanModel.forward``'s
audio slicing, ``WanAttentionBlock``'s ``norm_x`` + ``audio_cross_attn``), ``wan/modules/attention.py``
(``SingleStreamAttention``, ``SingleStreamMutiAttention``) and ``wan/utils/multitalk_utils.py``
(``get_attn_map_with_target``, ``normalize_and_scale``, ``RotaryPositionalEmbedding1D``). Names of the
parameters are InfiniteTalk's, so its audio file loads under the same keys.

Shapes: S speakers, F latent frames, V = 1 + s·(F − 1) video frames (s = the VAE's temporal stride),
W wav2vec frames per window (5), L stacked wav2vec layers (12), C wav2vec width (768).

- ``audio_proj``: latent frame 0 reads its video frame's window (W entries); every later latent frame reads
  its s video frames: the first frame's window up to the centre, the middle frames' centre entries, the last
  frame's window from the centre (W + s − 1 entries) → MLP → K tokens × C' per latent frame and speaker.
- ``audio_cross_attn``: the visual tokens of latent frame f attend to frame f's S·K audio tokens only
  (frame-local; q_linear, fused kv_linear, proj; no q/k norm), an ungated residual after the text cross-attention.
- L-RoPE (two speakers): each block's self-attention queries against latent frame 0's keys, averaged inside each
  speaker mask, decide a visual token's 1-D position: speaker 1 in [0, i], speaker 2 in [R − i, R], background
  R // 2; speaker 1's audio keys sit at i / 2, speaker 2's at R − i / 2. One speaker: no RoPE.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from avatarv.config import DiTConfig


class SpeakerAudio(NamedTuple):
    """The adapter's audio, made once per forward for every block."""

    tokens: torch.Tensor  # [B, F, S·K, C'] per latent frame, speaker-major within a frame
    speakers: int  # S
    masks: torch.Tensor | None  # [B or 1, S + 1, h·w] float token masks (speakers…, background), or None


def split_frame_windows(audio: torch.Tensor, stride: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """audio ``[N, V, W, L, C]`` (V = 1 + stride·(F − 1) video frames) → latent frame 0's windows
    ``[N, 1, W, L, C]`` and later latent frames' ``[N, F − 1, W + stride − 1, L, C]`` (InfiniteTalk's slicing)."""
    n, v = audio.shape[:2]
    if (v - 1) % stride:
        raise ValueError(f"audio has {v} video frames; the adapter needs 1 + {stride}·k")
    first = audio[:, :1]
    later = audio[:, 1:].unflatten(1, ((v - 1) // stride, stride))  # [N, F-1, s, W, L, C]
    mid = window // 2
    head = later[:, :, :1, : mid + 1]  # first video frame of the group: window up to the centre
    body = later[:, :, 1:-1, mid: mid + 1]  # middle frames: the centre entry
    tail = later[:, :, -1:, mid:]  # last frame: window from the centre
    parts = [p.flatten(2, 3) for p in (head, body, tail)]  # [N, F-1, n·w, L, C] each
    return first, torch.cat(parts, dim=2)


class InfiniteTalkAudioProjection(nn.Module):
    """``AudioProjModel``: wav2vec windows → K tokens × C' per latent frame (per speaker)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.stride, self.window = cfg.audio_tokens_per_frame, cfg.audio_frame_window
        self.tokens, self.width = cfg.audio_context_tokens, cfg.audio_token_dim
        per_entry = cfg.audio_layers * cfg.audio_dim
        hidden = cfg.audio_hidden_dim
        self.proj1 = nn.Linear(self.window * per_entry, hidden)
        self.proj1_vf = nn.Linear((self.window + self.stride - 1) * per_entry, hidden)
        self.proj2 = nn.Linear(hidden, hidden)
        self.proj3 = nn.Linear(hidden, self.tokens * self.width)
        self.norm = nn.LayerNorm(self.width) if cfg.audio_norm_output else nn.Identity()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio ``[N, V, W, L, C]`` → tokens ``[N, F, K, C']``."""
        first, later = split_frame_windows(audio, self.stride, self.window)
        h0 = torch.relu(self.proj1(first.flatten(2)))  # [N, 1, hidden]
        h1 = torch.relu(self.proj1_vf(later.flatten(2)))  # [N, F-1, hidden]
        h = torch.relu(self.proj2(torch.cat([h0, h1], dim=1)))
        tokens = self.proj3(h).unflatten(-1, (self.tokens, self.width))  # [N, F, K, C']
        if isinstance(self.norm, nn.LayerNorm):  # fp32 as InfiniteTalk's autocast(float32)
            tokens = F.layer_norm(tokens.float(), (self.width,), self.norm.weight.float(), self.norm.bias.float(),
                                  self.norm.eps).type_as(tokens)
        return tokens

    def speaker_tokens(self, audio: torch.Tensor) -> torch.Tensor:
        """audio ``[B, S, V, W, L, C]`` → ``[B, F, S·K, C']`` (speakers concatenated within each frame)."""
        b, s = audio.shape[:2]
        tokens = self.forward(audio.flatten(0, 1)).unflatten(0, (b, s))  # [B, S, F, K, C']
        return tokens.transpose(1, 2).flatten(2, 3)


def token_masks(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Speaker masks at any resolution ``[B or 1, C, H, W]`` (or ``[C, H, W]``) → token masks ``[B or 1, C, h·w]``
    float, nearest-neighbour like InfiniteTalk's ``token_ref_target_masks``."""
    if masks.ndim == 3:
        masks = masks[None]
    small = F.interpolate(masks.float(), size=(height, width), mode="nearest")
    return (small > 0).float().flatten(2)


def reference_attention_map(q: torch.Tensor, k_first: torch.Tensor, masks: torch.Tensor,
                            rows: int = 4096) -> torch.Tensor:
    """How much each visual token attends to each speaker in latent frame 0 (``get_attn_map_with_target``).

    q ``[B, H, N, d]`` (all visual queries, RoPE applied), k_first ``[B, H, n0, d]`` (frame 0's keys), masks
    ``[B or 1, C, n0]`` → ``[B, C, N]``: softmax over frame 0's keys, summed inside each mask / its size, mean over
    heads. (InfiniteTalk averages two half-head groups; with equal halves that is the mean over heads.) Queries
    go ``rows`` at a time: each row's softmax is its own, and the ``[B, H/2, rows, n0]`` buffer stays bounded
    (InfiniteTalk holds ``[B, H/2, N, n0]``: ~20 GiB at 720p with 40 heads).
    """
    scale = q.shape[-1] ** -0.5
    heads = q.shape[1]
    weights = masks.to(q.dtype).expand(q.shape[0], -1, -1)
    sizes = masks.sum(-1, keepdim=True).to(q.dtype)  # [B or 1, C, 1]
    out = []
    for start in range(0, q.shape[2], rows):
        q_rows, part = q[:, :, start:start + rows], None
        for i in range(2):  # two head groups as InfiniteTalk
            sl = slice(i * heads // 2, (i + 1) * heads // 2)
            attn = ((q_rows[:, sl] * scale) @ k_first[:, sl].transpose(-1, -2)).softmax(-1)  # [B, h, n, n0]
            per = torch.einsum("bhnk,bck->bcn", attn, weights) / (heads // 2) / sizes  # [B, C, n]
            part = per if part is None else part + per
        out.append(part / 2)
    return torch.cat(out, dim=-1)


def map_bounds(attn_map: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class min and max of ``attn_map`` ``[B, C, N]`` over the tokens (``valid`` ``[B, N]``: only those) →
    two ``[B, C]``."""
    if valid is None:
        return attn_map.amin(-1), attn_map.amax(-1)
    keep = valid[:, None].expand_as(attn_map)
    inf = torch.finfo(attn_map.dtype).max
    return attn_map.masked_fill(~keep, inf).amin(-1), attn_map.masked_fill(~keep, -inf).amax(-1)


def speaker_positions(attn_map: torch.Tensor, interval: int, full: int,
                      bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """L-RoPE positions of the visual tokens ``[B, N]`` from ``attn_map`` ``[B, 3, N]`` (speaker 1, speaker 2,
    background): each speaker's map min-max scaled into its range; a token takes the range of its argmax class.
    ``bounds``: the maps' (min, max) ``[B, 3]`` each, when they are taken over more tokens than these."""
    eps = 1e-8
    ranges = ((0.0, float(interval)), (float(full - interval), float(full)))
    lows, highs = bounds if bounds is not None else map_bounds(attn_map)
    scaled = []
    for c, (lo, hi) in enumerate(ranges):
        m = attn_map[:, c]
        mn, mx = lows[:, c:c + 1], highs[:, c:c + 1]
        scaled.append((m - mn) / (mx - mn + eps) * (hi - lo) + lo)
    scaled.append(torch.full_like(scaled[0], float(full // 2)))
    table = torch.stack(scaled, dim=1)  # [B, 3, N]
    return table.gather(1, attn_map.argmax(dim=1, keepdim=True))[:, 0]


def rope_1d(x: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """1-D RoPE on interleaved channel pairs (``RotaryPositionalEmbedding1D``), angles in fp32.

    x ``[B, H, N, d]``; positions ``[N]`` or ``[B, N]`` (fractional allowed) → same shape as x."""
    d = x.shape[-1]
    freqs = 1.0 / (theta ** (torch.arange(0, d, 2, device=x.device)[: d // 2].float() / d))
    angle = positions.float()[..., None] * freqs  # [(B,) N, d/2]
    if angle.ndim == 3:
        angle = angle[:, None]  # [B, 1, N, d/2]
    cos, sin = angle.cos(), angle.sin()
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2).type_as(x)


class SpeakerAudioStage(nn.Module):
    """Where the adapter's audio tokens enter the blocks: (tokens ``[B, F, S·K, C']``, speakers, masks) →
    :class:`SpeakerAudio`. Parameter-free; a module boundary for hooks (e.g. keep a device's frames)."""

    def forward(self, tokens: torch.Tensor, speakers: int, masks: torch.Tensor | None) -> SpeakerAudio:
        return SpeakerAudio(tokens, speakers, masks)


class SpeakerMap(nn.Module):
    """:func:`reference_attention_map` as a parameter-free stage (hooks may supply frame 0's keys)."""

    def forward(self, q: torch.Tensor, k_first: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return reference_attention_map(q, k_first, masks)


class SpeakerPositions(nn.Module):
    """:func:`speaker_positions` as a parameter-free stage. ``valid`` ``[B, N]`` marks real tokens (padding is left
    out of the min / max); ``bounds`` (hooks) the min / max over more tokens than these."""

    def __init__(self, interval: int, full: int):
        super().__init__()
        self.interval, self.full = interval, full

    def forward(self, attn_map: torch.Tensor, valid: torch.Tensor | None = None,
                bounds: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        if bounds is None:
            bounds = map_bounds(attn_map, valid)
        return speaker_positions(attn_map, self.interval, self.full, bounds)


class InfiniteTalkAudioAttention(nn.Module):
    """``SingleStreamMutiAttention``: frame-local cross-attention from visual tokens to the frame's audio tokens."""

    def __init__(self, dim: int, num_heads: int, token_dim: int, interval: int, full: int):
        super().__init__()
        self.num_heads, self.interval, self.full = num_heads, interval, full
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(token_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x_frames: torch.Tensor, audio: SpeakerAudio, positions: torch.Tensor | None) -> torch.Tensor:
        """x_frames ``[B, F, T, D]``; audio tokens ``[B, F, S·K, C']``; positions ``[B, F·T]`` L-RoPE positions of
        the visual tokens (two speakers) or None → ``[B, F, T, D]``."""
        b, f, t, d = x_frames.shape
        q = self.q_linear(x_frames).unflatten(-1, (self.num_heads, -1)).transpose(2, 3)  # [B, F, H, T, dh]
        kv = self.kv_linear(audio.tokens.to(x_frames.dtype))  # [B, F, S·K, 2D]
        k, v = kv.unflatten(-1, (2, self.num_heads, -1)).permute(3, 0, 1, 4, 2, 5)  # [B, F, H, S·K, dh] each
        if positions is not None:
            q = rope_1d(q.transpose(1, 2).flatten(2, 3), positions).unflatten(2, (f, t)).transpose(1, 2)
            n_a = k.shape[-2]
            key_pos = torch.full((n_a,), self.full - self.interval / 2, device=k.device)
            key_pos[: n_a // 2] = self.interval / 2  # speaker 1's tokens, then speaker 2's
            k = rope_1d(k, key_pos)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, F, H, T, dh]
        return self.proj(out.transpose(2, 3).flatten(-2))
