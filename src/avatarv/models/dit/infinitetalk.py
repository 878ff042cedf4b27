"""InfiniteTalk's ``WanModel`` interface over avatarv's DiT: code written against InfiniteTalk ports over.

``infinitetalk_forward`` takes ``WanModel.forward``'s own arguments (MeiGen-AI/InfiniteTalk
``wan/modules/multitalk_model.py``) — lists of ``[C, F, H, W]`` latents and conditions, timesteps on Wan's
0…1000 scale, text contexts padded to ``text_len`` tokens (all of them attended, as InfiniteTalk does),
``clip_fea`` ``[B, 257, 1280]``, audio ``[speakers, frames, 5, 12, 768]`` and ``ref_target_masks`` ``[3, h, w]``
— and returns what it returns: ``[B, C, F, H, W]`` float. ``load_infinitetalk`` builds the DiT for a Wan2.1-I2V
base and an InfiniteTalk / MultiTalk audio file (``audio_adapter="infinitetalk"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from avatarv.errors import CheckpointError
from avatarv.models.dit.model import VideoRefDiT

TEXT_LEN = 512  # Wan's text_len: contexts are zero-padded to it and every position is attended


def _pad_text(context: Sequence[torch.Tensor], text_len: int) -> torch.Tensor:
    """list of ``[L_i, text_dim]`` → ``[B, text_len, text_dim]`` zero-padded (``WanModel.forward``)."""
    if any(c.shape[0] > text_len for c in context):
        raise ValueError(f"a text context is longer than text_len = {text_len}")
    return torch.stack([torch.cat([c, c.new_zeros(text_len - c.shape[0], c.shape[1])]) for c in context])


def infinitetalk_forward(
    model: VideoRefDiT,
    x: Sequence[torch.Tensor],
    t: torch.Tensor,
    context: Sequence[torch.Tensor],
    seq_len: int,
    clip_fea: torch.Tensor,
    y: Sequence[torch.Tensor],
    audio: torch.Tensor,
    ref_target_masks: torch.Tensor | None = None,
    text_len: int = TEXT_LEN,
) -> torch.Tensor:
    """InfiniteTalk's ``WanModel.forward`` on avatarv's DiT.

    x: B latents ``[C, F, H, W]``; t ``[B]`` or ``[1]`` on 0…1000; context: B text states ``[L_i, text_dim]``;
    seq_len: the padded token count (≥ the tokens, as InfiniteTalk asserts); clip_fea ``[B, 257, image_dim]``;
    y: B conditions ``[4 + C, F, H, W]``; audio ``[S, V, W, L, C]`` (S = 1 or 2 speakers, shared by the batch);
    ref_target_masks ``[3, h, w]`` (needed for two speakers) → ``[B, C, F, H, W]`` float.
    """
    if model.audio_proj is None:
        raise ValueError("this DiT has no InfiniteTalk audio adapter (audio_adapter = 'infinitetalk')")
    latents = torch.stack(list(x))
    cond = torch.stack(list(y))
    pt, ph, pw = model.cfg.patch_size
    tokens = (latents.shape[2] // pt) * (latents.shape[3] // ph) * (latents.shape[4] // pw)
    if tokens > seq_len:
        raise ValueError(f"{tokens} tokens exceed seq_len = {seq_len}")
    dtype = context[0].dtype
    text = _pad_text(context, text_len)
    t = t.reshape(-1).float() / model.cfg.timestep_scale
    out = model(
        latents.to(dtype), t.expand(latents.shape[0]) if t.numel() == 1 else t, text=text, cond=cond.to(dtype),
        audio=audio[None].to(dtype), image=clip_fea.to(dtype), speaker_masks=ref_target_masks,
    )
    return out.video.float()


def load_infinitetalk(
    base: str | Path, audio_file: str | Path, lora=None, dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu", **extras,
) -> VideoRefDiT:
    """The InfiniteTalk / MultiTalk DiT from local files: ``base`` a Wan2.1-I2V checkpoint (original layout with
    ``config.json`` + one file or shards + index, or a diffusers ``transformer/`` folder, or a diffusers pipeline
    holding one), ``audio_file`` InfiniteTalk's ``infinitetalk.safetensors`` (single or multi) or MultiTalk's
    ``multitalk.safetensors``. Built on the meta device and loaded shard by shard in ``dtype`` on ``device``
    (``streaming_load``); ``lora``: LoRA specs (``models/dit/lora.py: LoraSpec``) merged as each weight loads.
    Strict: a missing or unexpected key is a :class:`CheckpointError` naming it. ``extras`` override the config."""
    from avatarv.models.dit.streaming_load import load_dit_streaming
    from avatarv.models.dit.wan_weights import (
        dit_config_from_wan,
        read_safetensors_header,
        wan_checkpoint_dir,
        wan_checkpoint_files,
        wan_config_json,
    )

    audio_file = Path(audio_file)
    if not audio_file.is_file():
        raise CheckpointError("InfiniteTalk audio-adapter file not found", audio_file)
    files = wan_checkpoint_files(base)
    shapes = {k: shape for f in files for k, (_, shape) in read_safetensors_header(f).items()}
    audio_shapes = {k: shape for k, (_, shape) in read_safetensors_header(audio_file).items()}
    config_dir = wan_checkpoint_dir(base) if Path(base).is_dir() else Path(base).parent
    cfg = dit_config_from_wan(wan_config_json(config_dir), shapes, audio_shapes, **extras)
    if cfg.audio_adapter != "infinitetalk":
        raise CheckpointError("not an InfiniteTalk / MultiTalk audio file (no audio_proj keys)", audio_file)
    specs = [] if lora is None else list(lora)
    model, _ = load_dit_streaming([*files, audio_file], cfg, dtype=dtype, device=device, lora=specs)
    return model.eval()


__all__ = ["infinitetalk_forward", "load_infinitetalk", "TEXT_LEN"]
