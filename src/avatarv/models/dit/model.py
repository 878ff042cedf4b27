"""The VideoRef DiT: Wan2.1's video DiT plus a reference stream, audio cross-attention and a motion stream.

Token streams (seed "VideoRef DiT Backbone"; DESIGN "The VideoRef DiT"):
- gen video tokens: noisy latents ``[B, C, F, H, W]`` (+ I2V condition: 4 mask + C clean channels)
  patchified 1×2×2 → ``[B, F·H/2·W/2, D]`` at RoPE positions (f, h, w);
- gen motion tokens: one per latent frame, noised with the video and predicted jointly;
- reference tokens: clean reference latents (and clean motion) at time positions ``ref_time_offset + r``,
  run with the t = 0 modulation, attended by gen tokens through sparse reference attention.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from avatarv.config import DiTConfig
from avatarv.models.dit.attention import make_attention
from avatarv.models.dit.behaviour import BehaviourEmbedding
from avatarv.models.dit.block import VideoRefBlock
from avatarv.models.dit.cache import RefKVCache
from avatarv.models.dit.cross_attention import audio_windows
from avatarv.models.dit.image_embedding import ImageEmbedding
from avatarv.models.dit.infinitetalk_audio import (
    InfiniteTalkAudioProjection,
    SpeakerAudio,
    SpeakerAudioStage,
    token_masks,
)
from avatarv.models.dit.inputs import DiTOutput, RefInputs
from avatarv.models.dit.layers import modulate, timestep_sinusoid
from avatarv.models.dit.layout import GenLayout
from avatarv.models.dit.rope import rope_cos_sin
from avatarv.models.dit.sparse_ref_attention import KV


class Head(nn.Module):
    def __init__(self, dim: int, out_dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """x ``[B, N, D]``, temb ``[B, D]`` (before the time projection, as in Wan) → normed, modulated x."""
        shift, scale = (self.modulation.float() + temb.float()[:, None]).chunk(2, dim=1)
        return modulate(x, self.eps, shift, scale)


class TokenSequence(NamedTuple):
    """A frame-major token stream as the blocks see it."""

    tokens: torch.Tensor  # [B, F·T, D]
    rope: tuple[torch.Tensor, torch.Tensor]  # cos, sin of the positions
    positions: torch.Tensor  # [F·T, 3] (t, h, w)
    frames: int  # F
    key_mask: torch.Tensor | None  # [B, F·T] bool (False: no query attends to the token), or None


class TokensIn(nn.Module):
    """Where a token stream (generated or reference) enters the blocks: its RoPE tables are made here.

    tokens ``[B, F·T, D]`` (frame-major), positions ``[F·T, 3]``, F frames, key_mask ``[B, F·T]`` or None →
    :class:`TokenSequence`. Parameter-free; a module so that wrappers can act on the stream at this
    boundary with forward hooks (e.g. split it over devices by frames) without touching the model.
    """

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim, self.theta = head_dim, theta

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, frames: int,
                key_mask: torch.Tensor | None = None) -> TokenSequence:
        rope = rope_cos_sin(positions, self.head_dim, self.theta)
        return TokenSequence(tokens, rope, positions, frames, key_mask)


class TokensOut(nn.Module):
    """Where the generated stream leaves the blocks: head-normed tokens ``[B, N, D']`` → (video
    ``[B, F·S, D']``, motion ``[B, F, D']`` or None) as ``layout`` (the whole sequence) says. Parameter-free;
    a module boundary for hooks, like :class:`TokensIn`."""

    def forward(self, tokens: torch.Tensor, layout: GenLayout) -> tuple[torch.Tensor, torch.Tensor | None]:
        return layout.split(tokens)


class AudioContext(nn.Module):
    """Embedded audio ``[B, F, Ka, D]`` (+ window slot positions ``[(2w+1)·Ka, D]``) → each latent frame's
    window: context ``[B, F, (2w+1)·Ka, D]`` and mask ``[B, F, (2w+1)·Ka]``, made once for every block.
    Parameter-free (the positions are the DiT's); a module boundary for hooks, like :class:`TokensIn`."""

    def __init__(self, window: int):
        super().__init__()
        self.window = window

    def forward(self, audio: torch.Tensor, positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ctx, mask = audio_windows(audio, self.window)
        if positions is not None:
            ctx = ctx + positions.to(ctx.dtype)
        return ctx, mask


class VideoRefDiT(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        patch_volume = math.prod(cfg.patch_size)
        # --- Wan2.1 parts (names mapped by models/dit/wan_weights.py) ---
        self.patch_embedding = nn.Conv3d(cfg.in_channels, d, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        # Wan2.1 I2V's CLIP image branch (img_emb; k_img/v_img in the blocks' cross-attention), when image_dim > 0
        self.image_embedding = ImageEmbedding(cfg.image_dim, d) if cfg.image_dim else None
        self.blocks = nn.ModuleList([VideoRefBlock(cfg) for _ in range(cfg.num_layers)])
        self.head = Head(d, cfg.latent_channels * patch_volume, cfg.eps)
        # parameter-free stages: the module boundaries of the token streams (hooks attach here)
        self.tokens_in = TokensIn(cfg.head_dim, cfg.rope_theta)
        self.tokens_out = TokensOut()
        # --- avatarv parts: each starts as the identity on the Wan path ---
        self.ref_embedding = nn.Parameter(torch.zeros(d))  # marks reference tokens
        self.audio_embedding = self.audio_position = self.audio_context = self.audio_proj = None
        self.speaker_audio = None
        if cfg.audio_dim and cfg.audio_adapter == "infinitetalk":  # models/dit/infinitetalk_audio.py
            self.audio_proj = InfiniteTalkAudioProjection(cfg)
            self.speaker_audio = SpeakerAudioStage()  # parameter-free boundary of the audio tokens
        elif cfg.audio_dim:
            self.audio_embedding = nn.Sequential(
                nn.Linear(cfg.audio_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d)
            )
            self.audio_context = AudioContext(cfg.audio_window)
            if cfg.audio_positions:  # one embedding per slot of a frame's audio window (cross_attention.py)
                self.audio_position = nn.Parameter(torch.zeros((2 * cfg.audio_window + 1) * cfg.audio_tokens_per_frame, d))
        self.motion_embedding = self.motion_head = None
        if cfg.motion_dim:
            self.motion_embedding = nn.Linear(cfg.motion_dim, d)
            self.motion_head = nn.Linear(d, cfg.motion_dim)
        # the reference's pooled behaviour, into the time embedding (models/dit/behaviour.py)
        self.behaviour_embedding = BehaviourEmbedding(cfg) if cfg.ref_behaviour else None
        self.guidance_embedding = None
        if cfg.num_guidance_scales:
            self.guidance_embedding = nn.Sequential(
                nn.Linear(cfg.freq_dim * cfg.num_guidance_scales, d), nn.SiLU(), nn.Linear(d, d)
            )
        self.reset_parameters()
        self.set_attention_backend(cfg.attn_backend)

    def set_attention_backend(self, backend: str) -> None:
        """Point every attention layer at one backend (``auto`` chooses per call)."""
        fn = make_attention(backend)
        for module in self.modules():
            if hasattr(module, "attn_fn"):
                module.attn_fn = fn

    # ------------------------------------------------------------------ init
    def reset_parameters(self) -> None:
        """Wan's init (xavier linears, zero biases, N(0, .02) embeddings, zero head) + zero new outputs."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        nn.init.zeros_(self.patch_embedding.bias)
        for seq in (self.text_embedding, self.time_embedding):
            for m in seq:
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.head.proj.weight)
        if self.audio_position is not None:
            nn.init.zeros_(self.audio_position)
        zero_out = [b.audio_attn.o for b in self.blocks if b.audio_attn is not None]
        # InfiniteTalk's adapter: zero output projection, so a Wan I2V DiT grown by it starts as Wan I2V
        # (a loaded InfiniteTalk file overwrites it)
        zero_out += [b.audio_cross_attn.proj for b in self.blocks if b.audio_cross_attn is not None]
        if self.motion_head is not None:
            zero_out.append(self.motion_head)
        if self.guidance_embedding is not None:
            zero_out.append(self.guidance_embedding[-1])
        if self.behaviour_embedding is not None:
            zero_out.append(self.behaviour_embedding.mlp[-1])
        for m in zero_out:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    # ---------------------------------------------------------------- tokens
    def _timestep_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """Flow time t ``[B]`` ∈ [0, 1] → ``[B, D]`` (Wan: sinusoid of t·1000 → MLP)."""
        sin = timestep_sinusoid(t * self.cfg.timestep_scale, self.cfg.freq_dim)
        return self.time_embedding(sin.to(self.time_embedding[0].weight.dtype))

    def _embed_video(self, latents: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """latents ``[B, C, F, H, W]`` (+ cond ``[B, 4 + C, F, H, W]``) → tokens ``[B, F·H'·W', D]``."""
        if self.cfg.cond_channels:
            if cond is None:
                b, _, f, h, w = latents.shape
                cond = latents.new_zeros(b, self.cfg.cond_channels, f, h, w)
            latents = torch.cat([latents, cond.to(latents.dtype)], dim=1)
        elif cond is not None:
            raise ValueError("this DiT has no condition input (cond_channels = 0) but cond was given")
        return self.patch_embedding(latents).flatten(2).transpose(1, 2)

    def _image_context(self, image: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """CLIP hidden states ``[B, 257, image_dim]`` → image context ``[B, 257, D]`` (None → None)."""
        if image is None:
            return None
        if self.image_embedding is None:
            raise ValueError("image given but this DiT has no CLIP image branch (image_dim = 0)")
        return self.image_embedding(image.to(dtype))

    def _speaker_audio(self, audio: torch.Tensor | None, masks: torch.Tensor | None, b: int, f: int, h: int, w: int,
                       dtype: torch.dtype) -> SpeakerAudio:
        """The InfiniteTalk adapter's audio tokens for every block (models/dit/infinitetalk_audio.py)."""
        cfg = self.cfg
        frames = 1 + cfg.audio_tokens_per_frame * (f - 1)
        if audio is None:  # InfiniteTalk's unconditional passes: one speaker of zeros
            audio = torch.zeros(b, 1, frames, cfg.audio_frame_window, cfg.audio_layers, cfg.audio_dim,
                                device=self.audio_proj.proj1.weight.device, dtype=dtype)
        want = (frames, cfg.audio_frame_window, cfg.audio_layers, cfg.audio_dim)
        if audio.ndim != 6 or tuple(audio.shape[2:]) != want or audio.shape[1] not in (1, 2):
            raise ValueError(f"audio must be [B, speakers (1 or 2), {', '.join(map(str, want))}] for {f} latent "
                             f"frames, got {list(audio.shape)}")
        speakers = audio.shape[1]
        token_mask = None
        if speakers > 1:
            if masks is None:
                raise ValueError("two speakers need speaker_masks [B or 1, 3, H, W] (speaker 1, speaker 2, background)")
            if masks.shape[-3] != 3:
                raise ValueError(f"speaker_masks needs 3 masks (speaker 1, speaker 2, background), got {masks.shape[-3]}")
            token_mask = token_masks(masks, h, w)
        tokens = self.audio_proj.speaker_tokens(audio.to(dtype))
        return self.speaker_audio(tokens.expand(b, -1, -1, -1) if tokens.shape[0] == 1 else tokens, speakers,
                                  token_mask)

    def _grid(self, latents: torch.Tensor) -> tuple[int, int, int]:
        pt, ph, pw = self.cfg.patch_size
        _, _, f, h, w = latents.shape
        if f % pt or h % ph or w % pw:
            raise ValueError(f"latent size {(f, h, w)} is not divisible by the patch size {self.cfg.patch_size}")
        return f // pt, h // ph, w // pw

    def ref_tokens(self, ref: RefInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Reference tokens ``[B_ref, N_ref, D]``, their positions ``[N_ref, 3]`` and key mask ``[B_ref, N_ref]``.

        Reference latents are clean, so in the I2V layout they enter as their own condition (mask = 1).
        """
        lat = ref.latents
        cond = None
        if self.cfg.cond_channels:
            b, _, f, h, w = lat.shape
            cond = torch.cat([lat.new_ones(b, 4, f, h, w), lat], dim=1)
        video = self._embed_video(lat, cond)
        f, h, w = self._grid(lat)
        has_motion = ref.motion is not None and self.motion_embedding is not None
        layout = GenLayout(frames=f, height=h, width=w, motion=has_motion)
        motion = self.motion_embedding(ref.motion.to(video.dtype)) if has_motion else None
        tokens = layout.interleave(video, motion)
        offset = self.cfg.ref_time_offset if ref.time_offset is None else ref.time_offset
        pos = layout.positions(t_offset=offset, device=lat.device)
        mask = None
        if ref.frame_mask is not None:
            mask = ref.frame_mask.bool().repeat_interleave(layout.per_frame, dim=1)  # [B, F·per_frame]
        return tokens + self.ref_embedding.to(tokens.dtype), pos, mask

    # ------------------------------------------------------------- reference
    def compute_ref_kv(self, ref: RefInputs) -> tuple[list[KV], torch.Tensor | None]:
        """Run the reference stream once: per-block K/V ``[B_ref, H, N_ref, d]`` and the key mask.

        The public entry (registered as an FSDP forward method); ``forward`` calls the stream directly so
        FSDP does not reshard the root's parameters in the middle of its own forward.
        """
        return self._reference_stream(ref)

    def _reference_stream(self, ref: RefInputs) -> tuple[list[KV], torch.Tensor | None]:
        ref_x, pos, mask = self.ref_tokens(ref)
        seq = self.tokens_in(ref_x, pos, self._grid(ref.latents)[0], mask)
        ref_x, rope, mask = seq.tokens, seq.rope, seq.key_mask
        temb0 = self._timestep_embedding(torch.zeros(1, device=ref_x.device))
        temb6_ref = self.time_projection(temb0).unflatten(1, (6, -1))  # [1, 6, D]
        kvs: list[KV] = []
        for i, block in enumerate(self.blocks):
            ref_x, kv = block.forward_ref(ref_x, temb6_ref, rope, mask, last=i == len(self.blocks) - 1)
            kvs.append(kv)
        return kvs, mask

    def _reference_kv(self, ref, ref_cache) -> tuple[list[KV | None], torch.Tensor | None]:
        """Per-block K/V of one or several reference streams (from their caches when given), concatenated."""
        if ref is None:
            return [None] * len(self.blocks), None
        refs = ref if isinstance(ref, (list, tuple)) else [ref]
        caches = ref_cache if isinstance(ref_cache, (list, tuple)) else [ref_cache] * len(refs)
        if len(caches) != len(refs):
            raise ValueError(f"{len(refs)} references but {len(caches)} caches")
        streams = []
        for r, c in zip(refs, caches, strict=True):
            streams.append(c.get(self, r, build=self._reference_stream) if c is not None else self._reference_stream(r))
        if len(streams) == 1:
            kvs, mask = streams[0]
            return list(kvs), mask
        kvs = [
            (torch.cat([s[0][i][0] for s in streams], dim=2), torch.cat([s[0][i][1] for s in streams], dim=2))
            for i in range(len(self.blocks))
        ]
        masks = [s[1] for s in streams]
        if all(m is None for m in masks):
            return kvs, None
        filled = [
            m if m is not None else torch.ones(s[0][0][0].shape[0], s[0][0][0].shape[2], dtype=torch.bool,
                                               device=s[0][0][0].device)
            for m, s in zip(masks, streams, strict=True)
        ]
        batch = max(m.shape[0] for m in filled)
        return kvs, torch.cat([m.expand(batch, -1) for m in filled], dim=1)

    # --------------------------------------------------------------- forward
    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        motion: torch.Tensor | None = None,
        ref: RefInputs | list[RefInputs] | None = None,
        ref_cache: RefKVCache | list[RefKVCache | None] | None = None,
        guidance: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        speaker_masks: torch.Tensor | None = None,
    ) -> DiTOutput:
        """Velocity of the flow at (x, t).

        x ``[B, C, F, H, W]`` noisy latents; t ``[B]`` flow time ∈ [0, 1]; text ``[B, L, text_dim]``;
        cond ``[B, 4 + C, F, H, W]`` (I2V mask + known latents); audio ``[B, F, Ka, audio_dim]`` per latent
        frame; motion ``[B, F, motion_dim]`` noisy motion features; ref: the reference (K/V from
        ``ref_cache`` when given) — or a list of references (e.g. the reference video and the long-form
        appearance anchor), each run as its own stream with its own cache, whose K/V are concatenated;
        guidance ``[B, num_guidance_scales]`` for distilled students;
        image ``[B, 257, image_dim]`` CLIP hidden states (Wan2.1 I2V's image branch; attended beside the text).

        With the InfiniteTalk adapter (``audio_adapter="infinitetalk"``) audio is wav2vec windows per video frame
        ``[B, S, 1 + s·(F − 1), W, L, C]`` for S = 1 or 2 speakers (None: one silent speaker, as InfiniteTalk's
        unconditional passes), and two speakers need speaker_masks ``[B or 1, 3, H, W]`` (speaker 1, speaker 2,
        background; any resolution) for L-RoPE.
        """
        cfg = self.cfg
        b = x.shape[0]
        f, h, w = self._grid(x)
        if motion is not None and self.motion_embedding is None:
            raise ValueError("motion given but this DiT has no motion stream (motion_dim = 0)")
        video = self._embed_video(x, cond)  # [B, f·h·w, D]
        layout = GenLayout(frames=f, height=h, width=w, motion=motion is not None)
        m_tokens = self.motion_embedding(motion.to(video.dtype)) if motion is not None else None
        tokens = layout.interleave(video, m_tokens)  # [B, N_gen, D] frame-major
        seq = self.tokens_in(tokens, layout.positions(device=x.device), f)
        tokens = seq.tokens

        t = t.reshape(-1).expand(b) if t.numel() == 1 else t
        temb = self._timestep_embedding(t)  # [B, D]
        if guidance is not None:
            if self.guidance_embedding is None:
                raise ValueError("guidance scales given but this DiT was not built for them")
            g = torch.cat([timestep_sinusoid(guidance[:, i] * 1000, cfg.freq_dim) for i in range(guidance.shape[1])], -1)
            temb = temb + self.guidance_embedding(g.to(temb.dtype))
        if self.behaviour_embedding is not None:
            emb = self.behaviour_embedding(ref)  # [B_ref, D] (B_ref = 1 or B), None without reference motion
            if emb is not None:
                temb = temb + emb.to(temb.dtype)
        temb6 = self.time_projection(temb).unflatten(1, (6, -1))  # [B, 6, D]

        text_ctx = None if text is None else self.text_embedding(text.to(tokens.dtype))
        image_ctx = self._image_context(image, tokens.dtype)
        audio_ctx = None
        if self.audio_proj is not None:
            audio_ctx = self._speaker_audio(audio, speaker_masks, b, f, h, w, tokens.dtype)
        elif audio is not None:
            if self.audio_embedding is None:
                raise ValueError("audio given but this DiT has no audio cross-attention (audio_dim = 0)")
            if audio.shape[1] != f:
                raise ValueError(f"audio has {audio.shape[1]} latent frames, video has {f}")
            if self.audio_position is not None and audio.shape[2] != cfg.audio_tokens_per_frame:
                raise ValueError(f"audio has {audio.shape[2]} tokens per latent frame, the audio positions are "
                                 f"for {cfg.audio_tokens_per_frame}")
            # per-frame windows ([B, f, (2w+1)·Ka, D] and mask), made once for every block
            audio_ctx = self.audio_context(self.audio_embedding(audio.to(tokens.dtype)), self.audio_position)

        ref_kvs, ref_mask = self._reference_kv(ref, ref_cache)

        block_layout = replace(layout, frames=seq.frames)  # the frames that entered the blocks
        window = (seq.positions[:, 0], cfg.local_window) if cfg.local_window else None  # time position = frame
        for block, kv in zip(self.blocks, ref_kvs, strict=True):
            tokens = block(tokens, temb6, seq.rope, text_ctx, audio_ctx, block_layout, kv, ref_mask, seq.key_mask,
                           window, image=image_ctx)

        video_out, motion_out = self.tokens_out(self.head(tokens, temb), layout)
        video = self.unpatchify(self.head.proj(video_out), f, h, w)
        motion_v = self.motion_head(motion_out) if motion_out is not None else None
        return DiTOutput(video=video, motion=motion_v)

    def unpatchify(self, x: torch.Tensor, f: int, h: int, w: int) -> torch.Tensor:
        """``[B, f·h·w, C·pt·ph·pw]`` → ``[B, C, f·pt, h·ph, w·pw]`` (diffusers' Wan order)."""
        pt, ph, pw = self.cfg.patch_size
        b = x.shape[0]
        x = x.reshape(b, f, h, w, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    # ----------------------------------------------------------- utilities
    def grown(self, **changes) -> VideoRefDiT:
        """This DiT with config ``changes`` that add zero-initialised parts (the same outputs), its weights
        kept: for continuing a checkpoint trained without them. Only new parameters may be missing."""
        from dataclasses import replace

        new = VideoRefDiT(replace(self.cfg, **changes)).to(next(self.parameters()).device)
        missing, unexpected = new.load_state_dict(self.state_dict(), strict=False)
        old = set(self.state_dict())
        if unexpected or any(k in old for k in missing):
            raise RuntimeError(f"growing the DiT by {sorted(changes)}: missing {missing}, unexpected {unexpected}")
        return new

    def with_audio_positions(self) -> VideoRefDiT:
        """This DiT with audio window positions added (zero: the same outputs), for continuing a checkpoint
        trained without them. Returns self when it has them or has no audio."""
        if self.cfg.audio_positions or not self.cfg.audio_dim:
            return self
        return self.grown(audio_positions=True)

    def with_ref_behaviour(self, mean: tuple[float, ...], std: tuple[float, ...]) -> VideoRefDiT:
        """This DiT with the reference-behaviour condition added (zero output layer: the same outputs) and its
        standardisation statistics set. Returns self when it has it already."""
        if self.cfg.ref_behaviour:
            return self
        return self.grown(ref_behaviour=True, behaviour_mean=tuple(mean), behaviour_std=tuple(std))

    @staticmethod
    def count_parameters(cfg: DiTConfig) -> int:
        """Parameters of a DiT with this config, built on the meta device (works for wan-14b)."""
        with torch.device("meta"):
            model = VideoRefDiT(cfg)
        return sum(p.numel() for p in model.parameters())

    def save_pretrained(self, directory: str | Path) -> None:
        from avatarv.models.dit.checkpoint import save_dit

        save_dit(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> VideoRefDiT:
        from avatarv.models.dit.checkpoint import load_dit

        return load_dit(directory, device=device)


__all__ = ["VideoRefDiT"]
